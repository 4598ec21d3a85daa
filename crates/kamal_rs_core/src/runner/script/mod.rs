//! Remote scripts built from typed parts.
//!
//! kamal_rs sends several of Kamal's commands in one SSH round trip, as one shell script. A script
//! reports its progress with marker lines on stdout (`kamal-rs:<mark>[ <argument>]`) and a failure with
//! an exit code naming the step that failed. Both are enums here, used to print and to read, so a
//! marker or code renamed on one side is renamed on the other (or fails to compile).
//!
//! A `Script` is a list of shell lines, the commands the log shows (`Shown`) and the bytes they read
//! from stdin, in order. Steps return one; the rollout appends them. Each shown command runs between a
//! start and an end marker (`kamal-rs:start <id>`, `kamal-rs:end <id> <status>`), so the log prints
//! its `Running` line when it starts and its `Finished` line, with its own time and exit status, when
//! it ends, however many commands share the script's one round trip.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::output::timeline::Phase;

mod gates;
mod marks;

pub use gates::*;
pub use marks::*;

/// A command as the log shows it (`INFO [uuid] Running <command> on <host>`), and the step it belongs
/// to. A `debug` one (audit lines, the lock) shows only with `-v`, as Kamal runs those at
/// `verbosity: :debug`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub command: String,
    pub debug: bool,
    pub phase: Phase,
    /// A shell variable the command uses whose value only the host knows (`${cid}`): its start
    /// marker carries the value, and the log shows the command with it in place.
    pub var: Option<&'static str>,
    /// A file written through stdin: logged as Kamal logs an upload (`Uploading <path> 100.0%`)
    /// once it is written, not as a command.
    pub upload: bool,
    /// Runs in the background while the script goes on: logged, but the host's step is not its.
    pub background: bool,
}

impl Shown {
    pub fn info(phase: Phase, command: impl Into<String>) -> Shown {
        Shown {
            command: command.into(),
            debug: false,
            phase,
            var: None,
            upload: false,
            background: false,
        }
    }

    pub fn debug(phase: Phase, command: impl Into<String>) -> Shown {
        Shown {
            debug: true,
            ..Shown::info(phase, command)
        }
    }

    /// The upload of `path`.
    pub fn upload(phase: Phase, path: &str) -> Shown {
        Shown {
            upload: true,
            ..Shown::info(phase, path)
        }
    }

    /// The command runs in the background (`&`).
    pub fn in_background(mut self) -> Shown {
        self.background = true;
        self
    }

    /// The command uses `var` (`${old}`), whose value its start marker carries.
    pub fn with_var(mut self, var: &'static str) -> Shown {
        self.var = Some(var);
        self
    }

    /// The command as the log shows it, `value` in place of its variable.
    pub fn text(&self, value: &str) -> String {
        match self.var {
            Some(var) if !value.is_empty() => self.command.replace(var, value),
            _ => self.command.clone(),
        }
    }
}

/// Defines the end marker's function: it says the command's id and status, and keeps the status.
const PROLOGUE: &str = "kamal_rs_end() { echo \"kamal-rs:end $1 $2\"; return $2; }";

/// A shown command's id is its place in the whole script, known only once the script is rendered
/// (parts are composed first): until then its markers hold a key of its own, between these two
/// characters (Unicode private use, never in a command).
const KEY_OPEN: char = '\u{E000}';
const KEY_CLOSE: char = '\u{E001}';

