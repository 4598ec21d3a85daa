//! One run's context, as Kamal's commander is for one `kamal deploy`: the configuration and options,
//! the hosts and roles it acts on, one SSH connection per host, the log, and the state the steps share.
//! The steps (`steps/`) take a `&Run`; none of them holds state of its own across hosts.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use futures::future::join_all;

use super::budget::{Budget, MaxFail};
use super::canary::CanaryWave;
use super::cancel::Cancel;
use super::commander::Selection;
use super::failure::{combine, HostError};
use super::options::{Command, DeployOptions};
use super::performer::{Clock, Performer};
use super::report::Reports;
use super::script::{is_marker, Exit, Gate, Input, Mark, Script, Shown, Step};
use super::state::LockState;
use super::steps::hooks::Hooks;
use super::sync::RolloutSync;
use crate::commands::auditor::Auditor;
use crate::config::{Configuration, KamalMajor, Role};
use crate::error::{Error, ErrorKind, Result};
use crate::output::timeline::{Phase, Status, Steps, Timeline};
use crate::output::{uuid, Output, Stream};
use crate::ssh::{self, valid_host, Connection, Part, RunDir, SshError, SshSettings, Stdin};

/// A host's connection once opened, or why it could not be (kept: the host is not tried again).
type Slot = Arc<tokio::sync::OnceCell<std::result::Result<Arc<Connection>, HostError>>>;

