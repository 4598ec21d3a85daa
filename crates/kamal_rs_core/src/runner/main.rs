//! `kamal deploy` / `kamal redeploy` from start to end (`lib/kamal/cli/main.rb`, Kamal 2.12.0): build
//! and push (or pull), the lock, kamal-proxy (deploy), the boots, tag and prune, the lock released,
//! `post-deploy`; and what every run does when it ends, however it ends.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;

use super::budget;
use super::interrupt;
use super::loggers::Loggers;
use super::options::Command;
use super::panics;
use super::plan;
use super::report::{DeployReport, LeftBehind, LockOutcome};
use super::run::Run;
use super::state::Lock;
use super::steps::build::Build;
use super::steps::{lock, proxy, pull, secrets, tag};
use super::{deploy_v1, env_push};
use super::{groups, revert, rollback, rollout};
use crate::commands::app::App;
use crate::config::{lockfile, KamalMajor};
use crate::error::{Error, ErrorKind, Result};
use crate::output::timeline::Phase;
use crate::output::Verbosity;

/// Runs the command to its end; the lock is released whatever happened (Kamal releases it on failure;
/// kamal_rs also on Ctrl-C, where Kamal leaves it held).
pub async fn run(mut run: Run<'_>) -> DeployReport {
    let loggers = Loggers::start(&run);
    // The app's Gemfile.lock locks another Kamal than the one kamal_rs behaves as: said once.
    if let Some(note) = lockfile::note(&run.config.locked) {
        run.io.output.warn(&note);
    }
    // Where Kamal would stop on a missing secret, stop before any host.
    if let Err(e) = budget::fits(&run).and_then(|()| secrets::check(&run.shell())) {
        return finish(&run, &loggers, Err(e)).await;
    }
    if run.options.command == Command::Rollback && run.version.is_empty() {
        match interruptible(&run, rollback::choose(&run)).await {
            Ok(version) => run.version = version,
            Err(e) => return finish(&run, &loggers, Err(e)).await,
        }
    }
    let result = interruptible(&run, panics::caught(steps(&run))).await;
    finish(&run, &loggers, result).await
}

/// Runs `work`, and on Ctrl-C stops the hosts that have not booted yet; an interrupted run is an error
/// even when `work` got to its end.
async fn interruptible<T>(run: &Run<'_>, work: impl Future<Output = Result<T>>) -> Result<T> {
    let done = tokio::sync::Notify::new();
    let work = async {
        let result = work.await;
        done.notify_one();
        result
    };
    let (result, ()) = tokio::join!(work, interrupt::stop_on_interrupt(run, &done));
    match (result, run.io.cancel.is_cancelled()) {
        (Err(e), _) => Err(e),
        (Ok(_), true) => Err(Error::new(ErrorKind::Interrupted, "Interrupted")),
        (Ok(value), false) => Ok(value),
    }
}

/// What every run does at its end: the lock released, the runtime, `post-deploy` after a run that
/// changed what it set out to change, the report.
async fn finish(run: &Run<'_>, loggers: &Loggers, result: Result<()>) -> DeployReport {
    // `--revert-on-failure`: under the lock still, every host that switched goes back.
    let reverts = result.is_err()
        && run.options.reverts_on_failure()
        && run.io.touched.load(Ordering::SeqCst)
        && !run.io.cancel.is_cancelled();
    let reverted = if reverts {
        Some(revert::revert(run).await)
    } else {
        None
    };
    if run.lock.to_release() {
        run.shell().header(Phase::Release);
        if let Err(e) = lock::release(&run.shell(), &run.lock).await {
            run.io
                .output
                .red(&format!("Error releasing the deploy lock: {}", e.message));
        }
    }
    let runtime = run.io.started.elapsed().as_secs_f64();
    // A nested run (a revert's) prints through the outer run's output, which finishes it.
    if !run.options.nested {
        run.io.output.finish();
        run.io
            .output
            .console(&format!("  Finished all in {runtime:.1} seconds"));
    }
    let error = match result {
        Ok(()) => {
            let env = [(
                "KAMAL_RUNTIME".to_string(),
                format!("{}", runtime.round() as i64),
            )];
            run.hook("post-deploy", &run.sel.hosts, &env, true)
                .await
                .err()
        }
        Err(e) => Some(e),
    };
    report(run, loggers, runtime, error, reverted).await
}

