//! `--revert-on-failure`: when a run fails, every host that had switched to the new version goes back
//! to the version it ran before (hosts of one fleet can differ), as `kamal rollback <that version>`
//! leaves a host: that version's container serving, the new one stopped, audit lines written. Hosts
//! that never switched are not touched. The run's deploy lock is held until the revert is done.
//!
//! Each version's hosts are rolled back by a run of their own inside this one (`Command::Rollback`
//! with `-h` those hosts, the lock the outer run's), printing through the outer run's output (its live
//! view shows the hosts going back) over the outer run's connections.

use std::collections::BTreeMap;
use std::time::Instant;

use super::main;
use super::options::{Command, DeployOptions};
use super::report::{Reverted, RoleState};
use super::run::Run;

/// What went back where, and the hosts that could not (each with why).
pub struct Outcome {
    pub reverted: Vec<Reverted>,
    pub not_reverted: Vec<(String, String)>,
    /// How long the revert took.
    pub seconds: f64,
}

/// Rolls each switched host back to the version it ran before.
pub async fn revert(run: &Run<'_>) -> Outcome {
    let started = Instant::now();
    let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut not_reverted = Vec::new();
    for host in run.io.reports.snapshot() {
        let live: Vec<_> = host
            .roles
            .iter()
            .filter(|r| r.state == RoleState::Live)
            .collect();
        if live.is_empty() {
            continue;
        }
        match live.iter().find_map(|r| r.old_version.clone()) {
            // The version it runs now: nothing to go back to (its container was the one renamed).
            Some(v) if version_of(&v) == run.version => {
                let why = format!("it ran {} before this run too", run.version);
                not_reverted.push((host.host, why))
            }
            Some(v) => by_version.entry(v).or_default().push(host.host),
            None => not_reverted.push((host.host, "no version before this run".to_string())),
        }
    }
    if by_version.is_empty() {
        return Outcome {
            reverted: Vec::new(),
            not_reverted,
            seconds: 0.0,
        };
    }
    run.io.output.say(&format!(
        "Reverting {} hosts to the version each ran before...",
        by_version.values().map(Vec::len).sum::<usize>()
    ));
    let mut reverted = Vec::new();
    for (version, hosts) in by_version {
        let report = Box::pin(roll_back(run, &version, &hosts)).await;
        let failed: Vec<&str> = report
            .hosts
            .iter()
            .filter(|h| h.error.is_some() || h.roles.iter().any(|r| r.state != RoleState::Live))
            .map(|h| h.host.as_str())
            .collect();
        let back: Vec<String> = match &report.error {
            Some(e) if failed.is_empty() => {
                hosts
                    .iter()
                    .for_each(|h| not_reverted.push((h.clone(), e.message.clone())));
                Vec::new()
            }
            _ => hosts
                .iter()
                .filter(|h| !failed.contains(&h.as_str()))
                .cloned()
                .collect(),
        };
        for h in hosts.iter().filter(|h| failed.contains(&h.as_str())) {
            not_reverted.push((h.clone(), format!("its rollback to {version} failed")));
        }
        for h in &back {
            for role in run.roles_on(h) {
                run.io
                    .reports
                    .set_state(h, &role.name, RoleState::Reverted(version.clone()));
            }
        }
        if !back.is_empty() {
            reverted.push(Reverted {
                version,
                hosts: back,
            });
        }
    }
    Outcome {
        reverted,
        not_reverted,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// `kamal rollback <version> -h <hosts>` under this run's lock.
async fn roll_back(run: &Run<'_>, version: &str, hosts: &[String]) -> super::report::DeployReport {
    let options = DeployOptions {
        command: Command::Rollback,
        hosts: Some(hosts.join(",")),
        roles: run.options.roles.clone(),
        skip_hooks: run.options.skip_hooks,
        verbose: run.options.verbose,
        quiet: run.options.quiet,
        command_timeout: run.options.command_timeout,
        lock_held: true,
        nested: true,
        ..DeployOptions::default()
    };
    match run.nested(options) {
        Ok(mut nested) => {
            nested.version = version.to_string();
            main::run(nested).await
        }
        Err(e) => super::report::DeployReport::failed_early(e, 0.0),
    }
}

/// The version a container ran: one renamed out of the way (`V_replaced_<hex>`, as a boot of V does
/// when V's container is there already) ran V, and there is no image of its own name to go back to.
fn version_of(container_version: &str) -> &str {
    container_version
        .split_once("_replaced_")
        .map_or(container_version, |(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_container_ran_its_version() {
        assert_eq!(version_of("v2_replaced_30997d97e9847d2f"), "v2");
        assert_eq!(version_of("v1"), "v1");
    }
}
