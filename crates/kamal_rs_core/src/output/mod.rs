//! What a run prints: Kamal's lines (magenta step lines, SSHKit-style `INFO [uuid] Running ... on HOST`),
//! `-q` and `-v` as in Kamal, colours only on a terminal. On a terminal (and without `-v`) a live view
//! shows one line per host instead of the scrolling log. Every line passes through the redactor, so a
//! secret value never reaches the screen.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct Output {
    verbosity: Verbosity,
    color: bool,
    secrets: Mutex<Vec<String>>,
    live: Option<Live>,
    lines: Mutex<()>,
}

mod fleet;

/// The live view: a line per host, or for a large fleet (`fleet::PER_HOST_UP_TO`) a few lines of counts.
struct Live {
    multi: MultiProgress,
    bars: Vec<(String, ProgressBar)>,
    fleet: Option<Fleet>,
}

struct Fleet {
    hosts: Mutex<Vec<fleet::HostLine>>,
    lines: Vec<ProgressBar>,
}

const MAGENTA: &str = "\x1b[35m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const BLUE: &str = "\x1b[34m";
const RESET: &str = "\x1b[0m";

impl Output {
    /// `live_hosts`: show the per-host live view for these hosts (only used on a terminal).
    pub fn new(verbosity: Verbosity, terminal: bool, live_hosts: &[String]) -> Output {
        let live =
            (terminal && verbosity == Verbosity::Normal && !live_hosts.is_empty()).then(|| {
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
                if live_hosts.len() > fleet::PER_HOST_UP_TO {
                    return Live::fleet(multi, live_hosts);
                }
                let width = live_hosts.iter().map(String::len).max().unwrap_or(0);
                let style = ProgressStyle::with_template(&format!(
                    "  {{spinner}} {{prefix:{width}}}  {{wide_msg}}"
                ))
                .expect("valid template");
                let bars = live_hosts
                    .iter()
                    .map(|h| {
                        let bar = multi.add(
                            ProgressBar::new_spinner()
                                .with_style(style.clone())
                                .with_prefix(h.clone()),
                        );
                        bar.set_message("waiting");
                        bar.enable_steady_tick(Duration::from_millis(120));
                        (h.clone(), bar)
                    })
                    .collect();
                Live {
                    multi,
                    bars,
                    fleet: None,
                }
            });
        Output {
            verbosity,
            color: terminal,
            secrets: Mutex::new(Vec::new()),
            live,
            lines: Mutex::new(()),
        }
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
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

    fn emit(&self, line: &str) {
        let line = self.redact(line);
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

    /// A step line (Kamal's `say`, magenta).
    pub fn say(&self, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            self.emit(&self.paint(MAGENTA, text));
        }
    }

    /// `  INFO [uuid] Running <command> on <host>`.
    pub fn running(&self, uuid: &str, command: &str, host: &str, debug: bool) {
        if self.shows(debug) && self.live.is_none() {
            self.emit_running(uuid, command, host, debug);
        }
    }

    fn emit_running(&self, uuid: &str, command: &str, host: &str, debug: bool) {
        self.emit(&format!(
            "  {} [{}] Running {} on {}",
            self.paint(BLUE, level(debug)),
            self.paint(GREEN, uuid),
            command,
            self.paint(BLUE, host)
        ));
    }

    /// `  INFO [uuid] Finished in 0.123 seconds with exit status 0 (successful) on <host>.`
    pub fn finished(&self, uuid: &str, seconds: f64, status: Option<i32>, host: &str, debug: bool) {
        if self.shows(debug) && self.live.is_none() {
            self.emit_finished(uuid, seconds, status, host, debug);
        }
    }

    fn emit_finished(
        &self,
        uuid: &str,
        seconds: f64,
        status: Option<i32>,
        host: &str,
        debug: bool,
    ) {
        let code = status.map(|c| c.to_string()).unwrap_or_else(|| "?".into());
        let verdict = if status == Some(0) {
            self.paint(GREEN, "successful")
        } else {
            self.paint(RED, "failed")
        };
        self.emit(&format!(
            "  {} [{}] Finished in {seconds:.3} seconds with exit status {code} ({verdict}) on {host}.",
            self.paint(BLUE, level(debug)),
            self.paint(GREEN, uuid)
        ));
    }

    /// The build runs under Kamal's `with_verbosity(:debug)`: its command, each output line as it
    /// arrives and its result show whatever `-q`/`-v` say, and above the live view.
    pub fn build_running(&self, uuid: &str, command: &str) {
        self.emit_running(uuid, command, "localhost", false);
    }

    pub fn build_line(&self, uuid: &str, line: &str) {
        self.emit(&format!("  DEBUG [{}] \t{line}", self.paint(GREEN, uuid)));
    }

    pub fn build_finished(&self, uuid: &str, seconds: f64, status: Option<i32>) {
        self.emit_finished(uuid, seconds, status, "localhost", false);
    }

    /// Command output lines, shown with `-v`.
    pub fn debug(&self, uuid: &str, text: &str) {
        if self.verbosity == Verbosity::Verbose {
            for line in text.lines() {
                self.emit(&format!("  DEBUG [{}] \t{line}", self.paint(GREEN, uuid)));
            }
        }
    }

    pub fn info(&self, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            self.emit(&format!("  {} {text}", self.paint(BLUE, "INFO")));
        }
    }

    pub fn plain(&self, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            self.emit(text);
        }
    }

    pub fn warn(&self, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            self.emit(&self.paint(YELLOW, text));
        }
    }

    /// SSHKit's `warn` inside a step: `  WARN <text>`.
    pub fn warn_line(&self, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            self.emit(&format!("  {} {text}", self.paint(YELLOW, "WARN")));
        }
    }

    /// Shown even with `-q`.
    pub fn error(&self, text: &str) {
        self.emit(&format!("  {} {text}", self.paint(RED, "ERROR")));
    }

    pub fn red(&self, text: &str) {
        self.emit(&self.paint(RED, text));
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
        if let Some((_, bar)) = live.bars.iter().find(|(h, _)| h == host) {
            match outcome {
                fleet::Outcome::Running => bar.set_message(text),
                _ => bar.finish_with_message(text),
            }
        }
    }

    /// Ends the live view (its last state stays on screen).
    pub fn finish(&self) {
        if let Some(live) = &self.live {
            let fleet_lines = live.fleet.iter().flat_map(|f| f.lines.iter());
            for bar in live.bars.iter().map(|(_, b)| b).chain(fleet_lines) {
                if !bar.is_finished() {
                    bar.finish();
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

impl Live {
    fn fleet(multi: MultiProgress, hosts: &[String]) -> Live {
        let first = ProgressStyle::with_template("  {spinner} {wide_msg}").expect("valid template");
        let rest = ProgressStyle::with_template("    {wide_msg}").expect("valid template");
        let lines: Vec<ProgressBar> = (0..fleet::LINES)
            .map(|i| {
                let style = if i == 0 { first.clone() } else { rest.clone() };
                multi.add(ProgressBar::new_spinner().with_style(style))
            })
            .collect();
        lines[0].enable_steady_tick(Duration::from_millis(120));
        let now = std::time::Instant::now();
        let fleet = Fleet {
            hosts: Mutex::new(hosts.iter().map(|h| fleet::HostLine::new(h, now)).collect()),
            lines,
        };
        fleet.draw(&fleet.hosts.lock().unwrap_or_else(|e| e.into_inner()));
        Live {
            multi,
            bars: Vec::new(),
            fleet: Some(fleet),
        }
    }
}

impl Fleet {
    fn set(&self, host: &str, text: &str, outcome: fleet::Outcome) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hosts.iter_mut().find(|h| h.host == host) {
            h.set(text, outcome, std::time::Instant::now());
        }
        self.draw(&hosts);
    }

    fn draw(&self, hosts: &[fleet::HostLine]) {
        let lines = fleet::lines(hosts, std::time::Instant::now());
        for (i, bar) in self.lines.iter().enumerate() {
            bar.set_message(lines.get(i).cloned().unwrap_or_default());
        }
    }
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

fn level(debug: bool) -> &'static str {
    if debug {
        " DEBUG"
    } else {
        "INFO"
    }
}

/// SSHKit's command uuid: 8 hex digits.
pub fn uuid() -> String {
    crate::config::random_hex(4)
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
