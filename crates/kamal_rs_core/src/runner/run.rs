//! One run's context, as Kamal's commander is for one `kamal deploy`: the configuration and options,
//! the hosts and roles it acts on, one SSH connection per host, the log, and the state the steps share.
//! The steps (`steps/`) take a `&Run`; none of them holds state of its own across hosts.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::join_all;

use super::budget::{Budget, MaxFail};
use super::canary::CanaryWave;
use super::cancel::Cancel;
use super::commander::Selection;
use super::connect::Connections;
use super::failure::{combine, HostError};
use super::options::{Command, DeployOptions};
use super::performer::{Clock, Performer};
use super::report::Reports;
use super::state::LockState;
use super::steps::hooks::Hooks;
use super::sync::RolloutSync;
use crate::commands::auditor::Auditor;
use crate::config::{Configuration, KamalMajor, Role};
use crate::error::{Error, ErrorKind, Result};
use crate::output::timeline::{Phase, Timeline};
use crate::output::Output;
use crate::ssh::{valid_host, SshSettings};

/// What a step may read: the config (through its typed views), what the run was asked, its hosts and
/// roles, the version, and the values fixed for the run (performer, clock, run id). A step that only
/// composes a script takes this; one that runs it takes the `Run` (which reads as its plan too).
pub struct Plan<'a> {
    pub config: &'a Configuration,
    pub options: DeployOptions,
    pub sel: Selection,
    pub version: String,
    pub performer: Performer,
    pub clock: Clock,
    /// Kamal 1.x: 32 hex digits naming this run's cord directories.
    pub run_id: String,
    /// `S[-D]`.
    sd: String,
}

impl<'a> Plan<'a> {
    pub fn auditor(&self) -> Auditor<'_> {
        Auditor {
            service_and_destination: self.sd(),
            destination: self.config.destination.as_deref(),
            performer: self.performer.get(),
        }
    }

    /// `S[-D]`: the name of the app's remote state (audit log, lock, apps directory).
    pub fn sd(&self) -> &str {
        &self.sd
    }

    pub fn roles_on(&self, host: &str) -> Vec<&'a Role> {
        let config: &'a Configuration = self.config;
        self.sel
            .roles
            .iter()
            .filter_map(|name| config.role(name))
            .filter(|r| r.hosts.iter().any(|h| h == host))
            .collect()
    }

    pub fn is_app_host(&self, host: &str) -> bool {
        self.sel.app_hosts.iter().any(|h| h == host)
    }
}

/// The run: its plan (read through `Deref`), what steps use (output, reports, connections) and what
/// hosts share (the lock, the failure budget, `RolloutSync`).
pub struct Run<'a> {
    plan: Plan<'a>,
    /// Shared with a run nested in this one (a revert's rollback), which prints through it.
    pub output: Arc<Output>,
    pub hooks: Hooks<'a>,
    pub cancel: Arc<Cancel>,
    pub started: Instant,
    pub reports: Reports,
    pub lock: LockState,
    /// How hosts wait for each other (the lock, the pulls, the primary's health, the boots).
    pub sync: RolloutSync,
    /// The failure budget: hosts left behind (`--max-fail`).
    pub budget: Budget,
    /// A remote command has been sent (from the pull on).
    pub touched: AtomicBool,
    /// Each host's steps, as they happen.
    pub timeline: Timeline,
    /// The steps whose heading was printed.
    said: Mutex<HashSet<Phase>>,
    /// One SSH connection per host (`connect.rs`).
    pub(super) connections: Connections,
}

