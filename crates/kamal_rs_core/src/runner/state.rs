//! The run's shared state, as small types: a set-once latch (the primary role's health barrier, the
//! deploy lock being settled) and the lock's lifecycle.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A value set at most once, that tasks wait for: Kamal's barrier (`lib/kamal/cli/healthcheck/barrier.rb`,
/// a `Concurrent::IVar`) is one: the first gatekeeper to finish opens or closes it, later results are
/// ignored.
pub struct Latch<T> {
    value: watch::Sender<Option<T>>,
}

impl<T: Clone + Send + Sync> Default for Latch<T> {
    fn default() -> Self {
        Latch {
            value: watch::channel(None).0,
        }
    }
}

impl<T: Clone + Send + Sync> Latch<T> {
    /// Sets the latch; true only for the call that set it (a later call changes nothing).
    pub fn set(&self, value: T) -> bool {
        self.value.send_if_modified(|v| {
            if v.is_some() {
                return false;
            }
            *v = Some(value);
            true
        })
    }

    #[cfg(test)]
    pub fn get(&self) -> Option<T> {
        self.value.borrow().clone()
    }

    pub fn is_set(&self) -> bool {
        self.value.borrow().is_some()
    }

    /// A receiver that sees the latch's value (`None` until it is set).
    pub fn subscribe(&self) -> watch::Receiver<Option<T>> {
        self.value.subscribe()
    }

    /// Resolves once the latch is set, with its value.
    pub async fn wait(&self) -> T {
        let mut rx = self.value.subscribe();
        let value = rx
            .wait_for(Option::is_some)
            .await
            .expect("the latch outlives its waiters");
        value.clone().expect("set")
    }
}

/// The health barrier: open (`true`) once the first primary-role container is healthy, closed
/// (`false`) if it is not.
pub type Barrier = Latch<bool>;

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

/// A wait across hosts: it opens once every expected host is ready, and closes as soon as one of them
/// fails, or the run is stopped. Kamal pulls on every host before any boots: kamal_rs lets each host go
/// on by itself, but no host boots until every host that pulls is ready (pulled, kamal-proxy booted).
/// And Kamal tags `latest` after the last boot: in the per-host rollout each host tags once every
/// host's boots succeeded.
pub struct HostsBarrier {
    count: Mutex<HostsCount>,
    latch: Latch<bool>,
}

struct HostsCount {
    expected: usize,
    ready: std::collections::HashSet<String>,
    left: std::collections::HashSet<String>,
}

impl HostsBarrier {
    /// `expected` hosts must be ready; with none (or no barrier wanted) it is open from the start.
    pub fn new(expected: usize) -> HostsBarrier {
        let barrier = HostsBarrier {
            count: Mutex::new(HostsCount {
                expected,
                ready: Default::default(),
                left: Default::default(),
            }),
            latch: Latch::default(),
        };
        if expected == 0 {
            barrier.latch.set(true);
        }
        barrier
    }

    fn count(&self) -> std::sync::MutexGuard<'_, HostsCount> {
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `host` is ready.
    pub fn ready(&self, host: &str) {
        let mut count = self.count();
        count.ready.insert(host.to_string());
        if count.ready.len() >= count.expected {
            self.latch.set(true);
        }
    }

    /// `host` was left behind (the failure budget): the others no longer wait for it.
    pub fn leave(&self, host: &str) {
        let mut count = self.count();
        if !count.ready.contains(host) && count.left.insert(host.to_string()) {
            count.expected = count.expected.saturating_sub(1);
        }
        if count.ready.len() >= count.expected {
            self.latch.set(true);
        }
    }

    /// A host failed (or ended without being ready), or the run stops: no host goes on.
    pub fn halt(&self) {
        self.latch.set(false);
    }

    pub async fn wait(&self) -> bool {
        self.latch.wait().await
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<bool>> {
        self.latch.subscribe()
    }
}

/// Hosts whose script is still before its boot, with that script's shell PID: Ctrl-C sends it
/// SIGTERM, so the script ends there instead of going on to boot.
#[derive(Default)]
pub struct BeforeBoot(Mutex<HashMap<String, (String, Option<Instant>)>>);

impl BeforeBoot {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Option<Instant>)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn started(&self, host: &str, pid: &str) {
        self.map().insert(host.to_string(), (pid.to_string(), None));
    }

    /// The host's script reached its boot (or ended).
    pub fn passed(&self, host: &str) {
        self.map().remove(host);
    }

    /// Every (host, PID) not yet told to stop; each is marked as told now.
    pub fn to_terminate(&self) -> Vec<(String, String)> {
        let now = Instant::now();
        self.map()
            .iter_mut()
            .filter(|(_, (_, told))| told.is_none())
            .map(|(host, (pid, told))| {
                *told = Some(now);
                (host.clone(), pid.clone())
            })
            .collect()
    }

    /// The host was told to stop more than `grace` ago and its script has not ended.
    pub fn unresponsive(&self, host: &str, grace: Duration) -> bool {
        self.map()
            .get(host)
            .and_then(|(_, told)| *told)
            .is_some_and(|at| at.elapsed() >= grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latch_is_set_once() {
        let barrier = Barrier::default();
        assert_eq!(barrier.get(), None);
        assert!(barrier.set(true), "the first result sets it");
        assert!(!barrier.set(false), "a later result is ignored");
        assert_eq!(barrier.get(), Some(true));
    }

    #[tokio::test]
    async fn waiters_see_the_first_value() {
        let barrier = std::sync::Arc::new(Barrier::default());
        let waiter = {
            let barrier = barrier.clone();
            tokio::spawn(async move { barrier.wait().await })
        };
        tokio::task::yield_now().await;
        barrier.set(false);
        barrier.set(true);
        assert!(!waiter.await.unwrap());
        assert!(!barrier.wait().await, "set: no wait");
    }

    #[test]
    fn the_pull_barrier_opens_when_all_are_ready_and_closes_on_one_failure() {
        let b = HostsBarrier::new(2);
        b.ready("a");
        assert_eq!(b.latch.get(), None);
        b.ready("a");
        assert_eq!(b.latch.get(), None, "a host counts once");
        b.ready("b");
        assert_eq!(b.latch.get(), Some(true));
        b.halt();
        assert_eq!(
            b.latch.get(),
            Some(true),
            "a boot failing later changes nothing"
        );
        let b = HostsBarrier::new(3);
        b.ready("a");
        b.halt();
        b.ready("b");
        b.ready("c");
        assert_eq!(b.latch.get(), Some(false));
        assert_eq!(HostsBarrier::new(0).latch.get(), Some(true));
    }

    #[test]
    fn a_host_left_behind_is_no_longer_waited_for() {
        let b = HostsBarrier::new(3);
        b.ready("a");
        b.leave("c");
        assert_eq!(b.latch.get(), None);
        b.leave("c");
        b.ready("b");
        assert_eq!(b.latch.get(), Some(true));
        let b = HostsBarrier::new(2);
        b.ready("a");
        b.leave("a");
        assert_eq!(b.latch.get(), None, "a host that was ready still counts");
        b.leave("b");
        assert_eq!(b.latch.get(), Some(true));
    }

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
