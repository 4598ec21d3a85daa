//! Running Rust without Ruby's GVL, so other Ruby threads keep running meanwhile.
//!
//! `rb_thread_call_without_gvl2` (not the plain variant, which may longjmp across Rust frames on an
//! interrupt): it returns as soon as Ruby wants this thread back (Ctrl-C, `Thread#raise`, a trap),
//! after calling the unblock function from another thread. That function must not touch Ruby.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

struct Call<'a, R> {
    func: &'a mut dyn FnMut() -> R,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn call_trampoline<R>(data: *mut c_void) -> *mut c_void {
    let call = &mut *(data as *mut Call<'_, R>);
    // A panic must never unwind into C.
    call.result = Some(catch_unwind(AssertUnwindSafe(|| (call.func)())));
    std::ptr::null_mut()
}

unsafe extern "C" fn unblock_trampoline(data: *mut c_void) {
    let unblock = &*(data as *const &(dyn Fn() + Sync));
    let _ = catch_unwind(AssertUnwindSafe(unblock));
}

/// Calls `func` without the GVL. `None` if Ruby had an interrupt pending and `func` did not run.
/// `unblock` may be called (repeatedly, from another thread) to ask `func` to return early.
pub fn nogvl<R>(mut func: impl FnMut() -> R, unblock: &(dyn Fn() + Sync)) -> Option<R> {
    let mut call = Call {
        func: &mut func,
        result: None,
    };
    let unblock_ref: &(dyn Fn() + Sync) = unblock;
    unsafe {
        rb_sys::rb_thread_call_without_gvl2(
            Some(call_trampoline::<R>),
            &mut call as *mut Call<'_, R> as *mut c_void,
            Some(unblock_trampoline),
            &unblock_ref as *const &(dyn Fn() + Sync) as *mut c_void,
        );
    }
    match call.result {
        Some(Ok(r)) => Some(r),
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        None => None,
    }
}
