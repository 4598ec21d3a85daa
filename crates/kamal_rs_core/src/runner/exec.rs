//! Running a script on a host: each shown command logged as its markers arrive (`Running`, its
//! output, `Finished` with its own time and status), the host's steps recorded the same way.

use std::collections::HashMap;
use std::time::Instant;

use super::failure::HostError;
use super::script::{is_marker, Exit, Gate, Input, Mark, Script, Shown, Step, PREFIX};
use super::shell::Shell;
use crate::error::ErrorKind;
use crate::output::timeline::{Phase, Status, Steps};
use crate::output::{uuid, Stream};
use crate::ssh::{self, Part, SshError, Stdin};

impl Shell<'_, '_> {
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
                        Input::Gate(Gate::Lock) => Part::Gate(self.gates().lock_gate()),
                        Input::Gate(Gate::Pulled) => Part::Gate(self.gates().boot_gate(host)),
                        Input::Gate(Gate::Booted) => Part::Gate(self.gates().booted_gate()),
                        Input::Bytes(bytes) => Part::Bytes(bytes),
                    })
                    .collect(),
            ),
        };
        let mut log = CommandLog::new(*self, host, script);
        let mut lines = |stream: Stream, line: &str| {
            let (text, mark) = match stream {
                Stream::Stdout => split_marker(line),
                _ => (Some(line), None),
            };
            if let Some(text) = text {
                log.output(stream, text);
                if stream == Stream::Stdout {
                    on_line(text);
                }
            }
            if let Some(mark) = mark {
                log.mark(mark);
                on_line(mark);
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
}

/// The script's output without the commands' start and end markers, which are the log's: a caller
/// reads its own markers and the commands' output.
fn without_command_marks(mut out: ssh::Output) -> ssh::Output {
    if out.stdout.contains("kamal-rs:start ") {
        let command_mark = |m: &str| matches!(Mark::parse(m), Some((Mark::Start | Mark::End, _)));
        out.stdout = out
            .stdout
            .lines()
            .filter_map(|l| match split_marker(l) {
                (text, Some(mark)) if command_mark(mark) => text,
                _ => Some(l),
            })
            .map(|l| format!("{l}\n"))
            .collect();
    }
    out
}

/// A stdout line as output and marker: a command whose output does not end with a newline (`cat` of
/// the lock's details) leaves the marker that follows at the end of its last line.
fn split_marker(line: &str) -> (Option<&str>, Option<&str>) {
    if is_marker(line) {
        return (None, Some(line));
    }
    match line
        .find(PREFIX)
        .filter(|&at| Mark::parse(&line[at..]).is_some())
    {
        Some(at) => (Some(&line[..at]), Some(&line[at..])),
        None => (Some(line), None),
    }
}

/// One script's log: each shown command's `Running` and `Finished` lines as its markers arrive, its
/// output lines under its id, and the host's steps.
struct CommandLog<'r, 'a> {
    run: Shell<'r, 'a>,
    host: &'r str,
    script: &'r Script,
    /// Shown commands started and not yet ended: their log id and start.
    running: HashMap<usize, (String, Instant)>,
    /// The last command that started: output lines belong to it.
    last: Option<String>,
    steps: Steps<'r>,
}

impl<'r, 'a> CommandLog<'r, 'a> {
    fn new(run: Shell<'r, 'a>, host: &'r str, script: &'r Script) -> Self {
        let mut steps = Steps::new(&run.io.timeline, host, script.role.as_deref());
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
                    self.run.io.output.debug_line(&line);
                } else {
                    let command = shown.text(value);
                    self.run
                        .io
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
                        self.run.io.output.info_in_log(&line);
                    } else if shown.upload {
                        let code = status.map_or("?".to_string(), |c: i32| c.to_string());
                        let line =
                            format!("Uploading {} failed with exit status {code}", shown.command);
                        self.run.io.output.error_on(self.host, &line);
                    } else {
                        self.run
                            .io
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
                .io
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_after_output_without_a_newline_is_still_a_marker() {
        assert_eq!(
            split_marker("kamal-rs:end 3 0"),
            (None, Some("kamal-rs:end 3 0"))
        );
        assert_eq!(
            split_marker("Message: Automatic deploy lockkamal-rs:end 3 0"),
            (
                Some("Message: Automatic deploy lock"),
                Some("kamal-rs:end 3 0")
            )
        );
        assert_eq!(split_marker("plain output"), (Some("plain output"), None));
        assert_eq!(
            split_marker("say kamal-rs:nonsense"),
            (Some("say kamal-rs:nonsense"), None)
        );
        let out = ssh::Output {
            status: Some(0),
            stdout: "kamal-rs:start 0\nLocked by: me\nMessage: lockkamal-rs:end 0 0\n".into(),
            stderr: String::new(),
        };
        assert_eq!(
            without_command_marks(out).stdout,
            "Locked by: me\nMessage: lock\n"
        );
    }
}
