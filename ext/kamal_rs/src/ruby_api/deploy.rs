//! `KamalRs::Native::Configuration#deploy(options)`: runs the deploy on its own thread and waits for it
//! without the GVL. Call it from a Ruby thread other than the main one (lib/kamal_rs/deploy.rb does):
//! on the main thread, when it is Ruby's only thread, `rb_thread_call_without_gvl2` joins a helper
//! thread on its way out, and that join raises a pending Interrupt by longjmp across these frames. An interrupt (Ctrl-C, `Thread#raise`, `Timeout`) wakes the wait; Ruby then runs its
//! handlers. If they raise, the deploy is told to stop at a safe point (lock released, each host's state
//! printed) and the exception propagates once it has; if they do not (a trap that only logs), the wait
//! resumes and the deploy carries on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kamal_rs_core::runner::{self, Cancel, DeployOptions, DeployReport};
use magnus::{prelude::*, Error, RHash, Ruby, Value};

use crate::helpers::nogvl::nogvl;

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

/// `options`: the run's options with string keys, as `KamalRs::Native.options` names them.
pub fn deploy(
    ruby: &Ruby,
    config: &kamal_rs_core::Configuration,
    options: RHash,
) -> Result<Value, Error> {
    let options: DeployOptions = serde_magnus::deserialize(ruby, options)?;
    let cancel = Arc::new(Cancel::default());
    let waiter = Waiter::default();
    let mut raised: Option<Error> = None;
    std::thread::scope(|scope| {
        // The waiter must be told whatever happens: a panic that got past the core's own catch
        // would otherwise leave this thread waiting for ever.
        scope.spawn(|| {
            let run = AssertUnwindSafe(|| runner::deploy(config, options, cancel.clone()));
            let report = catch_unwind(run).unwrap_or_else(|payload| {
                DeployReport::failed_early(runner::panics::internal(payload.as_ref()), 0.0)
            });
            waiter.finish(report)
        });
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
    let report: Value = serde_magnus::serialize(ruby, &report)?;
    if let Some(e) = raised {
        // The interrupt goes on as Ruby raised it (an Interrupt, a Timeout's throw...), carrying what
        // the run did: `KamalRs.result_of(exception)`.
        if let Some(exception) = e.value() {
            let _: Result<Value, Error> =
                exception.funcall("instance_variable_set", ("@kamal_rs_report", report));
        }
        return Err(e);
    }
    Ok(report)
}
