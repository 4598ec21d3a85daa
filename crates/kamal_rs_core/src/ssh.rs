//! SSH: one multiplexed OpenSSH connection (ControlMaster) per host, reused by every command of a run.
//!
//! Kamal's `ssh:` settings become a generated `ssh_config` (user, port, keys, keys_only, jump host or
//! proxy command, log level, agent forwarding, then the user's own config files), so OpenSSH itself
//! applies them exactly as `ssh` would. Commands are sent as raw command lines, run by the remote login
//! shell, as SSHKit does. Stock sshd allows 10 sessions per connection (`MaxSessions`): each host gets a
//! smaller cap, and a refused channel is retried.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;

use crate::value::Value;

/// Concurrent sessions per host: well under sshd's default MaxSessions of 10.
pub const SESSIONS_PER_HOST: usize = 5;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct SshSettings {
    pub user: String,
    pub port: String,
    pub keys: Vec<String>,
    pub keys_only: bool,
    pub jump: Option<String>,
    pub proxy_command: Option<String>,
    pub log_level: String,
    pub forward_agent: bool,
    /// Config files to read after kamal_rs's own settings (`ssh.config`; default: the user's and the system's).
    pub config_files: Vec<String>,
}

impl SshSettings {
    /// From the `ssh:` section (`lib/kamal/configuration/ssh.rb`, Kamal 2.12.0).
    pub fn from_config(ssh: Option<&Value>) -> SshSettings {
        let cfg = ssh.and_then(Value::as_map).cloned().unwrap_or_default();
        let get = |k: &str| cfg.get(k).filter(|v| !v.is_nil());
        let strings = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::Seq(items)) => items.iter().map(Value::to_ruby_s).collect(),
                Some(v) if !v.is_nil() => vec![v.to_ruby_s()],
                _ => Vec::new(),
            }
        };
        let home = std::env::var("HOME").unwrap_or_default();
        let config_files = match get("config") {
            None | Some(Value::Bool(true)) => {
                vec![format!("{home}/.ssh/config"), "/etc/ssh/ssh_config".into()]
            }
            Some(Value::Bool(false)) => Vec::new(),
            other => strings(other),
        };
        SshSettings {
            user: get("user")
                .map(Value::to_ruby_s)
                .unwrap_or_else(|| "root".into()),
            port: get("port")
                .map(Value::to_ruby_s)
                .unwrap_or_else(|| "22".into()),
            keys: strings(get("keys"))
                .into_iter()
                .map(|k| expand_home(&k, &home))
                .collect(),
            keys_only: get("keys_only").is_some_and(Value::truthy),
            jump: get("proxy").map(|p| {
                let p = p.to_ruby_s();
                if p.contains('@') {
                    p
                } else {
                    format!("root@{p}")
                }
            }),
            proxy_command: get("proxy_command").map(Value::to_ruby_s),
            log_level: get("log_level")
                .map(Value::to_ruby_s)
                .unwrap_or_else(|| "fatal".into()),
            forward_agent: get("forward_agent").is_some_and(Value::truthy),
            config_files: config_files
                .into_iter()
                .map(|f| expand_home(&f, &home))
                .collect(),
        }
    }

    /// The `ssh_config` text kamal_rs's connections use. First values win in ssh_config, so Kamal's own
    /// settings come before the user's files, as Net::SSH lets explicit options win.
    pub fn ssh_config(&self) -> String {
        let mut c = String::from("Host *\n");
        c.push_str(&format!("  User {}\n  Port {}\n", self.user, self.port));
        for key in &self.keys {
            c.push_str(&format!("  IdentityFile \"{key}\"\n"));
        }
        if self.keys_only {
            c.push_str("  IdentitiesOnly yes\n");
        }
        if let Some(jump) = &self.jump {
            c.push_str(&format!("  ProxyJump {jump}\n"));
        }
        if let Some(cmd) = &self.proxy_command {
            c.push_str(&format!("  ProxyCommand {cmd}\n"));
        }
        let level = match self.log_level.to_ascii_lowercase().as_str() {
            "debug" => "DEBUG",
            "info" => "INFO",
            "warn" | "error" => "ERROR",
            _ => "QUIET",
        };
        c.push_str(&format!("  LogLevel {level}\n"));
        if self.forward_agent {
            c.push_str("  ForwardAgent yes\n");
        }
        // A host that stops answering fails within about a minute and a half.
        c.push_str("  ServerAliveInterval 30\n  ServerAliveCountMax 3\n  BatchMode yes\n");
        for file in &self.config_files {
            if Path::new(file).exists() {
                c.push_str(&format!("  Include \"{file}\"\n"));
            }
        }
        c
    }
}

