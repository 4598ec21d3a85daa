//! `KamalRs::Native::Configuration#deploy(options)`: runs the deploy on its own thread and waits for it
//! without the GVL. Call it from a Ruby thread other than the main one (lib/kamal_rs/deploy.rb does):
//! on the main thread, when it is Ruby's only thread, `rb_thread_call_without_gvl2` joins a helper
//! thread on its way out, and that join raises a pending Interrupt by longjmp across these frames. An interrupt (Ctrl-C, `Thread#raise`, `Timeout`) wakes the wait; Ruby then runs its
//! handlers. If they raise, the deploy is told to stop at a safe point (lock released, each host's state
//! printed) and the exception propagates once it has; if they do not (a trap that only logs), the wait
//! resumes and the deploy carries on.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kamal_rs_core::output::Verbosity;
use kamal_rs_core::runner::{self, Cancel, DeployOptions, DeployReport, RoleState};
use magnus::{prelude::*, Error, RHash, Ruby};
use serde::Deserialize;

use crate::helpers::nogvl::nogvl;

/// The options Ruby passes (string keys), mirroring the CLI's.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RubyOptions {
    redeploy: bool,
    #[serde(default)]
    env_push: bool,
    skip_push: bool,
    hosts: Option<String>,
    roles: Option<String>,
    primary: bool,
    skip_hooks: bool,
    verbose: bool,
    quiet: bool,
    terminal: bool,
    lock_wait: bool,
    lock_wait_timeout: Option<f64>,
    lock_wait_interval: Option<f64>,
    command_timeout: Option<f64>,
}

#[derive(Default)]
struct Waiter {
    state: Mutex<(Option<DeployReport>, bool)>,
    changed: Condvar,
}

impl Waiter {
    fn finish(&self, report: DeployReport) {
        self.state.lock().unwrap().0 = Some(report);
        self.changed.notify_all();
    }

    fn wake(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    /// Waits until the report is ready (true) or someone woke us (false).
    fn wait(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        loop {
            if state.0.is_some() {
                return true;
            }
            if std::mem::take(&mut state.1) {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(500))
                .unwrap()
                .0;
        }
    }
}

pub fn deploy(
    ruby: &Ruby,
    config: &kamal_rs_core::Configuration,
    options: RHash,
) -> Result<RHash, Error> {
    let opts: RubyOptions = serde_magnus::deserialize(ruby, options)?;
    let options = DeployOptions {
        redeploy: opts.redeploy,
        skip_push: opts.skip_push,
        hosts: opts.hosts.filter(|s| !s.is_empty()),
        roles: opts.roles.filter(|s| !s.is_empty()),
        primary: opts.primary,
        skip_hooks: opts.skip_hooks,
        verbosity: if opts.verbose {
            Verbosity::Verbose
        } else if opts.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        },
        terminal: opts.terminal,
        lock_wait: opts.lock_wait,
        lock_wait_timeout: opts.lock_wait_timeout.unwrap_or(900.0),
        lock_wait_interval: opts.lock_wait_interval.unwrap_or(15.0),
        command_timeout: Duration::from_secs_f64(opts.command_timeout.unwrap_or(600.0)),
        env_push: opts.env_push,
    };
    let cancel = Arc::new(Cancel::default());
    let waiter = Waiter::default();
    let mut raised: Option<Error> = None;
    std::thread::scope(|scope| {
        scope.spawn(|| waiter.finish(runner::deploy(config, options, cancel.clone())));
        let wake = || waiter.wake();
        loop {
            if nogvl(|| waiter.wait(), &wake) == Some(true) {
                break;
            }
            // Run Ruby's pending interrupts; once one has raised, later ones are consumed and ignored
            // while the run winds down (a second Ctrl-C must not abandon the lock).
            if let Err(e) = ruby.thread_check_ints() {
                if raised.is_none() {
                    cancel.cancel();
                    raised = Some(e);
                }
            }
        }
    });
    let report = waiter
        .state
        .lock()
        .unwrap()
        .0
        .take()
        .expect("the deploy thread reported");
    if let Some(e) = raised {
        return Err(e);
    }
    to_ruby(ruby, &report)
}

fn to_ruby(ruby: &Ruby, report: &DeployReport) -> Result<RHash, Error> {
    let h = ruby.hash_new();
    h.aset("version", report.version.clone())?;
    h.aset("runtime", report.runtime)?;
    let hosts = ruby.ary_new();
    for host in &report.hosts {
        let hh = ruby.hash_new();
        hh.aset("host", host.host.clone())?;
        hh.aset("error", host.error.clone())?;
        let roles = ruby.ary_new();
        for role in &host.roles {
            let rh = ruby.hash_new();
            rh.aset("role", role.role.clone())?;
            rh.aset("old_version", role.old_version.clone())?;
            let (state, detail) = match &role.state {
                RoleState::Live => ("live", None),
                RoleState::NotBooted => ("not_booted", None),
                RoleState::Failed(m) => ("failed", Some(m.clone())),
            };
            rh.aset("state", state)?;
            rh.aset("detail", detail)?;
            roles.push(rh)?;
        }
        hh.aset("roles", roles)?;
        hosts.push(hh)?;
    }
    h.aset("hosts", hosts)?;
    h.aset("summary", report.summary_lines())?;
    match &report.error {
        Some(e) => {
            let err = ruby.hash_new();
            err.aset("class", e.kind.ruby_class())?;
            err.aset("message", e.message.clone())?;
            h.aset("error", err)?;
        }
        None => h.aset("error", ruby.qnil().as_value())?,
    }
    Ok(h)
}
