//! `deploy`, `redeploy` and (Kamal 1.x) `env push`, as per-host pipelines over one SSH connection per
//! host, read as Kamal's own code reads (cli → commander → commands):
//!
//! - `main.rs`: the command from start to end (Kamal's `cli/main.rb`), and the report;
//! - `run.rs`: the run (Kamal's commander): its `Plan` (what a step may read: config, options, hosts),
//!   and what its hosts share (the lock, the failure budget, `RolloutSync`); `shell.rs`: what a step
//!   acts through (`Io`: output, reports, connections) and its way to the hosts (`Shell`);
//!   `connect.rs` the SSH connections, `exec.rs` a script run on a host with its log;
//! - `sync.rs`: every wait across hosts (`RolloutSync`), a method each;
//! - `rollout.rs`: how hosts move through their steps, and how one host's script is composed;
//! - `steps/`: one module per step (lock, pull, proxy, boot, tag, hooks, build), each building its part
//!   of a script and reading its own outcome, given only what it uses; the command strings themselves
//!   are in `commands/`;
//! - `rollback.rs`: `rollback`, the boot of a version whose containers are still there;
//! - `v1/`: Kamal 1.9's steps for 1.x (Traefik) configs, on the same parts;
//! - `script/`: scripts from typed parts (markers, exit codes, the commands shown in the log);
//! - `state.rs`, `report.rs`, `options.rs`, `failure.rs`, `panics.rs`: the lock's lifecycle, what the
//!   run reports, what it is asked, how failures read, and a panic turned into an error.
//!
//! Every host moves through its steps as soon as its previous step is done. The only cross-host waits
//! are the ones Kamal's safety needs: the lock held before anything changes, the primary role's first
//! health result before other roles boot, `boot.limit` groups, and `latest` tagged only after every host
//! booted.

pub mod budget;
mod canary;
pub mod cancel;
pub mod commander;
mod connect;
mod deploy_v1;
mod env_push;
mod exec;
mod failure;
mod github;
mod groups;
mod interrupt;
mod loggers;
mod main;
pub mod options;
pub mod panics;
mod performer;
mod plan;
pub mod report;
mod revert;
mod rollback;
mod rollout;
mod run;
pub mod script;
mod shell;
mod state;
mod steps;
mod sync;

use std::sync::Arc;
use std::time::Instant;

pub use cancel::Cancel;
pub use options::{Command, DeployOptions, OPTIONS};
pub use report::{DeployReport, HostReport, LockOutcome, RoleReport, RoleState};

use crate::config::Configuration;
use crate::error::Error;

/// Runs a deploy (or redeploy, rollback, env push) to completion, failure or cancellation.
pub fn deploy(config: &Configuration, options: DeployOptions, cancel: Arc<Cancel>) -> DeployReport {
    let started = Instant::now();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return DeployReport::failed_early(Error::runtime(e.to_string()), 0.0),
    };
    panics::install_hook();
    // The steps catch their own panics (the lock is released after them); one anywhere else in the
    // run still ends it with an error rather than unwinding into Ruby.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            match run::Run::new(config, options, cancel, started) {
                Ok(run) => main::run(run).await,
                Err(e) => DeployReport::failed_early(e, started.elapsed().as_secs_f64()),
            }
        })
    }));
    ran.unwrap_or_else(|payload| {
        let error = panics::internal(payload.as_ref());
        DeployReport::failed_early(error, started.elapsed().as_secs_f64())
    })
}
