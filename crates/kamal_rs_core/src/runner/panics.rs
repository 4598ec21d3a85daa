//! A panic in the core during a run ends the run as an internal error, never as a hang or a crash in
//! the Ruby process that called it: the steps are run under `catch_unwind`, so the lock is released and
//! each host's line printed as after any failure, and the error names the panic's message and where
//! it happened (a hook records the location, which the unwound payload does not carry).

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Once;

use futures::FutureExt;

use crate::error::{Error, ErrorKind, Result};

thread_local! {
    /// The last panic on this thread: "message at file:line:column".
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, the hook that records each panic's message and location on its thread
/// instead of printing them (the run prints them, in its error). `RUST_BACKTRACE` set: the default
/// hook prints as well.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = message(info.payload());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            LAST.with(|last| *last.borrow_mut() = Some(format!("{message}{at}")));
            if std::env::var_os("RUST_BACKTRACE").is_some() {
                default(info);
            }
        }));
    });
}

/// Runs `work`; a panic in it becomes an internal error.
pub async fn caught<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(internal(payload.as_ref())),
    }
}

/// The error for a caught panic: its message and location as the hook recorded them on this thread
/// (where the unwinding was caught), else the payload's message.
pub fn internal(payload: &(dyn Any + Send)) -> Error {
    let what = LAST
        .with(|last| last.borrow_mut().take())
        .unwrap_or_else(|| message(payload));
    Error::new(
        ErrorKind::Internal,
        format!("internal error: kamal_rs panicked: {what} (please report this)"),
    )
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Fault injection for tests (the `fault-injection` feature, which only the test build enables):
/// `KAMAL_RS_TEST_PANIC=<point>` panics there (`locked`: as soon as the deploy lock is taken, while
/// every host pulls).
#[cfg(feature = "fault-injection")]
#[track_caller]
pub fn fault_point(step: &str, host: &str) {
    if std::env::var("KAMAL_RS_TEST_PANIC").is_ok_and(|s| s == step) {
        panic!("fault injected at {step} on {host}");
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn fault_point(_step: &str, _host: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_naming_message_and_location() {
        install_hook();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result: Result<()> = runtime.block_on(caught(async { panic!("boom {}", 42) }));
        let error = result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(
            error.message.contains("boom 42 at ") && error.message.contains("panics.rs:"),
            "{}",
            error.message
        );
    }

    #[test]
    fn work_that_does_not_panic_gives_its_own_result() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(caught(async { Ok(7) })), Ok(7));
    }
}