fn expand_home(path: &str, home: &str) -> String {
    match path.strip_prefix("~/") {
        Some(rest) => format!("{home}/{rest}"),
        None => path.to_string(),
    }
}

/// What one remote command did.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SshError {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Command(String),
    #[error("command timed out after {0} seconds")]
    Timeout(u64),
}

/// What a command reads on stdin.
#[derive(Clone)]
pub enum Stdin<'a> {
    None,
    Bytes(&'a [u8]),
}

/// A connected host.
pub struct Connection {
    pub host: String,
    session: Session,
    slots: Semaphore,
}

impl Connection {
    /// Opens the host's master connection (`config_file` from `SshSettings::ssh_config`).
    pub async fn connect(
        host: &str,
        config_file: &Path,
        control_dir: &Path,
    ) -> Result<Arc<Connection>, SshError> {
        let mut builder = SessionBuilder::default();
        builder
            .config_file(config_file)
            .known_hosts_check(KnownHosts::Add)
            .connect_timeout(CONNECT_TIMEOUT)
            .control_directory(control_dir);
        let session = tokio::time::timeout(
            CONNECT_TIMEOUT + Duration::from_secs(5),
            builder.connect_mux(host),
        )
        .await
        .map_err(|_| {
            SshError::Connect(format!(
                "timed out after {} seconds",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| SshError::Connect(connect_error_text(&e)))?;
        Ok(Arc::new(Connection {
            host: host.to_string(),
            session,
            slots: Semaphore::new(SESSIONS_PER_HOST),
        }))
    }

    /// Runs one command line, feeding `stdin` if given; `on_line` sees stdout lines as they arrive.
    pub async fn run(
        &self,
        command: &str,
        stdin: Stdin<'_>,
        timeout: Duration,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Output, SshError> {
        let _slot = self.slots.acquire().await.expect("semaphore never closed");
        let mut attempt = 0;
        loop {
            attempt += 1;
            match tokio::time::timeout(timeout, self.run_once(command, stdin.clone(), on_line))
                .await
            {
                Err(_) => return Err(SshError::Timeout(timeout.as_secs())),
                Ok(Err(e)) if attempt < 5 && refused_channel(&e) => {
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Ok(result) => return result,
            }
        }
    }

    async fn run_once(
        &self,
        command: &str,
        stdin: Stdin<'_>,
        on_line: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Output, SshError> {
        let mut cmd = self.session.raw_command(command);
        cmd.stdin(if matches!(stdin, Stdin::None) {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .await
            .map_err(|e| SshError::Command(e.to_string()))?;
        if let (Stdin::Bytes(data), Some(mut input)) = (stdin, child.stdin().take()) {
            input
                .write_all(data)
                .await
                .map_err(|e| SshError::Command(format!("writing stdin: {e}")))?;
            input.shutdown().await.ok();
        }
        let stdout = child.stdout().take();
        let stderr = child.stderr().take();
        let err_task = tokio::spawn(async move {
            let mut buf = String::new();
            if let Some(mut e) = stderr {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut buf).await;
            }
            buf
        });
        let mut out = String::new();
        if let Some(stdout) = stdout {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                on_line(&line);
                out.push_str(&line);
                out.push('\n');
            }
        }
        let status = child
            .wait()
            .await
            .map_err(|e| SshError::Command(e.to_string()))?;
        let stderr = err_task.await.unwrap_or_default();
        Ok(Output {
            status: status.code(),
            stdout: out,
            stderr,
        })
    }

    /// `-R port:localhost:port`: the host reaches this machine's `localhost:port` (a local registry)
    /// at its own `localhost:port`, for as long as the connection lasts.
    pub async fn forward_remote_port(&self, port: u16) -> Result<(), SshError> {
        self.session
            .request_port_forward(
                openssh::ForwardType::Remote,
                openssh::Socket::new("localhost", port),
                openssh::Socket::new("localhost", port),
            )
            .await
            .map_err(|e| SshError::Command(format!("forwarding port {port}: {e}")))
    }

    pub async fn close(self: Arc<Self>) {
        if let Ok(conn) = Arc::try_unwrap(self) {
            let _ = conn.session.close().await;
        }
    }
}

fn refused_channel(e: &SshError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    text.contains("refused") || text.contains("session open") || text.contains("channel")
}

fn connect_error_text(e: &openssh::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.trim().replace('\n', " ")
}

/// A private directory for the run's ssh_config and control sockets, removed on drop.
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new() -> std::io::Result<RunDir> {
        let base = std::env::temp_dir().join(format!(
            "kamal-rs-{}-{}",
            std::process::id(),
            crate::config::random_hex(4)
        ));
        std::fs::create_dir_all(&base)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700))?;
        Ok(RunDir { path: base })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
