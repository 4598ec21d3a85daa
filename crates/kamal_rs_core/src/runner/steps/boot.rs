//! One (host, role) boot, as Kamal's `Kamal::Cli::App::Boot` (`lib/kamal/cli/app/boot.rb`, Kamal
//! 2.12.0): a queuer waits at the barrier; the new container starts (one script, `BootScript`); the
//! gatekeeper opens the barrier, or closes it with the logs shown; a failed boot stops its new
//! container; the old one stops once the new one serves.

use super::boot_script::BootScript;
use super::poller;
use crate::commands::app::{container_hostname, App};
use crate::config::Role;
use crate::error::{ErrorKind, Result};
use crate::output::timeline::{Phase, Status};
use crate::runner::budget::Budget;
use crate::runner::failure::HostError;
use crate::runner::plan;
use crate::runner::report::RoleState;
use crate::runner::script::{Exit, Mark, Script, Shown};
use crate::runner::shell::Shell;
use crate::runner::sync::RolloutSync;
use crate::ssh;

pub struct Boot<'r, 'a> {
    pub sh: Shell<'r, 'a>,
    pub barrier: Barrier<'r>,
    pub host: &'r str,
    pub role: &'a Role,
    pub app: App<'a>,
}

/// The primary role's barrier as a boot takes part in it: the run's waits across hosts and its failure
/// budget (within `--max-fail`, a failing primary-role host is left behind instead of closing it).
#[derive(Clone, Copy)]
pub struct Barrier<'r> {
    pub sync: &'r RolloutSync,
    pub budget: &'r Budget,
}

impl<'r, 'a> Boot<'r, 'a> {
    pub fn new(sh: Shell<'r, 'a>, barrier: Barrier<'r>, host: &'r str, role: &'a Role) -> Self {
        Boot {
            sh,
            barrier,
            host,
            role,
            app: App::new(sh.config, role),
        }
    }

    /// The primary role's boots set the barrier.
    pub fn gatekeeper(&self) -> bool {
        plan::gatekeeper(&self.sh, self.role)
    }

    /// The boot's script, with its input looked up now: the env file, custom TLS certificates, and
    /// (on the host's first role) the error pages. `listed_in_background`: the script follows a first
    /// part that is already reading the role's containers.
    /// The boot's script; `announces_booted`: it says the host's boots succeeded as soon as
    /// kamal-proxy serves the new container, before the old one stops (`BootScript::announces_booted`).
    pub fn script(
        &self,
        listed_in_background: bool,
        announces_booted: bool,
    ) -> std::result::Result<Script, HostError> {
        let sh = self.sh;
        let env_file = self.app.env_file(self.host)?;
        let tls = tls_certificates(&sh, &self.app)?;
        if tls.is_some() {
            sh.io.output.info(&format!(
                "Writing SSL certificates for {} on {}",
                self.role.name, self.host
            ));
        }
        let first_role = sh
            .roles_on(self.host)
            .first()
            .is_some_and(|r| r.name == self.role.name);
        let error_pages = if first_role {
            error_pages(&sh)
        } else {
            Vec::new()
        };
        let auditor = sh.auditor();
        let script = BootScript {
            app: &self.app,
            auditor: &auditor,
            host: self.host,
            version: &sh.version,
            recorded_at: &sh.clock.now(),
            hostname: &container_hostname(self.host, &sh.clock.hex(6)),
            replaced_suffix: &sh.clock.hex(8),
            env_file: &env_file,
            tls: tls.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
            error_pages: &error_pages,
            listed_in_background,
            stop_stale: sh.options.stops_stale(),
            announces_booted,
        };
        Ok(script.build())
    }

