//! `kamal rollback VERSION` (`lib/kamal/cli/main.rb#rollback`, Kamal 2.12.0; tag v1.9.3 for 1.x
//! configs, which boot with 1.9's steps): under the lock, when every app host still has a container
//! of that version for each of its roles, `pre-deploy`, the boot of that version (Kamal's `app:boot`:
//! no pull, no kamal-proxy boot, no stale containers, no prune), `latest` tagged, the lock released,
//! `post-deploy`. When the version is not there everywhere, Kamal's message (as an error) and nothing
//! changed.
//!
//! `kamal-rs rollback` without a version (which Kamal lacks) picks the newest version, other than the
//! running one, whose container every targeted host and role still has.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use futures::future::join_all;

use super::failure::{combine, HostError};
use super::groups;
use super::plan;
use super::rollout;
use super::run::{Plan, Run};
use super::script::{Mark, Script};
use super::steps::v1;
use super::steps::{check, lock, tag};
use crate::commands::app::App;
use crate::commands::v1::AppV1;
use crate::config::{KamalMajor, Role};
use crate::error::{Error, ErrorKind, Result};
use crate::output::timeline::Phase;

/// The commands a rollback sends for one role, in the config's Kamal major.
struct RoleCommands {
    /// `S-R[-D]`: a container's name without its version.
    prefix: String,
    /// `--filter label=...` for the role's containers.
    filters: String,
    /// Prints the version the role runs.
    running: String,
}

impl RoleCommands {
    fn new(run: &Plan<'_>, role: &Role) -> RoleCommands {
        match run.config.major {
            KamalMajor::V1 => {
                let app = AppV1::new(run.config, role, &run.run_id);
                RoleCommands {
                    prefix: app.prefix(),
                    filters: app.filters(),
                    running: app.current_running_version(),
                }
            }
            KamalMajor::V2 => {
                let app = App::new(run.config, role);
                RoleCommands {
                    prefix: app.container_prefix(),
                    filters: app.filters(),
                    running: app.running_version(),
                }
            }
        }
    }
}

/// The steps of a rollback to `run.version`.
pub async fn run(run: &Run<'_>) -> Result<()> {
    if run.config.major == KamalMajor::V2 && plan::per_host(run) {
        return per_host(run).await;
    }
    prepare(run).await?;
    available(run).await?;
    run.hook("pre-deploy", &run.active_hosts(), &[], true)
        .await?;
    match run.config.major {
        KamalMajor::V1 => v1::say_start(&run.shell()),
        KamalMajor::V2 => run.shell().header(Phase::Boot),
    }
    groups::in_groups(run).await?;
    run.io.checkpoint()?;
    match run.config.major {
        KamalMajor::V1 => v1::tag_all(&run.shell()).await,
        KamalMajor::V2 => tag::tag_all(&run.shell(), &run.lock, &run.active_hosts()).await,
    }
}

/// With no hook between the check and the boot (Kamal 2 configs, no `pre-deploy` or `pre-app-boot`
/// hook, one boot group), the deploy's per-host rollout: the primary host's script takes the lock, then
/// each host's script checks that it has the version and waits until every host has said so before it
/// boots (`rollout::first_script`). A host without the version stops them all, with Kamal's lines.
async fn per_host(run: &Run<'_>) -> Result<()> {
    if !run.shell().connected() {
        v1::say_why_v1(&run.shell());
        run.hook("pre-connect", &run.sel.hosts, &[], true).await?;
        // Each host connects and goes on to its script at once, as in a deploy's per-host rollout: a
        // host that cannot be reached stops every boot at the barrier.
        run.shell().prepare_connections()?;
    }
    match rollout::per_host_rollout(run).await {
        // Kamal tells this failure apart by its message too (`container_available?`).
        Err(e) if e.message.contains(check::NOT_FOUND) => return Err(not_available(run, e)),
        result => result?,
    }
    run.io.checkpoint()?;
    if plan::tags_in_boot(run) {
        return Ok(());
    }
    tag::tag_all(&run.shell(), &run.lock, &run.active_hosts()).await
}

/// `pre-connect` and the connections, once.
async fn connect(run: &Run<'_>) -> Result<()> {
    if !run.shell().connected() {
        v1::say_why_v1(&run.shell());
        run.hook("pre-connect", &run.sel.hosts, &[], true).await?;
        run.connect_all().await?;
    }
    Ok(())
}