/// A new key for a shown command, unique in this process.
fn new_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `text` with each key in place of its command's id (its index in `keys`).
fn with_ids(text: &str, keys: &[u64]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(KEY_OPEN) {
        out.push_str(&rest[..open]);
        let after = &rest[open + KEY_OPEN.len_utf8()..];
        let close = after.find(KEY_CLOSE).expect("a key is closed");
        let key: u64 = after[..close].parse().expect("a key is a number");
        let id = keys
            .iter()
            .position(|k| *k == key)
            .expect("the key's command is in the script");
        out.push_str(&id.to_string());
        rest = &after[close + KEY_CLOSE.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// A part of what a script reads on stdin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A line written once the gate is decided: `go`, or nothing more after `stop`.
    Gate(Gate),
    /// File contents (an env file, certificates), read with `head -c N`.
    Bytes(Vec<u8>),
}

/// `mkdir -p .kamal` on its own, shown as Kamal's command, run as `server::ensure_directory`.
pub fn ensure_run_directory(phase: Phase) -> Script {
    let mut s = Script::new();
    s.run(
        Shown::info(phase, crate::commands::server::ENSURE_RUN_DIRECTORY),
        &crate::commands::server::ensure_directory(".kamal"),
    );
    s
}

/// Shell lines, the Kamal commands they stand for, and what they read from stdin, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    lines: Vec<String>,
    /// The shown commands, in the order of their ids.
    pub shown: Vec<Shown>,
    /// Each shown command's key, as its markers hold it until the script is rendered.
    keys: Vec<u64>,
    input: Vec<Input>,
    /// The role whose boot this is: its steps carry the role's name.
    pub role: Option<String>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// A script that is one command, shown as itself.
    pub fn command(shown: Shown) -> Script {
        let mut s = Script::new();
        let command = shown.command.clone();
        s.run(shown, &command);
        s
    }

    pub fn line(&mut self, text: impl Into<String>) -> &mut Script {
        self.lines.push(text.into());
        self
    }

    /// The shell text that runs `body` as `shown`: its start marker, `body`, its end marker with
    /// `body`'s exit status, which the text keeps (a guard around it still sees the command's own).
    /// `body` may assign (`cid=$(docker run ...)`): the markers stay outside the substitution.
    pub fn marked(&mut self, shown: Shown, body: &str) -> String {
        debug_assert!(
            !body.starts_with("mkdir -p "),
            "Kamal's `mkdir -p` runs as server::ensure_directory: {body}"
        );
        let key = new_key();
        let id = format!("{KEY_OPEN}{key}{KEY_CLOSE}");
        let value = shown.var.map(|v| format!(" {v}")).unwrap_or_default();
        self.shown.push(shown);
        self.keys.push(key);
        format!("{{ echo \"{PREFIX}start {id}{value}\"; {body}; kamal_rs_end {id} $?; }}")
    }

    /// A line that is `body`, shown as `shown`.
    pub fn run(&mut self, shown: Shown, body: &str) -> &mut Script {
        let text = self.marked(shown, body);
        self.line(text)
    }

    /// Bytes the script reads from stdin (after what earlier parts read).
    pub fn feed(&mut self, bytes: &[u8]) -> &mut Script {
        match self.input.last_mut() {
            Some(Input::Bytes(b)) => b.extend_from_slice(bytes),
            _ => self.input.push(Input::Bytes(bytes.to_vec())),
        }
        self
    }

    /// `other` runs after what is already here.
    pub fn append(&mut self, other: Script) -> &mut Script {
        self.lines.extend(other.lines);
        self.shown.extend(other.shown);
        self.keys.extend(other.keys);
        for part in other.input {
            match part {
                Input::Bytes(b) => {
                    self.feed(&b);
                }
                gate => self.input.push(gate),
            }
        }
        self
    }

    /// The script boots `role`: its steps carry the role's name.
    pub fn for_role(mut self, role: &str) -> Script {
        self.role = Some(role.to_string());
        self
    }

    /// What the script reads on stdin, in order.
    pub fn input(&self) -> &[Input] {
        &self.input
    }

    /// Every byte the script reads, gates left out.
    pub fn stdin(&self) -> Vec<u8> {
        self.input
            .iter()
            .filter_map(|p| match p {
                Input::Bytes(b) => Some(b.as_slice()),
                Input::Gate(_) => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    /// The gates the script waits at, in order.
    pub fn gates(&self) -> Vec<Gate> {
        self.input
            .iter()
            .filter_map(|p| match p {
                Input::Gate(g) => Some(*g),
                Input::Bytes(_) => None,
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The script's text, one part a line, after the end marker's function when it shows commands;
    /// each shown command's markers carry its id, its place in the script.
    pub fn text(&self) -> String {
        let body = with_ids(&self.body(), &self.keys);
        if self.shown.is_empty() {
            body
        } else {
            format!("{PROLOGUE}\n{body}")
        }
    }

    /// The lines alone (keys, not ids, in their markers), to place inside another script's line (`map`).
    fn body(&self) -> String {
        self.lines.join("\n")
    }

    /// The same script as one line, its parts joined with ` && `: each runs only if the one before
    /// succeeded.
    pub fn chain(mut self) -> Script {
        let line = self.lines.join(" && ");
        self.lines = vec![line];
        self
    }

    /// The same script as one line, `wrap` applied to its lines (a guard, a subshell), its shown
    /// commands and input kept.
    pub fn map(mut self, wrap: impl FnOnce(&str) -> String) -> Script {
        let line = wrap(&self.body());
        self.lines = vec![line];
        self
    }
}

/// A script's text without its markers, and with Kamal's `mkdir -p DIR` where it tests for DIR
/// first: the commands as Kamal writes them (for tests that compare them).
#[cfg(test)]
pub fn unmarked(text: &str) -> String {
    let start = regex::Regex::new(r#"\{ echo "kamal-rs:start \d+[^"]*"; "#).unwrap();
    let end = regex::Regex::new(r"; kamal_rs_end \d+ \$\?; \}").unwrap();
    let dir = regex::Regex::new(r"\{ \[ -d (\S+) \] \|\| mkdir -p \S+; \}").unwrap();
    let text = text
        .strip_prefix(PROLOGUE)
        .map_or(text, |t| t.trim_start_matches('\n'));
    let text = end
        .replace_all(&start.replace_all(text, ""), "")
        .into_owned();
    dir.replace_all(&text, "mkdir -p $1").into_owned()
}

#[cfg(test)]
mod tests;
