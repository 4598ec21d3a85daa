//! Where a run's time went: for each host (and role), the steps it went through, each with its start,
//! end and outcome. The runner records a step when its first command starts on a host (the script's
//! start marker, timed as it arrives) and ends it when the host's next step begins or its script ends;
//! waits (the lock, the pull barrier, the other hosts' boots) are steps too. The events file, the
//! GitHub Actions summary and the timeline picture are all drawn from these records.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// A step of a host's rollout, in Kamal's words where Kamal has a step of that name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The SSH connection (OpenSSH's handshake), once `sshkit.max_concurrent_starts` lets it start.
    Connect,
    /// A script's SSH session opening and its shell starting, until its first command starts.
    Session,
    /// Registry login, the audit line, `docker pull`, the `service` label check.
    Pull,
    /// Taking the deploy lock (the primary host).
    Lock,
    /// Waiting until the deploy lock is held (the other hosts, after their pull).
    LockWait,
    /// A rollback's check that the host still has the version's containers.
    Check,
    /// kamal-proxy (Traefik for 1.x) ensured running.
    Proxy,
    /// Waiting until every host has pulled: no host boots before (Kamal's order).
    PullBarrier,
    /// A role waiting for the primary role's first healthy container (Kamal's barrier).
    Barrier,
    /// Stale containers found and stopped, the current version read.
    Stale,
    /// The new container started: a clashing name renamed, the env file, `docker run`.
    Boot,
    /// The new container becoming healthy (`kamal-proxy deploy`, or the health poll).
    Health,
    /// The old container stopped.
    Stop,
    /// Waiting until every host has booted: `latest` is tagged only then.
    TagWait,
    /// `latest` tagged.
    Tag,
    /// Old containers and images pruned.
    Prune,
    /// The deploy lock released.
    Release,
    /// Env files written (Kamal 1.x's `env push`).
    Env,
    /// Commands outside a host's rollout (a failed run's checks, Ctrl-C's signals): not drawn.
    Other,
}

impl Phase {
    pub const ALL: [Phase; 19] = [
        Phase::Connect,
        Phase::Session,
        Phase::Pull,
        Phase::Lock,
        Phase::LockWait,
        Phase::Check,
        Phase::Proxy,
        Phase::PullBarrier,
        Phase::Barrier,
        Phase::Stale,
        Phase::Boot,
        Phase::Health,
        Phase::Stop,
        Phase::TagWait,
        Phase::Tag,
        Phase::Prune,
        Phase::Release,
        Phase::Env,
        Phase::Other,
    ];

    /// The step's name in the events file and the pictures.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Session => "session",
            Phase::Pull => "pull",
            Phase::Lock => "lock",
            Phase::LockWait => "lock-wait",
            Phase::Check => "check",
            Phase::Proxy => "proxy",
            Phase::PullBarrier => "pull-barrier",
            Phase::Barrier => "barrier",
            Phase::Stale => "stale",
            Phase::Boot => "boot",
            Phase::Health => "health",
            Phase::Stop => "stop",
            Phase::TagWait => "tag-wait",
            Phase::Tag => "tag",
            Phase::Prune => "prune",
            Phase::Release => "release",
            Phase::Env => "env",
            Phase::Other => "other",
        }
    }

    /// Time spent waiting for other hosts (or the lock), not working.
    pub fn is_wait(self) -> bool {
        matches!(
            self,
            Phase::LockWait | Phase::PullBarrier | Phase::Barrier | Phase::TagWait
        )
    }

    /// A step of one role's boot (the others are the host's).
    pub fn is_role_step(self) -> bool {
        matches!(
            self,
            Phase::Barrier | Phase::Stale | Phase::Boot | Phase::Health | Phase::Stop
        )
    }
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Its command failed.
    Failed,
    /// Stopped before its end: another host failed, or Ctrl-C.
    Stopped,
    /// The connection was lost during it: what became of it is not known.
    Unknown,
}

/// One step of one host.
#[derive(Clone, Debug, Serialize)]
pub struct Span {
    pub host: String,
    pub role: Option<String>,
    pub step: Phase,
    /// Seconds since the run started.
    pub start: f64,
    pub end: f64,
    pub status: Status,
}

impl Span {
    pub fn duration(&self) -> f64 {
        (self.end - self.start).max(0.0)
    }
}

/// Told of each step as it starts and ends (the events file).
pub trait Observer: Send + Sync {
    fn step_started(&self, span: &Span, at: SystemTime);
    fn step_ended(&self, span: &Span, at: SystemTime);
}

/// Every step of the run, as they happen.
pub struct Timeline {
    started: Instant,
    started_at: SystemTime,
    spans: Mutex<Vec<Span>>,
    observers: Mutex<Vec<Arc<dyn Observer>>>,
}

impl Timeline {
    pub fn new(started: Instant) -> Timeline {
        let started_at = SystemTime::now()
            .checked_sub(started.elapsed())
            .unwrap_or_else(SystemTime::now);
        Timeline {
            started,
            started_at,
            spans: Mutex::new(Vec::new()),
            observers: Mutex::new(Vec::new()),
        }
    }

