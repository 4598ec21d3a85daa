//! What a run prints: Kamal's lines (magenta step lines, SSHKit-style `INFO [uuid] Running ... on HOST`),
//! `-q` and `-v` as in Kamal, colours only on a terminal. On a terminal (and without `-v`) a live view
//! shows one line per host instead of the scrolling log. Every line passes through the redactor, so a
//! secret value never reaches the screen, and every line also goes to the run's sinks (Kamal's
//! `output:` loggers, the GitHub Actions summary), whatever `-q`/`-v` say, as Kamal's formatter hands
//! every message to its loggers.

use std::io::Write;
use std::sync::{Arc, Mutex, RwLock};

use indicatif::{MultiProgress, ProgressDrawTarget};
use live::Live;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// SSHKit's log levels, as a line carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// Which stream of a command a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of the run's log, redacted and without colours, with what Kamal's loggers know of it:
/// its level (none for a step line, Kamal's `say`), the host of the command it belongs to, and the
/// stream of a command's output line.
#[derive(Clone, Copy, Debug)]
pub struct LogLine<'a> {
    pub level: Option<Level>,
    pub text: &'a str,
    pub host: Option<&'a str>,
    pub stream: Option<Stream>,
}

/// Receives every line of the log.
pub trait Sink: Send + Sync {
    fn line(&self, line: &LogLine<'_>);
}

pub struct Output {
    verbosity: Verbosity,
    color: bool,
    secrets: Mutex<Vec<String>>,
    live: Option<Live>,
    lines: Mutex<()>,
    sinks: RwLock<Vec<Arc<dyn Sink>>>,
    notes: notes::HostNotes,
}

pub mod events;
pub mod file_log;
pub mod fleet;
mod live;
pub mod local;
mod notes;
pub mod otel;
pub mod svg;
pub mod timeline;

const MAGENTA: &str = "\x1b[35m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const BLUE: &str = "\x1b[34m";
const RESET: &str = "\x1b[0m";

impl Output {
    /// `live_hosts`: show the per-host live view for these hosts (only used on a terminal).
    pub fn new(verbosity: Verbosity, terminal: bool, live_hosts: &[String]) -> Output {
        Output::drawn_on(
            verbosity,
            terminal,
            live_hosts,
            ProgressDrawTarget::stdout(),
        )
    }

    /// An output whose live view (on a terminal) is drawn on `target`.
    fn drawn_on(
        verbosity: Verbosity,
        terminal: bool,
        live_hosts: &[String],
        target: ProgressDrawTarget,
    ) -> Output {
        let live = (terminal && verbosity == Verbosity::Normal && !live_hosts.is_empty())
            .then(|| Live::new(MultiProgress::with_draw_target(target), live_hosts));
        Output {
            verbosity,
            color: terminal,
            secrets: Mutex::new(Vec::new()),
            live,
            lines: Mutex::new(()),
            sinks: RwLock::new(Vec::new()),
            notes: notes::HostNotes::default(),
        }
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// From now on every line also goes to `sink`.
    pub fn add_sink(&self, sink: Arc<dyn Sink>) {
        self.sinks.write().unwrap().push(sink);
    }

    /// Values that must never be printed (secrets, registry credentials).
    pub fn add_secrets(&self, values: impl IntoIterator<Item = String>) {
        let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        secrets.extend(values.into_iter().filter(|v| v.len() >= 3));
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
    }

    /// Replaces every secret value standing as a whole word (so a password `lab` leaves `label` alone).
    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = replace_words(&out, s, "[REDACTED]");
            }
        }
        out
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// One line: to every sink (redacted, plain), and to the terminal when `shown`. `painted` colours
    /// the redacted line's parts for a terminal.
    fn deliver(&self, line: &LogLine<'_>, shown: bool, painted: Option<String>) {
        let text = self.redact(line.text);
        for sink in self.sinks.read().unwrap().iter() {
            sink.line(&LogLine {
                text: &text,
                ..*line
            });
        }
        if shown {
            let out = painted.map(|p| self.redact(&p)).unwrap_or(text);
            self.print(&out);
        }
    }

    fn print(&self, line: &str) {
        let _guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        match &self.live {
            Some(live) => {
                let _ = live.multi.println(line);
            }
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
    }

    /// A line Kamal `puts` (the runtime, where the logs went): on the terminal whatever `-q` says, and
    /// not in the logs.
    pub fn console(&self, text: &str) {
        self.print(&self.redact(text));
    }

    /// Prints lines on stderr from another thread (the OTel shipper's warning), above the live view.
    pub fn stderr_writer(&self) -> Box<dyn Fn(&str) + Send> {
        let multi = self.live.as_ref().map(|l| l.multi.clone());
        Box::new(move |text| match &multi {
            Some(m) => m.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        })
    }

    /// A line on stderr (a logger's own trouble), above the live view; not logged.
    pub fn stderr(&self, text: &str) {
        let text = self.redact(text);
        let _guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        match &self.live {
            Some(live) => live.multi.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn plain_line(&self, level: Option<Level>, text: &str, shown: bool, painted: Option<String>) {
        let line = LogLine {
            level,
            text,
            host: None,
            stream: None,
        };
        self.deliver(&line, shown, painted);
    }

    /// A step line (Kamal's `say`, magenta).
    pub fn say(&self, text: &str) {
        self.say_held();
        let painted = self.paint(MAGENTA, text);
        self.plain_line(None, text, self.verbosity > Verbosity::Quiet, Some(painted));
    }

    /// SSHKit's `[uuid] message` line of a command, at the level and on the host `of` names.
    fn command_line(
        &self,
        of: CommandOf,
        message: &str,
        painted: impl FnOnce() -> String,
        shown: bool,
    ) {
        let CommandOf {
            level,
            uuid,
            host,
            stream,
        } = of;
        let text = format!("{:>6} [{uuid}] {message}", level.name());
        let painted = shown.then(|| {
            format!(
                "{} [{}] {}",
                self.painted_level(level, BLUE),
                self.paint(GREEN, uuid),
                painted()
            )
        });
        let line = LogLine {
            level: Some(level),
            text: &text,
            host: Some(host),
            stream,
        };
        self.deliver(&line, shown, painted);
    }

    /// `  INFO [uuid] Running <command> on <host>`, then (debug) `Command: <command>`.
    pub fn running(&self, uuid: &str, command: &str, host: &str, debug: bool) {
        let level = if debug { Level::Debug } else { Level::Info };
        let shown = self.shows(debug) && self.live.is_none();
        let command = self.redact(command);
        self.command_line(
            CommandOf {
                level,
                uuid,
                host,
                stream: None,
            },
            &format!("Running {command} on {host}"),
            || {
                format!(
                    "Running {} on {}",
                    self.paint("\x1b[33;1m", &command),
                    self.paint(BLUE, host)
                )
            },
            shown,
        );
        let verbose = self.verbosity == Verbosity::Verbose;
        let message = format!("Command: {command}");
        self.command_line(
            CommandOf {
                level: Level::Debug,
                uuid,
                host,
                stream: None,
            },
            &message,
            || format!("Command: {}", self.paint(BLUE, &command)),
            verbose,
        );
    }

    /// `  INFO [uuid] Finished in 0.123 seconds with exit status 0 (successful).`
    pub fn finished(&self, uuid: &str, seconds: f64, status: Option<i32>, host: &str, debug: bool) {
        let level = if debug { Level::Debug } else { Level::Info };
        let shown = self.shows(debug) && self.live.is_none();
        let message = finished_message(seconds, status, |verdict| verdict.to_string());
        let painted = || {
            let colour = if status == Some(0) { GREEN } else { RED };
            finished_message(seconds, status, |verdict| self.paint(colour, verdict))
        };
        self.command_line(
            CommandOf {
                level,
                uuid,
                host,
                stream: None,
            },
            &message,
            painted,
            shown,
        );
    }

    /// A line a command printed (`DEBUG [uuid] \t<line>`), shown with `-v`.
    pub fn command_output(&self, uuid: &str, host: &str, stream: Stream, text: &str) {
        let verbose = self.verbosity == Verbosity::Verbose;
        for line in text.lines() {
            let message = format!("\t{line}");
            let colour = if stream == Stream::Stdout { GREEN } else { RED };
            let painted = || self.paint(colour, &message);
            self.command_line(
                CommandOf {
                    level: Level::Debug,
                    uuid,
                    host,
                    stream: Some(stream),
                },
                &message,
                painted,
                verbose,
            );
        }
    }

    /// SSHKit's `info` inside a step: `  INFO <text>`.
    pub fn info(&self, text: &str) {
        self.level_line(Level::Info, BLUE, text, None);
    }

    /// `  INFO <text>` for the log only: a terminal with the live view does not scroll with it.
    pub fn info_in_log(&self, text: &str) {
        let plain = format!("{:>6} {text}", Level::Info.name());
        let painted = format!("{} {text}", self.painted_level(Level::Info, BLUE));
        let line = LogLine {
            level: Some(Level::Info),
            text: &plain,
            host: None,
            stream: None,
        };
        let shown = self.live.is_none() && self.verbosity > Verbosity::Quiet;
        self.deliver(&line, shown, Some(painted));
    }

    /// `  INFO <text>` about one host.
    pub fn info_on(&self, host: &str, text: &str) {
        self.level_line(Level::Info, BLUE, text, Some(host));
    }

    /// A line Kamal says once per host, `kind` naming which (`notes`): under the live view, past the
    /// first few, the terminal gets `rest` (`{n}`: how many more hosts) once, unless `-v`. `host`: an INFO line about
    /// it, else a plain one.
    pub fn per_host(&self, kind: &'static str, host: Option<&str>, text: &str, rest: &str) {
        let shown = match self.verbosity {
            Verbosity::Quiet => false,
            // Without the live view (not a terminal, as in CI) the log has every host's lines anyway.
            Verbosity::Normal => self.live.is_none() || self.notes.note(kind, rest),
            Verbosity::Verbose => true,
        };
        match host {
            Some(_) => self.level_line_as(Level::Info, BLUE, text, host, shown),
            None => self.plain_line(Some(Level::Info), text, shown, None),
        }
    }

    /// A line's level as SSHKit prints it (`  INFO`), in `colour` on a terminal.
    fn painted_level(&self, level: Level, colour: &str) -> String {
        self.paint(colour, &format!("{:>6}", level.name()))
    }

    /// The lines standing for what `per_host` held, on the terminal only.
    fn say_held(&self) {
        for rest in self.notes.held() {
            let painted = format!("{} {rest}", self.painted_level(Level::Info, BLUE));
            self.print(&self.redact(&painted));
        }
    }

    /// ` DEBUG <text>`, shown with `-v`.
    pub fn debug_line(&self, text: &str) {
        self.level_line(Level::Debug, BLUE, text, None);
    }

    fn level_line(&self, level: Level, colour: &str, text: &str, host: Option<&str>) {
        let shown = match level {
            Level::Error => true,
            Level::Debug => self.verbosity == Verbosity::Verbose,
            _ => self.verbosity > Verbosity::Quiet,
        };
        self.level_line_as(level, colour, text, host, shown);
    }

    fn level_line_as(
        &self,
        level: Level,
        colour: &str,
        text: &str,
        host: Option<&str>,
        shown: bool,
    ) {
        let plain = format!("{:>6} {text}", level.name());
        let painted = format!("{} {text}", self.painted_level(level, colour));
        let line = LogLine {
            level: Some(level),
            text: &plain,
            host,
            stream: None,
        };
        self.deliver(&line, shown, Some(painted));
    }

    pub fn plain(&self, text: &str) {
        self.plain_line(
            Some(Level::Info),
            text,
            self.verbosity > Verbosity::Quiet,
            None,
        );
    }

    pub fn warn(&self, text: &str) {
        let painted = self.paint(YELLOW, text);
        self.plain_line(
            Some(Level::Warn),
            text,
            self.verbosity > Verbosity::Quiet,
            Some(painted),
        );
    }

    /// SSHKit's `warn` inside a step: `  WARN <text>`.
    pub fn warn_line(&self, text: &str) {
        self.level_line(Level::Warn, YELLOW, text, None);
    }

    /// Shown even with `-q`.
    pub fn error(&self, text: &str) {
        self.level_line(Level::Error, RED, text, None);
    }

    /// `  ERROR <text>` about one host, shown even with `-q`.
    pub fn error_on(&self, host: &str, text: &str) {
        self.level_line(Level::Error, RED, text, Some(host));
    }

    pub fn red(&self, text: &str) {
        let painted = self.paint(RED, text);
        self.plain_line(Some(Level::Error), text, true, Some(painted));
    }

    /// The live view's line for a host.
    pub fn progress(&self, host: &str, step: &str) {
        self.set_progress(host, step, fleet::Outcome::Running);
    }

    /// The host's last line: it got to the end.
    pub fn progress_done(&self, host: &str, text: &str) {
        self.set_progress(host, text, fleet::Outcome::Done);
    }

    /// The host's last line: it failed (named in a large fleet's view).
    pub fn progress_failed(&self, host: &str, text: &str) {
        self.set_progress(host, text, fleet::Outcome::Failed);
    }

    fn set_progress(&self, host: &str, text: &str, outcome: fleet::Outcome) {
        let Some(live) = &self.live else {
            return;
        };
        let text = self.redact(text);
        if let Some(fleet) = &live.fleet {
            return fleet.set(host, &text, outcome);
        }
        live.set_host(host, text, outcome);
    }

    /// Ends the live view. A host's line that got to an end (live, failed) keeps it on screen, and so
    /// does a large fleet's view when every host got to an end; a line still in progress is cleared,
    /// as the summary printed next tells where each host stopped (left on screen, it was drawn again
    /// under that summary with a step that was over: "releasing the deploy lock" after a failed run had
    /// released it, its hosts still "in progress").
    pub fn finish(&self) {
        self.say_held();
        if let Some(live) = &self.live {
            live.finish_hosts();
            if let Some(fleet) = &live.fleet {
                let hosts = fleet.hosts.lock().unwrap_or_else(|e| e.into_inner());
                let stopped = hosts.iter().any(|h| h.outcome == fleet::Outcome::Running);
                for bar in &fleet.lines {
                    if stopped {
                        bar.finish_and_clear();
                    } else {
                        bar.finish();
                    }
                }
            }
        }
    }

    fn shows(&self, debug: bool) -> bool {
        match self.verbosity {
            Verbosity::Quiet => false,
            Verbosity::Normal => !debug,
            Verbosity::Verbose => true,
        }
    }
}

/// SSHKit's `Finished in 0.123 seconds with exit status 0 (successful).`, the verdict as `verdict` shows it.
fn finished_message(seconds: f64, status: Option<i32>, verdict: impl Fn(&str) -> String) -> String {
    let code = status.map(|c| c.to_string()).unwrap_or_else(|| "?".into());
    let word = if status == Some(0) {
        "successful"
    } else {
        "failed"
    };
    format!(
        "Finished in {seconds:.3} seconds with exit status {code} ({}).",
        verdict(word)
    )
}

fn replace_words(text: &str, word: &str, with: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = out.chars().last().or_else(|| rest[..i].chars().last());
        let before = if i > 0 {
            rest[..i].chars().last()
        } else {
            before
        };
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        if is_word(before) || is_word(after) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

/// SSHKit's command uuid: 8 hex digits.
pub fn uuid() -> String {
    crate::config::random_hex(4)
}

/// Whose line a command line is: its level, SSHKit uuid, host and stream.
struct CommandOf<'a> {
    level: Level,
    uuid: &'a str,
    host: &'a str,
    stream: Option<Stream>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_whole_words_only() {
        let out = Output::new(Verbosity::Quiet, false, &[]);
        out.add_secrets(["lab".to_string(), "s3cr3t-value".to_string()]);
        assert_eq!(
            out.redact("docker login -u lab -p \"lab\" --label x"),
            "docker login -u [REDACTED] -p \"[REDACTED]\" --label x"
        );
        assert_eq!(out.redact("KEY=s3cr3t-value."), "KEY=[REDACTED].");
    }
}
