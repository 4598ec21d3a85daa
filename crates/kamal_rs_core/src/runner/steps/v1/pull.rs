//! Kamal 1.9's pull (`lib/kamal/cli/build.rb#pull`, tag v1.9.3) with the deploy's registry login on
//! every host (1.9's `registry:login` step), and a check that every env file the deploy needs is there:
//! 1.x deploys upload none, and without one `docker run` would fail after the lock.

use super::{app, audit, runs_traefik};
use crate::commands::server;
use crate::commands::v1::Traefik;
use crate::error::{ErrorKind, Result};
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::run::Run;
use crate::runner::script::{Exit, Mark, Script, Shown};
use crate::runner::shell::Shell;
use crate::runner::steps::pull;
use crate::runner::sync::RolloutSync;

/// One host's pull as one line; with `deploy`, the registry login first.
pub fn script(sh: &Shell<'_, '_>, host: &str) -> std::result::Result<Script, HostError> {
    let mut s = Script::new();
    if sh.options.boots_proxy() {
        s.append(pull::login(sh)?);
    }
    let mut files: Vec<String> = sh
        .roles_on(host)
        .iter()
        .map(|r| app(sh, r).env_file_path())
        .collect();
    if sh.options.boots_proxy() && runs_traefik(sh, host) {
        files.push(Traefik::env_file_path().into());
    }
    for f in &files {
        s.line(format!(
            "{{ [ -f {f} ] || {{ {}; {}; }}; }}",
            Mark::MissingEnv.echo_with(f),
            Exit::MissingEnv.exit()
        ));
    }
    let line = audit(
        sh,
        None,
        &format!("Pulled image with version {}", sh.version),
    );
    let mut audit_part = Script::new();
    audit_part
        .run(
            Shown::info(Phase::Pull, server::ENSURE_RUN_DIRECTORY),
            &server::ensure_directory(".kamal"),
        )
        .run(Shown::debug(Phase::Pull, &line), &line);
    s.append(pull::image(sh, audit_part));
    Ok(s.chain())
}

pub async fn pull(
    sh: &Shell<'_, '_>,
    sync: &RolloutSync,
    host: &str,
) -> std::result::Result<(), HostError> {
    let s = script(sh, host)?;
    sh.io.output.progress(
        host,
        &format!("pulling {}:{}", sh.config.repository(), sh.version),
    );
    let out = pull::exec_interruptible(sh, sync, host, s).await?;
    if let Some(file) = Mark::MissingEnv.find(&out.stdout) {
        return Err(HostError::new(
            ErrorKind::Configuration,
            format!(
                "{host}: {file} is missing. Kamal 1.x deploys do not upload env files: run `kamal-rs env push` (or `kamal env push`) first"
            ),
        ));
    }
    if !out.success() {
        return Err(pull::failed(sh, host, &out));
    }
    sh.io.output.progress(host, "pulled, waiting for the lock");
    Ok(())
}

/// Every host pulls (takes the run: a host may stop answering Ctrl-C).
pub async fn pull_all(run: &Run<'_>) -> Result<()> {
    let sh = &run.shell();
    for (say, hosts) in pull::pull_order(sh).await? {
        if let Some(say) = say {
            sh.io.output.say(&say);
        }
        sh.io
            .on_hosts(&hosts, |h| async move {
                tokio::select! {
                    r = pull(sh, &run.sync, h) => r,
                    e = crate::runner::interrupt::unresponsive_after_interrupt(run, h) => Err(e),
                }
            })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::DeployOptions;
    use crate::runner::script::unmarked;
    use crate::runner::steps::tests::{run_sh, sh_n};
    use crate::runner::steps::v1::tests::v1_config;

    #[test]
    fn a_1_9_pull_checks_the_env_files_first() {
        let c = v1_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let s = script(&run.shell(), "10.0.0.1").unwrap();
        let text = unmarked(&s.text());
        assert!(text.contains(" && { [ -f .kamal/env/roles/app-web.env ] || { echo \"kamal-rs:missing-env .kamal/env/roles/app-web.env\"; exit 84; }; } && { [ -f .kamal/env/traefik/traefik.env ] || "));
        assert!(text.contains(" && mkdir -p .kamal && echo [2026-12-01T10:00:00Z] [deployer@example.com] Pulled image with version v2 >> .kamal/app-audit.log && { docker pull registry.example.com/app:v2 </dev/null & bg=$!; wait $bg; }"));
        let shown: Vec<&str> = s.shown.iter().map(|s| s.command.as_str()).collect();
        assert_eq!(
            shown[..2],
            [
                "docker login registry.example.com -u [REDACTED] -p [REDACTED]",
                "mkdir -p .kamal"
            ]
        );
        sh_n(&s.text());
        // Run where no env file exists: the missing one is named and the script ends there.
        let dir = std::env::temp_dir().join(format!("kamal-rs-v1-pull-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let check = text.split(" && mkdir -p .kamal && echo [").next().unwrap();
        let check = &check[check.find("{ [ -f ").unwrap()..];
        let (status, stdout) = run_sh(&format!("cd {} && {check}", dir.display()));
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(status, Some(84));
        assert_eq!(
            Mark::MissingEnv.find(&stdout),
            Some(".kamal/env/roles/app-web.env")
        );
    }
}