    pub fn observe(&self, observer: Arc<dyn Observer>) {
        self.observers.lock().unwrap().push(observer);
    }

    /// Seconds since the run started, for `at`.
    pub fn offset(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    /// The wall-clock time of an offset.
    pub fn wall(&self, offset: f64) -> SystemTime {
        self.started_at + Duration::from_secs_f64(offset.max(0.0))
    }

    /// A step begins on a host; returns its index, to end it with.
    pub fn begin(&self, host: &str, role: Option<&str>, step: Phase, at: Instant) -> usize {
        let start = self.offset(at);
        let span = Span {
            host: host.to_string(),
            role: role.map(str::to_string),
            step,
            start,
            end: start,
            status: Status::Ok,
        };
        for o in self.observers.lock().unwrap().iter() {
            o.step_started(&span, self.wall(start));
        }
        let mut spans = self.spans.lock().unwrap();
        spans.push(span);
        spans.len() - 1
    }

    pub fn end(&self, index: usize, at: Instant, status: Status) {
        let end = self.offset(at);
        let span = {
            let mut spans = self.spans.lock().unwrap();
            let Some(span) = spans.get_mut(index) else {
                return;
            };
            span.end = end.max(span.start);
            span.status = status;
            span.clone()
        };
        for o in self.observers.lock().unwrap().iter() {
            o.step_ended(&span, self.wall(end));
        }
    }

    /// A step that began and ended where the runner could see both (a connection, a wait in Rust).
    pub fn record(
        &self,
        host: &str,
        role: Option<&str>,
        step: Phase,
        from: Instant,
        to: Instant,
        status: Status,
    ) {
        let i = self.begin(host, role, step, from);
        self.end(i, to, status);
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

/// The steps of one script on one host, one after the other: a step ends when the next begins, the
/// last when the script ends. Steps of one role carry its name.
pub struct Steps<'t> {
    timeline: &'t Timeline,
    host: String,
    role: Option<String>,
    current: Option<(usize, Phase)>,
}

impl<'t> Steps<'t> {
    pub fn new(timeline: &'t Timeline, host: &str, role: Option<&str>) -> Steps<'t> {
        Steps {
            timeline,
            host: host.to_string(),
            role: role.map(str::to_string),
            current: None,
        }
    }

    /// A command (or a wait) of `step` starts at `at`: a new step unless it continues the current one.
    /// Returns whether a step began.
    pub fn enter(&mut self, step: Phase, at: Instant) -> bool {
        if step == Phase::Other || self.current.is_some_and(|(_, p)| p == step) {
            return false;
        }
        self.close(at, Status::Ok);
        let role = self.role.as_deref().filter(|_| step.is_role_step());
        let index = self.timeline.begin(&self.host, role, step, at);
        self.current = Some((index, step));
        true
    }

    /// The script ended: its last step with it.
    pub fn close(&mut self, at: Instant, status: Status) {
        if let Some((index, _)) = self.current.take() {
            self.timeline.end(index, at, status);
        }
    }

    pub fn current(&self) -> Option<Phase> {
        self.current.map(|(_, p)| p)
    }
}

impl Drop for Steps<'_> {
    /// A script dropped mid-way (its host given up after Ctrl-C) leaves its step stopped.
    fn drop(&mut self) {
        self.close(Instant::now(), Status::Stopped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_one_another_and_the_last_ends_with_the_script() {
        let t0 = Instant::now();
        let timeline = Timeline::new(t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut steps = Steps::new(&timeline, "h1", Some("web"));
        assert!(steps.enter(Phase::Pull, at(100)));
        assert!(!steps.enter(Phase::Pull, at(200)), "same step goes on");
        assert!(steps.enter(Phase::Boot, at(1100)));
        assert!(!steps.enter(Phase::Other, at(1200)));
        steps.close(at(1500), Status::Failed);
        let spans = timeline.spans();
        assert_eq!(spans.len(), 2);
        assert_eq!(
            (spans[0].step, spans[0].role.as_deref()),
            (Phase::Pull, None)
        );
        assert!((spans[0].duration() - 1.0).abs() < 1e-9);
        assert_eq!(spans[0].status, Status::Ok);
        assert_eq!(
            (spans[1].step, spans[1].role.as_deref(), spans[1].status),
            (Phase::Boot, Some("web"), Status::Failed)
        );
    }

    /// The events file's schema lists exactly these steps.
    #[test]
    fn the_schema_knows_every_step() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../lib/kamal_rs/events.schema.json"
        );
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let listed: Vec<&str> = schema["definitions"]["step"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let names: Vec<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(listed, names);
    }

    #[test]
    fn every_phase_has_its_own_name() {
        let names: std::collections::HashSet<&str> = Phase::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), Phase::ALL.len());
        for p in Phase::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
    }
}
