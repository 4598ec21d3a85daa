//! The deploy lock on the primary host (`lib/kamal/cli/lock.rb`, `lib/kamal/cli/base.rb#acquire_lock`,
//! Kamal 2.12.0): taken with `mkdir`, waited for with `--lock-wait`, released at the end; a lock held
//! by someone else stops the run with Kamal's words.

use std::time::{Duration, Instant};

use crate::commands::{lock, server, v1};
use crate::config::KamalMajor;
use crate::error::{Error, ErrorKind, Result};
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::run::{Plan, Run};
use crate::runner::script::{holding_interrupts, Exit, Mark, Script, Shown};
use crate::ssh;

/// The lock's directory: `.kamal/lock-S[-D]`, or 1.x's `.kamal/locks/S[-D]`.
pub fn dir(run: &Plan<'_>) -> String {
    match run.config.major {
        KamalMajor::V1 => v1::lock_dir(run.sd()),
        KamalMajor::V2 => lock::dir(run.sd()),
    }
}

/// Taking the lock: `mkdir -p` of its parent, then `mkdir` of the lock directory with its details.
pub fn acquire(run: &Plan<'_>) -> Script {
    // A rollback without a version takes the lock before it knows which one it goes back to.
    let version = if run.version.is_empty() {
        "unknown"
    } else {
        &run.version
    };
    let details = lock::details(
        run.performer.user_name(),
        &run.clock.now(),
        version,
        "Automatic deploy lock",
    );
    let dir = dir(run);
    // The directory that holds the lock's: `.kamal`, or 1.x's `.kamal/locks`.
    let parent = dir.rsplit_once('/').map_or(".kamal", |(p, _)| p);
    let take = lock::acquire_at(&dir, &details);
    let mut s = Script::new();
    s.run(
        Shown::info(Phase::Lock, format!("mkdir -p {parent}")),
        &server::ensure_directory(parent),
    )
    .run(Shown::debug(Phase::Lock, &take), &take);
    s.chain()
}

/// The lock taken at the start of the primary host's first script: a held lock ends the script there.
/// Ctrl-C's SIGTERM is held until the script has said it holds the lock (so the run releases it). It
/// reads nothing from stdin (which carries the boot's env file).
pub fn in_script(run: &Plan<'_>) -> Script {
    acquire(run).map(|take| {
        holding_interrupts(&format!(
            "{}; {{ {take}; }} </dev/null || {}; {}",
            Mark::Lock.echo(),
            Exit::Locked.exit(),
            Mark::Locked.echo()
        ))
    })
}

pub fn release_command(run: &Plan<'_>) -> String {
    lock::release_at(&dir(run))
}