impl<'a> Run<'a> {
    pub fn new(
        config: &'a Configuration,
        options: DeployOptions,
        cancel: Arc<Cancel>,
        started: Instant,
    ) -> Result<Run<'a>> {
        Run::with(
            config,
            options,
            cancel,
            started,
            Performer::spawn(),
            Clock::System,
        )
    }

    fn with(
        config: &'a Configuration,
        options: DeployOptions,
        cancel: Arc<Cancel>,
        started: Instant,
        performer: Performer,
        clock: Clock,
    ) -> Result<Run<'a>> {
        if options.command == Command::EnvPush && config.major != KamalMajor::V1 {
            return Err(Error::argument("`env push` is for Kamal 1.x configs: Kamal 2 deploys upload the env files themselves"));
        }
        // `env push` needs no version; the lock's details show one when there is one.
        let version = match (options.command, config.version()) {
            (Command::EnvPush, Err(_)) => "unknown".to_string(),
            // A rollback's version is the one asked for, or (none given) chosen on the servers.
            (Command::Rollback, _) => config.declared_version().unwrap_or("").to_string(),
            (_, v) => v?,
        };
        let sel = Selection::new(config, options.hosts(), options.roles(), options.primary)?;
        // Every value that reaches ssh is checked before anything runs (hooks included).
        let ssh = SshSettings::from_config(config.ssh_section())?;
        if let Some(bad) = sel.hosts.iter().find(|h| !valid_host(h)) {
            return Err(Error::config(format!(
                "servers: {bad:?} is not a host name or address ([user@]name, IPv4 or IPv6)"
            )));
        }
        let output = Arc::new(Output::new(
            options.verbosity(),
            options.terminal,
            &sel.hosts,
        ));
        if let Ok(values) = config.secrets.values() {
            output.add_secrets(values);
        }
        let reports = Reports::new(sel.hosts.iter().map(|h| {
            let roles = sel
                .roles_on(config, h)
                .iter()
                .map(|r| r.name.clone())
                .collect();
            (h.clone(), roles)
        }));
        let inherited = options.lock_held || std::env::var("KAMAL_LOCK").is_ok_and(|v| v == "true");
        let connections = Connections::new(ssh, &sel.hosts, config.sshkit().max_concurrent_starts)?;
        let run_id = clock.hex(16);
        let hosts = sel.hosts.len();
        let budget = match options.max_fail() {
            Some(text) => Budget::new(MaxFail::parse(&text)?.hosts(sel.hosts.len())),
            None => Budget::new(0),
        };
        let canary = CanaryWave::new(options.canary.as_deref(), options.canary_wait, &sel.hosts)?;
        let pull_barrier_hosts = if options.boot_barrier() {
            sel.app_hosts.len()
        } else {
            0
        };
        Ok(Run {
            hooks: Hooks::new(config, options.skip_hooks),
            output,
            cancel,
            started,
            reports,
            lock: LockState::new(inherited),
            sync: RolloutSync::new(pull_barrier_hosts, hosts, canary),
            budget,
            touched: AtomicBool::new(false),
            timeline: Timeline::new(started),
            said: Mutex::new(HashSet::new()),
            connections,
            plan: Plan {
                version,
                sel,
                performer,
                clock,
                run_id,
                sd: config.service_and_destination(),
                config,
                options,
            },
        })
    }

    /// A run inside this one (a revert's rollback of some hosts): it prints through this run's output
    /// (its live view and loggers) and reuses this run's open connections, which it leaves open.
    pub fn nested(&self, options: DeployOptions) -> Result<Run<'a>> {
        let mut nested = Run::new(self.config, options, self.cancel.clone(), Instant::now())?;
        nested.output = self.output.clone();
        nested.connections.share(&self.connections);
        Ok(nested)
    }

    /// A run for unit tests: nothing printed, a fixed performer, clock and random part.
    #[cfg(test)]
    pub fn for_test(config: &'a Configuration, options: DeployOptions) -> Run<'a> {
        let options = DeployOptions {
            quiet: true,
            ..options
        };
        Run::with(
            config,
            options,
            Arc::new(Cancel::default()),
            Instant::now(),
            Performer::fixed("deployer@example.com", "Deployer"),
            Clock::Fixed("2026-12-01T10:00:00Z"),
        )
        .expect("run")
    }

    pub fn checkpoint(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::new(ErrorKind::Interrupted, "Interrupted"))
        } else {
            Ok(())
        }
    }

    /// What the run reads, for a step that only composes a script.
    pub fn plan(&self) -> &Plan<'a> {
        &self.plan
    }

    /// The run's hosts less those left behind (`--max-fail`): the steps after the rollout act on these.
    pub fn active_hosts(&self) -> Vec<String> {
        self.sel
            .hosts
            .iter()
            .filter(|h| !self.budget.is_left_behind(h))
            .cloned()
            .collect()
    }

    /// The registry's username and password, kept out of everything printed from now on.
    pub fn credentials(&self) -> Result<(String, String)> {
        let (user, password) = self.config.registry().credentials(&self.config.secrets)?;
        self.output.add_secrets([user.clone(), password.clone()]);
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
            Phase::LockWait => "pulled, waiting for the lock".into(),
            Phase::Check => format!("checking for {v}"),
            Phase::Proxy if self.config.major == KamalMajor::V1 => {
                "ensuring Traefik is running".into()
            }
            Phase::Proxy => "ensuring kamal-proxy is running".into(),
            Phase::PullBarrier if rollback => "waiting for every host's check".into(),
            Phase::PullBarrier => super::canary::waiting_text(self, host)
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
        self.output.progress(host, &text);
    }

    /// `text` as the heading of `phase`, unless it was said already.
    pub fn say_step(&self, phase: Phase, text: &str) {
        if self.said.lock().unwrap().insert(phase) {
            self.output.say(text);
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

impl<'a> std::ops::Deref for Run<'a> {
    type Target = Plan<'a>;

    fn deref(&self) -> &Plan<'a> {
        &self.plan
    }
}

impl std::ops::DerefMut for Run<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.plan
    }
}