/// `pre-connect`, the connections and the lock, once.
async fn prepare(run: &Run<'_>) -> Result<()> {
    connect(run).await?;
    run.io.touched.store(true, Ordering::SeqCst);
    if run.lock.to_take() {
        lock::acquire_on_primary(&run.shell(), &run.lock).await?;
    }
    Ok(())
}

/// Kamal's `container_available?`: every app host (1.9: every host) has a container of the version
/// for each of its roles. When one does not, Kamal's lines, as an error: Kamal prints them in red and
/// exits 0, kamal_rs exits 1 so that a script sees that nothing was rolled back.
async fn available(run: &Run<'_>) -> Result<()> {
    let hosts = run.sel.app_hosts.iter();
    let remaining = hosts.filter(|h| !run.budget.is_left_behind(h));
    let sh = run.shell();
    let checks = join_all(remaining.map(|host| check::check(&sh, host))).await;
    let mut missing = Vec::new();
    for check in checks {
        match check {
            Err(e) if e.message.contains(check::NOT_FOUND) => missing.push(e),
            other => other?,
        }
    }
    match combine(missing) {
        Err(e) => Err(not_available(run, e)),
        Ok(()) => Ok(()),
    }
}

/// Kamal's lines when the version is missing somewhere (`e`: which hosts), as an error.
fn not_available(run: &Run<'_>, e: Error) -> Error {
    run.io.output.plain(&format!(
        "Error looking for container version {}: {}",
        run.version, e.message
    ));
    Error::new(
        ErrorKind::Runtime,
        format!(
            "The app version '{}' is not available as a container (use 'kamal app containers' for available versions)",
            run.version
        ),
    )
}

/// For each of the host's roles: its name, its containers' names (`docker ps -a`) and the version it
/// runs.
fn versions_script(run: &Plan<'_>, host: &str) -> Script {
    let mut s = Script::new();
    for role in run.roles_on(host) {
        let cmds = RoleCommands::new(run, role);
        s.line(format!(
            "{}; docker ps -a {} --format '{{{{.Names}}}}' || exit 1; r=$({}) || exit 1; {}",
            Mark::Role.echo_with(&role.name),
            cmds.filters,
            cmds.running,
            Mark::Running.echo_with("$r")
        ));
    }
    s
}

/// What one (host, role) has: its containers' versions, newest first, and the version it runs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Versions {
    pub all: Vec<String>,
    pub running: Option<String>,
}

/// `kamal-rs rollback` without a version: under the lock, the newest version other than a running one
/// that every targeted (host, role) still has as a container.
pub async fn choose(run: &Run<'_>) -> Result<String> {
    prepare(run).await?;
    run.io
        .output
        .say("Looking for the newest version every host can roll back to...");
    let listed = join_all(run.sel.app_hosts.iter().map(|host| async move {
        let s = versions_script(run, host);
        let out = run.shell().exec(host, &s, &mut |_| {}).await?;
        if !out.success() {
            return Err(HostError::command_failed(host, "docker", &out));
        }
        Ok(parse_versions(run, &out.stdout))
    }))
    .await;
    let mut per_role = Vec::new();
    let mut errors = Vec::new();
    for result in listed {
        match result {
            Ok(roles) => per_role.extend(roles.into_values()),
            Err(e) => errors.push(e),
        }
    }
    combine(errors)?;
    let chosen = pick(&per_role).ok_or_else(|| {
        let running: Vec<String> = running_versions(&per_role);
        Error::new(
            ErrorKind::Runtime,
            format!(
                "No version to roll back to: no version other than the running one ({}) is available as a container on every host and role (use 'kamal app containers' for available versions)",
                running.join(", ")
            ),
        )
    })?;
    run.io.output.say(&format!(
        "Rolling back to {chosen}: the newest version besides the running {} that every host and role still has",
        running_versions(&per_role).join(", ")
    ));
    Ok(chosen)
}

