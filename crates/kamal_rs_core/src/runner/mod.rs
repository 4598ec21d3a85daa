//! `deploy` and `redeploy` for Kamal 2 configs (reference §4), as per-host pipelines.
//!
//! Every host moves through its steps as soon as its previous step is done. The only cross-host waits
//! are the ones Kamal's safety needs:
//! - the lock is held before anything changes a server; with a `pre-deploy` or `pre-app-boot` hook,
//!   boot groups or a mirror to seed, every pull succeeds first (then `pre-deploy`, kamal-proxy on
//!   every proxy host, the boots); otherwise each host goes on by itself (`rollout_per_host`);
//! - the primary role's first health result opens or closes the barrier for the other roles;
//! - `boot.limit` groups boot one after the other;
//! - `latest` is tagged (and old containers/images pruned, deploy only) only after every host booted.
//!
//! Fewer round trips per host where the effect is identical: in the per-host rollout a host's lock
//! (primary), pull, kamal-proxy and first boot are one script; otherwise a host's pull is one command,
//! each (host, role) boot one script (`boot.rs`); the tag and prune one command.

pub mod boot;
mod build;
pub mod cancel;
pub mod commander;
pub mod hooks;
mod v1;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::sync::watch;

use crate::commands::app::{container_hostname, App};
use crate::commands::auditor::Auditor;
use crate::commands::{builder, lock, proxy, prune, registry};
use crate::config::{random_hex, Configuration, KamalMajor};
use crate::error::{Error, ErrorKind, Result};
use crate::output::{uuid, Output, Verbosity};
use crate::ssh::{Connection, RunDir, SshError, SshSettings, Stdin};
use crate::value::Value;
use boot::{BootScript, MARK};
pub use cancel::Cancel;
use commander::Selection;
use hooks::Hooks;

#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// `redeploy`: no proxy boot, no prune.
    pub redeploy: bool,
    pub skip_push: bool,
    pub hosts: Option<String>,
    pub roles: Option<String>,
    pub primary: bool,
    pub skip_hooks: bool,
    pub verbosity: Verbosity,
    /// stdout is a terminal: colours and the live per-host view.
    pub terminal: bool,
    pub lock_wait: bool,
    pub lock_wait_timeout: f64,
    pub lock_wait_interval: f64,
    /// A remote command that takes longer fails its host.
    pub command_timeout: Duration,
    /// `env push` (Kamal 1.x) instead of a deploy.
    pub env_push: bool,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            redeploy: false,
            skip_push: false,
            hosts: None,
            roles: None,
            primary: false,
            skip_hooks: false,
            verbosity: Verbosity::Normal,
            terminal: false,
            lock_wait: false,
            lock_wait_timeout: 900.0,
            lock_wait_interval: 15.0,
            command_timeout: Duration::from_secs(600),
            env_push: false,
        }
    }
}

/// Where one role on one host stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleState {
    /// Its boot never started: the old version (if any) still serves.
    NotBooted,
    /// The new version is live (proxy roles) or running (others).
    Live,
    /// Its boot failed: the new container was stopped, the old version still serves.
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct RoleReport {
    pub role: String,
    pub old_version: Option<String>,
    pub state: RoleState,
}

#[derive(Debug, Clone)]
pub struct HostReport {
    pub host: String,
    pub roles: Vec<RoleReport>,
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct DeployReport {
    pub version: String,
    pub runtime: f64,
    pub hosts: Vec<HostReport>,
    pub error: Option<Error>,
    /// Some remote command ran (false after a failed build or connect: no server was touched).
    pub touched: bool,
}

impl DeployReport {
    /// One line per host saying where it stopped.
    pub fn summary_lines(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| {
                let parts: Vec<String> = h
                    .roles
                    .iter()
                    .map(|r| {
                        let old = r
                            .old_version
                            .as_deref()
                            .map(|v| format!("old version {v} still serving"))
                            .unwrap_or_else(|| "no previous version".into());
                        match &r.state {
                            RoleState::Live => {
                                format!("{}: new version {} live", r.role, self.version)
                            }
                            RoleState::NotBooted => format!("{}: not booted, {old}", r.role),
                            RoleState::Failed(_) => format!("{}: boot failed, {old}", r.role),
                        }
                    })
                    .collect();
                let body = if !self.touched {
                    h.error.clone().unwrap_or_else(|| "untouched".into())
                } else if parts.is_empty() {
                    h.error.clone().unwrap_or_else(|| "untouched".into())
                } else {
                    parts.join("; ")
                };
                format!("{}: {body}", h.host)
            })
            .collect()
    }
}

/// Runs a deploy (or redeploy) to completion, failure or cancellation. Never panics into the caller.
pub fn deploy(config: &Configuration, options: DeployOptions, cancel: Arc<Cancel>) -> DeployReport {
    let started = Instant::now();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return DeployReport {
                version: String::new(),
                runtime: 0.0,
                hosts: Vec::new(),
                error: Some(Error::runtime(e.to_string())),
                touched: false,
            }
        }
    };
    runtime.block_on(async {
        match Deploy::new(config, options, cancel, started) {
            Ok(d) => d.run().await,
            Err(e) => DeployReport {
                version: String::new(),
                runtime: started.elapsed().as_secs_f64(),
                hosts: Vec::new(),
                error: Some(e),
                touched: false,
            },
        }
    })
}

/// A failure on one host, in Kamal's words.
#[derive(Debug, Clone)]
struct HostError {
    kind: ErrorKind,
    message: String,
}

impl HostError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        HostError {
            kind,
            message: message.into(),
        }
    }
}

/// The health barrier: unset, open (first primary container healthy) or closed.
type Barrier = watch::Sender<Option<bool>>;

/// The start of a host's first boot script in the per-host rollout (`Deploy::prelude`).
struct Prelude {
    /// The Kamal commands it stands for.
    shown: Vec<(String, bool)>,
    script: String,
    /// It takes the deploy lock.
    locks: bool,
}

struct Deploy<'a> {
    config: &'a Configuration,
    options: DeployOptions,
    sel: Selection,
    version: String,
    output: Output,
    hooks: Hooks,
    /// `S[-D]`, the name of the app's remote state (audit log, lock, apps dir).
    service_and_destination: String,
    cancel: Arc<Cancel>,
    started: Instant,
    performer: Performer,
    conns: Mutex<HashMap<String, Arc<Connection>>>,
    reports: Mutex<Vec<HostReport>>,
    holding_lock: AtomicBool,
    /// A remote command has been sent (from the pull on).
    touched: AtomicBool,
    /// The primary's tag command released the lock.
    primary_released: AtomicBool,
    /// The single boot of the run also tagged latest (and pruned, and released the lock).
    tagged_in_boot: AtomicBool,
    /// KAMAL_LOCK=true: a caller holds the lock for us; never take or release it.
    external_lock: bool,
    failed: AtomicBool,
    barrier: Barrier,
    /// The deploy lock: not yet settled, held, or not to be had (per-host rollout).
    lock_state: watch::Sender<Option<bool>>,
    /// Hosts whose first script is still before its boot (pulling), with that script's shell PID:
    /// Ctrl-C sends it SIGTERM, so the script ends there instead of going on to boot.
    before_boot: Mutex<HashMap<String, String>>,
    run_dir: RunDir,
    /// Kamal 1.x: 32 hex digits naming this run's cord directories.
    run_id: String,
}