pub struct Run<'a> {
    pub config: &'a Configuration,
    pub options: DeployOptions,
    pub sel: Selection,
    pub version: String,
    /// Shared with a run nested in this one (a revert's rollback), which prints through it.
    pub output: Arc<Output>,
    pub hooks: Hooks,
    pub cancel: Arc<Cancel>,
    pub started: Instant,
    pub performer: Performer,
    pub clock: Clock,
    pub reports: Reports,
    pub lock: LockState,
    /// How hosts wait for each other (the lock, the pulls, the primary's health, the boots).
    pub sync: RolloutSync,
    /// The failure budget: hosts left behind (`--max-fail`).
    pub budget: Budget,
    /// A remote command has been sent (from the pull on).
    pub touched: AtomicBool,
    /// Kamal 1.x: 32 hex digits naming this run's cord directories.
    pub run_id: String,
    /// Each host's steps, as they happen.
    pub timeline: Timeline,
    /// The steps whose heading was printed.
    said: Mutex<HashSet<Phase>>,
    /// `S[-D]`.
    sd: String,
    ssh: SshSettings,
    /// Each host's connection, opened on first use (or by `connect_all`).
    conns: Mutex<HashMap<String, Slot>>,
    /// `sshkit.max_concurrent_starts`: connections starting at once.
    starts: tokio::sync::Semaphore,
    /// The ssh_config file, written once.
    ssh_config_file: OnceLock<PathBuf>,
    run_dir: RunDir,
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
        let ssh = SshSettings::from_config(config.get("ssh"))?;
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
        let run_dir = RunDir::new()
            .map_err(|e| Error::runtime(format!("Could not create a temporary directory: {e}")))?;
        let run_id = clock.hex(16);
        let hosts = sel.hosts.len();
        let slots = sel
            .hosts
            .iter()
            .map(|h| (h.clone(), Slot::default()))
            .collect();
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
            version,
            hooks: Hooks::new(config, options.skip_hooks),
            sel,
            output,
            cancel,
            started,
            performer,
            clock,
            reports,
            lock: LockState::new(inherited),
            sync: RolloutSync::new(pull_barrier_hosts, hosts, canary),
            budget,
            touched: AtomicBool::new(false),
            run_id,
            timeline: Timeline::new(started),
            said: Mutex::new(HashSet::new()),
            sd: config.service_and_destination(),
            ssh,
            conns: Mutex::new(slots),
            starts: tokio::sync::Semaphore::new(config.sshkit().max_concurrent_starts),
            ssh_config_file: OnceLock::new(),
            run_dir,
            config,
            options,
        })
    }

    /// A run inside this one (a revert's rollback of some hosts): it prints through this run's output
    /// (its live view and loggers) and reuses this run's open connections, which it leaves open.
    pub fn nested(&self, options: DeployOptions) -> Result<Run<'a>> {
        let mut nested = Run::new(self.config, options, self.cancel.clone(), Instant::now())?;
        nested.output = self.output.clone();
        let outer = self.conns.lock().unwrap();
        for (host, slot) in nested.conns.lock().unwrap().iter_mut() {
            if let Some(open) = outer.get(host) {
                *slot = open.clone();
            }
        }
        drop(outer);
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

    /// The run's hosts less those left behind (`--max-fail`): the steps after the rollout act on these.
    pub fn active_hosts(&self) -> Vec<String> {
        self.sel
            .hosts
            .iter()
            .filter(|h| !self.budget.is_left_behind(h))
            .cloned()
            .collect()
    }

    pub fn is_app_host(&self, host: &str) -> bool {
        self.sel.app_hosts.iter().any(|h| h == host)
    }

    /// The registry's username and password, kept out of everything printed from now on.
    pub fn credentials(&self) -> Result<(String, String)> {
        let (user, password) = self.config.registry().credentials(&self.config.secrets)?;
        self.output.add_secrets([user.clone(), password.clone()]);
        Ok((user, password))
    }

    // ---- SSH ----------------------------------------------------------------------------------

    /// One host's connection; a host name that did not resolve is tried again `dns_retries` times,
    /// 0.1 s, 0.2 s, 0.4 s... (at most 2 s) apart, as Kamal 2.12 does (`sshkit_with_ext.rb`), since
    /// some resolvers drop lookups when many connections start at once.
    async fn connect_host(
        &self,
        host: &str,
        config_file: &std::path::Path,
        control: &std::path::Path,
        dns_retries: u32,
    ) -> std::result::Result<Arc<Connection>, SshError> {
        let mut attempt = 0;
        loop {
            match Connection::connect(host, config_file, control).await {
                Err(SshError::Connect(why)) if ssh::unresolved(&why) && attempt < dns_retries => {
                    attempt += 1;
                    let delay = ssh::dns_retry_delay(attempt);
                    self.output.warn_line(&format!(
                        "Retrying DNS for {host} (attempt {attempt}/{dns_retries}) in {:.2}s: {why}",
                        delay.as_secs_f64()
                    ));
                    tokio::time::sleep(delay).await;
                }
                result => return result,
            }
        }
    }

    /// Checks that this process may open enough files, and this machine start enough processes (with
    /// the memory and local ports they need), for every host's connection, and writes the ssh_config
    /// file: before any host is touched.
    pub fn prepare_connections(&self) -> Result<()> {
        ssh::limits::ensure_open_files(self.sel.hosts.len())?;
        // A proxy command may well be a jump too (`ssh -W`): counted as one.
        let through_jump = self.ssh.jump.is_some() || self.ssh.proxy_command.is_some();
        ssh::limits::ensure_machine(self.sel.hosts.len(), through_jump)?;
        self.ssh_config_file().map(|_| ())
    }

    fn ssh_config_file(&self) -> Result<PathBuf> {
        if let Some(path) = self.ssh_config_file.get() {
            return Ok(path.clone());
        }
        let path = self.run_dir.path.join("ssh_config");
        std::fs::write(&path, self.ssh.ssh_config()).map_err(|e| Error::runtime(e.to_string()))?;
        Ok(self.ssh_config_file.get_or_init(|| path).clone())
    }

    /// Every host's connection, before anything runs: a host that cannot be reached fails the step.
    pub async fn connect_all<'b>(&'b self) -> Result<()> {
        self.prepare_connections()?;
        // Within `--max-fail`, a host that cannot be reached is left behind.
        let connect = |h: &'b String| async move {
            match self.connection(h).await {
                Err(e) if !super::budget::leave_behind(self, h, &e) => Err(e),
                _ => Ok(()),
            }
        };
        let results = join_all(self.sel.hosts.iter().map(connect)).await;
        self.checkpoint()?;
        combine(results.into_iter().filter_map(|r| r.err()).collect())
    }

    /// The host's connection, opened on first use; every later use gets the same one, or the same
    /// error.
    pub async fn connection(&self, host: &str) -> std::result::Result<Arc<Connection>, HostError> {
        let slot = self.conns.lock().unwrap().get(host).cloned();
        let Some(slot) = slot else {
            return Err(HostError::new(
                ErrorKind::Connection,
                format!("no connection to {host}"),
            ));
        };
        slot.get_or_init(|| self.open(host)).await.clone()
    }

    /// Opens a host's master connection, at most `sshkit.max_concurrent_starts` starting at once (a
    /// bastion's sshd drops connections still authenticating beyond its MaxStartups); the host goes
    /// on as soon as its own is up. A failure is reported on the host's line.
    async fn open(&self, host: &str) -> std::result::Result<Arc<Connection>, HostError> {
        let config_file = self
            .ssh_config_file()
            .map_err(|e| HostError::on_host(ErrorKind::Connection, host, e.message))?;
        let control = self.run_dir.path.clone();
        let sshkit = self.config.sshkit();
        self.output.progress(host, "waiting to connect");
        let connect = async {
            let conn = {
                let _start = self.starts.acquire().await.expect("semaphore never closed");
                self.output.progress(host, "connecting");
                let from = Instant::now();
                let conn = self
                    .connect_host(host, &config_file, &control, sshkit.dns_retries)
                    .await;
                let status = if conn.is_ok() {
                    Status::Ok
                } else {
                    Status::Failed
                };
                self.timeline
                    .record(host, None, Phase::Connect, from, Instant::now(), status);
                conn?
            };
            // Until its next step (a build still running, say), the host is no longer "connecting".
            self.output.progress(host, "connected");
            // Kamal 2.8+: app hosts pull from a local registry through a reverse forward.
            let local_registry = self.config.registry().local_port();
            if let Some(port) = local_registry.filter(|_| self.is_app_host(host)) {
                conn.forward_remote_port(port).await?;
            }
            Ok(conn)
        };
        let result = tokio::select! {
            r = connect => r,
            _ = self.cancel.cancelled() => Err(SshError::Connect("interrupted".into())),
        };
        result.map_err(|e| {
            let error = HostError::on_host(ErrorKind::Connection, host, &e);
            self.reports.host_error(host, &error.message);
            let why = if self.cancel.is_cancelled() {
                "could not check: Ctrl-C before it was connected"
            } else {
                "could not check: unreachable"
            };
            for role in self.roles_on(host) {
                self.reports.set_unchecked(host, &role.name, why);
            }
            self.output
                .progress_failed(host, &format!("unreachable: {e}"));
            error
        })
    }

    /// Every host's connection is open.
    pub fn connected(&self) -> bool {
        let conns = self.conns.lock().unwrap();
        self.sel.hosts.iter().all(|h| {
            conns
                .get(h)
                .and_then(|slot| slot.get())
                .is_some_and(|c| c.is_ok())
        })
    }

    /// Runs a script on a host. Each shown command is logged as its markers arrive: `Running` when it
    /// starts, its output lines, `Finished` with its own time and exit status when it ends (a command
    /// the script never reached is not logged); the host's steps are recorded the same way. `on_line`
    /// sees each stdout line as it arrives.
    pub async fn exec(
        &self,
        host: &str,
        script: &Script,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> std::result::Result<ssh::Output, HostError> {
        let conn = self.connection(host).await?;
        let stdin = match script.input() {
            [] => Stdin::None,
            [Input::Bytes(bytes)] => Stdin::Bytes(bytes),
            parts => Stdin::Parts(
                parts
                    .iter()
                    .map(|part| match part {
                        Input::Gate(Gate::Lock) => Part::Gate(self.sync.lock_gate()),
                        Input::Gate(Gate::Pulled) => Part::Gate(self.sync.boot_gate(host)),
                        Input::Gate(Gate::Booted) => Part::Gate(self.sync.booted_gate()),
                        Input::Bytes(bytes) => Part::Bytes(bytes),
                    })
                    .collect(),
            ),
        };
        let mut log = CommandLog::new(self, host, script);
        let mut lines = |stream: Stream, line: &str| {
            if stream == Stream::Stdout && is_marker(line) {
                log.mark(line);
                on_line(line);
            } else {
                log.output(stream, line);
                if stream == Stream::Stdout {
                    on_line(line);
                }
            }
        };
        let result = conn
            .run(
                &script.text(),
                stdin,
                self.options.command_timeout(),
                &mut lines,
            )
            .await;
        let out = result.map_err(|e| {
            let kind = match e {
                SshError::Connect(_) | SshError::Lost(_) => ErrorKind::Connection,
                _ => ErrorKind::CommandFailed,
            };
            log.ended(None);
            HostError::on_host(kind, host, &e)
        })?;
        log.ended(Some(out.status));
        Ok(without_command_marks(out))
    }

    /// One command on its own, shown as itself.
    pub async fn exec_one(
        &self,
        host: &str,
        phase: Phase,
        command: &str,
        debug: bool,
    ) -> std::result::Result<ssh::Output, HostError> {
        let shown = if debug {
            Shown::debug(phase, command)
        } else {
            Shown::info(phase, command)
        };
        self.exec(host, &Script::command(shown), &mut |_| {}).await
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

    /// Closes every connection (their masters exit).
    pub async fn close(&self) {
        let slots: Vec<Slot> = self.conns.lock().unwrap().drain().map(|(_, c)| c).collect();
        let conns = slots.into_iter().filter_map(|slot| {
            Arc::try_unwrap(slot)
                .ok()
                .and_then(|cell| cell.into_inner())
                .and_then(|c| c.ok())
        });
        join_all(conns.map(Connection::close)).await;
    }
}

/// The script's output without the commands' start and end markers, which are the log's: a caller
/// reads its own markers and the commands' output.
fn without_command_marks(mut out: ssh::Output) -> ssh::Output {
    if out.stdout.contains("kamal-rs:start ") {
        let command_mark = |l: &&str| matches!(Mark::parse(l), Some((Mark::Start | Mark::End, _)));
        out.stdout = out
            .stdout
            .lines()
            .filter(|l| !command_mark(l))
            .map(|l| format!("{l}\n"))
            .collect();
    }
    out
}

/// One script's log: each shown command's `Running` and `Finished` lines as its markers arrive, its
/// output lines under its id, and the host's steps.
struct CommandLog<'r, 'a> {
    run: &'r Run<'a>,
    host: &'r str,
    script: &'r Script,
    /// Shown commands started and not yet ended: their log id and start.
    running: HashMap<usize, (String, Instant)>,
    /// The last command that started: output lines belong to it.
    last: Option<String>,
    steps: Steps<'r>,
}

impl<'r, 'a> CommandLog<'r, 'a> {
    fn new(run: &'r Run<'a>, host: &'r str, script: &'r Script) -> Self {
        let mut steps = Steps::new(&run.timeline, host, script.role.as_deref());
        // Until its first command starts, the script's session is opening (a step of the rollout
        // only for scripts that have one).
        if script.shown.iter().any(|s| s.phase != Phase::Other) {
            steps.enter(Phase::Session, Instant::now());
        }
        CommandLog {
            run,
            host,
            script,
            running: HashMap::new(),
            last: None,
            steps,
        }
    }

    fn mark(&mut self, line: &str) {
        let Some((mark, arg)) = Mark::parse(line) else {
            return;
        };
        let now = Instant::now();
        match mark {
            Mark::Start => {
                let (id, value) = arg.split_once(' ').unwrap_or((arg, ""));
                let Some((id, shown)) = self.shown(id) else {
                    return;
                };
                self.run.header(shown.phase);
                if !shown.background && self.steps.enter(shown.phase, now) {
                    self.run
                        .step_progress(self.host, self.script.role.as_deref(), shown.phase);
                }
                let uuid = uuid();
                if shown.upload {
                    // As SSHKit logs an upload: no host, no id.
                    let line = format!("Uploading {} 0.0%", shown.command);
                    self.run.output.debug_line(&line);
                } else {
                    let command = shown.text(value);
                    self.run
                        .output
                        .running(&uuid, &command, self.host, shown.debug);
                    self.last = Some(uuid.clone());
                }
                self.running.insert(id, (uuid, now));
            }
            Mark::End => {
                let (id, status) = arg.split_once(' ').unwrap_or((arg, ""));
                let Some((id, shown)) = self.shown(id) else {
                    return;
                };
                if let Some((uuid, at)) = self.running.remove(&id) {
                    let secs = now.duration_since(at).as_secs_f64();
                    let status = status.parse().ok();
                    if shown.upload && status == Some(0) {
                        let line = format!("Uploading {} 100.0%", shown.command);
                        self.run.output.info_in_log(&line);
                    } else if shown.upload {
                        let code = status.map_or("?".to_string(), |c: i32| c.to_string());
                        let line =
                            format!("Uploading {} failed with exit status {code}", shown.command);
                        self.run.output.error_on(self.host, &line);
                    } else {
                        self.run
                            .output
                            .finished(&uuid, secs, status, self.host, shown.debug);
                    }
                }
            }
            Mark::Wait => {
                if let Some(phase) = Phase::ALL.into_iter().find(|p| p.name() == arg) {
                    if self.steps.enter(phase, now) {
                        self.run
                            .step_progress(self.host, self.script.role.as_deref(), phase);
                    }
                }
            }
            _ => {}
        }
    }

    fn shown(&self, id: &str) -> Option<(usize, &'r Shown)> {
        let id: usize = id.parse().ok()?;
        self.script.shown.get(id).map(|s| (id, s))
    }

    /// A line a command printed, under the id of the command that last started.
    fn output(&self, stream: Stream, line: &str) {
        if let Some(uuid) = &self.last {
            self.run
                .output
                .command_output(uuid, self.host, stream, line);
        }
    }

    /// The script ended (`None`: its connection failed): its last step with it.
    fn ended(&mut self, status: Option<Option<i32>>) {
        let step_status = match status {
            None => Status::Unknown,
            Some(Some(0)) => Status::Ok,
            Some(code) => match Exit::of(code).map(Exit::step) {
                Some(Step::Halt | Step::Interrupt) => Status::Stopped,
                _ => Status::Failed,
            },
        };
        self.steps.close(Instant::now(), step_status);
    }
}
