//! What a step uses, apart from what it reads: `Io` (the connections, the log and live view, the
//! reports, the timeline, Ctrl-C) and `Shell`, a step's way to the hosts (the run's plan to read, its
//! Io to act through). The waits across hosts (`RolloutSync`), the lock and the failure budget are
//! not in a Shell: a step that takes part in one of them gets it as its own argument.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::join_all;

use super::cancel::Cancel;
use super::connect::Connections;
use super::failure::{combine, HostError};
use super::options::Command;
use super::report::Reports;
use super::run::Plan;
use super::sync::RolloutSync;
use crate::config::KamalMajor;
use crate::error::{Error, ErrorKind, Result};
use crate::output::timeline::{Phase, Timeline};
use crate::output::Output;

/// What a step acts through: one SSH connection per host, the output, the hosts' reports and
/// timeline, the headings said so far, Ctrl-C.
pub struct Io {
    /// Shared with a run nested in this one (a revert's rollback), which prints through it.
    pub output: Arc<Output>,
    pub cancel: Arc<Cancel>,
    pub started: Instant,
    pub reports: Reports,
    /// A remote command has been sent (from the pull on).
    pub touched: AtomicBool,
    /// Each host's steps, as they happen.
    pub timeline: Timeline,
    /// The steps whose heading was printed.
    said: Mutex<HashSet<Phase>>,
    /// One SSH connection per host (`connect.rs`).
    pub(super) connections: Connections,
}

impl Io {
    pub fn new(
        output: Arc<Output>,
        cancel: Arc<Cancel>,
        started: Instant,
        reports: Reports,
        connections: Connections,
    ) -> Io {
        Io {
            output,
            cancel,
            started,
            reports,
            touched: AtomicBool::new(false),
            timeline: Timeline::new(started),
            said: Mutex::new(HashSet::new()),
            connections,
        }
    }

    pub fn checkpoint(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::new(ErrorKind::Interrupted, "Interrupted"))
        } else {
            Ok(())
        }
    }

    /// Runs `step` on every host at once; every host finishes, then the errors are raised together.
    pub async fn on_hosts<'b, F, Fut>(&'b self, hosts: &'b [String], step: F) -> Result<()>
    where
        F: Fn(&'b str) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), HostError>> + 'b,
    {
        let results = join_all(hosts.iter().map(|h| step(h))).await;
        let errors: Vec<HostError> = results.into_iter().filter_map(|r| r.err()).collect();
        self.checkpoint()?;
        combine(errors)
    }
}

/// A step's way to the hosts: it reads the plan (through `Deref`) and acts through the run's Io.
#[derive(Clone, Copy)]
pub struct Shell<'r, 'a> {
    pub plan: &'r Plan<'a>,
    pub io: &'r Io,
    /// Only for what a script's input waits on (`exec`) and the live view's words for a waiting host.
    sync: &'r RolloutSync,
}

impl<'r, 'a> Shell<'r, 'a> {
    pub fn new(plan: &'r Plan<'a>, io: &'r Io, sync: &'r RolloutSync) -> Self {
        Shell { plan, io, sync }
    }

    pub(super) fn gates(&self) -> &'r RolloutSync {
        self.sync
    }

    /// The registry's username and password, kept out of everything printed from now on.
    pub fn credentials(&self) -> Result<(String, String)> {
        let (user, password) = self.config.registry().credentials(&self.config.secrets)?;
        self.io.output.add_secrets([user.clone(), password.clone()]);
        Ok((user, password))
    }

    /// Kamal's heading for a step (`Detect stale containers...`), printed once, when the step first
    /// begins on any host.
    pub fn header(&self, phase: Phase) {
        let text = match (phase, self.config.major) {
            (Phase::Pull, _) if self.options.skip_push => "Pull app image...".to_string(),
            (Phase::Lock, _) => "Acquiring the deploy lock...".into(),
            (Phase::Proxy, KamalMajor::V2) => "Ensure kamal-proxy is running...".into(),
            (Phase::Proxy, KamalMajor::V1) => "Ensure Traefik is running...".into(),
            (Phase::Stale, _) => "Detect stale containers...".into(),
            (Phase::Boot, KamalMajor::V2) => format!(
                "Start container with version {} (or reboot if already running)...",
                self.version
            ),
            (Phase::Boot, KamalMajor::V1) => format!(
                "Start container with version {} using a {}s readiness delay (or reboot if already running)...",
                self.version,
                self.config.timeouts().readiness_delay
            ),
            (Phase::Prune, _) => "Prune old containers and images...".into(),
            (Phase::Release, _) => "Releasing the deploy lock...".into(),
            _ => return,
        };
        self.say_step(phase, &text);
    }

    /// The live view's line for a host entering a step.
    pub fn step_progress(&self, host: &str, role: Option<&str>, phase: Phase) {
        let (v, role) = (&self.version, role.unwrap_or("app"));
        let rollback = self.options.command == Command::Rollback;
        let text = match phase {
            Phase::Pull => format!("pulling {}:{v}", self.config.repository()),
            Phase::Lock => "taking the deploy lock".into(),
            // A rollback pulls nothing: its containers are there already.
            Phase::LockWait if rollback => "waiting for the lock".into(),
            Phase::LockWait => "pulled, waiting for the lock".into(),
            Phase::Check => format!("checking for {v}"),
            Phase::Proxy if self.config.major == KamalMajor::V1 => {
                "ensuring Traefik is running".into()
            }
            Phase::Proxy => "ensuring kamal-proxy is running".into(),
            Phase::PullBarrier if rollback => "waiting for every host's check".into(),
            Phase::PullBarrier => super::canary::waiting_text(self.sync, host)
                .unwrap_or_else(|| "pulled, waiting for every host's pull".into()),
            Phase::Stale => format!("reading {role}'s containers"),
            Phase::Boot => format!("booting {role} {v}"),
            Phase::Health if self.config.major == KamalMajor::V1 => {
                format!("waiting for {role} {v} to be healthy")
            }
            Phase::Health => format!("kamal-proxy deploying {role} {v}"),
            Phase::Stop => format!("stopping the old {role} container"),
            Phase::TagWait => format!("{v} booted, waiting for the other hosts"),
            Phase::Tag => "tagging latest".into(),
            Phase::Prune => "pruning old containers and images".into(),
            Phase::Release => "releasing the deploy lock".into(),
            Phase::Env => "writing env files".into(),
            Phase::Connect | Phase::Session | Phase::Barrier | Phase::Other => return,
        };
        self.io.output.progress(host, &text);
    }

    /// `text` as the heading of `phase`, unless it was said already.
    pub fn say_step(&self, phase: Phase, text: &str) {
        if self.io.said.lock().unwrap().insert(phase) {
            self.io.output.say(text);
        }
    }
}

impl<'a> std::ops::Deref for Shell<'_, 'a> {
    type Target = Plan<'a>;

    fn deref(&self) -> &Plan<'a> {
        self.plan
    }
}