    /// A marker of the boot's script, as it arrives.
    pub fn on_mark(&self, mark: Mark, arg: &str) {
        let (sh, host, role) = (self.sh, self.host, self.role.name.as_str());
        let version = &sh.version;
        if mark == Mark::Renamed {
            // Kamal says it under the boot's heading.
            sh.header(Phase::Boot);
        }
        match mark {
            // Kamal's lines, once per host: on a fleet the first few, then one for the rest.
            Mark::Stale => sh.io.output.per_host(
                "stale",
                None,
                &format!(
                    "App Host: {host}\nStopping stale container for role {role} with version {arg}"
                ),
                &format!("Stopping stale containers for role {role} on {{n}} (-v lists them all)"),
            ),
            Mark::Renamed => sh.io.output.per_host(
                "renamed",
                Some(host),
                &format!("Renaming container {version} to {arg} as already deployed on {host}"),
                &format!(
                    "Renaming container {version} as already deployed on {{n}} (-v lists them all)"
                ),
            ),
            Mark::Old => sh
                .io
                .reports
                .set_old_version(host, role, Some(arg.to_string())),
            Mark::Healthy => self.live(),
            _ => {}
        }
    }

    /// The new version serves: a gatekeeper opens the barrier.
    fn live(&self) {
        self.sh
            .io
            .reports
            .set_state(self.host, &self.role.name, RoleState::Live);
        if self.gatekeeper() {
            open_barrier(&self.sh, self.barrier, self.host);
        }
    }

    /// Kamal's message for a failure in the boot's own part of a script.
    pub fn error(&self, out: &ssh::Output) -> HostError {
        let (host, role) = (self.host, &self.role.name);
        match Exit::of(out.status) {
            Some(Exit::Endpoint) => HostError::on_host(
                ErrorKind::Boot,
                host,
                format!("Failed to get endpoint for {role} on {host}, did the container boot?"),
            ),
            Some(Exit::Audit | Exit::Files) => HostError::command_failed(host, "mkdir", out),
            _ => HostError::command_failed(host, "docker", out),
        }
    }

    /// A failed boot: Kamal's messages, the barrier closed if this was the first primary result (with
    /// the new container's logs and health shown), and the new container stopped, so the old one keeps
    /// serving.
    pub async fn failed(&self, error: HostError) -> HostError {
        let (sh, host, role) = (self.sh, self.host, self.role.name.as_str());
        sh.io
            .output
            .error_on(host, &format!("Failed to boot {role} on {host}"));
        sh.io
            .reports
            .set_state(host, role, RoleState::Failed(error.message.clone()));
        if self.gatekeeper() && close_barrier(&sh, self.barrier, host, &error.message) {
            self.show_logs_and_health().await;
        }
        let _ = sh
            .exec_one(host, Phase::Other, &self.app.stop(&sh.version), false)
            .await;
        error
    }

    /// The new container's logs, then its health, each as one ERROR message, as Kamal's
    /// `close_barrier` shows them (`lib/kamal/cli/app/boot.rb`, Kamal 2.12.0); a command that fails
    /// (no such container: `xargs docker logs` without an id) ends it with `Could not fetch logs for V`.
    async fn show_logs_and_health(&self) {
        let (sh, host, v) = (self.sh, self.host, &self.sh.version);
        for command in [self.app.logs(v), self.app.health_json(v)] {
            match sh.exec_one(host, Phase::Other, &command, false).await {
                Ok(out) if out.success() => sh.io.output.error_on(host, out.stdout.trim()),
                _ => {
                    let text = format!("Could not fetch logs for {v}");
                    return sh.io.output.error_on(host, &text);
                }
            }
        }
    }

    /// The connection died while the script ran (`booting`: past its boot's start). What the host runs
    /// now is not known, so nothing more is sent to it and nothing is claimed; a gatekeeper closes the
    /// barrier, since no healthy result came.
    pub fn lost(&self, error: HostError, booting: bool) -> HostError {
        let (sh, host, role) = (self.sh, self.host, self.role.name.as_str());
        if booting {
            sh.io.output.error_on(
                host,
                &format!("Lost the connection to {host} during the boot of {role}"),
            );
            sh.io.reports.set_state(
                host,
                role,
                RoleState::Unknown("connection lost during its boot".into()),
            );
        } else {
            sh.io.reports.set_unchecked(
                host,
                role,
                "could not check: connection lost before its boot",
            );
        }
        if self.gatekeeper() {
            close_barrier(&sh, self.barrier, host, &error.message);
        }
        error
    }

