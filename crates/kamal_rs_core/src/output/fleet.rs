//! The live view of a fleet too large for a line per host (more than `PER_HOST_UP_TO` hosts): how many
//! hosts are at each step (the step says the role: `booting web v2`), then the hosts that failed and the
//! ones lagging, by name, in at most `LINES` lines. The full per-host log is `-v`'s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Up to this many hosts, the live view has a line per host.
pub const PER_HOST_UP_TO: usize = 20;
/// The fleet view's height: a summary, step counts, failed and lagging hosts.
pub const LINES: usize = 16;
/// A host still at a step this long after most others moved on is named as lagging.
const LAG: Duration = Duration::from_secs(5);
/// Failed or lagging hosts named, at most (the rest are counted).
const NAMED: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Running,
    Done,
    Failed,
}

#[derive(Clone, Debug)]
pub struct HostLine {
    pub host: String,
    pub step: String,
    pub since: Instant,
    pub outcome: Outcome,
}

impl HostLine {
    pub fn new(host: &str, now: Instant) -> HostLine {
        HostLine {
            host: host.to_string(),
            step: "waiting".into(),
            since: now,
            outcome: Outcome::Running,
        }
    }

    pub fn set(&mut self, step: &str, outcome: Outcome, now: Instant) {
        if self.step != step || self.outcome != outcome {
            self.since = now;
        }
        self.step = step.to_string();
        self.outcome = outcome;
    }
}

/// The view's lines, at most `LINES`.
pub fn lines(hosts: &[HostLine], now: Instant) -> Vec<String> {
    let count = |o: Outcome| hosts.iter().filter(|h| h.outcome == o).count();
    let (running, done, failed) = (
        count(Outcome::Running),
        count(Outcome::Done),
        count(Outcome::Failed),
    );
    let mut out = vec![format!(
        "{} hosts: {running} in progress, {done} done, {failed} failed",
        hosts.len()
    )];
    // Steps in the order most hosts reached them: the one most hosts are at first.
    let mut steps: BTreeMap<&str, usize> = BTreeMap::new();
    for h in hosts.iter().filter(|h| h.outcome != Outcome::Failed) {
        *steps.entry(h.step.as_str()).or_default() += 1;
    }
    let mut steps: Vec<(&str, usize)> = steps.into_iter().collect();
    steps.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let room = LINES.saturating_sub(1 + 2);
    let shown = steps.len().min(room);
    for (step, n) in &steps[..shown] {
        out.push(format!("{n:>5}  {step}"));
    }
    if steps.len() > shown {
        let rest: usize = steps[shown..].iter().map(|(_, n)| n).sum();
        out.push(format!("{rest:>5}  at {} other steps", steps.len() - shown));
    }
    let failed_hosts: Vec<&HostLine> = hosts
        .iter()
        .filter(|h| h.outcome == Outcome::Failed)
        .collect();
    if !failed_hosts.is_empty() {
        out.push(named("failed", &failed_hosts, |h| h.step.clone()));
    }
    let lagging = lagging(hosts, now);
    if !lagging.is_empty() {
        out.push(named("lagging", &lagging, |h| {
            format!("{}, {} s", h.step, now.duration_since(h.since).as_secs())
        }));
    }
    out.truncate(LINES);
    out
}

/// Hosts in progress whose step is held by at most a fifth of the hosts in progress and has lasted
/// `LAG` or more: the ones the rest wait for. Longest first. A host waiting (for the lock, a barrier,
/// a connection slot) is held up by others, not slow itself, so it is never named here.
fn lagging(hosts: &[HostLine], now: Instant) -> Vec<&HostLine> {
    let running: Vec<&HostLine> = hosts
        .iter()
        .filter(|h| h.outcome == Outcome::Running)
        .collect();
    // Counted once: the view is drawn on every host's update, a thousand hosts' worth of times.
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for h in &running {
        *at.entry(h.step.as_str()).or_default() += 1;
    }
    let mut slow: Vec<&HostLine> = running
        .iter()
        .copied()
        .filter(|h| {
            now.duration_since(h.since) >= LAG
                && at[h.step.as_str()] * 5 <= running.len()
                && !h.step.contains("waiting")
        })
        .collect();
    slow.sort_by_key(|h| h.since);
    slow
}