/// Takes the lock on the primary host, waiting for it with `--lock-wait`.
pub async fn acquire_on_primary(run: &Run<'_>) -> Result<()> {
    let host = run.sel.primary_host.clone();
    let (wait, timeout) = (run.options.lock_wait, run.options.lock_wait_timeout);
    if wait {
        run.say_step(
            Phase::Lock,
            &format!(
                "Acquiring the deploy lock (waiting up to {}s)...",
                secs(timeout)
            ),
        );
    } else {
        run.header(Phase::Lock);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    let mut told = false;
    loop {
        let out = run.exec(&host, &acquire(run), &mut |_| {}).await?;
        if out.success() {
            run.lock.taken();
            return Ok(());
        }
        let status = status_after(run, &host, &out).await?;
        if !wait {
            return Err(found(run, &status));
        }
        if !told {
            run.output.plain("Deploy lock is held by:");
            run.output.plain(status.trim_end());
            told = true;
            if !status.contains("Automatic deploy lock") {
                return Err(Error::new(ErrorKind::Lock, "Deploy lock held manually, not waiting. Run 'kamal lock help' for more information"));
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            run.output.red(&format!(
                "Timed out after {}s waiting for the deploy lock",
                secs(timeout)
            ));
            return Err(Error::new(
                ErrorKind::Lock,
                "Timed out waiting for deploy lock",
            ));
        }
        let interval = run.options.lock_wait_interval;
        run.output.plain(&format!(
            "Retrying in {}s ({}s remaining)...",
            secs(interval),
            secs(remaining.as_secs_f64().round())
        ));
        if !run
            .cancel
            .sleep(remaining.min(Duration::from_secs_f64(interval)))
            .await
        {
            return Err(Error::new(ErrorKind::Interrupted, "Interrupted"));
        }
    }
}

/// After the lock's `mkdir` failed: who holds it (`lock status`), or the failure itself when the lock
/// directory was not simply there already.
async fn status_after(run: &Run<'_>, host: &str, out: &ssh::Output) -> Result<String> {
    if !out.stderr.contains("cannot create directory") && !out.stderr.contains("File exists") {
        return Err(HostError::command_failed(host, "mkdir", out).into());
    }
    let status = lock::status_at(&dir(run));
    Ok(run
        .exec_one(host, Phase::Lock, &status, false)
        .await?
        .stdout)
}

/// Kamal's words for a lock someone else holds.
fn found(run: &Run<'_>, status: &str) -> Error {
    run.output.red("Deploy lock already in place!");
    run.output.plain(status.trim_end());
    Error::new(
        ErrorKind::Lock,
        "Deploy lock found. Run 'kamal lock help' for more information",
    )
}

/// A script that took the lock first (`in_script`) ended with `Exit::Locked`.
pub async fn refused(run: &Run<'_>, host: &str, out: &ssh::Output) -> HostError {
    let error = match status_after(run, host, out).await {
        Ok(status) => found(run, &status),
        Err(e) => e,
    };
    error.into()
}

/// The lock is held (or will not be): hosts waiting to boot go on (the steps' headings follow as
/// each step first begins).
pub fn settled(run: &Run<'_>, held: bool) {
    if held {
        run.lock.taken();
        crate::runner::panics::fault_point("locked", &run.sel.primary_host);
    }
    // No lock, no boot anywhere.
    run.sync.settle_lock(held);
}

/// Releases the lock (when this run holds it).
pub async fn release(run: &Run<'_>) -> Result<()> {
    let host = run.sel.primary_host.clone();
    run.header(Phase::Release);
    let out = run
        .exec_one(&host, Phase::Release, &release_command(run), true)
        .await?;
    if !out.success() {
        return Err(HostError::command_failed(&host, "rm", &out).into());
    }
    run.lock.released();
    Ok(())
}

/// Seconds as Kamal prints them (`900`, `2.5`).
fn secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as i64)
    } else {
        format!("{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::DeployOptions;
    use crate::runner::script::unmarked;
    use crate::runner::steps::tests::{golden_config, sh_n};

    #[test]
    fn takes_the_lock_with_kamals_commands() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let s = acquire(&run);
        assert_eq!(
            unmarked(&s.text()),
            "mkdir -p .kamal && mkdir .kamal/lock-app-staging && echo \"TG9ja2VkIGJ5OiBEZXBsb3llciBhdCAyMDI2LTEyLTAxVDEwOjAwOjAwWgpW\nZXJzaW9uOiB2MgpNZXNzYWdlOiBBdXRvbWF0aWMgZGVwbG95IGxvY2s=\n\" > .kamal/lock-app-staging/details"
        );
        assert_eq!(s.shown[0], Shown::info(Phase::Lock, "mkdir -p .kamal"));
        assert!(s.shown[1].debug);
        let first = in_script(&run);
        let text = unmarked(&first.text());
        assert!(text.starts_with("hold=1; echo \"kamal-rs:lock\"; { mkdir -p .kamal && mkdir "));
        assert!(text.ends_with("} </dev/null || exit 77; echo \"kamal-rs:locked\"; hold=; [ -z \"$held\" ] || { echo \"kamal-rs:interrupted\"; exit 130; }"));
        sh_n(&first.text());
        assert_eq!(
            release_command(&run),
            "rm .kamal/lock-app-staging/details && rm -r .kamal/lock-app-staging"
        );
        assert_eq!(secs(900.0), "900");
        assert_eq!(secs(2.5), "2.5");
    }
}