    /// After the script: a role without the proxy waits until its container is ready, then its old
    /// container stops (kamal-proxy roles did both in the script).
    pub async fn finish(&self) -> std::result::Result<(), HostError> {
        if self.app.running_proxy() {
            return Ok(());
        }
        if let Err(e) = poller::wait_until_ready(&self.sh, self.host, &self.app).await {
            return Err(self.failed(e).await);
        }
        self.live();
        let old = self.sh.io.reports.old_version(self.host, &self.role.name);
        if let Some(old) = old {
            let stop = Script::command(Shown::info(Phase::Stop, self.app.stop(&old)))
                .for_role(&self.role.name);
            let _ = self.sh.exec(self.host, &stop, &mut |_| {}).await;
        }
        Ok(())
    }
}

/// A role other than the primary one waits for the primary role's first health result (Kamal's
/// `wait_at_barrier`). `Ok(false)`: the run was interrupted meanwhile.
pub async fn wait_at_barrier(
    sh: &Shell<'_, '_>,
    barrier: Barrier<'_>,
    host: &str,
    role: &Role,
) -> std::result::Result<bool, HostError> {
    if sh.sel.roles.len() <= 1 || plan::gatekeeper(sh, role) {
        return Ok(true);
    }
    let primary = &sh.sel.primary_role;
    let waiting_since = std::time::Instant::now();
    if !barrier.sync.primary_known() {
        sh.io.output.info(&format!(
            "Waiting for the first healthy {primary} container before booting {} on {host}...",
            role.name
        ));
        sh.io.output.progress(
            host,
            &format!("waiting for the first healthy {primary} container"),
        );
    }
    let opened = tokio::select! {
        open = barrier.sync.wait_for_primary() => open,
        _ = sh.io.cancel.cancelled() => return Ok(false),
    };
    let status = if opened { Status::Ok } else { Status::Stopped };
    sh.io.timeline.record(
        host,
        Some(&role.name),
        Phase::Barrier,
        waiting_since,
        std::time::Instant::now(),
        status,
    );
    if !opened {
        sh.io.output.info(&format!(
            "First {primary} container is unhealthy, not booting {} on {host}",
            role.name
        ));
        return Err(HostError::on_host(
            ErrorKind::Healthcheck,
            host,
            "Halted at barrier",
        ));
    }
    sh.io.output.info(&format!(
        "First {primary} container is healthy, booting {} on {host}...",
        role.name
    ));
    Ok(true)
}

/// The first primary-role container is healthy: the other roles may boot.
pub fn open_barrier(sh: &Shell<'_, '_>, barrier: Barrier<'_>, host: &str) {
    if barrier.sync.primary_result(true) {
        sh.io.output.info(&format!(
            "First {} container is healthy on {host}, booting any other roles",
            sh.sel.primary_role
        ));
    }
}

/// Hosts of the primary role besides `host` that are not left behind.
fn other_gatekeepers(sh: &Shell<'_, '_>, budget: &Budget, host: &str) -> bool {
    sh.sel.hosts.iter().any(|h| {
        h != host
            && !budget.is_left_behind(h)
            && sh.roles_on(h).iter().any(|r| r.name == sh.sel.primary_role)
    })
}

/// The first primary-role result is a failure: the other roles will not boot. True when this call
/// closed it.
pub fn close_barrier(sh: &Shell<'_, '_>, barrier: Barrier<'_>, host: &str, why: &str) -> bool {
    // Within the failure budget, a primary-role host that fails is left behind; another one still
    // opens the barrier (`rollout::left_behind` decides the same for this host).
    let budget = barrier.budget;
    if budget.allows_any()
        && host != sh.sel.primary_host
        && budget.leave(host, &crate::runner::budget::reason(why))
        && other_gatekeepers(sh, budget, host)
    {
        return false;
    }
    let closed = barrier.sync.primary_result(false);
    if closed {
        sh.io.output.info(&format!(
            "First {} container is unhealthy on {host}, not booting any other roles",
            sh.sel.primary_role
        ));
    }
    closed
}