async fn steps(run: &Run<'_>) -> Result<()> {
    match (run.config.major, run.options.command) {
        (_, Command::Rollback) => return rollback::run(run).await,
        (KamalMajor::V1, Command::EnvPush) => return env_push::run(run).await,
        (KamalMajor::V1, _) => return deploy_v1::deploy(run).await,
        _ => {}
    }
    // `pre-connect` runs right before the first SSH use, after the step's heading, as in Kamal.
    if run.options.skip_push && plan::per_host(run) {
        // Each host connects and goes on to its script at once: a host that cannot be reached stops
        // every boot at the pull barrier, as a failed pull does.
        run.shell().header(Phase::Pull);
        run.hook("pre-connect", &run.sel.hosts, &[], true).await?;
        run.shell().prepare_connections()?;
    } else if run.options.skip_push {
        run.shell().header(Phase::Pull);
        run.hook("pre-connect", &run.sel.hosts, &[], true).await?;
        run.connect_all().await?;
    } else {
        // Connecting touches nothing on the servers, so it overlaps the build; a failed build still
        // stops before the first remote command.
        run.shell()
            .say_step(Phase::Pull, "Build and push app image...");
        run.hook("pre-connect", &run.sel.hosts, &[], true).await?;
        let build = Build::new(run.hook_context());
        let (built, connected) = tokio::join!(build.push(), run.connect_all());
        built?;
        connected?;
    }
    if plan::per_host(run) {
        rollout::per_host_rollout(run).await?;
    } else {
        pull_then_lock(run).await?;
        run.io.checkpoint()?;
        run.hook("pre-deploy", &run.active_hosts(), &[], true)
            .await?;
        if run.options.boots_proxy() {
            run.shell().header(Phase::Proxy);
            let sh = run.shell();
            budget::on_hosts(run, &run.sel.hosts, |h| proxy::boot(&sh, h)).await?;
            run.io.checkpoint()?;
        }
        run.shell().header(Phase::Stale);
        run.shell().header(Phase::Boot);
        groups::in_groups(run).await?;
    }
    run.io.checkpoint()?;
    // Each host's boot script tagged (the run would have failed otherwise).
    if plan::tags_in_boot(run) {
        return Ok(());
    }
    tag::tag_all(&run.shell(), &run.lock, &run.active_hosts()).await
}

/// Every app host pulls (and every other host gets `.kamal`) while the primary host takes the lock:
/// nothing changes before both succeeded.
async fn pull_then_lock(run: &Run<'_>) -> Result<()> {
    run.io.touched.store(true, Ordering::SeqCst);
    let lock = async {
        if run.lock.to_take() {
            lock::acquire_on_primary(&run.shell(), &run.lock).await
        } else {
            Ok(())
        }
    };
    let (pulls, lock) = tokio::join!(pull::pull_all(run), lock);
    pulls.and(lock)
}

