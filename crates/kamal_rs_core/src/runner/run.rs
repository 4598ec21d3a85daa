//! One run's context, as Kamal's commander is for one `kamal deploy`: what it reads (`Plan`: the
//! configuration and options, the hosts and roles it acts on), what it acts through (`Io`, in
//! `shell.rs`) and the state its hosts share (the lock, the failure budget, `RolloutSync`).

use std::sync::Arc;
use std::time::Instant;

use super::budget::{Budget, MaxFail};
use super::canary::CanaryWave;
use super::cancel::Cancel;
use super::commander::Selection;
use super::connect::Connections;
use super::options::{Command, DeployOptions};
use super::performer::{Clock, Performer};
use super::report::Reports;
use super::shell::{Io, Shell};
use super::state::LockState;
use super::steps::boot::{Barrier, Boot};
use super::steps::hooks::{HookContext, Hooks};
use super::sync::RolloutSync;
use crate::commands::auditor::Auditor;
use crate::config::{Configuration, KamalMajor, Role};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::ssh::{valid_host, SshSettings};

/// What a step may read: the config (through its typed views), what the run was asked, its hosts and
/// roles, the version, and the values fixed for the run (performer, clock, run id). A step that only
/// composes a script takes this; one that runs it takes a `Shell` (which reads as its plan too).
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

/// The run: its plan (read through `Deref`), what steps act through (`Io`: output, reports,
/// connections) and what hosts share (the lock, the failure budget, `RolloutSync`). The orchestration
/// (`main.rs`, `rollout.rs`, `rollback.rs`) holds the run; a step gets a `Shell` and the shared parts
/// it takes part in.
pub struct Run<'a> {
    plan: Plan<'a>,
    pub io: Io,
    pub hooks: Hooks<'a>,
    pub lock: LockState,
    /// How hosts wait for each other (the lock, the pulls, the primary's health, the boots).
    pub sync: RolloutSync,
    /// The failure budget: hosts left behind (`--max-fail`).
    pub budget: Budget,
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
            io: Io::new(output, cancel, started, reports, connections),
            lock: LockState::new(inherited),
            sync: RolloutSync::new(pull_barrier_hosts, hosts, canary),
            budget,
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
        let mut nested = Run::new(self.config, options, self.io.cancel.clone(), Instant::now())?;
        nested.io.output = self.io.output.clone();
        nested.io.connections.share(&self.io.connections);
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

    /// What the run reads, for a step that only composes a script.
    pub fn plan(&self) -> &Plan<'a> {
        &self.plan
    }

    /// A step's way to the hosts: the plan and the run's Io.
    pub fn shell(&self) -> Shell<'_, 'a> {
        Shell::new(&self.plan, &self.io, &self.sync)
    }

    /// The primary role's barrier, for a boot.
    pub fn barrier(&self) -> Barrier<'_> {
        Barrier {
            sync: &self.sync,
            budget: &self.budget,
        }
    }

    /// One (host, role) boot of this run.
    pub fn boot<'r>(&'r self, host: &'r str, role: &'a Role) -> Boot<'r, 'a> {
        Boot::new(self.shell(), self.barrier(), host, role)
    }

    /// What running a hook uses (`steps/hooks.rs`).
    pub fn hook_context(&self) -> HookContext<'_, 'a> {
        HookContext {
            sh: self.shell(),
            hooks: &self.hooks,
            lock: &self.lock,
        }
    }

    /// Runs a hook if it exists (`steps/hooks.rs`), as Kamal's CLI does between its steps.
    pub async fn hook(
        &self,
        name: &str,
        hosts: &[String],
        extra: &[(String, String)],
        with_secrets: bool,
    ) -> Result<()> {
        super::steps::hooks::run_hook(&self.hook_context(), name, hosts, extra, with_secrets).await
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