/// Custom TLS certificates (`proxy.ssl: {certificate_pem:, private_key_pem:}` naming secrets) of a
/// proxy role: their contents, for `.kamal/proxy/apps-config/S[-D]/tls/R/`.
pub(crate) fn tls_certificates(
    sh: &Shell<'_, '_>,
    app: &App<'_>,
) -> Result<Option<(String, String)>> {
    if !app.running_proxy() {
        return Ok(None);
    }
    let Some((cert, key)) = app.proxy().custom_certificates() else {
        return Ok(None);
    };
    let cert = sh.config.secrets.get(&cert)?;
    let key = sh.config.secrets.get(&key)?;
    sh.io.output.add_secrets([key.clone()]);
    Ok(Some((cert, key)))
}

/// The `4??.html` and `5??.html` files of `error_pages_path`.
fn error_pages(sh: &Shell<'_, '_>) -> Vec<(String, Vec<u8>)> {
    let Some(dir) = sh.config.error_pages_path() else {
        return Vec::new();
    };
    let page = |name: &str| {
        let b = name.as_bytes();
        name.len() == 8 && name.ends_with(".html") && (b[0] == b'4' || b[0] == b'5')
    };
    let mut pages: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    page(&name)
                        .then(|| std::fs::read(e.path()).ok().map(|body| (name, body)))
                        .flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    pages.sort();
    pages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::DeployOptions;
    use crate::runner::run::Run;
    use crate::runner::steps::tests::{golden, golden_config, golden_config_with, sh_n};
    use crate::test_support::StandInDocker;
    use serde_json::json;

    #[test]
    fn a_proxy_roles_boot() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let s = run
            .boot("10.0.0.2", c.role("web").unwrap())
            .script(false, false)
            .unwrap();
        golden("web_boot.sh", &s.text());
        sh_n(&s.text());
        let upload = s.shown.iter().position(|s| s.upload).unwrap();
        assert_eq!(
            s.shown[upload].command,
            ".kamal/apps/app-staging/env/roles/web.env"
        );
        let run_cmd = &s.shown[upload + 1];
        assert!(run_cmd.command.starts_with("docker run --detach --restart unless-stopped --name app-web-staging-v2 --network kamal --hostname 10.0.0.2-0123456789ab "));
        assert_eq!(run_cmd.phase, Phase::Boot);
        let deploy = s.shown.iter().find(|s| s.phase == Phase::Health).unwrap();
        assert_eq!(deploy.var, Some("${cid}"));
        assert!(deploy
            .text("0123abcd")
            .contains("--target=\"0123abcd:3000\""));
        assert_eq!(s.stdin(), b"\n", "an env file without secrets");
    }

    #[test]
    fn a_role_without_the_proxy_boots_and_reports_started() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let s = run
            .boot("10.0.0.3", c.role("workers").unwrap())
            .script(false, false)
            .unwrap();
        golden("workers_boot.sh", &s.text());
        sh_n(&s.text());
    }

    /// Assets, custom TLS certificates and error pages: the files follow the env file on stdin.
    #[test]
    fn assets_certificates_and_error_pages() {
        let dir = std::env::temp_dir().join(format!("kamal-rs-boot-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pages")).unwrap();
        std::fs::write(dir.join("pages/404.html"), "not found").unwrap();
        std::fs::write(dir.join("pages/notes.txt"), "not a page").unwrap();
        std::fs::write(
            dir.join("secrets-common"),
            "CERT=certdata\nKEY=keydata\nDB_PASSWORD=hunter22\n",
        )
        .unwrap();
        let c = golden_config_with(json!({
            "secrets_path": dir.join("secrets").to_string_lossy(),
            "asset_path": "/rails/public/assets",
            "error_pages_path": dir.join("pages").to_string_lossy(),
            "env": {"secret": ["DB_PASSWORD"]},
            "proxy": {"hosts": ["app.example.com"], "ssl": {"certificate_pem": "CERT", "private_key_pem": "KEY"}}
        }));
        let run = Run::for_test(&c, DeployOptions::default());
        let s = run
            .boot("10.0.0.1", c.role("web").unwrap())
            .script(true, false)
            .unwrap();
        std::fs::remove_dir_all(&dir).ok();
        let text = s.text();
        golden(
            "web_boot_assets_tls_pages.sh",
            &text.replace(&dir.to_string_lossy().to_string(), "DIR"),
        );
        assert_eq!(s.stdin(), b"DB_PASSWORD=hunter22\ncertdatakeydata");
        assert!(
            !text.contains("hunter22") && !text.contains("keydata"),
            "secrets only on stdin"
        );
        assert_eq!(run.io.output.redact("keydata"), "[REDACTED]");
        sh_n(&text);
    }

    /// The boot script's own glue (the container scan, the stale stops, the rename of a clashing
    /// name, the container ID cut to 12) run by `sh` and by `bash` against a stand-in `docker`.
    #[test]
    fn the_container_scan_runs_in_sh_and_bash() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let s = run
            .boot("10.0.0.2", c.role("web").unwrap())
            .script(false, false)
            .unwrap();
        let docker = StandInDocker::new(
            "scan",
            "#!/bin/sh\necho \"$*\" >>\"$HOME/docker.log\"\ncase \"$1 $2\" in\n\
             'ps -a') cat \"$HOME/ps\" ;;\n'ps --latest') echo app-web-staging-v0 ;;\n\
             'run '*) echo 0123456789abcdef0123456789abcdef ;;\nesac\n",
        );
        // (docker ps -a lines, expected old version, the docker calls other than ps/run/exec)
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "", &[]),
            (
                "app-web-staging-v1 running\napp-web-staging-v0 exited\n",
                "v1",
                &["stop app-web-staging-v1"],
            ),
            (
                "app-web-staging-v1 running\napp-web-staging-v0 paused\napp-web-staging-v2 exited\n",
                "v1",
                &[
                    "stop app-web-staging-v0",
                    "rename app-web-staging-v2 app-web-staging-v2_replaced_0123456789abcdef",
                    "stop app-web-staging-v1",
                ],
            ),
            (
                "app-web-staging-v1 running\napp-web-staging-v0 restarting\n",
                "v0",
                &["stop app-web-staging-v1", "stop app-web-staging-v0"],
            ),
            (
                "app-web-staging-v2 running\n",
                "v2_replaced_0123456789abcdef",
                &[
                    "rename app-web-staging-v2 app-web-staging-v2_replaced_0123456789abcdef",
                    "stop app-web-staging-v2_replaced_0123456789abcdef",
                ],
            ),
        ];
        for shell in ["sh", "bash"] {
            for (ps, old, calls) in cases {
                let log = docker.dir.join("docker.log");
                std::fs::write(&log, "").unwrap();
                std::fs::write(docker.dir.join("ps"), ps).unwrap();
                let (ok, stdout) = docker.run(shell, &s.text(), &s.stdin());
                assert!(ok, "{shell}, {ps:?}: {stdout}");
                assert!(
                    stdout.contains(&format!("kamal-rs:old {old}\n")),
                    "{shell}, {ps:?}: {stdout}"
                );
                assert!(
                    stdout.contains("kamal-rs:container 0123456789ab\n"),
                    "{stdout}"
                );
                let called = std::fs::read_to_string(&log).unwrap();
                let called: Vec<&str> = called
                    .lines()
                    .filter(|l| {
                        !l.starts_with("ps ") && !l.starts_with("run ") && !l.starts_with("exec ")
                    })
                    .map(|l| l.split(" >").next().unwrap())
                    .collect();
                assert_eq!(&called, calls, "{shell}, {ps:?}");
            }
        }
    }

    #[test]
    fn failures_read_as_kamals() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let boot = run.boot("10.0.0.1", c.role("web").unwrap());
        let out = |status: i32, stdout: &str| ssh::Output {
            status: Some(status),
            stdout: stdout.into(),
            stderr: "boom".into(),
        };
        let e = boot.error(&out(73, "kamal-rs:run\n"));
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Boot, "Exception while executing on host 10.0.0.1: Failed to get endpoint for web on 10.0.0.1, did the container boot?"));
        let e = boot.error(&out(74, "kamal-rs:container abc\nkamal-rs:failed 1\n"));
        assert_eq!(e.message, "Exception while executing on host 10.0.0.1: docker exit status: 1\ndocker stdout: Nothing written\ndocker stderr: boom");
        let e = boot.error(&out(70, "kamal-rs:old v1\nkamal-rs:failed 1\n"));
        assert!(e.message.contains("mkdir exit status: 1"));
    }
}
