//! Local hooks (`.kamal/hooks/<name>`), run as Kamal runs them (`lib/kamal/cli/base.rb#run_hook`,
//! `lib/kamal/commands/hook.rb`, Kamal 2.12.0): only if the file exists, not with `-H`, with the
//! `KAMAL_*` environment (and the secrets, for pre-connect / pre-deploy / post-deploy).

use std::path::Path;

use crate::config::{Configuration, KamalMajor};
use crate::error::{Error, ErrorKind, Result};
use crate::output::local::HookResult;
use crate::output::{Output, Verbosity};
use crate::runner::cancel::Cancel;
use crate::runner::failure::failure_text;
use crate::runner::options::Command;
use crate::runner::shell::Shell;
use crate::runner::state::LockState;

pub struct Hooks<'a> {
    pub path: String,
    pub skip: bool,
    /// `hooks_output`, read per hook.
    config: &'a Configuration,
    v1: bool,
}

impl<'a> Hooks<'a> {
    pub fn new(config: &'a Configuration, skip: bool) -> Hooks<'a> {
        Hooks {
            path: config.hooks_path(),
            skip,
            config,
            v1: config.major == KamalMajor::V1,
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        !self.skip && Path::new(&self.path).join(name).is_file()
    }

    /// The verbosity a hook's lines show at: -q and -v win, else its `hooks_output`.
    fn level(&self, hook: &str, given: Verbosity) -> Verbosity {
        match (given, self.config.hooks_output(hook).as_deref()) {
            (Verbosity::Normal, Some("quiet")) => Verbosity::Quiet,
            (Verbosity::Normal, Some("verbose")) => Verbosity::Verbose,
            (given, _) => given,
        }
    }

    /// Runs the hook; a cancellation kills it (as Ctrl-C in a terminal would) and fails the step.
    pub async fn run(
        &self,
        name: &str,
        env: &[(String, String)],
        out: &Output,
        cancel: &Cancel,
    ) -> Result<()> {
        if !self.exists(name) {
            return Ok(());
        }
        let file = format!("{}/{name}", self.path);
        let uuid = crate::output::uuid();
        let started = std::time::Instant::now();
        let child = tokio::process::Command::new(&file)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::select! {
            r = child => r.map_err(|e| Error::new(ErrorKind::Hook, format!("Hook `{name}` failed:\n{file}: {e}")))?,
            _ = cancel.cancelled() => {
                return Err(Error::new(ErrorKind::Interrupted, format!("Interrupted while running the {name} hook")))
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let result = HookResult {
            seconds: started.elapsed().as_secs_f64(),
            status: output.status.code(),
            stdout: &stdout,
            stderr: &stderr,
        };
        if self.v1 {
            // 1.9 announced the hook itself (`say`); its output shows with -v or `verbose`.
            if self.level(name, out.verbosity()) == Verbosity::Verbose {
                for line in stdout.lines().chain(stderr.lines()) {
                    out.plain(&format!("  {line}"));
                }
            }
        } else {
            let command = format!("/usr/bin/env {file}");
            out.hook_lines(&uuid, &command, self.level(name, out.verbosity()), result);
        }
        if output.status.success() {
            return Ok(());
        }
        let status = output.status.code().unwrap_or(1);
        Err(Error::new(
            ErrorKind::Hook,
            format!(
                "Hook `{name}` failed:\n{}",
                failure_text(&file, status, &stdout, &stderr)
            ),
        ))
    }
}

/// What running a hook uses: the run's plan and output (a `Shell`), its hooks, and where its lock is
/// (`KAMAL_LOCK`).
#[derive(Clone, Copy)]
pub struct HookContext<'r, 'a> {
    pub sh: Shell<'r, 'a>,
    pub hooks: &'r Hooks<'a>,
    pub lock: &'r LockState,
}

/// The `KAMAL_*` environment of a hook run for `hosts`.
pub fn env(h: &HookContext<'_, '_>, hosts: &[String]) -> Vec<(String, String)> {
    let sh = &h.sh;
    let c = sh.config;
    let mut env = vec![
        ("KAMAL_RECORDED_AT".to_string(), sh.clock.now()),
        ("KAMAL_PERFORMER".into(), sh.performer.get().to_string()),
        ("KAMAL_VERSION".into(), sh.version.clone()),
        (
            "KAMAL_SERVICE_VERSION".into(),
            format!("{}@{}", c.service(), abbreviated(&sh.version)),
        ),
        ("KAMAL_SERVICE".into(), c.service()),
        ("KAMAL_HOSTS".into(), hosts.join(",")),
        ("KAMAL_COMMAND".into(), sh.options.command.name().into()),
    ];
    if sh.options.command == Command::EnvPush {
        env.push(("KAMAL_SUBCOMMAND".into(), "push".into()));
    }
    if let Some(d) = &c.destination {
        env.push(("KAMAL_DESTINATION".into(), d.clone()));
    }
    if let Some(roles) = &sh.sel.specific_roles {
        env.push(("KAMAL_ROLES".into(), roles.join(",")));
    }
    if c.major == KamalMajor::V1 {
        // 1.9's hooks get neither KAMAL_SERVICE nor KAMAL_LOCK.
        env.retain(|(k, _)| k != "KAMAL_SERVICE");
        return env;
    }
    env.push(("KAMAL_LOCK".into(), h.lock.is_held().to_string()));
    env
}

/// Runs a hook if it exists. `with_secrets`: pre-connect, pre-deploy and post-deploy also get every
/// secret in their environment. The environment is built only for a hook that exists: it needs the
/// performer, whose `git` lookup would otherwise hold up the first SSH connections.
pub async fn run_hook(
    h: &HookContext<'_, '_>,
    name: &str,
    hosts: &[String],
    extra: &[(String, String)],
    with_secrets: bool,
) -> Result<()> {
    if !h.hooks.exists(name) {
        return Ok(());
    }
    let sh = &h.sh;
    let mut env = env(h, hosts);
    if name == "pre-connect" && sh.options.command == Command::Rollback {
        // Kamal runs `pre-connect` as it takes the lock, before it sets the rollback's version
        // (`Kamal::Cli::Main#rollback`, Kamal 2.12.0 and 1.9.3): the hook sees the app's own.
        let version = sh.config.app_version()?;
        let service_version = format!("{}@{}", sh.config.service(), abbreviated(&version));
        for (key, value) in env.iter_mut() {
            match key.as_str() {
                "KAMAL_VERSION" => *value = version.clone(),
                "KAMAL_SERVICE_VERSION" => *value = service_version.clone(),
                _ => {}
            }
        }
    }
    env.extend(extra.iter().cloned());
    if with_secrets {
        env.extend(sh.config.secrets.pairs()?);
    }
    if sh.config.major == KamalMajor::V1 {
        // 1.9 announces a hook with `say` (magenta); 2.x's lines are SSHKit's for the command.
        sh.io.output.say(&format!("Running the {name} hook..."));
    }
    h.hooks.run(name, &env, &sh.io.output, &sh.io.cancel).await
}

/// `S@<V[0,7]>`'s version part; a version containing `_` is used whole.
pub fn abbreviated(version: &str) -> String {
    if version.contains('_') {
        version.to_string()
    } else {
        version.chars().take(7).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::DeployOptions;
    use crate::runner::run::Run;
    use crate::test_support::config;
    use serde_json::json;

    #[test]
    fn a_hooks_environment() {
        let c = config(
            &[
                json!({"service": "app", "image": "app", "servers": ["h1"], "builder": {"arch": "amd64"},
                     "registry": {"server": "r", "username": "u", "password": "p"}}),
            ],
            Some("staging"),
            "0123456789abcdef",
        );
        let run = Run::for_test(
            &c,
            DeployOptions {
                command: Command::Redeploy,
                ..DeployOptions::default()
            },
        );
        let env = env(&run.hook_context(), &["h1".to_string()]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KAMAL_SERVICE_VERSION"), Some("app@0123456"));
        assert_eq!(get("KAMAL_COMMAND"), Some("redeploy"));
        assert_eq!(get("KAMAL_DESTINATION"), Some("staging"));
        assert_eq!(get("KAMAL_PERFORMER"), Some("deployer@example.com"));
        assert_eq!(get("KAMAL_LOCK"), Some("false"));
        assert_eq!(get("KAMAL_ROLES"), None);
        assert_eq!(abbreviated("abc_uncommitted_1234"), "abc_uncommitted_1234");
    }
}