impl<'a> Deploy<'a> {
    fn new(
        config: &'a Configuration,
        options: DeployOptions,
        cancel: Arc<Cancel>,
        started: Instant,
    ) -> Result<Deploy<'a>> {
        if options.env_push && config.major != KamalMajor::V1 {
            return Err(Error::argument("`env push` is for Kamal 1.x configs: Kamal 2 deploys upload the env files themselves"));
        }
        // `env push` needs no version; the lock's details show one when there is one.
        let version = match config.version() {
            Err(_) if options.env_push => "unknown".to_string(),
            v => v?,
        };
        let sel = Selection::new(
            config,
            options.hosts.as_deref(),
            options.roles.as_deref(),
            options.primary,
        )?;
        let live_hosts = sel.hosts.clone();
        let output = Output::new(options.verbosity, options.terminal, &live_hosts);
        if let Ok(values) = config.secrets.values() {
            output.add_secrets(values);
        }
        let hooks_output = config.get("hooks_output").cloned();
        let hooks = Hooks {
            path: config.hooks_path(),
            skip: options.skip_hooks,
            visibility: Box::new(move |hook: &str| match &hooks_output {
                Some(Value::Map(m)) => m.get(hook).map(Value::to_ruby_s),
                Some(v) => Some(v.to_ruby_s()),
                None => None,
            }),
        };
        let holding = std::env::var("KAMAL_LOCK").is_ok_and(|v| v == "true");
        let run_dir = RunDir::new()
            .map_err(|e| Error::runtime(format!("Could not create a temporary directory: {e}")))?;
        Ok(Deploy {
            config,
            sel,
            version,
            output,
            hooks,
            service_and_destination: config.service_and_destination(),
            cancel,
            started,
            performer: Performer::spawn(),
            conns: Mutex::new(HashMap::new()),
            reports: Mutex::new(Vec::new()),
            holding_lock: AtomicBool::new(holding),
            touched: AtomicBool::new(false),
            primary_released: AtomicBool::new(false),
            external_lock: holding,
            tagged_in_boot: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            barrier: watch::channel(None).0,
            lock_state: watch::channel(None).0,
            before_boot: Mutex::new(HashMap::new()),
            options,
            run_dir,
            run_id: random_hex(16),
        })
    }

    async fn run(self) -> DeployReport {
        let external_lock = self.external_lock;
        let result = self.steps().await;
        let result = match (result, self.cancel.is_cancelled()) {
            (Err(e), _) => Err(e),
            (Ok(()), true) => Err(Error::new(ErrorKind::Interrupted, "Interrupted")),
            (Ok(()), false) => Ok(()),
        };
        // Kamal releases the lock on failure; kamal_rs also does on Ctrl-C (Kamal leaves it held).
        if !external_lock && self.holding_lock.load(Ordering::SeqCst) {
            self.output.say("Releasing the deploy lock...");
            if let Err(e) = self.release_lock().await {
                self.output
                    .red(&format!("Error releasing the deploy lock: {}", e.message));
            }
        }
        let runtime = self.started.elapsed().as_secs_f64();
        self.output.finish();
        if result.is_ok() {
            let env = [(
                "KAMAL_RUNTIME".to_string(),
                format!("{}", runtime.round() as i64),
            )];
            self.output
                .plain(&format!("  Finished all in {runtime:.1} seconds"));
            if let Err(e) = self
                .run_hook("post-deploy", &self.sel.hosts, &env, true)
                .await
            {
                return self.report(runtime, Some(e)).await;
            }
            return self.report(runtime, None).await;
        }
        self.output
            .plain(&format!("  Finished all in {runtime:.1} seconds"));
        self.report(runtime, result.err()).await
    }

    async fn report(self, runtime: f64, error: Option<Error>) -> DeployReport {
        let touched = self.touched.load(Ordering::SeqCst);
        if error.is_some() && touched {
            self.probe_unbooted().await;
        }
        let conns: Vec<Arc<Connection>> =
            self.conns.lock().unwrap().drain().map(|(_, c)| c).collect();
        join_all(conns.into_iter().map(Connection::close)).await;
        let reports = self.reports.lock().unwrap().clone();
        let report = DeployReport {
            version: self.version.clone(),
            runtime,
            hosts: reports,
            error,
            touched,
        };
        if report.error.is_some() && !report.hosts.is_empty() {
            for line in report.summary_lines() {
                self.output.red(&format!("  {line}"));
            }
        }
        report
    }

    async fn steps(&self) -> Result<()> {
        for h in &self.sel.hosts {
            let roles = self
                .sel
                .roles_on(self.config, h)
                .iter()
                .map(|r| RoleReport {
                    role: r.name.clone(),
                    old_version: None,
                    state: RoleState::NotBooted,
                })
                .collect();
            self.reports.lock().unwrap().push(HostReport {
                host: h.clone(),
                roles,
                error: None,
            });
        }
        if self.config.major == KamalMajor::V1 {
            return if self.options.env_push {
                self.env_push_steps().await
            } else {
                self.steps_v1().await
            };
        }
        self.run_hook("pre-connect", &self.sel.hosts, &[], true)
            .await?;
        if self.options.skip_push {
            self.output.say("Pull app image...");
            self.connect_all().await?;
        } else {
            // Connecting touches nothing on the servers, so it overlaps the build; a failed build still
            // stops before the first remote command.
            self.output.say("Build and push app image...");
            let (built, connected) = tokio::join!(self.build_push(), self.connect_all());
            built?;
            connected?;
        }
        if self.per_host_rollout() {
            self.rollout_per_host().await?;
        } else {
            self.pull_and_lock().await?;
            self.checkpoint()?;
            self.run_hook("pre-deploy", &self.sel.hosts, &[], true)
                .await?;
            if !self.options.redeploy {
                self.output.say("Ensure kamal-proxy is running...");
                self.on_hosts(&self.sel.hosts, |h| self.boot_proxy(h))
                    .await?;
                self.checkpoint()?;
            }
            self.output.say("Detect stale containers...");
            self.output.say(&format!(
                "Start container with version {} (or reboot if already running)...",
                self.version
            ));
            self.boot_groups().await?;
        }
        self.checkpoint()?;
        if self.tagged_in_boot.load(Ordering::SeqCst) {
            return Ok(());
        }
        if !self.options.redeploy {
            self.output.say("Prune old containers and images...");
        }
        // Every host tags at once, and the primary's command then releases the lock: Kamal releases it
        // after every tag; here the release may come while another host's `docker tag` is still
        // finishing, which a second deploy, whose first change is seconds away, cannot tell apart.
        let release_with_tag = !self.external_lock && self.holding_lock.load(Ordering::SeqCst);
        let primary = self.sel.primary_host.clone();
        if release_with_tag {
            self.output.say("Releasing the deploy lock...");
        }
        let result = self
            .on_hosts(&self.sel.hosts, |h| {
                self.tag_and_prune(h, release_with_tag && h == primary)
            })
            .await;
        if release_with_tag && self.primary_released.load(Ordering::SeqCst) {
            self.holding_lock.store(false, Ordering::SeqCst);
        }
        result
    }

    /// After a failure or an interrupt: which version the roles that were not booted still run (read
    /// only then, so a successful run pays nothing for it).
    async fn probe_unbooted(&self) {
        let todo: Vec<(String, String)> = self
            .reports
            .lock()
            .unwrap()
            .iter()
            .flat_map(|h| {
                h.roles
                    .iter()
                    .filter(|r| r.state == RoleState::NotBooted && r.old_version.is_none())
                    .map(|r| (h.host.clone(), r.role.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        join_all(todo.iter().map(|(host, role)| async move {
            let Some(role_cfg) = self.config.role(role) else {
                return;
            };
            let app = App::new(self.config, role_cfg);
            let probe = format!("{}; echo \"$old\"", app.current_version_into_old());
            let Ok(conn) = self.conn(host) else { return };
            if let Ok(out) = conn
                .run(&probe, Stdin::None, Duration::from_secs(10), &mut |_| {})
                .await
            {
                let v = out.stdout.trim().to_string();
                self.set_role(host, role, |r| r.old_version = (!v.is_empty()).then_some(v));
            }
        }))
        .await;
    }

    fn checkpoint(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::new(ErrorKind::Interrupted, "Interrupted"))
        } else {
            Ok(())
        }
    }

    // ---- hooks -------------------------------------------------------------------------------------

    fn hook_env(&self, hosts: &[String]) -> Vec<(String, String)> {
        let c = self.config;
        let mut env = vec![
            ("KAMAL_RECORDED_AT".to_string(), crate::time::now()),
            (
                "KAMAL_PERFORMER".to_string(),
                self.performer.get().to_string(),
            ),
            ("KAMAL_VERSION".to_string(), self.version.clone()),
            (
                "KAMAL_SERVICE_VERSION".to_string(),
                format!("{}@{}", c.service(), abbreviated(&self.version)),
            ),
            ("KAMAL_SERVICE".to_string(), c.service()),
            ("KAMAL_HOSTS".to_string(), hosts.join(",")),
            (
                "KAMAL_COMMAND".to_string(),
                if self.options.redeploy {
                    "redeploy"
                } else {
                    "deploy"
                }
                .to_string(),
            ),
        ];
        if let Some(d) = &c.destination {
            env.push(("KAMAL_DESTINATION".into(), d.clone()));
        }
        if let Some(roles) = &self.sel.specific_roles {
            env.push(("KAMAL_ROLES".into(), roles.join(",")));
        }
        if c.major == KamalMajor::V1 {
            // 1.9's hooks get neither KAMAL_SERVICE nor KAMAL_LOCK.
            env.retain(|(k, _)| k != "KAMAL_SERVICE");
            return env;
        }
        env.push((
            "KAMAL_LOCK".into(),
            self.holding_lock.load(Ordering::SeqCst).to_string(),
        ));
        env
    }

    /// `with_secrets`: pre-connect, pre-deploy and post-deploy also get every secret in their environment.
    /// The environment is built only for a hook that exists: it needs the performer, whose `git`
    /// lookup would otherwise hold up the first SSH connections.
    async fn run_hook(
        &self,
        name: &str,
        hosts: &[String],
        extra: &[(String, String)],
        with_secrets: bool,
    ) -> Result<()> {
        if !self.hooks.exists(name) {
            return Ok(());
        }
        let mut env = self.hook_env(hosts);
        env.extend(extra.iter().cloned());
        if with_secrets {
            env.extend(self.config.secrets.pairs()?);
        }
        if self.config.major == KamalMajor::V1 {
            // 1.9 announces a hook with `say` (magenta), 2.x with an INFO line.
            self.output.say(&format!("Running the {name} hook..."));
        } else {
            self.output.info(&format!("Running the {name} hook..."));
        }
        self.hooks.run(name, &env, &self.output, &self.cancel).await
    }

    // ---- SSH -----------------------------------------------------------------------------------------

    async fn connect_all(&self) -> Result<()> {
        let settings = SshSettings::from_config(self.config.get("ssh"));
        let config_file = self.run_dir.path.join("ssh_config");
        std::fs::write(&config_file, settings.ssh_config())
            .map_err(|e| Error::runtime(e.to_string()))?;
        let control = self.run_dir.path.clone();
        let local_registry_port = self.config.local_registry_port();
        let results = join_all(self.sel.hosts.iter().map(|h| {
            let config_file = config_file.clone();
            let control = control.clone();
            async move {
                self.output.progress(h, "connecting");
                let connect = async {
                    let conn = Connection::connect(h, &config_file, &control).await?;
                    // Kamal 2.8+: app hosts pull from a local registry through a reverse forward.
                    if let Some(port) = local_registry_port.filter(|_| self.sel.app_hosts.contains(h)) {
                        conn.forward_remote_port(port).await?;
                    }
                    Ok(conn)
                };
                tokio::select! {
                    r = connect => (h.clone(), r),
                    _ = self.cancel.cancelled() => (h.clone(), Err(SshError::Connect("interrupted".into()))),
                }
            }
        }))
        .await;
        let mut errors = Vec::new();
        for (host, r) in results {
            match r {
                Ok(conn) => {
                    self.conns.lock().unwrap().insert(host, conn);
                }
                Err(e) => {
                    let message = format!("Exception while executing on host {host}: {e}");
                    self.mark_host_error(&host, &message);
                    self.output
                        .progress_done(&host, &format!("unreachable: {e}"));
                    errors.push(HostError::new(ErrorKind::Connection, message));
                }
            }
        }
        self.checkpoint()?;
        combine(errors)
    }

    fn conn(&self, host: &str) -> std::result::Result<Arc<Connection>, HostError> {
        self.conns
            .lock()
            .unwrap()
            .get(host)
            .cloned()
            .ok_or_else(|| {
                HostError::new(ErrorKind::Connection, format!("no connection to {host}"))
            })
    }

    /// Runs one remote command line on a host. `shown` are the Kamal commands it stands for, printed
    /// as Kamal prints them (`true`: a debug-level command, shown only with `-v`).
    async fn exec(
        &self,
        host: &str,
        shown: &[(String, bool)],
        command: &str,
        stdin: Stdin<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> std::result::Result<crate::ssh::Output, HostError> {
        let conn = self.conn(host)?;
        let ids: Vec<(String, bool)> = shown
            .iter()
            .map(|(c, debug)| {
                let id = uuid();
                self.output.running(&id, c, host, *debug);
                (id, *debug)
            })
            .collect();
        let started = Instant::now();
        let result = conn
            .run(command, stdin, self.options.command_timeout, on_line)
            .await;
        let secs = started.elapsed().as_secs_f64();
        match result {
            Ok(out) => {
                for (id, debug) in &ids {
                    self.output.finished(id, secs, out.status, host, *debug);
                }
                if let Some((id, _)) = ids.first() {
                    self.output.debug(
                        id,
                        out.stdout
                            .lines()
                            .filter(|l| !l.starts_with(MARK))
                            .collect::<Vec<_>>()
                            .join("\n")
                            .as_str(),
                    );
                    self.output.debug(id, &out.stderr);
                }
                Ok(out)
            }
            Err(e) => Err(HostError::new(
                if matches!(e, SshError::Connect(_)) {
                    ErrorKind::Connection
                } else {
                    ErrorKind::CommandFailed
                },
                format!("Exception while executing on host {host}: {e}"),
            )),
        }
    }

    /// One Kamal command on its own (shown as itself).
    async fn exec_one(
        &self,
        host: &str,
        command: &str,
        debug: bool,
    ) -> std::result::Result<crate::ssh::Output, HostError> {
        self.exec(
            host,
            &[(command.to_string(), debug)],
            command,
            Stdin::None,
            &mut |_| {},
        )
        .await
    }

    /// SSHKit's failure text for a command that exited non-zero. When a script ran several commands,
    /// only the failing one's output and exit status count (what follows the last step marker).
    fn failed(&self, host: &str, first_word: &str, out: &crate::ssh::Output) -> HostError {
        let lines: Vec<&str> = out.stdout.lines().collect();
        let last_step = lines
            .iter()
            .rposition(|l| l.starts_with(MARK) && !l[MARK.len()..].starts_with("failed"))
            .map(|i| i + 1)
            .unwrap_or(0);
        let own: Vec<&str> = lines[last_step..]
            .iter()
            .copied()
            .filter(|l| !l.starts_with(MARK))
            .collect();
        let status = marker(&out.stdout, "failed")
            .and_then(|rc| rc.parse().ok())
            .or(out.status)
            .unwrap_or(-1);
        let written = |s: String| {
            if s.trim().is_empty() {
                "Nothing written".to_string()
            } else {
                s.trim().to_string()
            }
        };
        HostError::new(
            ErrorKind::CommandFailed,
            format!(
                "Exception while executing on host {host}: {first_word} exit status: {status}\n{first_word} stdout: {}\n{first_word} stderr: {}",
                written(own.join("\n")),
                written(out.stderr.clone())
            ),
        )
    }

    /// Runs `step` on every host at once; every host finishes, then the errors are raised together.
    async fn on_hosts<'b, F, Fut>(&'b self, hosts: &'b [String], step: F) -> Result<()>
    where
        F: Fn(&'b str) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<(), HostError>> + 'b,
    {
        let results = join_all(hosts.iter().map(|h| step(h))).await;
        let errors: Vec<HostError> = results.into_iter().filter_map(|r| r.err()).collect();
        self.checkpoint()?;
        combine(errors)
    }

    fn with_report(&self, host: &str, update: impl FnOnce(&mut HostReport)) {
        if let Some(r) = self
            .reports
            .lock()
            .unwrap()
            .iter_mut()
            .find(|r| r.host == host)
        {
            update(r);
        }
    }

    fn mark_host_error(&self, host: &str, message: &str) {
        self.with_report(host, |r| {
            r.error.get_or_insert_with(|| message.to_string());
        });
    }

    fn set_role(&self, host: &str, role: &str, update: impl FnOnce(&mut RoleReport)) {
        self.with_report(host, |r| {
            if let Some(rr) = r.roles.iter_mut().find(|rr| rr.role == role) {
                update(rr);
            }
        });
    }

    fn auditor(&self) -> Auditor<'_> {
        Auditor {
            service_and_destination: &self.service_and_destination,
            destination: self.config.destination.as_deref(),
            performer: self.performer.get(),
        }
    }

    // ---- pull and lock -------------------------------------------------------------------------------

    /// Every app host pulls the image (after logging in) and checks its `service` label; every host gets
    /// `.kamal`; meanwhile the primary host takes the lock. Nothing changes before all of that succeeded.
    async fn pull_and_lock(&self) -> Result<()> {
        self.touched.store(true, Ordering::SeqCst);
        let pulls = self.pull_all();
        let lock = async {
            if self.holding_lock.load(Ordering::SeqCst) {
                return Ok(());
            }
            self.acquire_lock().await
        };
        let (pulls, lock) = tokio::join!(pulls, lock);
        match (pulls, lock) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        }
    }

    /// Whether each host can go on from its own pull to its boot without waiting for the others: only
    /// the lock must come first, unless a `pre-deploy` or `pre-app-boot` hook has to run in between,
    /// `boot.limit` makes groups, or a registry mirror is seeded first.
    fn per_host_rollout(&self) -> bool {
        !self.hooks.exists("pre-deploy")
            && !self.hooks.exists("pre-app-boot")
            && self.sel.boot_groups(self.config).len() == 1
            && self
                .config
                .boot_setting("wait")
                .and_then(Value::as_int)
                .unwrap_or(0)
                == 0
            && !self.may_seed_mirrors()
    }

    /// Docker applies registry mirrors to Docker Hub images only: only then can there be one to seed.
    fn may_seed_mirrors(&self) -> bool {
        let docker_hub = self.config.registry_server().is_none_or(|s| {
            ["docker.io", "index.docker.io", "registry-1.docker.io"].contains(&s.as_str())
        });
        docker_hub && self.sel.app_hosts.len() >= 2
    }

    /// Each host: pull, then (once the lock is held) kamal-proxy (deploy) and its boot, on its own.
    /// The primary role's health barrier still holds the other roles back; a host that fails before
    /// booting its primary-role container closes that barrier, as a failed boot would.
    ///
    /// A host whose first role need not wait for that barrier runs its pull, kamal-proxy and that
    /// boot as one script: the lock comes first (in the primary host's own script when it can), then
    /// every such host starts its script. Kamal pulls before it locks; locking first holds the lock
    /// a little longer and saves each host a round trip between its pull and its boot. Other hosts
    /// pull while the lock is taken and boot once it is held, as separate commands.
    async fn rollout_per_host(&self) -> Result<()> {
        self.touched.store(true, Ordering::SeqCst);
        let primary = self.sel.primary_host.as_str();
        let lock_in_script = !self.holding_lock.load(Ordering::SeqCst)
            && !self.options.lock_wait
            && self.sel.hosts.iter().any(|h| h == primary)
            && self.pulls_in_boot(primary);
        let lock = async {
            if lock_in_script {
                self.output.say("Acquiring the deploy lock...");
                return Ok(());
            }
            let result = if self.holding_lock.load(Ordering::SeqCst) {
                Ok(())
            } else {
                self.acquire_lock().await
            };
            self.lock_settled(result.is_ok());
            result
        };
        let hosts = self.on_hosts(&self.sel.hosts, |h| async move {
            let takes_lock = lock_in_script && h == primary;
            let result = self.roll_out_host(h, takes_lock).await;
            if takes_lock {
                // Whatever ended the primary's script, nobody waits for a lock that never came.
                self.lock_settled(false);
            }
            if result.is_err() {
                let primary_role = &self.sel.primary_role;
                if self
                    .sel
                    .roles_on(self.config, h)
                    .iter()
                    .any(|r| &r.name == primary_role)
                {
                    self.barrier
                        .send_if_modified(|v| v.is_none().then(|| *v = Some(false)).is_some());
                }
            }
            result
        });
        let rolled_out = tokio::sync::Notify::new();
        let hosts = async {
            let result = hosts.await;
            rolled_out.notify_one();
            result
        };
        // After Ctrl-C, again every 0.1 s: a script that had not yet said its PID is stopped too.
        let stopper = async {
            tokio::select! {
                _ = self.cancel.cancelled() => {}
                _ = rolled_out.notified() => return,
            }
            loop {
                self.stop_before_boot().await;
                tokio::select! {
                    _ = rolled_out.notified() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        };
        let (lock, hosts, ()) = tokio::join!(lock, hosts, stopper);
        lock?;
        hosts
    }

    /// Ctrl-C: every host whose first script has not reached its boot gets SIGTERM for that script,
    /// which then ends after its current command (a pull, say) without booting.
    async fn stop_before_boot(&self) {
        let pids: Vec<(String, String)> = self.before_boot.lock().unwrap().drain().collect();
        join_all(pids.iter().map(|(host, pid)| {
            let kill = format!("kill -TERM {pid} 2>/dev/null; true");
            async move {
                let _ = self.exec_one(host, &kill, true).await;
            }
        }))
        .await;
    }

    /// One host of the per-host rollout: its pull, the wait for the lock, kamal-proxy (deploy) and its
    /// boot; `takes_lock`: its script takes the lock first.
    async fn roll_out_host(
        &self,
        host: &str,
        takes_lock: bool,
    ) -> std::result::Result<(), HostError> {
        let mut locked = self.lock_state.subscribe();
        let wait_for_lock = async move {
            locked
                .wait_for(|v| v.is_some())
                .await
                .map(|v| *v == Some(true))
                .unwrap_or(false)
        };
        if self.pulls_in_boot(host) {
            if !takes_lock && (!wait_for_lock.await || self.cancel.is_cancelled()) {
                return Ok(());
            }
            let prelude = self.prelude(host, takes_lock)?;
            return self.boot_host(host, Some(prelude)).await;
        }
        self.pull(host).await?;
        if !wait_for_lock.await || self.cancel.is_cancelled() {
            return Ok(());
        }
        if !self.options.redeploy {
            self.boot_proxy(host).await?;
        }
        if self.cancel.is_cancelled() {
            return Ok(());
        }
        self.boot_host(host, None).await
    }

    /// Whether a host's pull (and kamal-proxy) can run in its first boot script: an app host of a
    /// Kamal 2 config whose first role boots without waiting for the primary role's barrier, and
    /// whose roles boot one after the other.
    fn pulls_in_boot(&self, host: &str) -> bool {
        let roles = self.sel.roles_on(self.config, host);
        let Some(first) = roles.first() else {
            return false;
        };
        let parallel = self
            .config
            .boot_setting("parallel_roles")
            .is_some_and(Value::truthy);
        self.config.major == KamalMajor::V2
            && self.sel.app_hosts.iter().any(|h| h == host)
            && (self.sel.roles.len() == 1 || first.name == self.sel.primary_role)
            && (roles.len() == 1 || !parallel)
    }

    /// The lock is held (or will never be): the waiting hosts go on. Kamal's step lines follow, in
    /// its order, once the lock allows the steps to start.
    fn lock_settled(&self, held: bool) {
        let first = self
            .lock_state
            .send_if_modified(|v| v.is_none().then(|| *v = Some(held)).is_some());
        if first && held {
            if !self.options.redeploy {
                self.output.say("Ensure kamal-proxy is running...");
            }
            self.output.say("Detect stale containers...");
            self.output.say(&format!(
                "Start container with version {} (or reboot if already running)...",
                self.version
            ));
        }
    }

    /// What runs at the start of a host's first boot script in the per-host rollout: the lock (on the
    /// primary host), the pull, and (deploy) kamal-proxy. Each part exits with its own code, so a
    /// failure there is known to have come before anything of the boot. None of them reads stdin,
    /// which carries the boot's env file.
    fn prelude(&self, host: &str, locks: bool) -> std::result::Result<Prelude, HostError> {
        let mut shown = Vec::new();
        // Until the boot begins, SIGTERM (sent on Ctrl-C) ends the script once its current command is
        // done; from the boot on it is ignored, so a boot always finishes.
        let mut parts = vec![format!(
            "trap '[ -z \"$ps_out\" ] || rm -f \"$ps_out\"; echo \"{MARK}interrupted\"; exit {}' TERM; echo \"{MARK}pid $$\"",
            boot::EXIT_INTERRUPTED
        )];
        if locks {
            let (lock_shown, command) = self.lock_command();
            shown.extend(lock_shown);
            parts.push(format!(
                "echo {MARK}lock; {{ {command}; }} </dev/null || exit {}; echo {MARK}locked",
                boot::EXIT_LOCKED
            ));
        }
        // The first role's containers are listed while the image is pulled (the lock is held).
        let first_role = self.sel.roles_on(self.config, host)[0];
        parts.push(boot::list_in_background(&App::new(self.config, first_role)));
        if let Some((pull_shown, script)) = self.pull_script(host)? {
            shown.extend(pull_shown);
            parts.push(format!(
                "{{ {script}; }} </dev/null || {{ rc=$?; echo \"{MARK}failed $rc\"; rm -f \"$ps_out\"; exit {}; }}",
                boot::EXIT_PULL
            ));
        }
        if !self.options.redeploy {
            let (proxy_shown, script) = self.proxy_script(host)?;
            shown.extend(proxy_shown);
            parts.push(format!(
                "echo {MARK}proxy-boot; ( {script}\n) </dev/null || {{ rc=$?; echo \"{MARK}failed $rc\"; rm -f \"$ps_out\"; exit {}; }}",
                boot::EXIT_PROXY_BOOT
            ));
        }
        parts.push(format!("trap '' TERM; echo \"{MARK}boot\""));
        Ok(Prelude {
            shown,
            script: parts.join("\n"),
            locks,
        })
    }

    /// With a registry mirror, one host per mirror pulls first so the others pull from a warm mirror.
    async fn pull_all(&self) -> Result<()> {
        let seeds = self.mirror_seeds().await?;
        if seeds.is_empty() {
            return self.on_hosts(&self.sel.hosts, |h| self.pull(h)).await;
        }
        self.output.say(&format!(
            "Pulling image on {} to seed the {}...",
            seeds.join(", "),
            if seeds.len() == 1 {
                "mirror"
            } else {
                "mirrors"
            }
        ));
        self.on_hosts(&seeds, |h| self.pull(h)).await?;
        self.output.say("Pulling image on remaining hosts...");
        let rest: Vec<String> = self
            .sel
            .hosts
            .iter()
            .filter(|h| !seeds.contains(h))
            .cloned()
            .collect();
        self.on_hosts(&rest, |h| self.pull(h)).await
    }

    /// The first app host for each distinct first registry mirror. Docker applies mirrors to Docker
    /// Hub images only, so for any other registry there is nothing to seed and nothing is asked.
    async fn mirror_seeds(&self) -> Result<Vec<String>> {
        if !self.may_seed_mirrors() {
            return Ok(Vec::new());
        }
        let query = "docker info --format '{{index .RegistryConfig.Mirrors 0}}'";
        let answers = join_all(self.sel.app_hosts.iter().map(|h| async move {
            let out = self.exec_one(h, query, false).await?;
            let text = format!("{}{}", out.stdout, out.stderr);
            if out.success() {
                Ok((
                    h.clone(),
                    Some(out.stdout.trim().to_string()).filter(|m| !m.is_empty()),
                ))
            } else if text.contains("error calling index: reflect: slice index out of range") {
                Ok((h.clone(), None))
            } else {
                Err(self.failed(h, "docker", &out))
            }
        }))
        .await;
        let mut seeds: Vec<(String, String)> = Vec::new();
        let mut errors = Vec::new();
        for answer in answers {
            match answer {
                Ok((host, Some(mirror))) if !seeds.iter().any(|(m, _)| *m == mirror) => {
                    seeds.push((mirror, host))
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        combine(errors)?;
        Ok(seeds.into_iter().map(|(_, h)| h).collect())
    }

    async fn pull(&self, host: &str) -> std::result::Result<(), HostError> {
        if self.config.major == KamalMajor::V1 {
            return self.pull_v1(host).await;
        }
        let Some((shown, script)) = self.pull_script(host)? else {
            self.exec_one(host, "mkdir -p .kamal", false).await?;
            return Ok(());
        };
        self.output.progress(
            host,
            &format!(
                "pulling {}",
                self.config.absolute_image().unwrap_or_default()
            ),
        );
        let out = self
            .exec(host, &shown, &script, Stdin::None, &mut |_| {})
            .await?;
        if !out.success() {
            self.output.progress_done(host, "pull failed");
            return Err(self.failed(host, "docker", &out));
        }
        self.output.progress(host, "pulled, waiting for the lock");
        Ok(())
    }

    /// An app host's pull as one script (login unless logged in, the audit line, `docker pull`, the
    /// `service` label check) and the Kamal commands it stands for; `None` for a host without the app.
    #[allow(clippy::type_complexity)]
    fn pull_script(
        &self,
        host: &str,
    ) -> std::result::Result<Option<(Vec<(String, bool)>, String)>, HostError> {
        let c = self.config;
        let image = c
            .absolute_image()
            .map_err(|e| HostError::new(e.kind, e.message))?;
        let service = c.service();
        if !self.sel.app_hosts.iter().any(|h| h == host) {
            return Ok(None);
        }
        let mut shown = Vec::new();
        let mut script = Vec::new();
        if !c.local_registry() {
            let (user, password) = self
                .registry_credentials()
                .map_err(|e| HostError::new(e.kind, e.message))?;
            shown.push((
                registry::login_redacted(c.registry_server().as_deref()),
                false,
            ));
            script.push(format!(
                "echo {MARK}login && {{ {}; }}",
                registry::login_unless_logged_in(c.registry_server().as_deref(), &user, &password)
            ));
        }
        let audit = self.auditor().record(
            &crate::time::now(),
            None,
            &format!("Pulled image with version {}", self.version),
        );

        // Kamal removes the tag first to force a fresh pull; `docker pull` re-resolves the tag against
        // the registry anyway, so the image is the same, without downloading layers again.
        shown.push((audit.clone(), true));
        shown.push((format!("docker pull {image}"), false));
        shown.push((builder::validate_image(&image, &service), false));
        script.push(format!("echo {MARK}audit && {audit}"));
        script.push(format!("echo {MARK}pull && docker pull {image}"));
        script.push(format!(
            "echo {MARK}label && {{ {}; }}",
            builder::validate_image_typed(&image, &service)
        ));
        Ok(Some((shown, script.join(" && "))))
    }

    fn registry_credentials(&self) -> Result<(String, String)> {
        let registry = self
            .config
            .get("registry")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        let lookup = |key: &str| -> Result<String> {
            match registry.get(key) {
                Some(Value::Seq(items)) if items.len() == 1 => {
                    self.config.secrets.get(&items[0].to_ruby_s())
                }
                Some(v) => Ok(v.to_ruby_s()),
                None => Ok(String::new()),
            }
        };
        let (user, password) = (lookup("username")?, lookup("password")?);
        self.output.add_secrets([user.clone(), password.clone()]);
        Ok((user, password))
    }

    async fn acquire_lock(&self) -> Result<()> {
        let host = self.sel.primary_host.clone();
        let waiting = self.options.lock_wait;
        if waiting {
            self.output.say(&format!(
                "Acquiring the deploy lock (waiting up to {}s)...",
                fmt_secs(self.options.lock_wait_timeout)
            ));
        } else {
            self.output.say("Acquiring the deploy lock...");
        }
        let deadline = Instant::now() + Duration::from_secs_f64(self.options.lock_wait_timeout);
        let mut told = false;
        loop {
            let (shown, command) = self.lock_command();
            let out = self
                .exec(&host, &shown, &command, Stdin::None, &mut |_| {})
                .await
                .map_err(to_error)?;
            if out.success() {
                self.holding_lock.store(true, Ordering::SeqCst);
                return Ok(());
            }
            let status = self.lock_status_after(&host, &out).await?;
            if !waiting {
                return Err(self.lock_found(&status));
            }
            if !told {
                self.output.plain("Deploy lock is held by:");
                self.output.plain(status.trim_end());
                told = true;
                if !status.contains("Automatic deploy lock") {
                    return Err(Error::new(ErrorKind::Lock, "Deploy lock held manually, not waiting. Run 'kamal lock help' for more information"));
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.output.red(&format!(
                    "Timed out after {}s waiting for the deploy lock",
                    fmt_secs(self.options.lock_wait_timeout)
                ));
                return Err(Error::new(
                    ErrorKind::Lock,
                    "Timed out waiting for deploy lock",
                ));
            }
            self.output.plain(&format!(
                "Retrying in {}s ({}s remaining)...",
                fmt_secs(self.options.lock_wait_interval),
                fmt_secs(remaining.as_secs_f64().round())
            ));
            if !self
                .cancel
                .sleep(remaining.min(Duration::from_secs_f64(self.options.lock_wait_interval)))
                .await
            {
                return Err(Error::new(ErrorKind::Interrupted, "Interrupted"));
            }
        }
    }

    /// Taking the lock: `mkdir -p` of its parent, then `mkdir` of the lock directory with its details;
    /// and the Kamal commands that stands for.
    fn lock_command(&self) -> (Vec<(String, bool)>, String) {
        let details = lock::details(
            self.performer.user_name(),
            &crate::time::now(),
            &self.version,
            "Automatic deploy lock",
        );
        let dir = self.lock_dir();
        // The directory that holds the lock dir: `.kamal`, or 1.x's `.kamal/locks`.
        let prep = format!(
            "mkdir -p {}",
            dir.rsplit_once('/').map_or(".kamal", |(p, _)| p)
        );
        let acquire = lock::acquire_at(&dir, &details);
        let command = format!("{prep} && {acquire}");
        (vec![(prep, false), (acquire, true)], command)
    }

    /// After the lock's `mkdir` failed: who holds it (`lock status`), or the failure itself when the
    /// lock directory was not simply there already.
    async fn lock_status_after(&self, host: &str, out: &crate::ssh::Output) -> Result<String> {
        if !out.stderr.contains("cannot create directory") && !out.stderr.contains("File exists") {
            return Err(to_error(self.failed(host, "mkdir", out)));
        }
        let status_cmd = lock::status_at(&self.lock_dir());
        Ok(self
            .exec_one(host, &status_cmd, false)
            .await
            .map_err(to_error)?
            .stdout)
    }

    /// Kamal's words for a lock another deploy holds.
    fn lock_found(&self, status: &str) -> Error {
        self.output.red("Deploy lock already in place!");
        self.output.plain(status.trim_end());
        Error::new(
            ErrorKind::Lock,
            "Deploy lock found. Run 'kamal lock help' for more information",
        )
    }

    /// The deploy lock's directory on the primary host: `.kamal/lock-S[-D]`, or 1.x's
    /// `.kamal/locks/S[-D]`.
    fn lock_dir(&self) -> String {
        match self.config.major {
            KamalMajor::V1 => crate::commands::v1::lock_dir(&self.service_and_destination),
            KamalMajor::V2 => lock::dir(&self.service_and_destination),
        }
    }

    async fn release_lock(&self) -> Result<()> {
        let host = self.sel.primary_host.clone();
        let release = lock::release_at(&self.lock_dir());
        let out = self
            .exec_one(&host, &release, true)
            .await
            .map_err(to_error)?;
        if !out.success() {
            return Err(to_error(self.failed(&host, "rm", &out)));
        }
        self.holding_lock.store(false, Ordering::SeqCst);
        Ok(())
    }

    // ---- proxy boot (deploy only) --------------------------------------------------------------------

    async fn boot_proxy(&self, host: &str) -> std::result::Result<(), HostError> {
        if self.cancel.is_cancelled() {
            return Ok(());
        }
        self.output
            .progress(host, "ensuring kamal-proxy is running");
        let (shown, script) = self.proxy_script(host)?;
        let out = self
            .exec(host, &shown, &script, Stdin::None, &mut |_| {})
            .await?;
        self.proxy_outcome(host, &out)
    }

    /// `kamal proxy boot` on one host as one script: the `kamal` network, then (proxy hosts) the login,
    /// the version check (exit 90 if too old) and kamal-proxy's start or run.
    #[allow(clippy::type_complexity)]
    fn proxy_script(
        &self,
        host: &str,
    ) -> std::result::Result<(Vec<(String, bool)>, String), HostError> {
        let mut shown = vec![(proxy::NETWORK_CREATE.to_string(), false)];
        let mut script = vec![format!(
            "out=$({} 2>&1) || case \"$out\" in *\"already exists\"*) ;; *) echo \"$out\" >&2; exit 1 ;; esac",
            proxy::NETWORK_CREATE
        )];
        if self.sel.proxy_hosts.iter().any(|h| h == host) {
            if !self.config.local_registry() {
                let (user, password) = self
                    .registry_credentials()
                    .map_err(|e| HostError::new(e.kind, e.message))?;
                shown.push((
                    registry::login_redacted(self.config.registry_server().as_deref()),
                    false,
                ));
                script.push(format!(
                    "{} >/dev/null || exit 1",
                    registry::login(self.config.registry_server().as_deref(), &user, &password)
                ));
            }
            shown.push((proxy::VERSION.to_string(), false));
            script.push(format!(
                "v=$({}); echo \"{MARK}proxy-version $v\"",
                proxy::VERSION
            ));
            script.push(format!(
                "if [ -n \"$v\" ] && [ \"$(printf '%s\\n' \"${{v#v}}\" {min} | sort -V | head -n1)\" != {min} ]; then exit 90; fi",
                min = proxy::MINIMUM_VERSION.trim_start_matches('v')
            ));
            let start = match self.proxy_run_config(host) {
                Some(run) => proxy::start_or_run(&run),
                None => proxy::start_or_run_from_boot_config(),
            };
            shown.push((proxy::MKDIR_APPS_CONFIG.to_string(), false));
            shown.push((start.clone(), false));
            script.push(format!("{} && {{ {start}; }}", proxy::MKDIR_APPS_CONFIG));
        }
        Ok((shown, script.join("\n")))
    }

    /// What the proxy boot's exit says: too old a kamal-proxy, another failure, or done.
    fn proxy_outcome(
        &self,
        host: &str,
        out: &crate::ssh::Output,
    ) -> std::result::Result<(), HostError> {
        let status = marker(&out.stdout, "failed")
            .and_then(|rc| rc.parse().ok())
            .or(out.status);
        if status == Some(90) {
            let v = marker(&out.stdout, "proxy-version").unwrap_or_default();
            return Err(HostError::new(
                ErrorKind::Runtime,
                format!("kamal-proxy version {v} is too old, run `kamal proxy reboot` in order to update to at least {}", proxy::MINIMUM_VERSION),
            ));
        }
        if !out.success() {
            return Err(self.failed(host, "docker", out));
        }
        Ok(())
    }

    /// The `proxy.run` settings of the proxy roles on this host (validation made them identical).
    fn proxy_run_config(&self, host: &str) -> Option<crate::value::Map> {
        self.sel
            .roles_on(self.config, host)
            .into_iter()
            .filter(|r| r.running_proxy())
            .find_map(|r| r.proxy_config(self.config.get("proxy")))
            .and_then(|p| {
                p.as_map()
                    .and_then(|m| m.get("run"))
                    .and_then(Value::as_map)
                    .cloned()
            })
    }

    // ---- app boot ------------------------------------------------------------------------------------

    /// Boot groups one after the other; within a group every host boots at once, its roles in order.
    async fn boot_groups(&self) -> Result<()> {
        let groups = self.sel.boot_groups(self.config);
        let mut wait = self.config.boot_setting("wait").and_then(Value::as_int);
        // Kamal 1.9's group runner waits 2 s between groups when only `limit` is given.
        if self.config.major == KamalMajor::V1
            && wait.is_none()
            && self.config.boot_setting("limit").is_some()
        {
            wait = Some(2);
        }
        for group in &groups {
            self.checkpoint()?;
            // Kamal 1.9 has no app-boot hooks.
            let hooks = self.config.major == KamalMajor::V2;
            if hooks {
                self.run_hook("pre-app-boot", group, &[], false).await?;
            }
            self.on_hosts(group, |h| self.boot_host(h, None)).await?;
            if hooks {
                self.run_hook("post-app-boot", group, &[], false).await?;
            }
            // Kamal sleeps `boot.wait` after every group, the last one included (reference §3.2).
            if let Some(secs) = wait.filter(|w| *w > 0) {
                self.cancel.sleep(Duration::from_secs(secs as u64)).await;
            }
        }
        Ok(())
    }

    /// `prelude`: run at the start of the first role's boot script (`prelude`); its roles then boot
    /// one after the other.
    async fn boot_host(
        &self,
        host: &str,
        prelude: Option<Prelude>,
    ) -> std::result::Result<(), HostError> {
        let roles = self.sel.roles_on(self.config, host);
        let parallel = self.config.major == KamalMajor::V2
            && self
                .config
                .boot_setting("parallel_roles")
                .is_some_and(Value::truthy);
        let result = if parallel && prelude.is_none() {
            let results = join_all(roles.iter().map(|r| self.boot_role(host, r, None))).await;
            results.into_iter().find(|r| r.is_err()).unwrap_or(Ok(()))
        } else {
            let mut result = Ok(());
            let mut prelude = prelude;
            for role in &roles {
                if let Err(e) = self.boot_role(host, role, prelude.take()).await {
                    result = Err(e);
                    break;
                }
            }
            result
        };
        match &result {
            Ok(()) => self.output.progress(
                host,
                &format!("{} booted, waiting for the other hosts", self.version),
            ),
            Err(e) => {
                self.failed.store(true, Ordering::SeqCst);
                self.output.progress_done(
                    host,
                    &format!("failed: {}", e.message.lines().next().unwrap_or("")),
                );
            }
        }
        result
    }

    async fn boot_role(
        &self,
        host: &str,
        role: &crate::config::Role,
        prelude: Option<Prelude>,
    ) -> std::result::Result<(), HostError> {
        if self.cancel.is_cancelled() {
            return Ok(());
        }
        let app = App::new(self.config, role);
        let gatekeeper = role.name == self.sel.primary_role;
        let needs_barrier = self.sel.roles.len() > 1;
        if needs_barrier && !gatekeeper {
            let primary = self.sel.primary_role.clone();
            let mut rx = self.barrier.subscribe();
            if rx.borrow().is_none() {
                self.output.info(&format!("Waiting for the first healthy {primary} container before booting {} on {host}...", role.name));
                self.output.progress(
                    host,
                    &format!("waiting for the first healthy {primary} container"),
                );
            }
            let opened = tokio::select! {
                r = rx.wait_for(|v| v.is_some()) => r.map(|v| *v == Some(true)).unwrap_or(false),
                _ = self.cancel.cancelled() => return Ok(()),
            };
            if !opened {
                self.output.info(&format!(
                    "First {primary} container is unhealthy, not booting {} on {host}",
                    role.name
                ));
                return Err(HostError::new(
                    ErrorKind::Healthcheck,
                    format!("Exception while executing on host {host}: Halted at barrier"),
                ));
            }
            self.output.info(&format!(
                "First {primary} container is healthy, booting {} on {host}...",
                role.name
            ));
        }
        if self.config.major == KamalMajor::V1 {
            return self.boot_role_v1(host, role).await;
        }
        self.output
            .progress(host, &format!("booting {} {}", role.name, self.version));
        let env_file = app
            .env_file(host)
            .map_err(|e| HostError::new(e.kind, e.message))?;
        let recorded_at = crate::time::now();
        let hostname = container_hostname(host, &random_hex(6));
        let suffix = random_hex(8);
        let auditor = self.auditor();
        let tls = self
            .tls_certificates(&app)
            .map_err(|e| HostError::new(e.kind, e.message))?;
        if tls.is_some() {
            self.output.info(&format!(
                "Writing SSL certificates for {} on {host}",
                role.name
            ));
        }
        let first_role = self
            .sel
            .roles_on(self.config, host)
            .first()
            .map(|r| r.name == role.name)
            .unwrap_or(false);
        let error_pages = if first_role {
            self.error_pages()
        } else {
            Vec::new()
        };
        let script = BootScript {
            app: &app,
            auditor: &auditor,
            host,
            version: &self.version,
            recorded_at: &recorded_at,
            hostname: &hostname,
            replaced_suffix: &suffix,
            env_len: env_file.len(),
            tls_lens: tls.as_ref().map(|(c, k)| (c.len(), k.len())),
            error_pages: &error_pages,
            listed_in_background: prelude.is_some(),
        }
        .build();
        // With one host and one proxy role, this boot is every boot: "latest only after every host
        // booted" holds as soon as it succeeds, so the tag (prune, lock release) follows in the same
        // script, only after the boot finished.
        let fold_release =
            self.releases_with_tag(host) || prelude.as_ref().is_some_and(|p| p.locks);
        let folded = self
            .single_boot(host, &app)
            .then(|| self.tag_parts(host, fold_release))
            .flatten();
        let script = match &folded {
            Some((tag, _)) => format!(
                "{script}\n{{ {tag}; }} || exit {}\necho \"{MARK}tagged\"",
                boot::EXIT_TAG
            ),
            None => script,
        };
        let script = match &prelude {
            Some(p) => format!("{}\n{script}", p.script),
            None => script,
        };
        let mut stdin = env_file.clone().into_bytes();
        if let Some((cert, key)) = &tls {
            stdin.extend_from_slice(cert.as_bytes());
            stdin.extend_from_slice(key.as_bytes());
        }
        let mut shown = prelude
            .as_ref()
            .map(|p| p.shown.clone())
            .unwrap_or_default();
        shown.extend([
            (app.list_versions(), false),
            (app.current_running_version(), false),
            (app.container_id_for(&self.version), false),
            (
                auditor.record(
                    &recorded_at,
                    Some(&role.name),
                    &format!("Booted app version {}", self.version),
                ),
                true,
            ),
            (format!("mkdir -p {}", app.env_directory()), false),
            (format!("Uploading {}", app.env_file_path()), false),
            (app.run(host, &self.version, &hostname), false),
        ]);
        let role_name = role.name.clone();
        let primary = self.sel.primary_role.clone();
        let version = self.version.clone();
        let mut proxy_line: Option<(String, Instant)> = None;
        let mut on_line = |line: &str| {
            let Some(rest) = line.strip_prefix(MARK) else {
                return;
            };
            let (what, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            match what {
                "locked" => {
                    self.holding_lock.store(true, Ordering::SeqCst);
                    self.lock_settled(true);
                }
                "pid" => {
                    self.before_boot.lock().unwrap().insert(host.to_string(), arg.to_string());
                }
                "boot" => {
                    self.before_boot.lock().unwrap().remove(host);
                }
                "label" => self.output.progress(host, &format!("booting {role_name} {version}")),
                "stale" => self.output.plain(&format!("App Host: {host}\nStopping stale container for role {role_name} with version {arg}")),
                "renamed" => self.output.info(&format!("Renaming container {} to {arg} as already deployed on {host}", self.version)),
                "old" => self.set_role(host, &role_name, |r| r.old_version = (!arg.is_empty()).then(|| arg.to_string())),
                "container" => {
                    self.output.progress(host, &format!("kamal-proxy deploying {role_name} {version}"));
                    let id = uuid();
                    self.output.running(&id, &app.proxy_deploy(arg, &version), host, false);
                    proxy_line = Some((id, Instant::now()));
                }
                "healthy" => {
                    if let Some((id, at)) = proxy_line.take() {
                        self.output.finished(&id, at.elapsed().as_secs_f64(), Some(0), host, false);
                    }
                    self.set_role(host, &role_name, |r| r.state = RoleState::Live);
                    if gatekeeper && self.barrier.send_if_modified(|b| b.is_none().then(|| *b = Some(true)).is_some()) {
                        self.output.info(&format!("First {primary} container is healthy on {host}, booting any other roles"));
                    }
                }
                "stopping" => self.output.progress(host, &format!("stopping {role_name} {arg}")),
                _ => {}
            }
        };
        if let Some((_, tag_shown)) = &folded {
            shown.extend(tag_shown.iter().cloned());
        }
        let result = self
            .exec(
                host,
                &shown,
                &script,
                Stdin::Bytes(stdin.as_slice()),
                &mut on_line,
            )
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => return Err(self.boot_failed(host, &app, gatekeeper, e).await),
        };
        if prelude.is_some() {
            // A failure before the boot began: this role was not touched.
            let before_boot = match out.status {
                Some(boot::EXIT_LOCKED) => {
                    let error = match self.lock_status_after(host, &out).await {
                        Ok(status) => self.lock_found(&status),
                        Err(e) => e,
                    };
                    Some(HostError::new(error.kind, error.message))
                }
                Some(boot::EXIT_PULL) => {
                    self.output.progress_done(host, "pull failed");
                    Some(self.failed(host, "docker", &out))
                }
                Some(boot::EXIT_PROXY_BOOT) => self.proxy_outcome(host, &out).err(),
                Some(boot::EXIT_INTERRUPTED) if marker(&out.stdout, "interrupted").is_some() => {
                    Some(HostError::new(
                        ErrorKind::Interrupted,
                        format!("Interrupted on {host} before its boot"),
                    ))
                }
                _ => None,
            };
            self.before_boot.lock().unwrap().remove(host);
            if let Some(e) = before_boot {
                return Err(e);
            }
        }
        if out.status == Some(boot::EXIT_TAG) {
            // The boot succeeded (the new version is live); tagging or pruning after it failed.
            return Err(self.failed(host, "docker", &out));
        }
        if folded.is_some() && marker(&out.stdout, "tagged").is_some() {
            self.tagged_in_boot.store(true, Ordering::SeqCst);
            if !self.options.redeploy {
                self.output.say("Prune old containers and images...");
            }
            if fold_release {
                self.output.say("Releasing the deploy lock...");
                self.holding_lock.store(false, Ordering::SeqCst);
            }
            self.output
                .progress_done(host, &format!("{} live", self.version));
        }
        let error = match out.status {
            Some(0) => None,
            Some(boot::EXIT_ENDPOINT) => Some(HostError::new(
                ErrorKind::Boot,
                format!("Exception while executing on host {host}: Failed to get endpoint for {} on {host}, did the container boot?", role.name),
            )),
            _ => Some(self.failed(host, "docker", &out)),
        };
        if let Some(e) = error {
            return Err(self.boot_failed(host, &app, gatekeeper, e).await);
        }
        if !app.running_proxy() {
            if let Err(e) = self.wait_until_ready(host, &app).await {
                return Err(self.boot_failed(host, &app, gatekeeper, e).await);
            }
            self.set_role(host, &role.name, |r| r.state = RoleState::Live);
            if gatekeeper
                && self
                    .barrier
                    .send_if_modified(|b| b.is_none().then(|| *b = Some(true)).is_some())
            {
                self.output.info(&format!(
                    "First {} container is healthy on {host}, booting any other roles",
                    self.sel.primary_role
                ));
            }
            let old = self
                .reports
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.host == host)
                .and_then(|r| r.roles.iter().find(|rr| rr.role == role.name))
                .and_then(|rr| rr.old_version.clone());
            if let Some(old) = old {
                let stop = app.stop(&old);
                let _ = self.exec_one(host, &stop, false).await;
            }
        }
        Ok(())
    }

    /// Whether the run boots exactly one (host, proxy role) and touches no other host.
    fn single_boot(&self, host: &str, app: &App<'_>) -> bool {
        self.sel.hosts.len() == 1
            && self.sel.app_hosts.len() == 1
            && self.sel.roles_on(self.config, host).len() == 1
            && app.running_proxy()
    }

    fn releases_with_tag(&self, host: &str) -> bool {
        host == self.sel.primary_host
            && !self.external_lock
            && self.holding_lock.load(Ordering::SeqCst)
    }

    /// Custom TLS certificates (`proxy.ssl: {certificate_pem:, private_key_pem:}` naming secrets) for a
    /// proxy role: their contents, to write to `.kamal/proxy/apps-config/S[-D]/tls/R/`.
    fn tls_certificates(&self, app: &App<'_>) -> Result<Option<(String, String)>> {
        if !app.running_proxy() {
            return Ok(None);
        }
        let proxy = app.proxy_config();
        let Some(ssl) = proxy.get("ssl").and_then(Value::as_map) else {
            return Ok(None);
        };
        let (Some(cert), Some(key)) = (ssl.get("certificate_pem"), ssl.get("private_key_pem"))
        else {
            return Ok(None);
        };
        let cert = self.config.secrets.get(&cert.to_ruby_s())?;
        let key = self.config.secrets.get(&key.to_ruby_s())?;
        self.output.add_secrets([key.clone()]);
        Ok(Some((cert, key)))
    }

    /// The `4??.html` and `5??.html` files of `error_pages_path`.
    fn error_pages(&self) -> Vec<(String, Vec<u8>)> {
        let Some(dir) = self.config.get("error_pages_path").map(Value::to_ruby_s) else {
            return Vec::new();
        };
        let mut pages: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        let b = name.as_bytes();
                        let page = name.len() == 8
                            && name.ends_with(".html")
                            && (b[0] == b'4' || b[0] == b'5');
                        page.then(|| std::fs::read(e.path()).ok().map(|body| (name, body)))
                            .flatten()
                    })
                    .collect()
            })
            .unwrap_or_default();
        pages.sort();
        pages
    }

    /// Kamal's readiness poll for roles without the proxy (reference §4.5.4, step 6).
    async fn wait_until_ready(
        &self,
        host: &str,
        app: &App<'_>,
    ) -> std::result::Result<(), HostError> {
        let timeout = self
            .config
            .get("deploy_timeout")
            .and_then(Value::as_int)
            .unwrap_or(30) as u64;
        let delay = self
            .config
            .get("readiness_delay")
            .and_then(Value::as_int)
            .unwrap_or(7) as u64;
        let deadline = Instant::now() + Duration::from_secs(timeout);
        let status_cmd = app.status(&self.version);
        let mut attempt = 0u64;
        let status = |out: crate::ssh::Output| out.stdout.trim().to_string();
        loop {
            let s = status(self.exec_one(host, &status_cmd, false).await?);
            if s == "healthy" {
                break;
            }
            if s == "running" && delay > 0 {
                self.output.info(&format!(
                    "Container is running, waiting for readiness delay of {delay} seconds"
                ));
                self.output.progress(
                    host,
                    &format!("waiting {delay} s for {} to be ready", app.role.name),
                );
                if !self.cancel.sleep(Duration::from_secs(delay)).await {
                    return Err(HostError::new(ErrorKind::Interrupted, "Interrupted"));
                }
                let s = status(self.exec_one(host, &status_cmd, false).await?);
                if s == "running" || s == "healthy" {
                    break;
                }
            } else if s == "running" {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HostError::new(ErrorKind::Healthcheck, format!("Exception while executing on host {host}: container not ready after {timeout} seconds ({s})")));
            }
            attempt += 1;
            if !self
                .cancel
                .sleep(left.min(Duration::from_secs(attempt)))
                .await
            {
                return Err(HostError::new(ErrorKind::Interrupted, "Interrupted"));
            }
        }
        self.output.info("Container is healthy!");
        Ok(())
    }

    /// A failed boot: Kamal's messages, the barrier closed if this was the first primary result, the
    /// logs shown, and the new container stopped, so the old one keeps serving.
    async fn boot_failed(
        &self,
        host: &str,
        app: &App<'_>,
        gatekeeper: bool,
        error: HostError,
    ) -> HostError {
        let role = app.role.name.clone();
        self.output
            .error(&format!("Failed to boot {role} on {host}"));
        self.set_role(host, &role, |r| {
            r.state = RoleState::Failed(error.message.clone())
        });
        if gatekeeper
            && self
                .barrier
                .send_if_modified(|b| b.is_none().then(|| *b = Some(false)).is_some())
        {
            self.output.info(&format!(
                "First {role} container is unhealthy on {host}, not booting any other roles"
            ));
            let logs = app.logs(&self.version);
            match self.exec_one(host, &logs, false).await {
                Ok(out) => {
                    for line in out.stdout.lines() {
                        self.output.info(line);
                    }
                }
                Err(_) => self
                    .output
                    .info(&format!("Could not fetch logs for {}", self.version)),
            }
            let health = app.health_json(&self.version);
            if let Ok(out) = self.exec_one(host, &health, false).await {
                self.output.info(out.stdout.trim());
            }
        }
        let stop = app.stop(&self.version);
        let _ = self.exec_one(host, &stop, false).await;
        error
    }

    // ---- tag latest and prune ------------------------------------------------------------------------

    /// Tag latest (app hosts), prune (deploy), release the lock (`release_lock`): the command and the
    /// Kamal commands it stands for; `None` when there is nothing to do on this host.
    fn tag_parts(&self, host: &str, release_lock: bool) -> Option<(String, Vec<(String, bool)>)> {
        let c = self.config;
        let auditor = self.auditor();
        let mut shown = Vec::new();
        let mut script = Vec::new();
        if self.sel.app_hosts.iter().any(|h| h == host) {
            let image = format!("{}:{}", c.repository(), self.version);
            let audit = auditor.record(
                &crate::time::now(),
                None,
                &format!("Tagging {image} as the latest image"),
            );
            let tag = format!("docker tag {image} {}:{}", c.repository(), c.latest_tag());
            shown.push((audit.clone(), true));
            shown.push((tag.clone(), false));
            script.push(format!("{audit} && {tag}"));
        }
        if !self.options.redeploy {
            let service = c.service();
            for (message, commands) in [
                (
                    "Pruned containers",
                    vec![prune::containers(&service, c.retain_containers())],
                ),
                (
                    "Pruned images",
                    vec![
                        prune::dangling_images(&service),
                        prune::tagged_images(&service, &c.repository(), &c.latest_tag()),
                    ],
                ),
            ] {
                let audit = auditor.record(&crate::time::now(), None, message);
                shown.push((audit.clone(), true));
                script.push(audit);
                for cmd in commands {
                    shown.push((cmd.clone(), false));
                    script.push(format!("{{ {cmd}; }}"));
                }
            }
        }
        if release_lock {
            let release = lock::release_at(&self.lock_dir());
            shown.push((release.clone(), true));
            script.push(release);
        }
        (!script.is_empty()).then(|| (script.join(" && "), shown))
    }

    async fn tag_and_prune(
        &self,
        host: &str,
        release_lock: bool,
    ) -> std::result::Result<(), HostError> {
        let Some((script, shown)) = self.tag_parts(host, release_lock) else {
            return Ok(());
        };
        self.output.progress(host, "tagging latest");
        let out = self
            .exec(host, &shown, &script, Stdin::None, &mut |_| {})
            .await?;
        if !out.success() {
            return Err(self.failed(host, "docker", &out));
        }
        if release_lock {
            self.primary_released.store(true, Ordering::SeqCst);
        }
        let done = if self.sel.app_hosts.iter().any(|h| h == host) {
            format!("{} live", self.version)
        } else {
            "done".into()
        };
        self.output.progress_done(host, &done);
        Ok(())
    }
}

fn combine(errors: Vec<HostError>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(to_error(errors.into_iter().next().unwrap())),
        n => {
            let kind = errors[0].kind;
            let messages: Vec<String> = errors.into_iter().map(|e| e.message).collect();
            Err(Error::new(
                kind,
                format!("Exceptions on {n} hosts:\n{}", messages.join("\n")),
            ))
        }
    }
}

