//! After every boot: `latest` tagged on the app hosts (`lib/kamal/cli/app.rb#boot`), old containers and
//! images pruned (deploy; `lib/kamal/cli/prune.rb`), and the lock released, Kamal 2.12.0. Each host's
//! part is one command, or (`in_boot`) the end of its last boot's script, once every host's boots
//! succeeded; every host tags at once, and the primary host's part also releases the lock.

use super::lock;
use crate::commands::{app, prune};
use crate::error::Result;
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::run::Plan;
use crate::runner::script::{booted_gate, or_exit, Exit, Mark, Script, Shown};
use crate::runner::shell::Shell;
use crate::runner::state::LockState;
use crate::ssh;

/// Tag latest (app hosts), prune (deploy), release the lock (`release_lock`), as one line; `None` when
/// there is nothing to do on this host.
pub fn script(sh: &Plan<'_>, host: &str, release_lock: bool) -> Option<Script> {
    let c = sh.config;
    let auditor = sh.auditor();
    let mut s = Script::new();
    if sh.is_app_host(host) {
        let image = format!("{}:{}", c.repository(), sh.version);
        let (now, message) = (
            sh.clock.now(),
            format!("Tagging {image} as the latest image"),
        );
        let tag = app::tag_latest(c, &sh.version);
        s.run(
            Shown::debug(Phase::Tag, auditor.record(&now, None, &message)),
            &auditor.record_in_script(&now, None, &message),
        )
        .run(Shown::info(Phase::Tag, &tag), &tag);
    }
    if sh.options.prunes() {
        let service = c.service();
        for (message, commands) in [
            (
                "Pruned containers",
                vec![prune::containers(&service, c.retain_containers())],
            ),
            (
                "Pruned images",
                vec![
                    prune::dangling_images(&service),
                    prune::tagged_images(&service, &c.repository(), &c.latest_tag()),
                ],
            ),
        ] {
            let now = sh.clock.now();
            s.run(
                Shown::debug(Phase::Prune, auditor.record(&now, None, message)),
                &auditor.record_in_script(&now, None, message),
            );
            for cmd in commands {
                s.run(Shown::info(Phase::Prune, &cmd), &cmd);
            }
        }
    }
    if release_lock {
        let release = lock::release_command(sh);
        s.run(Shown::debug(Phase::Release, &release), &release);
    }
    (!s.is_empty()).then(|| s.chain())
}

/// The tag at the end of a host's last boot script: with several hosts it first waits until every
/// host's boots succeeded (`booted_gate`; `announced`: the boot said so already), as Kamal tags after
/// the last boot; a failure in the tag, the prune or the release ends it with `Exit::Tag`.
pub fn after_boot(sh: &Plan<'_>, tag: Script, announced: bool) -> Script {
    let mut s = Script::new();
    if sh.sel.hosts.len() > 1 {
        s.append(booted_gate(announced));
    } else {
        s.line(Mark::Booted.echo());
    }
    s.append(tag.map(|text| or_exit(text, Exit::Tag)));
    s.line(Mark::Tagged.echo());
    s
}

/// Whether this host's tag command releases the lock: the primary host, while this run holds it.
pub fn releases_lock(plan: &Plan<'_>, state: &LockState, host: &str) -> bool {
    host == plan.sel.primary_host && state.to_release()
}

/// A boot's script also tagged (and pruned, and released the lock).
pub fn done_in_boot(sh: &Shell<'_, '_>, state: &LockState, host: &str, released: bool) {
    if released {
        state.released();
    }
    sh.io
        .output
        .progress_done(host, &format!("{} live", sh.version));
}

/// A tag (prune, release) that failed after its boot had succeeded.
pub fn failed(host: &str, out: &ssh::Output) -> HostError {
    HostError::command_failed(host, "docker", out)
}

/// Every host tags at once, and the primary's command then releases the lock: Kamal releases it after
/// every tag; here the release may come while another host's `docker tag` is still finishing, which a
/// second deploy, whose first change is seconds away, cannot tell apart.
/// `hosts`: the run's active hosts (a host left behind by `--max-fail` keeps what it had: `latest`
/// only where the version booted).
pub async fn tag_all(sh: &Shell<'_, '_>, state: &LockState, hosts: &[String]) -> Result<()> {
    let release = state.to_release();
    let primary = sh.sel.primary_host.as_str();
    sh.io
        .on_hosts(hosts, |h| {
            tag_and_prune(sh, state, h, release && h == primary)
        })
        .await
}