fn named(what: &str, hosts: &[&HostLine], detail: impl Fn(&HostLine) -> String) -> String {
    let mut parts: Vec<String> = hosts
        .iter()
        .take(NAMED)
        .map(|h| format!("{} ({})", h.host, detail(h)))
        .collect();
    if hosts.len() > NAMED {
        parts.push(format!("and {} more", hosts.len() - NAMED));
    }
    format!("  {what}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 128 hosts mid-rollout fit in `LINES` lines: counts per step (and role), failed and lagging
    /// hosts by name.
    #[test]
    fn a_128_host_rollout_in_a_few_lines() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(30);
        let mut hosts: Vec<HostLine> = (0..128)
            .map(|i| HostLine::new(&format!("10.0.{}.{}", i / 100, i % 100), t0))
            .collect();
        for (i, h) in hosts.iter_mut().enumerate() {
            let at = t0 + Duration::from_secs(20);
            match i {
                0..=89 => h.set("booting web v2", Outcome::Running, at),
                90..=119 => h.set("v2 live", Outcome::Done, at),
                120..=121 => h.set("failed: docker exit status: 1", Outcome::Failed, at),
                122..=123 => h.set(
                    "booting workers v2",
                    Outcome::Running,
                    t0 + Duration::from_secs(28),
                ),
                _ => h.set(
                    "pulling app:v2",
                    Outcome::Running,
                    t0 + Duration::from_secs(12),
                ),
            }
        }
        let view = lines(&hosts, now);
        assert!(view.len() <= LINES, "{view:#?}");
        assert_eq!(
            view,
            [
                "128 hosts: 96 in progress, 30 done, 2 failed",
                "   90  booting web v2",
                "   30  v2 live",
                "    4  pulling app:v2",
                "    2  booting workers v2",
                "  failed: 10.0.1.20 (failed: docker exit status: 1), 10.0.1.21 (failed: docker exit status: 1)",
                "  lagging: 10.0.1.24 (pulling app:v2, 18 s), 10.0.1.25 (pulling app:v2, 18 s), 10.0.1.26 (pulling app:v2, 18 s), 10.0.1.27 (pulling app:v2, 18 s)",
            ]
        );
    }

    #[test]
    fn many_steps_and_failures_stay_within_the_height() {
        let t0 = Instant::now();
        let hosts: Vec<HostLine> = (0..128)
            .map(|i| {
                let mut h = HostLine::new(&format!("h{i}"), t0);
                let outcome = if i % 2 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Running
                };
                h.set(&format!("step {}", i % 40), outcome, t0);
                h
            })
            .collect();
        let view = lines(&hosts, t0 + Duration::from_secs(1));
        assert_eq!(view.len(), LINES);
        assert!(
            view.iter().any(|l| l.contains("at 7 other steps")),
            "{view:#?}"
        );
        assert!(view.last().unwrap().contains("and 59 more"), "{view:#?}");
    }

    /// Hosts held at a barrier wait for the slow ones; only the slow ones are named.
    #[test]
    fn hosts_waiting_at_a_barrier_are_not_lagging() {
        let t0 = Instant::now();
        let mut hosts: Vec<HostLine> = (0..20)
            .map(|i| HostLine::new(&format!("h{i}"), t0))
            .collect();
        for (i, h) in hosts.iter_mut().enumerate() {
            match i {
                0..=15 => h.set("booting web v2", Outcome::Running, t0),
                16..=17 => h.set(
                    "v2 booted, waiting for the other hosts",
                    Outcome::Running,
                    t0,
                ),
                _ => h.set("pulling app:v2", Outcome::Running, t0),
            }
        }
        let view = lines(&hosts, t0 + Duration::from_secs(30));
        let lagging = view
            .iter()
            .find(|l| l.contains("lagging"))
            .expect("a lagging line");
        assert!(lagging.contains("h18 (pulling app:v2"), "{view:#?}");
        assert!(!lagging.contains("waiting"), "{view:#?}");
    }
}
