//! What Ctrl-C (or SIGTERM) does to the hosts of a run under way: scripts still before their boot are
//! sent SIGTERM (they stop at once, the lock's taking aside), scripts waiting at a gate are told to stop,
//! and a host that does not stop within `STOP_GRACE` is left behind and reported as unknown.

use std::time::Duration;

use futures::future::join_all;

use crate::commands::server;
use crate::error::ErrorKind;
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::run::Run;

/// After Ctrl-C, and again every 0.1 s until the run ends (`done`): a script that had not yet said its
/// PID is stopped too.
pub async fn stop_on_interrupt(run: &Run<'_>, done: &tokio::sync::Notify) {
    tokio::select! {
        _ = run.io.cancel.cancelled() => {}
        _ = done.notified() => return,
    }
    // Scripts waiting at the pull barrier stop there, and scripts that booted do not tag; scripts
    // still pulling get SIGTERM.
    run.sync.halt_boots();
    run.sync.halt_tags();
    if let Some(wave) = &run.sync.canary {
        wave.halt();
    }
    loop {
        let pids = run.sync.to_terminate();
        let sh = run.shell();
        let sh = &sh;
        join_all(pids.iter().map(|(host, pid)| async move {
            let kill = server::terminate(pid);
            let sent = sh.exec_one(host, Phase::Other, &kill, true);
            let _ = tokio::time::timeout(Duration::from_secs(5), sent).await;
        }))
        .await;
        tokio::select! {
            _ = done.notified() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// How long a host still before its boot may take to stop after Ctrl-C before kamal_rs stops waiting.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Resolves when the run was interrupted and this host, told to stop before its boot, has not
/// stopped within `STOP_GRACE` (its connection hangs, say): the run then ends without it.
pub async fn unresponsive_after_interrupt(run: &Run<'_>, host: &str) -> HostError {
    run.io.cancel.cancelled().await;
    loop {
        if run.sync.unresponsive(host, STOP_GRACE) {
            run.sync.reached_boot(host);
            for role in run.roles_on(host) {
                run.io.reports.set_unchecked(
                    host,
                    &role.name,
                    "could not check: no answer after Ctrl-C",
                );
            }
            return HostError::on_host(
                ErrorKind::Interrupted,
                host,
                format!("did not stop within {} s of Ctrl-C", STOP_GRACE.as_secs()),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