async fn tag_and_prune(
    sh: &Shell<'_, '_>,
    state: &LockState,
    host: &str,
    release_lock: bool,
) -> std::result::Result<(), HostError> {
    let Some(script) = script(sh, host, release_lock) else {
        return Ok(());
    };
    sh.io.output.progress(host, "tagging latest");
    let out = sh.exec(host, &script, &mut |_| {}).await?;
    if !out.success() {
        return Err(failed(host, &out));
    }
    if release_lock {
        state.released();
    }
    let done = if sh.is_app_host(host) {
        format!("{} live", sh.version)
    } else {
        "done".into()
    };
    sh.io.output.progress_done(host, &done);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::{Command, DeployOptions};
    use crate::runner::plan;
    use crate::runner::run::Run;
    use crate::runner::script::{unmarked, Gate};
    use crate::runner::steps::tests::{golden_config, sh_n};

    #[test]
    fn a_deploy_tags_prunes_and_releases() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let s = script(&run, "10.0.0.1", true).unwrap();
        assert_eq!(
            unmarked(&s.text()),
            "mkdir -p .kamal && echo \"[2026-12-01T10:00:00Z] [deployer@example.com] [staging] Tagging registry.example.com/app:v2 as the latest image\" >> .kamal/app-staging-audit.log && docker tag registry.example.com/app:v2 registry.example.com/app:latest-staging && mkdir -p .kamal && echo \"[2026-12-01T10:00:00Z] [deployer@example.com] [staging] Pruned containers\" >> .kamal/app-staging-audit.log && docker ps -q -a --filter label=service=app --filter status=created --filter status=exited --filter status=dead | tail -n +6 | while read container_id; do docker rm $container_id; done && mkdir -p .kamal && echo \"[2026-12-01T10:00:00Z] [deployer@example.com] [staging] Pruned images\" >> .kamal/app-staging-audit.log && docker image prune --force --filter label=service=app && docker image ls --filter label=service=app --format '{{.ID}} {{.Repository}}:{{.Tag}}' | grep -v -w \"$(docker container ls -a --format '{{.Image}}\\|' --filter label=service=app | tr -d '\\n')registry.example.com/app:latest-staging\\|registry.example.com/app:<none>\" | while read image tag; do docker rmi $tag; done && rm .kamal/lock-app-staging/details && rm -r .kamal/lock-app-staging"
        );
        let phases: Vec<Phase> = s.shown.iter().map(|s| s.phase).collect();
        assert_eq!(phases[..2], [Phase::Tag, Phase::Tag]);
        assert_eq!(phases[7], Phase::Release);
        assert_eq!(s.shown.len(), 8);
        sh_n(&s.text());
        let folded = after_boot(&run, s, false);
        let text = unmarked(&folded.text());
        assert!(
            text.starts_with("echo \"kamal-rs:booted\"; echo \"kamal-rs:wait tag-wait\"; read -r go || go=stop; [ \"$go\" = go ] || { echo \"kamal-rs:halted\"; exit 85; }\n"),
            "{text}"
        );
        assert!(text.ends_with("|| exit 76\necho \"kamal-rs:tagged\""));
        assert_eq!(folded.gates(), [Gate::Booted]);
        sh_n(&folded.text());
    }

    #[test]
    fn a_redeploy_only_tags_and_an_accessory_host_has_nothing() {
        let c = golden_config();
        let options = DeployOptions {
            command: Command::Redeploy,
            ..DeployOptions::default()
        };
        let run = Run::for_test(&c, options);
        let s = script(&run, "10.0.0.3", false).unwrap();
        assert_eq!(s.shown.len(), 2);
        assert!(unmarked(&s.text()).ends_with(
            "docker tag registry.example.com/app:v2 registry.example.com/app:latest-staging"
        ));
        assert!(script(&run, "10.0.0.9", false).is_none());
        assert!(
            !plan::tags_in_boot(&run),
            "the workers role boots without kamal-proxy: tagged on its own"
        );
    }
}
