//! A failure on one host, in Kamal's words, and how the failures of one step across hosts become the
//! run's error (Kamal's parallel runner joins every host's thread, then raises).

use crate::error::{Error, ErrorKind, Result};
use crate::ssh;

use super::script::{is_marker, Mark};
use crate::output::fleet::PER_HOST_UP_TO;

#[derive(Debug, Clone)]
pub struct HostError {
    pub kind: ErrorKind,
    pub message: String,
}

impl HostError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        HostError {
            kind,
            message: message.into(),
        }
    }

    /// `Exception while executing on host <host>: <text>`.
    pub fn on_host(kind: ErrorKind, host: &str, text: impl std::fmt::Display) -> Self {
        HostError::new(
            kind,
            format!("Exception while executing on host {host}: {text}"),
        )
    }

    /// SSHKit's `Command::Failed` for a command that exited non-zero, named by its first word. When a
    /// script ran several commands, only the failing one's output and status count: what follows the
    /// last step marker, and the status its `failed` marker reports.
    pub fn command_failed(host: &str, first_word: &str, out: &ssh::Output) -> Self {
        let lines: Vec<&str> = out.stdout.lines().collect();
        let last_step = lines
            .iter()
            .rposition(|l| Mark::parse(l).is_some_and(|(m, _)| m != Mark::Failed))
            .map(|i| i + 1)
            .unwrap_or(0);
        let own: Vec<&str> = lines[last_step..]
            .iter()
            .copied()
            .filter(|l| !is_marker(l))
            .collect();
        let status = Mark::Failed
            .find(&out.stdout)
            .and_then(|rc| rc.parse().ok())
            .or(out.status)
            .unwrap_or(-1);
        HostError::on_host(
            ErrorKind::CommandFailed,
            host,
            failure_text(first_word, status, &own.join("\n"), &out.stderr),
        )
    }
}

impl From<Error> for HostError {
    fn from(e: Error) -> Self {
        HostError::new(e.kind, e.message)
    }
}

impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        Error::new(e.kind, e.message)
    }
}

/// `<word> exit status: <n>\n<word> stdout: <out or "Nothing written">\n<word> stderr: ...`.
pub fn failure_text(first_word: &str, status: i32, stdout: &str, stderr: &str) -> String {
    let written = |s: &str| {
        if s.trim().is_empty() {
            "Nothing written".to_string()
        } else {
            s.trim().to_string()
        }
    };
    format!(
        "{first_word} exit status: {status}\n{first_word} stdout: {}\n{first_word} stderr: {}",
        written(stdout),
        written(stderr)
    )
}

/// The errors of one step: none, the one, or `Exceptions on N hosts:` with each, classed as the first.
pub fn combine(errors: Vec<HostError>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.into_iter().next().expect("one").into()),
        n => {
            let kind = errors[0].kind;
            let messages: Vec<String> = errors.into_iter().map(|e| e.message).collect();
            let body = if n > PER_HOST_UP_TO {
                grouped(&messages)
            } else {
                messages.join("\n")
            };
            Err(Error::new(
                kind,
                format!("Exceptions on {n} hosts:\n{body}"),
            ))
        }
    }
}

/// A fleet's failures, each different one once: the first host's message in full, then the other
/// hosts where the same happened (Kamal would print a thousand copies of it).
fn grouped(messages: &[String]) -> String {
    const NAMED: usize = 10;
    let mut groups: Vec<(String, &str, Vec<&str>)> = Vec::new();
    for message in messages {
        let host = message
            .strip_prefix("Exception while executing on host ")
            .and_then(|rest| rest.split_once(": "))
            .map(|(host, _)| host)
            .unwrap_or("");
        let key = message.replacen(&format!("on host {host}: "), "on host *: ", 1);
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, hosts)) => hosts.push(host),
            None => groups.push((key, message, Vec::new())),
        }
    }
    let mut out = Vec::new();
    for (_, first, others) in groups {
        out.push(first.to_string());
        if !others.is_empty() {
            let named = others[..others.len().min(NAMED)].join(", ");
            let rest = match others.len().saturating_sub(NAMED) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            out.push(format!(
                "(the same on {} more hosts: {named}{rest})",
                others.len()
            ));
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_failure_shows_the_failing_part_only() {
        let out = ssh::Output {
            status: Some(78),
            stdout: "kamal-rs:login\nLogin Succeeded\nkamal-rs:pull\nError response\nkamal-rs:failed 1\n"
                .into(),
            stderr: "manifest unknown\n".into(),
        };
        assert_eq!(
            HostError::command_failed("h1", "docker", &out).message,
            "Exception while executing on host h1: docker exit status: 1\ndocker stdout: Error response\ndocker stderr: manifest unknown"
        );
    }

    /// Beyond `PER_HOST_UP_TO` hosts, each different failure is shown once, with where else it happened.
    #[test]
    fn a_fleets_failures_are_grouped() {
        let mut errors: Vec<HostError> = (1..=500)
            .map(|i| {
                HostError::on_host(
                    ErrorKind::Connection,
                    &format!("h{i}"),
                    "connection refused",
                )
            })
            .collect();
        errors.insert(
            3,
            HostError::on_host(ErrorKind::Connection, "h0", "timed out"),
        );
        let e = combine(errors).unwrap_err();
        assert_eq!(
            e.message,
            "Exceptions on 501 hosts:\n\
             Exception while executing on host h1: connection refused\n\
             (the same on 499 more hosts: h2, h3, h4, h5, h6, h7, h8, h9, h10, h11 and 489 more)\n\
             Exception while executing on host h0: timed out"
        );
    }

    #[test]
    fn several_hosts_fail_together() {
        let e = combine(vec![
            HostError::new(ErrorKind::Lock, "a"),
            HostError::new(ErrorKind::CommandFailed, "b"),
        ])
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Lock);
        assert_eq!(e.message, "Exceptions on 2 hosts:\na\nb");
        assert!(combine(Vec::new()).is_ok());
    }
}
