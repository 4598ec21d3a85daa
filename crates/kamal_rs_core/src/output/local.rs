//! Commands run on this machine (the build, hooks): SSHKit's lines for them at a verbosity of their
//! own, as Kamal runs them under `with_verbosity`, printed above the live view.

use super::{finished_message, CommandOf, Level, Output, Stream, Verbosity};

impl Output {
    /// The build runs under Kamal's `with_verbosity(:debug)`: its command, each output line as it
    /// arrives and its result show whatever `-q`/`-v` say, and above the live view.
    pub fn build_running(&self, uuid: &str, command: &str) {
        let command = self.redact(command);
        self.build_command_line(
            Level::Info,
            uuid,
            None,
            &format!("Running {command} on localhost"),
        );
    }

    pub fn build_line(&self, uuid: &str, line: &str) {
        self.build_command_line(
            Level::Debug,
            uuid,
            Some(Stream::Stdout),
            &format!("\t{line}"),
        );
    }

    pub fn build_finished(&self, uuid: &str, seconds: f64, status: Option<i32>) {
        let message = finished_message(seconds, status, |verdict| verdict.to_string());
        self.build_command_line(Level::Info, uuid, None, &message);
    }

    fn build_command_line(&self, level: Level, uuid: &str, stream: Option<Stream>, message: &str) {
        let painted = || message.to_string();
        self.command_line(
            CommandOf {
                level,
                uuid,
                host: "localhost",
                stream,
            },
            message,
            painted,
            true,
        );
    }

    /// A hook's lines, at `level`: Kamal runs a hook under `with_verbosity` of its `hooks_output`
    /// (`:quiet` hides them, `:verbose` shows all) unless -q or -v was given
    /// (`lib/kamal/cli/base.rb#run_hook`, Kamal 2.12.0). INFO lines show unless quiet, `Command:` and
    /// the output with verbose only.
    pub fn hook_lines(&self, uuid: &str, command: &str, level: Verbosity, result: HookResult<'_>) {
        let info = level > Verbosity::Quiet;
        let debug = level == Verbosity::Verbose;
        let line = |lvl: Level, stream: Option<Stream>, message: &str, shown: bool| {
            let of = CommandOf {
                level: lvl,
                uuid,
                host: "localhost",
                stream,
            };
            self.command_line(of, message, || message.to_string(), shown);
        };
        line(
            Level::Info,
            None,
            &format!("Running {command} on localhost"),
            info,
        );
        line(Level::Debug, None, &format!("Command: {command}"), debug);
        for (stream, text) in [
            (Stream::Stdout, result.stdout),
            (Stream::Stderr, result.stderr),
        ] {
            for l in text.lines() {
                line(Level::Debug, Some(stream), &format!("\t{l}"), debug);
            }
        }
        let finished = finished_message(result.seconds, result.status, |v| v.to_string());
        line(Level::Info, None, &finished, info);
    }
}

/// What a hook did, for its lines.
pub struct HookResult<'a> {
    pub seconds: f64,
    pub status: Option<i32>,
    pub stdout: &'a str,
    pub stderr: &'a str,
}