fn to_error(e: HostError) -> Error {
    Error::new(e.kind, e.message)
}

fn marker(stdout: &str, name: &str) -> Option<String> {
    stdout.lines().find_map(|l| {
        l.strip_prefix(MARK)
            .and_then(|r| r.strip_prefix(name))
            .map(|v| v.trim().to_string())
    })
}

/// Who deploys (`git config user.email`, else the login name) and the lock's `git config user.name`,
/// looked up on a thread of their own so that starting git does not delay the first SSH connections.
struct Performer {
    names: std::sync::OnceLock<(String, String)>,
    lookup: Mutex<Option<std::thread::JoinHandle<(String, String)>>>,
}

impl Performer {
    fn spawn() -> Performer {
        Performer {
            names: std::sync::OnceLock::new(),
            lookup: Mutex::new(Some(std::thread::spawn(|| {
                let performer = performer();
                (
                    performer,
                    git_config("user.name").unwrap_or_else(|| "Unknown".into()),
                )
            }))),
        }
    }

    fn names(&self) -> &(String, String) {
        self.names.get_or_init(|| {
            self.lookup
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_else(|| ("unknown".into(), "Unknown".into()))
        })
    }

    /// Kamal's performer: audit lines and hooks' `KAMAL_PERFORMER`.
    fn get(&self) -> &str {
        &self.names().0
    }

    /// `git config user.name`, or `Unknown`: who the lock says holds it.
    fn user_name(&self) -> &str {
        &self.names().1
    }
}

fn performer() -> String {
    git_config("user.email")
        .or_else(|| {
            std::process::Command::new("whoami")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn git_config(key: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", key])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// `S@<V[0,7]>`; a version containing `_` is used whole.
pub fn abbreviated(version: &str) -> String {
    if version.contains('_') {
        version.to_string()
    } else {
        version.chars().take(7).collect()
    }
}

fn fmt_secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as i64)
    } else {
        format!("{s}")
    }
}
