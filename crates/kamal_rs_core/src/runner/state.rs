//! Where the deploy lock is in a run: taken, held, released, or the caller's (`KAMAL_LOCK=true`).

use std::sync::Mutex;

/// Where the deploy lock is in this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// `KAMAL_LOCK=true`: the caller (a hook running `kamal`, say) holds it; never taken or released here.
    Inherited,
    /// Not held by this run.
    Free,
    /// Taken by this run: released when it ends.
    Held,
    /// Released by a command that also did other work (the primary host's tag, the run's only boot).
    Released,
}

pub struct LockState(Mutex<Lock>);

impl LockState {
    pub fn new(inherited: bool) -> LockState {
        LockState(Mutex::new(if inherited {
            Lock::Inherited
        } else {
            Lock::Free
        }))
    }

    pub fn get(&self) -> Lock {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, lock: Lock) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = lock;
    }

    /// The run may go on as the lock's holder (hooks' `KAMAL_LOCK`).
    pub fn is_held(&self) -> bool {
        matches!(self.get(), Lock::Inherited | Lock::Held)
    }

    /// This run took the lock and has not released it yet.
    pub fn to_release(&self) -> bool {
        self.get() == Lock::Held
    }

    /// Whether this run must still take the lock.
    pub fn to_take(&self) -> bool {
        self.get() == Lock::Free
    }

    pub fn taken(&self) {
        if self.get() == Lock::Free {
            self.set(Lock::Held);
        }
    }

    pub fn released(&self) {
        if self.get() == Lock::Held {
            self.set(Lock::Released);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_lifecycle() {
        let lock = LockState::new(false);
        assert!(lock.to_take() && !lock.is_held());
        lock.taken();
        assert!(lock.is_held() && lock.to_release());
        lock.released();
        assert_eq!(lock.get(), Lock::Released);
        assert!(!lock.to_release() && !lock.to_take());
        let inherited = LockState::new(true);
        assert!(inherited.is_held() && !inherited.to_take() && !inherited.to_release());
        inherited.taken();
        inherited.released();
        assert_eq!(
            inherited.get(),
            Lock::Inherited,
            "never ours to take or release"
        );
    }
}