/// The run's report; after a failure, each host's line is printed (what the roles that never booted
/// still run is read only then, so a successful run pays nothing for it).
async fn report(
    run: &Run<'_>,
    loggers: &Loggers,
    runtime: f64,
    error: Option<Error>,
    reverted: Option<revert::Outcome>,
) -> DeployReport {
    let touched = run.io.touched.load(Ordering::SeqCst);
    if error.is_some() && touched {
        probe_unbooted(run).await;
    }
    run.io.close().await;
    let lock = match run.lock.get() {
        Lock::Held => LockOutcome::Held,
        Lock::Released => LockOutcome::Released,
        Lock::Free | Lock::Inherited => LockOutcome::NotTaken,
    };
    let left_behind: Vec<LeftBehind> = run
        .budget
        .left_behind()
        .into_iter()
        .map(|(host, reason)| LeftBehind { host, reason })
        .collect();
    let hosts: Vec<String> = left_behind.iter().map(|l| l.host.clone()).collect();
    let report = DeployReport {
        version: run.version.clone(),
        runtime,
        hosts: run.io.reports.snapshot(),
        error,
        touched,
        lock,
        primary_host: run.sel.primary_host.clone(),
        finish_command: (!hosts.is_empty()).then(|| budget::finish_command(run, &hosts)),
        left_behind,
        reverted: reverted
            .as_ref()
            .map(|r| r.reverted.clone())
            .unwrap_or_default(),
        revert_seconds: reverted
            .as_ref()
            .map(|r| (r.seconds * 1000.0).round() / 1000.0),
    };
    if report.error.is_some() && !report.hosts.is_empty() {
        let every_host = run.io.output.verbosity() == Verbosity::Verbose;
        for line in report.printed_summary(every_host) {
            run.io.output.red(&format!("  {line}"));
        }
    }
    say_left_behind(run, &report);
    if let Some(outcome) = &reverted {
        say_reverted(run, outcome);
    }
    loggers.finish(run, &report);
    report
}

/// The hosts left behind and the command that finishes the job, last, where a person looks.
fn say_left_behind(run: &Run<'_>, report: &DeployReport) {
    let Some(command) = &report.finish_command else {
        return;
    };
    run.io.output.warn(&format!(
        "Left behind: {} of {} hosts (--max-fail {}), each still running what it ran before:",
        report.left_behind.len(),
        run.sel.hosts.len(),
        run.budget.max()
    ));
    for l in &report.left_behind {
        run.io.output.warn(&format!("  {}: {}", l.host, l.reason));
    }
    run.io
        .output
        .warn(&format!("Finish the job once they are back: {command}"));
}

/// `reverted: 12 hosts back on v41`, a line per version, and each host that could not go back.
fn say_reverted(run: &Run<'_>, outcome: &revert::Outcome) {
    for r in &outcome.reverted {
        run.io.output.warn(&format!(
            "reverted: {} hosts back on {} (revert {:.1} s)",
            r.hosts.len(),
            r.version,
            outcome.seconds
        ));
    }
    for (host, why) in &outcome.not_reverted {
        run.io.output.red(&format!("  not reverted: {host}: {why}"));
    }
}

/// Which version the roles that were not booted (or whose boot failed) run now; what could not be
/// checked says why.
async fn probe_unbooted(run: &Run<'_>) {
    let todo = run.io.reports.to_probe();
    join_all(todo.iter().map(|(host, role)| async move {
        let Some(role_cfg) = run.config.role(role) else {
            return;
        };
        let mut script = super::script::Script::new();
        script.line(App::new(run.config, role_cfg).running_version());
        let mut quiet = |_: &str| {};
        let sh = run.shell();
        let probe = sh.exec(host, &script, &mut quiet);
        match tokio::time::timeout(Duration::from_secs(10), probe).await {
            Ok(Ok(out)) if out.success() => {
                run.io
                    .reports
                    .set_old_version(host, role, Some(out.stdout.trim().to_string()))
            }
            Ok(Ok(out)) => {
                let why = out.stderr.lines().next().unwrap_or("no answer").trim();
                run.io
                    .reports
                    .set_unchecked(host, role, &format!("could not check: docker: {why}"))
            }
            Ok(Err(e)) if e.kind == ErrorKind::Connection => {
                run.io
                    .reports
                    .set_unchecked(host, role, "could not check: connection lost")
            }
            Ok(Err(e)) => run.io.reports.set_unchecked(
                host,
                role,
                &format!(
                    "could not check: {}",
                    e.message.lines().next().unwrap_or("")
                ),
            ),
            Err(_) => {
                run.io
                    .reports
                    .set_unchecked(host, role, "could not check: no answer within 10 s")
            }
        }
    }))
    .await;
}
