//! Boot groups (Kamal's `app:boot`, `lib/kamal/cli/app.rb`, Kamal 2.12.0): every host has pulled and
//! booted kamal-proxy before this; then each `boot.limit` group boots in turn, `pre-app-boot` and
//! `post-app-boot` around it and `boot.wait` after it. With `--canary`, the canaries boot first as a
//! group of their own and are watched before any other group; with `--max-fail`, a host that fails
//! within the budget is left behind and its group goes on without it.

use std::time::Duration;

use super::budget;
use super::canary;
use super::rollout::boot_host;
use super::run::Run;
use crate::config::KamalMajor;
use crate::error::Result;

/// Boot groups one after the other; within a group every host boots at once. `boot.wait` follows each
/// group, the last one too, as in Kamal.
pub async fn in_groups(run: &Run<'_>) -> Result<()> {
    let mut wait = run.config.boot().wait;
    // Kamal 1.9's group runner waits 2 s between groups when only `limit` is given.
    let v1 = run.config.major == KamalMajor::V1;
    if v1 && wait.is_none() && run.config.boot().limit.is_some() {
        wait = Some(2);
    }
    let mut groups = run.sel.boot_groups(run.config);
    if let Some(wave) = &run.sync.canary {
        for group in &mut groups {
            group.retain(|h| !wave.is_canary(h));
        }
        groups.retain(|g| !g.is_empty());
        boot_group(run, wave.hosts(), v1).await?;
        canary::watch(run).await?;
    }
    for group in &groups {
        boot_group(run, group, v1).await?;
        if let Some(secs) = wait.filter(|w| *w > 0) {
            run.io.cancel.sleep(Duration::from_secs(secs as u64)).await;
        }
    }
    Ok(())
}

/// One group's boots with its hooks; the hooks name the group's hosts still in the run.
async fn boot_group(run: &Run<'_>, group: &[String], v1: bool) -> Result<()> {
    run.io.checkpoint()?;
    let hosts: Vec<String> = group
        .iter()
        .filter(|h| !run.budget.is_left_behind(h))
        .cloned()
        .collect();
    if hosts.is_empty() {
        return Ok(());
    }
    // Kamal 1.9 has no app-boot hooks.
    if !v1 {
        run.hook("pre-app-boot", &hosts, &[], false).await?;
    }
    budget::on_hosts(run, &hosts, |h| boot_host(run, h, None)).await?;
    if !v1 {
        let booted: Vec<String> = hosts
            .iter()
            .filter(|h| !run.budget.is_left_behind(h))
            .cloned()
            .collect();
        run.hook("post-app-boot", &booted, &[], false).await?;
    }
    Ok(())
}
