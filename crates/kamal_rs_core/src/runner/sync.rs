//! How hosts wait for each other, and nothing else: the only cross-host waits of a rollout are the ones
//! Kamal's safety needs, each a method of `RolloutSync` (`Run::sync`): the deploy lock settled before
//! any boot, every host pulled before any boots (Kamal pulls everywhere first), the primary role's
//! first health result before other roles boot (Kamal's barrier), and every host's boots succeeded
//! before `latest` is tagged. A step waits through these methods; the primitives stay private.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::canary::CanaryWave;

/// A gate a script's input waits on: `Some(true)` open, `Some(false)` closed, `None` not yet known.
pub type Gate = watch::Receiver<Option<bool>>;

pub struct RolloutSync {
    lock_settled: Latch<bool>,
    pulled: HostsBarrier,
    /// Kamal's barrier (`lib/kamal/cli/healthcheck/barrier.rb`): open once the first primary-role
    /// container is healthy, closed if it is not.
    primary: Latch<bool>,
    booted: HostsBarrier,
    before_boot: BeforeBoot,
    tags_in_boot: OnceLock<bool>,
    /// `--canary`: the hosts that boot first, and the gate the others wait at.
    pub canary: Option<CanaryWave>,
}

impl RolloutSync {
    /// `pulling`: the hosts every boot waits for (0: no pull barrier); `hosts`: every host of the run.
    pub fn new(pulling: usize, hosts: usize, canary: Option<CanaryWave>) -> RolloutSync {
        RolloutSync {
            lock_settled: Latch::default(),
            pulled: HostsBarrier::new(pulling),
            primary: Latch::default(),
            booted: HostsBarrier::new(hosts),
            before_boot: BeforeBoot::default(),
            tags_in_boot: OnceLock::new(),
            canary,
        }
    }

    // ---- the deploy lock ------------------------------------------------------------------------

    /// The lock is held (`true`) or will not be (`false`); true for the call that settled it. Not held:
    /// no host goes on to its boot.
    pub fn settle_lock(&self, held: bool) -> bool {
        let settled = self.lock_settled.set(held);
        if settled && !held {
            self.pulled.halt();
        }
        settled
    }

    /// Whether the lock is held, once it is settled.
    pub async fn wait_for_lock(&self) -> bool {
        self.lock_settled.wait().await
    }

    pub fn lock_gate(&self) -> Gate {
        self.lock_settled.subscribe()
    }

    // ---- every host pulled before any boots ------------------------------------------------------

    pub fn pulled(&self, host: &str) {
        self.pulled.ready(host);
    }

    /// What a host waits for before its boot: every host's pull, and (`--canary`, a host of the later
    /// wave) the canaries' verdict.
    pub fn boot_gate(&self, host: &str) -> Gate {
        match &self.canary {
            Some(wave) if !wave.is_canary(host) => wave.gate.subscribe(),
            _ => self.pulled.subscribe(),
        }
    }

    // ---- the primary role's first health result --------------------------------------------------

    /// Opens (`true`) or closes the barrier; true for the first result, which is the one that counts.
    pub fn primary_result(&self, healthy: bool) -> bool {
        self.primary.set(healthy)
    }

    pub fn primary_known(&self) -> bool {
        self.primary.is_set()
    }

    pub async fn wait_for_primary(&self) -> bool {
        self.primary.wait().await
    }

    #[cfg(test)]
    pub fn primary(&self) -> Option<bool> {
        self.primary.get()
    }

    // ---- every host's boots succeeded before `latest` -------------------------------------------

    pub fn booted(&self, host: &str) {
        self.booted.ready(host);
    }

    pub fn booted_gate(&self) -> Gate {
        self.booted.subscribe()
    }

    /// Whether the boots' scripts also tag `latest` (`plan::tags_in_boot`), decided once.
    pub fn tags_in_boot(&self, decide: impl FnOnce() -> bool) -> bool {
        *self.tags_in_boot.get_or_init(decide)
    }

    // ---- a host failing, left behind, or the run stopping ----------------------------------------

    /// A host ended before saying its boots succeeded: nobody tags `latest`.
    pub fn halt_tags(&self) {
        self.booted.halt();
    }

    /// A host failed before its boot (or the run stops): nobody goes on to boot.
    pub fn halt_boots(&self) {
        self.pulled.halt();
    }

    /// `host` was left behind (the failure budget): nobody waits for it any more.
    pub fn leave(&self, host: &str) {
        self.pulled.leave(host);
        self.booted.leave(host);
    }

    // ---- scripts before their boot (Ctrl-C stops them there) ------------------------------------

    /// The host's script is before its boot, as shell `pid`.
    pub fn before_boot(&self, host: &str, pid: &str) {
        self.before_boot.started(host, pid);
    }

    /// The host's script reached its boot (or ended).
    pub fn reached_boot(&self, host: &str) {
        self.before_boot.passed(host);
    }

    /// Every (host, PID) still before its boot and not yet told to stop; each is marked as told now.
    pub fn to_terminate(&self) -> Vec<(String, String)> {
        self.before_boot.to_terminate()
    }

    /// The host was told to stop more than `grace` ago and its script has not ended.
    pub fn unresponsive(&self, host: &str, grace: Duration) -> bool {
        self.before_boot.unresponsive(host, grace)
    }
}

/// A value set at most once, that tasks wait for: Kamal's barrier (`lib/kamal/cli/healthcheck/barrier.rb`,
/// a `Concurrent::IVar`) is one: the first gatekeeper to finish opens or closes it, later results are
/// ignored.
pub(super) struct Latch<T> {
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

/// A wait across hosts: it opens once every expected host is ready, and closes as soon as one of them
/// fails, or the run is stopped. Kamal pulls on every host before any boots: kamal_rs lets each host go
/// on by itself, but no host boots until every host that pulls is ready (pulled, kamal-proxy booted).
/// And Kamal tags `latest` after the last boot: in the per-host rollout each host tags once every
/// host's boots succeeded.
pub(super) struct HostsBarrier {
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
struct BeforeBoot(Mutex<HashMap<String, (String, Option<Instant>)>>);

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
        let barrier = Latch::<bool>::default();
        assert_eq!(barrier.get(), None);
        assert!(barrier.set(true), "the first result sets it");
        assert!(!barrier.set(false), "a later result is ignored");
        assert_eq!(barrier.get(), Some(true));
    }

    #[tokio::test]
    async fn waiters_see_the_first_value() {
        let barrier = std::sync::Arc::new(Latch::<bool>::default());
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
}
