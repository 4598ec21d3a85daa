//! How this run's rollout is shaped, decided from the config, the options and the hooks before any
//! host is touched: whether each host goes on from its pull to its boot on its own (the per-host
//! rollout) or hosts move in boot groups; whether a host's pull runs in its first boot script; whether
//! the boots' scripts also tag `latest`; which role's first health result opens the barrier. The
//! scheduler (`rollout.rs`) and the steps both ask here; nothing here runs a command.

use crate::config::{KamalMajor, Role};
use crate::runner::run::{Plan, Run};

/// Whether each host can go on from its own pull to its boot without waiting for the others: only the
/// lock must come first, unless a `pre-deploy` or `pre-app-boot` hook runs in between, `boot.limit`
/// makes groups, `boot.wait` paces them, or a registry mirror is seeded first.
pub fn per_host(run: &Run<'_>) -> bool {
    !run.hooks.exists("pre-deploy")
        && !run.hooks.exists("pre-app-boot")
        && run.sel.boot_groups(run.config).len() == 1
        && run.config.boot().wait.unwrap_or(0) == 0
        && !may_seed_mirrors(run)
}

/// Whether a mirror may need seeding: Docker applies mirrors to Docker Hub images only, and only with
/// two app hosts or more is there a second host to pull from it.
pub fn may_seed_mirrors(run: &Plan<'_>) -> bool {
    run.config.registry().docker_hub() && run.sel.app_hosts.len() >= 2
}

/// Whether a host's pull (and kamal-proxy) can run in its first boot script: an app host of a Kamal 2
/// config whose first role boots without waiting at the barrier, and whose roles boot one by one.
pub fn pulls_in_boot(run: &Plan<'_>, host: &str) -> bool {
    let roles = run.roles_on(host);
    let Some(first) = roles.first() else {
        return false;
    };
    run.config.major == KamalMajor::V2
        && run.is_app_host(host)
        && (run.sel.roles.len() == 1 || gatekeeper(run, first))
        && (roles.len() == 1 || !run.config.boot().parallel_roles)
}

/// Whether each host tags `latest` (prunes, releases the lock) at the end of its last boot's script
/// instead of in a command of its own, saving an SSH session per host: in the per-host rollout of a
/// Kamal 2 config whose every host is an app host booting its roles one by one, the last one behind
/// kamal-proxy (its script ends with the new version serving; a role without the proxy is waited for
/// after its script).
pub fn tags_in_boot(run: &Run<'_>) -> bool {
    run.sync.tags_in_boot(|| decide_in_boot(run))
}

fn decide_in_boot(run: &Run<'_>) -> bool {
    run.config.major == KamalMajor::V2
        && per_host(run)
        && run.sel.hosts.iter().all(|h| {
            let roles = run.roles_on(h);
            run.is_app_host(h)
                && roles.last().is_some_and(|r| r.running_proxy())
                && (roles.len() == 1 || !run.config.boot().parallel_roles)
        })
}

/// The primary role's boots set the barrier.
pub fn gatekeeper(run: &Plan<'_>, role: &Role) -> bool {
    role.name == run.sel.primary_role
}
