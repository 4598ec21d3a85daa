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
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};

pub use crate::output::Stream;
use tokio::sync::{watch, Semaphore};

pub mod limits;
mod settings;
pub use settings::{valid_host, SshSettings};

/// Concurrent sessions per host: well under sshd's default MaxSessions of 10.
pub const SESSIONS_PER_HOST: usize = 5;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// The connection could not be made (the reason in the user's terms: `connection refused`...).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The connection was lost while a command ran (its result is unknown).
    #[error("connection lost: {0}")]
    Lost(String),
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
    /// Parts in turn: for a script that waits, partway, for decisions taken across hosts.
    Parts(Vec<Part<'a>>),
}

/// A part of `Stdin::Parts`.
#[derive(Clone)]
pub enum Part<'a> {
    /// A line written once the gate is set: `go` when it is true; when it is false, nothing more is
    /// written and stdin is closed (the script reads end of file, as `stop`).
    Gate(watch::Receiver<Option<bool>>),
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
        .map_err(|_| SshError::Connect(timed_out()))?
        .map_err(|e| SshError::Connect(connect_reason(&error_text(&e))))?;
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
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
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
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> Result<Output, SshError> {
        let mut cmd = self.session.raw_command(command);
        cmd.stdin(if matches!(stdin, Stdin::None) {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().await.map_err(classify)?;
        let input = child.stdin().take();
        let stdout = child.stdout().take();
        let stderr = child.stderr().take();
        // stdin is written while stdout is read: a gated line may wait on what stdout says.
        let writer = async move {
            let Some(mut input) = input else { return };
            match stdin {
                Stdin::None => {}
                Stdin::Bytes(data) => {
                    let _ = input.write_all(data).await;
                }
                Stdin::Parts(parts) => {
                    for part in parts {
                        let written = match part {
                            Part::Gate(mut gate) => {
                                let go = gate
                                    .wait_for(Option::is_some)
                                    .await
                                    .is_ok_and(|v| *v == Some(true));
                                go && input.write_all(b"go\n").await.is_ok()
                            }
                            Part::Bytes(data) => input.write_all(data).await.is_ok(),
                        };
                        if !written {
                            break;
                        }
                    }
                }
            }
            let _ = input.shutdown().await;
        };
        // stdout and stderr line by line as they arrive, in the order they arrive.
        let reader = async {
            let (mut out, mut err) = (String::new(), String::new());
            let mut so = stdout.map(BufReader::new);
            let mut se = stderr.map(BufReader::new);
            let (mut bo, mut be) = (Vec::new(), Vec::new());
            loop {
                tokio::select! {
                    line = next_line(&mut so, &mut bo), if so.is_some() => match line {
                        Some(l) => { on_line(Stream::Stdout, &l); out.push_str(&l); out.push('\n'); }
                        None => so = None,
                    },
                    line = next_line(&mut se, &mut be), if se.is_some() => match line {
                        Some(l) => { on_line(Stream::Stderr, &l); err.push_str(&l); err.push('\n'); }
                        None => se = None,
                    },
                    else => break,
                }
            }
            (out, err)
        };
        // The writer may wait on a gate the remote script never reaches (it ended before): once the
        // script's output is closed, what is still unwritten is dropped.
        let mut writer = std::pin::pin!(writer);
        let mut io = std::pin::pin!(reader);
        let mut written = false;
        let (stdout, stderr) = loop {
            tokio::select! {
                out = &mut io => break out,
                () = &mut writer, if !written => written = true,
            }
        };
        let status = child.wait().await.map_err(classify)?;
        Ok(Output {
            status: status.code(),
            stdout,
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

/// The next line of a stream (without its line end, invalid UTF-8 replaced), or `None` at its end.
/// Safe to cancel (a `select!` branch that lost): bytes already read stay in `buf` for the next call.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut Option<R>,
    buf: &mut Vec<u8>,
) -> Option<String> {
    let r = reader.as_mut()?;
    let n = r.read_until(b'\n', buf).await.unwrap_or(0);
    if n == 0 && buf.is_empty() {
        return None;
    }
    let mut end = buf.len();
    if buf[..end].ends_with(b"\n") {
        end -= 1;
    }
    if buf[..end].ends_with(b"\r") {
        end -= 1;
    }
    let line = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.clear();
    Some(line)
}

fn refused_channel(e: &SshError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    matches!(e, SshError::Command(_))
        && (text.contains("refused") || text.contains("session open") || text.contains("channel"))
}

/// An error of a running command: the connection is gone (the master exited, or the remote process
/// was cut off with it), or something else.
fn classify(e: openssh::Error) -> SshError {
    match e {
        openssh::Error::Disconnected | openssh::Error::RemoteProcessTerminated => {
            SshError::Lost(error_text(&e))
        }
        other => {
            let text = error_text(&other);
            let lower = text.to_ascii_lowercase();
            // The master's control socket is gone: the master exited with the connection.
            if lower.contains("no such file")
                || lower.contains("connection reset")
                || lower.contains("broken pipe")
            {
                SshError::Lost(text)
            } else {
                SshError::Command(text)
            }
        }
    }
}

fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.trim().replace('\n', " ")
}

fn timed_out() -> String {
    format!("connection timed out after {} s", CONNECT_TIMEOUT.as_secs())
}

/// Why ssh could not connect, in the words a user acts on; ssh's own message otherwise.
/// What `connect_reason` says when the host name did not resolve.
const UNRESOLVED: &str = "could not resolve the host name";

/// A connection failed because its host name did not resolve (worth trying again).
pub fn unresolved(reason: &str) -> bool {
    reason == UNRESOLVED
}

/// Before DNS retry `attempt` (1, 2, ...): 0.1 s doubling, at most 2 s.
pub fn dns_retry_delay(attempt: u32) -> Duration {
    let secs = 0.1 * 2f64.powi(attempt.saturating_sub(1).min(16) as i32);
    Duration::from_secs_f64(secs.min(2.0))
}

pub fn connect_reason(ssh_text: &str) -> String {
    let lower = ssh_text.to_ascii_lowercase();
    let reason = if lower.contains("connection refused") {
        "connection refused".to_string()
    } else if lower.contains("timed out") {
        timed_out()
    } else if lower.contains("host key verification failed")
        || lower.contains("identification has changed")
    {
        "host key mismatch (the host's key is not the one known_hosts has for it)".into()
    } else if lower.contains("permission denied") {
        "authentication failed (permission denied)".into()
    } else if lower.contains("could not resolve") {
        UNRESOLVED.into()
    } else if lower.contains("no route to host") || lower.contains("network is unreachable") {
        "no route to host".into()
    } else if lower.contains("connection closed") || lower.contains("connection reset") {
        format!(
            "the connection was closed by the host ({})",
            ssh_text.trim()
        )
    } else {
        ssh_text.trim().to_string()
    };
    if reason.is_empty() {
        "ssh exited without saying why".into()
    } else {
        reason
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn dns_retries_wait_0_1_s_doubling_up_to_2_s() {
        let waits: Vec<u128> = (1..=7).map(|a| dns_retry_delay(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert!(unresolved(&connect_reason(
            "ssh: Could not resolve hostname web-9: Temporary failure in name resolution"
        )));
        assert!(!unresolved(&connect_reason(
            "ssh: connect to host 10.0.0.1 port 22: Connection refused"
        )));
    }

    use super::*;

    #[test]
    fn connect_failures_say_why() {
        for (ssh, reason) in [
            ("ssh: connect to host 10.0.0.2 port 22: Connection refused", "connection refused"),
            ("ssh: connect to host 10.0.0.2 port 22: Connection timed out", "connection timed out after 30 s"),
            ("@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.", "host key mismatch (the host's key is not the one known_hosts has for it)"),
            ("root@10.0.0.2: Permission denied (publickey).", "authentication failed (permission denied)"),
            ("ssh: Could not resolve hostname nope: Name or service not known", "could not resolve the host name"),
            ("", "ssh exited without saying why"),
        ] {
            assert_eq!(connect_reason(ssh), reason, "{ssh}");
        }
    }
}