/// A host's listing: for each role, its containers' versions (names without `S-R[-D]-`) and the
/// version it runs.
fn parse_versions(run: &Run<'_>, stdout: &str) -> HashMap<String, Versions> {
    let mut roles: HashMap<String, Versions> = HashMap::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        match Mark::parse(line) {
            Some((Mark::Role, role)) => current = Some(role.to_string()),
            Some((Mark::Running, version)) => {
                if let Some(role) = &current {
                    roles.entry(role.clone()).or_default().running =
                        Some(version.to_string()).filter(|v| !v.is_empty());
                }
            }
            Some(_) => {}
            None => {
                let Some(role) = &current else { continue };
                let Some(role_cfg) = run.config.role(role) else {
                    continue;
                };
                let prefix = format!("{}-", RoleCommands::new(run, role_cfg).prefix);
                if let Some(version) = line.trim().strip_prefix(&prefix) {
                    roles
                        .entry(role.clone())
                        .or_default()
                        .all
                        .push(version.to_string());
                }
            }
        }
    }
    roles
}

fn running_versions(per_role: &[Versions]) -> Vec<String> {
    let mut running: Vec<String> = Vec::new();
    for v in per_role.iter().filter_map(|v| v.running.clone()) {
        if !running.contains(&v) {
            running.push(v);
        }
    }
    running
}

/// The newest version (in the first (host, role)'s order, newest first) that no (host, role) runs and
/// every one still has; renamed leftovers (`V_replaced_<hex>`) are not versions.
pub fn pick(per_role: &[Versions]) -> Option<String> {
    let running = running_versions(per_role);
    per_role.first()?.all.iter().find_map(|v| {
        let candidate = !v.contains("_replaced_")
            && !running.contains(v)
            && per_role.iter().all(|r| r.all.contains(v));
        candidate.then(|| v.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::{Command, DeployOptions};
    use crate::runner::script::PREFIX;
    use crate::runner::steps::tests::{golden_config, sh_n};

    fn rollback() -> DeployOptions {
        DeployOptions {
            command: Command::Rollback,
            ..DeployOptions::default()
        }
    }

    #[test]
    fn versions_are_listed_per_role_and_read_back() {
        let c = golden_config();
        let run = Run::for_test(&c, rollback());
        let s = versions_script(&run, "10.0.0.1");
        assert!(s.text().contains("docker ps -a --filter label=service=app --filter label=destination=staging --filter label=role=web --format '{{.Names}}'"));
        sh_n(&s.text());
        let out = format!(
            "{PREFIX}role web\napp-web-staging-v3\napp-web-staging-v2_replaced_0a1b\napp-web-staging-v2\n{PREFIX}running v3\n"
        );
        let roles = parse_versions(&run, &out);
        assert_eq!(
            roles["web"],
            versions(&["v3", "v2_replaced_0a1b", "v2"], Some("v3"))
        );
    }

    /// A rollback boots the version alone: no stale containers stopped (Kamal's `app:boot`).
    #[test]
    fn the_boot_stops_no_stale_container() {
        let c = golden_config();
        let run = Run::for_test(&c, rollback());
        let s = run
            .boot("10.0.0.1", c.role("web").unwrap())
            .script(false, false)
            .unwrap();
        assert!(!s.text().contains("for stale in"));
        let deploy = Run::for_test(&c, DeployOptions::default());
        let s = deploy
            .boot("10.0.0.1", c.role("web").unwrap())
            .script(false, false)
            .unwrap();
        assert!(s.text().contains("for stale in"));
    }

    fn versions(all: &[&str], running: Option<&str>) -> Versions {
        Versions {
            all: all.iter().map(|s| s.to_string()).collect(),
            running: running.map(String::from),
        }
    }

    #[test]
    fn picks_the_newest_version_every_host_and_role_has() {
        let per_role = [
            versions(&["v3", "v2_replaced_ab12", "v2", "v1"], Some("v3")),
            versions(&["v3", "v1"], Some("v3")),
        ];
        assert_eq!(
            pick(&per_role).as_deref(),
            Some("v1"),
            "v2 is gone on the second host"
        );
        let per_role = [
            versions(&["v3", "v2", "v1"], Some("v3")),
            versions(&["v2", "v3"], Some("v3")),
        ];
        assert_eq!(pick(&per_role).as_deref(), Some("v2"));
        let per_role = [versions(&["v3"], Some("v3"))];
        assert_eq!(pick(&per_role), None, "nothing but the running version");
        let per_role = [
            versions(&["v2", "v1"], Some("v2")),
            versions(&["v1", "v2"], Some("v1")),
        ];
        assert_eq!(pick(&per_role), None, "both are running somewhere");
    }
}
