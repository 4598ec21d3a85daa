//! The deploy lock on the primary host (`lib/kamal/cli/lock.rb`, `lib/kamal/cli/base.rb#acquire_lock`,
//! Kamal 2.12.0): taken with `mkdir`, waited for with `--lock-wait`, released at the end; a lock held
//! by someone else stops the run with Kamal's words.

use std::time::{Duration, Instant};

use crate::commands::{lock, server, v1};
use crate::config::KamalMajor;
use crate::error::{Error, ErrorKind, Result};
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::run::Plan;
use crate::runner::script::{holding_interrupts, Exit, Mark, Script, Shown};
use crate::runner::shell::Shell;
use crate::runner::state::LockState;
use crate::ssh;

/// The lock's directory: `.kamal/lock-S[-D]`, or 1.x's `.kamal/locks/S[-D]`.
pub fn dir(sh: &Plan<'_>) -> String {
    match sh.config.major {
        KamalMajor::V1 => v1::lock_dir(sh.sd()),
        KamalMajor::V2 => lock::dir(sh.sd()),
    }
}

/// Taking the lock: `mkdir -p` of its parent, then `mkdir` of the lock directory with its details.
pub fn acquire(sh: &Plan<'_>) -> Script {
    // A rollback without a version takes the lock before it knows which one it goes back to.
    let version = if sh.version.is_empty() {
        "unknown"
    } else {
        &sh.version
    };
    let details = lock::details(
        sh.performer.user_name(),
        &sh.clock.now(),
        version,
        "Automatic deploy lock",
    );
    let dir = dir(sh);
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
pub fn in_script(sh: &Plan<'_>) -> Script {
    acquire(sh).map(|take| {
        holding_interrupts(&format!(
            "{}; {{ {take}; }} </dev/null || {}; {}",
            Mark::Lock.echo(),
            Exit::Locked.exit(),
            Mark::Locked.echo()
        ))
    })
}

pub fn release_command(sh: &Plan<'_>) -> String {
    lock::release_at(&dir(sh))
}

/// Takes the lock on the primary host, waiting for it with `--lock-wait`.
pub async fn acquire_on_primary(sh: &Shell<'_, '_>, state: &LockState) -> Result<()> {
    let host = sh.sel.primary_host.clone();
    let (wait, timeout) = (sh.options.lock_wait, sh.options.lock_wait_timeout);
    if wait {
        sh.say_step(
            Phase::Lock,
            &format!(
                "Acquiring the deploy lock (waiting up to {}s)...",
                secs(timeout)
            ),
        );
    } else {
        sh.header(Phase::Lock);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    let mut told = false;
    loop {
        let out = sh.exec(&host, &acquire(sh), &mut |_| {}).await?;
        if out.success() {
            state.taken();
            return Ok(());
        }
        let status = status_after(sh, &host, &out).await?;
        if !wait {
            return Err(found(sh, &status));
        }
        if !told {
            sh.io.output.plain("Deploy lock is held by:");
            sh.io.output.plain(status.trim_end());
            told = true;
            if !status.contains("Automatic deploy lock") {
                return Err(Error::new(ErrorKind::Lock, "Deploy lock held manually, not waiting. Run 'kamal lock help' for more information"));
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            sh.io.output.red(&format!(
                "Timed out after {}s waiting for the deploy lock",
                secs(timeout)
            ));
            return Err(Error::new(
                ErrorKind::Lock,
                "Timed out waiting for deploy lock",
            ));
        }
        let interval = sh.options.lock_wait_interval;
        sh.io.output.plain(&format!(
            "Retrying in {}s ({}s remaining)...",
            secs(interval),
            secs(remaining.as_secs_f64().round())
        ));
        if !sh
            .io
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
async fn status_after(sh: &Shell<'_, '_>, host: &str, out: &ssh::Output) -> Result<String> {
    if !out.stderr.contains("cannot create directory") && !out.stderr.contains("File exists") {
        return Err(HostError::command_failed(host, "mkdir", out).into());
    }
    let status = lock::status_at(&dir(sh));
    Ok(sh.exec_one(host, Phase::Lock, &status, false).await?.stdout)
}

/// Kamal's words for a lock someone else holds.
fn found(sh: &Shell<'_, '_>, status: &str) -> Error {
    sh.io.output.red("Deploy lock already in place!");
    sh.io.output.plain(status.trim_end());
    Error::new(
        ErrorKind::Lock,
        "Deploy lock found. Run 'kamal lock help' for more information",
    )
}

/// A script that took the lock first (`in_script`) ended with `Exit::Locked`.
pub async fn refused(sh: &Shell<'_, '_>, host: &str, out: &ssh::Output) -> HostError {
    let error = match status_after(sh, host, out).await {
        Ok(status) => found(sh, &status),
        Err(e) => e,
    };
    error.into()
}

/// Releases the lock (when this run holds it).
pub async fn release(sh: &Shell<'_, '_>, state: &LockState) -> Result<()> {
    let host = sh.sel.primary_host.clone();
    sh.header(Phase::Release);
    let out = sh
        .exec_one(&host, Phase::Release, &release_command(sh), true)
        .await?;
    if !out.success() {
        return Err(HostError::command_failed(&host, "rm", &out).into());
    }
    state.released();
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
    use crate::runner::run::Run;
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
