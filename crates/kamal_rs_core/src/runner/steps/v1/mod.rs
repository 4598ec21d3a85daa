//! Kamal 1.9.3's steps for 1.x (Traefik) configs, on the same run context, SSH layer and output as
//! 2.x: the pull with its env-file check (`pull.rs`), the boot with its health cord and Traefik's
//! (`boot.rs`), the tag and prune, and the helpers they share. The commands that use them are
//! `runner/deploy_v1.rs` (`deploy`, `redeploy`), `runner/env_push.rs` and `runner/rollback.rs`.
//!
//! Kamal 1.9 sleeps to give Traefik time: 5 s after the new container is healthy, 5 s after the old
//! one turns unhealthy, and the readiness delay for containers without a health check. kamal_rs polls
//! health every 0.25 s instead of backing off 1, 2, 3... s (what is waited for is observable), and
//! overlaps the first 5 s with the old container's own way to `unhealthy` (see `boot.rs`); the other
//! two waits are for Traefik or for an app without a health check, which nothing can observe, so they
//! stay on the clock.

pub mod boot;
pub mod pull;

use crate::commands::v1::{self as cmd, AppV1};
use crate::commands::{app, prune};
use crate::config::Role;
use crate::error::Result;
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::run::Plan;
use crate::runner::script::{Script, Shown};
use crate::runner::shell::Shell;

pub fn app<'a>(sh: &'a Plan<'_>, role: &'a Role) -> AppV1<'a> {
    AppV1::new(sh.config, role, &sh.run_id)
}

/// 1.9's audit line (unquoted) for `message`.
pub fn audit(sh: &Plan<'_>, role: Option<&str>, message: &str) -> String {
    let line = sh.auditor().line(&sh.clock.now(), role, message);
    cmd::audit(sh.sd(), &line)
}

/// Traefik runs on a host when one of its roles runs it.
pub fn runs_traefik(sh: &Plan<'_>, host: &str) -> bool {
    sh.roles_on(host)
        .iter()
        .any(|r| app(sh, r).running_traefik())
}

/// 1.9's `app boot` line.
pub fn say_start(sh: &Shell<'_, '_>) {
    sh.header(Phase::Boot);
}

/// A config read as 1.x only because it has no `builder.arch` (Kamal 2 requires one) is deployed
/// with Traefik, as Kamal 1.9.3 would: the run says so first.
pub fn say_why_v1(sh: &Shell<'_, '_>) {
    if sh.config.v1_by_elimination {
        sh.io.output.warn(
            "Deploying as Kamal 1.x (Traefik): the config has no builder.arch, which Kamal 2 requires",
        );
    }
}

/// 1.9's tag (every host) and prune (deploy), with the `healthcheck-S` containers pruned too.
fn tag_script(sh: &Plan<'_>) -> Script {
    let c = sh.config;
    let image = format!("{}:{}", c.repository(), sh.version);
    let mut s = Script::new();
    let tag_audit = audit(sh, None, &format!("Tagging {image} as the latest image"));
    let tag = app::tag_latest(c, &sh.version);
    s.run(Shown::debug(Phase::Tag, &tag_audit), &tag_audit)
        .run(Shown::info(Phase::Tag, &tag), &tag);
    if sh.options.prunes() {
        let service = c.service();
        let steps = [
            (audit(sh, None, "Pruned containers"), true),
            (prune::containers(&service, c.retain_containers()), false),
            (cmd::prune_healthcheck_containers(sh.sd()), false),
            (audit(sh, None, "Pruned images"), true),
            (prune::dangling_images(&service), false),
            (
                prune::tagged_images(&service, &c.repository(), &c.latest_tag()),
                false,
            ),
        ];
        for (step, debug) in steps {
            let shown = if debug {
                Shown::debug(Phase::Prune, &step)
            } else {
                Shown::info(Phase::Prune, &step)
            };
            s.run(shown, &step);
        }
    }
    s.chain()
}

/// `latest` tagged on every host (and, for `deploy`, old containers and images pruned).
pub async fn tag_all(sh: &Shell<'_, '_>) -> Result<()> {
    sh.io
        .on_hosts(&sh.sel.hosts, |h| tag_and_prune(sh, h))
        .await
}

async fn tag_and_prune(sh: &Shell<'_, '_>, host: &str) -> std::result::Result<(), HostError> {
    sh.io.output.progress(host, "tagging latest");
    let out = sh.exec(host, &tag_script(sh), &mut |_| {}).await?;
    if !out.success() {
        return Err(HostError::command_failed(host, "docker", &out));
    }
    sh.io
        .output
        .progress_done(host, &format!("{} live", sh.version));
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::runner::options::DeployOptions;
    use crate::runner::run::Run;
    use crate::runner::steps::tests::sh_n;
    use crate::test_support::config;
    use serde_json::json;

    pub fn v1_config() -> crate::config::Configuration {
        config(
            &[json!({"service": "app", "image": "app",
                     "servers": {"web": ["10.0.0.1"], "workers": {"hosts": ["10.0.0.3"], "cmd": "bin/jobs"}},
                     "registry": {"server": "registry.example.com", "username": "user", "password": "pass"},
                     "traefik": {"args": {"accesslog": true}},
                     "healthcheck": {"max_attempts": 3}})],
            None,
            "v2",
        )
    }

    #[test]
    fn tag_and_prune_as_1_9() {
        let c = v1_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let s = tag_script(&run);
        let text = crate::runner::script::unmarked(&s.text());
        assert!(text.starts_with(
            "echo [2026-12-01T10:00:00Z] [deployer@example.com] Tagging registry.example.com/app:v2 as the latest image >> .kamal/app-audit.log && docker tag registry.example.com/app:v2 registry.example.com/app:latest && echo [2026-12-01T10:00:00Z] [deployer@example.com] Pruned containers >> .kamal/app-audit.log && "
        ), "{text}");
        assert!(text.contains(
            " && docker container prune --force --filter label=service=healthcheck-app && "
        ));
        assert_eq!(s.shown.len(), 8);
        sh_n(&s.text());
    }
}
