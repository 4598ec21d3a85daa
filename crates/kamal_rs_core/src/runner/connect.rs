//! The run's SSH connections: one per host, opened on first use (or all at once before anything
//! runs), `sshkit.max_concurrent_starts` at a time, the host's line and timeline told how it went.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::failure::{combine, HostError};
use super::run::Run;
use super::shell::{Io, Shell};
use crate::error::{Error, ErrorKind, Result};
use crate::output::timeline::{Phase, Status};
use crate::ssh::{self, Connection, RunDir, SshError, SshSettings};

/// A host's connection once opened, or why it could not be (kept: the host is not tried again).
type Slot = Arc<tokio::sync::OnceCell<std::result::Result<Arc<Connection>, HostError>>>;

/// The run's SSH side: its settings, each host's connection, the starts allowed at once, and the
/// run directory (ssh_config file, control sockets).
pub struct Connections {
    ssh: SshSettings,
    /// Each host's connection, opened on first use (or by `connect_all`).
    slots: Mutex<HashMap<String, Slot>>,
    /// `sshkit.max_concurrent_starts`: connections starting at once.
    starts: tokio::sync::Semaphore,
    /// The ssh_config file, written once.
    config_file: OnceLock<PathBuf>,
    run_dir: RunDir,
}

impl Connections {
    pub fn new(ssh: SshSettings, hosts: &[String], max_starts: usize) -> Result<Connections> {
        let run_dir = RunDir::new()
            .map_err(|e| Error::runtime(format!("Could not create a temporary directory: {e}")))?;
        Ok(Connections {
            ssh,
            slots: Mutex::new(hosts.iter().map(|h| (h.clone(), Slot::default())).collect()),
            starts: tokio::sync::Semaphore::new(max_starts),
            config_file: OnceLock::new(),
            run_dir,
        })
    }

    /// Takes `outer`'s connections for the hosts both have (a nested run reuses its outer run's).
    pub fn share(&self, outer: &Connections) {
        let outer = outer.slots.lock().unwrap();
        for (host, slot) in self.slots.lock().unwrap().iter_mut() {
            if let Some(open) = outer.get(host) {
                *slot = open.clone();
            }
        }
    }
}

impl Shell<'_, '_> {
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
                    self.io.output.warn_line(&format!(
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
        let through_jump = self.io.connections.ssh.jump.is_some()
            || self.io.connections.ssh.proxy_command.is_some();
        ssh::limits::ensure_machine(self.sel.hosts.len(), through_jump)?;
        self.ssh_config_file().map(|_| ())
    }

    fn ssh_config_file(&self) -> Result<PathBuf> {
        if let Some(path) = self.io.connections.config_file.get() {
            return Ok(path.clone());
        }
        let path = self.io.connections.run_dir.path.join("ssh_config");
        std::fs::write(&path, self.io.connections.ssh.ssh_config())
            .map_err(|e| Error::runtime(e.to_string()))?;
        Ok(self.io.connections.config_file.get_or_init(|| path).clone())
    }

    /// The host's connection, opened on first use; every later use gets the same one, or the same
    /// error.
    pub async fn connection(&self, host: &str) -> std::result::Result<Arc<Connection>, HostError> {
        let slot = self.io.connections.slots.lock().unwrap().get(host).cloned();
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
        let control = self.io.connections.run_dir.path.clone();
        let sshkit = self.config.sshkit();
        self.io.output.progress(host, "waiting to connect");
        let connect = async {
            let conn = {
                let _start = self
                    .io
                    .connections
                    .starts
                    .acquire()
                    .await
                    .expect("semaphore never closed");
                self.io.output.progress(host, "connecting");
                let from = Instant::now();
                let conn = self
                    .connect_host(host, &config_file, &control, sshkit.dns_retries)
                    .await;
                let status = if conn.is_ok() {
                    Status::Ok
                } else {
                    Status::Failed
                };
                self.io
                    .timeline
                    .record(host, None, Phase::Connect, from, Instant::now(), status);
                conn?
            };
            // Until its next step (a build still running, say), the host is no longer "connecting".
            self.io.output.progress(host, "connected");
            // Kamal 2.8+: app hosts pull from a local registry through a reverse forward.
            let local_registry = self.config.registry().local_port();
            if let Some(port) = local_registry.filter(|_| self.is_app_host(host)) {
                conn.forward_remote_port(port).await?;
            }
            Ok(conn)
        };
        let result = tokio::select! {
            r = connect => r,
            _ = self.io.cancel.cancelled() => Err(SshError::Connect("interrupted".into())),
        };
        result.map_err(|e| {
            let error = HostError::on_host(ErrorKind::Connection, host, &e);
            self.io.reports.host_error(host, &error.message);
            let why = if self.io.cancel.is_cancelled() {
                "could not check: Ctrl-C before it was connected"
            } else {
                "could not check: unreachable"
            };
            for role in self.roles_on(host) {
                self.io.reports.set_unchecked(host, &role.name, why);
            }
            self.io
                .output
                .progress_failed(host, &format!("unreachable: {e}"));
            error
        })
    }

    /// Every host's connection is open.
    pub fn connected(&self) -> bool {
        let conns = self.io.connections.slots.lock().unwrap();
        self.sel.hosts.iter().all(|h| {
            conns
                .get(h)
                .and_then(|slot| slot.get())
                .is_some_and(|c| c.is_ok())
        })
    }
}

impl Io {
    /// Closes every connection (their masters exit).
    pub async fn close(&self) {
        let slots: Vec<Slot> = self
            .connections
            .slots
            .lock()
            .unwrap()
            .drain()
            .map(|(_, c)| c)
            .collect();
        let conns = slots.into_iter().filter_map(|slot| {
            Arc::try_unwrap(slot)
                .ok()
                .and_then(|cell| cell.into_inner())
                .and_then(|c| c.ok())
        });
        join_all(conns.map(Connection::close)).await;
    }
}

impl Run<'_> {
    /// Every host's connection, before anything runs: a host that cannot be reached fails the step.
    pub async fn connect_all<'b>(&'b self) -> Result<()> {
        self.shell().prepare_connections()?;
        // Within `--max-fail`, a host that cannot be reached is left behind.
        let connect = |h: &'b String| async move {
            match self.shell().connection(h).await {
                Err(e) if !super::budget::leave_behind(self, h, &e) => Err(e),
                _ => Ok(()),
            }
        };
        let results = join_all(self.sel.hosts.iter().map(connect)).await;
        self.io.checkpoint()?;
        combine(results.into_iter().filter_map(|r| r.err()).collect())
    }
}
