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

use std::sync::OnceLock;

use regex::Regex;

use crate::output::timeline::Phase;

/// Every marker line starts with this.
pub const PREFIX: &str = "kamal-rs:";

/// A progress line of a remote script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mark {
    /// The script's shell PID: Ctrl-C sends it SIGTERM while the script is before its boot.
    Pid,
    /// Taking the deploy lock; the lock is held.
    Lock,
    Locked,
    /// The pull's parts: registry login, audit line, `docker pull`, `service` label check.
    Login,
    Audit,
    Pull,
    Label,
    /// The host is ready to boot (pulled, kamal-proxy booted); it now waits for the pull barrier.
    Ready,
    /// The pull barrier closed: the script stops without booting.
    Halted,
    /// kamal-proxy's boot begins; the version of the kamal-proxy already there.
    ProxyBoot,
    ProxyVersion,
    /// The boot begins: from here on SIGTERM no longer stops the script.
    Boot,
    /// A stale container stopped (its version).
    Stale,
    /// A container of the new version's name renamed (to this version).
    Renamed,
    /// The version running before the boot (empty: none).
    Old,
    Tls,
    Run,
    /// The new container's ID (proxy roles), before kamal-proxy deploys it.
    Container,
    /// The new container is healthy (kamal-proxy switched to it, or its health check passed).
    Healthy,
    /// The old container is being stopped (its version).
    Stopping,
    /// The boot of a proxy role finished; `Started`: a role without the proxy was started.
    Done,
    Started,
    /// Every boot of the host succeeded; it now waits for the other hosts' before it tags latest.
    Booted,
    /// Latest was tagged (and old containers pruned, the lock released) after the boot.
    Tagged,
    /// The exit status of the command that failed; the script then exits with its step's `Exit`.
    Failed,
    /// The script stopped on SIGTERM (Ctrl-C) before its boot.
    Interrupted,
    /// Kamal 1.x: an env file the deploy needs is not on the host (its path).
    MissingEnv,
    /// Rollback: a role's containers are listed next (its name); the version it runs; a role with no
    /// container of the version asked for (its name).
    Role,
    Running,
    Missing,
    /// Kamal 1.x health waits: a moment 1.9's poller would have checked again (`<status> <attempt>`).
    RetryReady,
    RetryUnhealthy,
    /// Kamal 1.x health waits: the budget is spent (the last status).
    TimeoutReady,
    TimeoutUnhealthy,
    /// A shown command starts (its id); ends (its id and exit status).
    Start,
    End,
    /// The script waits for a gate (the step it waits in: `lock-wait`, `pull-barrier`, `tag-wait`).
    Wait,
}

impl Mark {
    pub const ALL: [Mark; 37] = [
        Mark::Pid,
        Mark::Ready,
        Mark::Halted,
        Mark::Lock,
        Mark::Locked,
        Mark::Login,
        Mark::Audit,
        Mark::Pull,
        Mark::Label,
        Mark::ProxyBoot,
        Mark::ProxyVersion,
        Mark::Boot,
        Mark::Stale,
        Mark::Renamed,
        Mark::Old,
        Mark::Tls,
        Mark::Run,
        Mark::Container,
        Mark::Healthy,
        Mark::Stopping,
        Mark::Done,
        Mark::Started,
        Mark::Booted,
        Mark::Tagged,
        Mark::Failed,
        Mark::Interrupted,
        Mark::MissingEnv,
        Mark::Role,
        Mark::Running,
        Mark::Missing,
        Mark::RetryReady,
        Mark::RetryUnhealthy,
        Mark::TimeoutReady,
        Mark::TimeoutUnhealthy,
        Mark::Start,
        Mark::End,
        Mark::Wait,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mark::Pid => "pid",
            Mark::Ready => "ready",
            Mark::Halted => "halted",
            Mark::Lock => "lock",
            Mark::Locked => "locked",
            Mark::Login => "login",
            Mark::Audit => "audit",
            Mark::Pull => "pull",
            Mark::Label => "label",
            Mark::ProxyBoot => "proxy-boot",
            Mark::ProxyVersion => "proxy-version",
            Mark::Boot => "boot",
            Mark::Stale => "stale",
            Mark::Renamed => "renamed",
            Mark::Old => "old",
            Mark::Tls => "tls",
            Mark::Run => "run",
            Mark::Container => "container",
            Mark::Healthy => "healthy",
            Mark::Stopping => "stopping",
            Mark::Done => "done",
            Mark::Started => "started",
            Mark::Booted => "booted",
            Mark::Tagged => "tagged",
            Mark::Failed => "failed",
            Mark::Interrupted => "interrupted",
            Mark::MissingEnv => "missing-env",
            Mark::Role => "role",
            Mark::Running => "running",
            Mark::Missing => "missing",
            Mark::RetryReady => "retry-ready",
            Mark::RetryUnhealthy => "retry-unhealthy",
            Mark::TimeoutReady => "timeout-ready",
            Mark::TimeoutUnhealthy => "timeout-unhealthy",
            Mark::Start => "start",
            Mark::End => "end",
            Mark::Wait => "wait",
        }
    }

    /// `echo "kamal-rs:<name>"`.
    pub fn echo(self) -> String {
        format!("echo \"{PREFIX}{}\"", self.name())
    }

    /// `echo "kamal-rs:<name> <arg>"`; `arg` is shell text, expanded inside double quotes (`$old`).
    pub fn echo_with(self, arg: &str) -> String {
        format!("echo \"{PREFIX}{} {arg}\"", self.name())
    }

    /// A marker line and its argument (empty when it has none).
    pub fn parse(line: &str) -> Option<(Mark, &str)> {
        let rest = line.strip_prefix(PREFIX)?;
        let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        Mark::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .map(|m| (m, arg.trim()))
    }

    /// The argument of the first `self` line in a script's stdout.
    pub fn find(self, stdout: &str) -> Option<&str> {
        stdout
            .lines()
            .filter_map(Mark::parse)
            .find(|(m, _)| *m == self)
            .map(|(_, arg)| arg)
    }

    /// Whether a `self` line is in a script's stdout.
    pub fn seen(self, stdout: &str) -> bool {
        self.find(stdout).is_some()
    }
}

/// Whether a stdout line is one of ours (kept out of what the log shows as command output).
pub fn is_marker(line: &str) -> bool {
    line.starts_with(PREFIX)
}

/// The step of a composed script a failure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Lock,
    Pull,
    ProxyBoot,
    Boot,
    Tag,
    /// Ctrl-C before the boot.
    Interrupt,
    /// Another host failed before its boot: this one stopped at the pull barrier.
    Halt,
    /// Rollback: the host has no container of the version for one of its roles.
    Unavailable,
}

/// Exit codes of kamal_rs's remote scripts: each names the part that failed, and so the step that
/// owns the failure. One table for Kamal 2 and 1.x: no code means two things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The env file, custom TLS certificates or error pages could not be written.
    Files = 70,
    /// An audit line could not be written.
    Audit = 71,
    /// `docker run` failed.
    Run = 72,
    /// The new container has no ID (Kamal's BootError).
    Endpoint = 73,
    /// `kamal-proxy deploy` failed (the new container never became healthy).
    ProxyDeploy = 74,
    /// The new version's assets could not be extracted.
    Assets = 75,
    /// Tagging latest, pruning or releasing the lock after the run's only boot.
    Tag = 76,
    /// The deploy lock is held by someone else (or could not be taken).
    Locked = 77,
    /// `docker login`, `docker pull` or the `service` label check failed.
    Pull = 78,
    /// kamal-proxy could not be booted.
    ProxyBoot = 79,
    /// A container of the new version's name could not be renamed.
    Rename = 80,
    /// Kamal 1.x: the health cord could not be tied.
    Cord = 81,
    /// Kamal 1.x: the new container did not become healthy in time.
    NotReady = 82,
    /// Kamal 1.x: the old container did not become unhealthy after its cord was cut.
    NotUnhealthy = 83,
    /// Kamal 1.x: an env file the deploy needs is missing.
    MissingEnv = 84,
    /// The pull barrier closed (another host failed before its boot, or Ctrl-C): no boot.
    Halted = 85,
    /// Rollback: no container of the version for one of the host's roles (Kamal's `container_available?`).
    Unavailable = 86,
    /// The running kamal-proxy is older than Kamal's minimum.
    ProxyTooOld = 90,
    /// Ctrl-C (SIGTERM) stopped the script before its boot.
    Interrupted = 130,
}

impl Exit {
    pub const ALL: [Exit; 19] = [
        Exit::Files,
        Exit::Audit,
        Exit::Run,
        Exit::Endpoint,
        Exit::ProxyDeploy,
        Exit::Assets,
        Exit::Tag,
        Exit::Locked,
        Exit::Pull,
        Exit::ProxyBoot,
        Exit::Rename,
        Exit::Cord,
        Exit::NotReady,
        Exit::NotUnhealthy,
        Exit::MissingEnv,
        Exit::Halted,
        Exit::Unavailable,
        Exit::ProxyTooOld,
        Exit::Interrupted,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn of(status: Option<i32>) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| Some(e.code()) == status)
    }

    /// `exit N`.
    pub fn exit(self) -> String {
        format!("exit {}", self.code())
    }

    pub fn step(self) -> Step {
        match self {
            Exit::Locked => Step::Lock,
            Exit::Pull | Exit::MissingEnv => Step::Pull,
            Exit::ProxyBoot | Exit::ProxyTooOld => Step::ProxyBoot,
            Exit::Tag => Step::Tag,
            Exit::Interrupted => Step::Interrupt,
            Exit::Halted => Step::Halt,
            Exit::Unavailable => Step::Unavailable,
            Exit::Files
            | Exit::Audit
            | Exit::Run
            | Exit::Endpoint
            | Exit::ProxyDeploy
            | Exit::Assets
            | Exit::Rename
            | Exit::Cord
            | Exit::NotReady
            | Exit::NotUnhealthy => Step::Boot,
        }
    }
}

/// `{ body; } || { rc=$?; echo "kamal-rs:failed $rc"; exit N; }`: the failing command's own status is
/// kept for the error text, and the script's exit names the step.
pub fn guard(body: &str, exit: Exit) -> String {
    format!(
        "{{ {body}; }} || {{ rc=$?; {}; {}; }}",
        Mark::Failed.echo_with("$rc"),
        exit.exit()
    )
}

/// A decision taken across hosts that a script waits for, partway, as a line on stdin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The deploy lock is held (by the primary host's script, or before the scripts started).
    Lock,
    /// Every host that pulls is ready: the pull barrier.
    Pulled,
    /// Every host's boots succeeded: `latest` may be tagged.
    Booted,
}

/// Waits for the pull barrier's line on stdin: `go` lets the script go on to its boot, anything else
/// ends it with `Exit::Halted`. The line is written by kamal_rs once every host is ready (or one failed).
pub fn gate() -> Script {
    wait_for(Gate::Pulled, Some(Mark::Ready), Phase::PullBarrier)
}

/// Waits for the lock's line on stdin: a host pulls while the primary takes the lock, as Kamal pulls
/// before its `with_lock`, and changes nothing else before the lock is held. Written as soon as the
/// lock is settled, usually before the script reads it: it costs no round trip.
pub fn lock_gate() -> Script {
    wait_for(Gate::Lock, None, Phase::LockWait)
}

/// After a host's last boot: it says its boots succeeded (unless the boot `announced` it already) and
/// waits until every host's did, as Kamal tags `latest` only after the last boot; `stop` (a boot
/// failed elsewhere, or Ctrl-C) ends it with `Exit::Halted`, its new version serving but not tagged.
/// Nothing in a boot reads stdin (the docker CLI reads it only with `-i`), so the line waits for this
/// read.
pub fn booted_gate(announced: bool) -> Script {
    let mark = (!announced).then_some(Mark::Booted);
    wait_for(Gate::Booted, mark, Phase::TagWait)
}

/// Says `mark` (if any) and that it waits in `step`, then reads the gate's line.
fn wait_for(gate: Gate, mark: Option<Mark>, step: Phase) -> Script {
    let mut s = Script::new();
    s.input.push(Input::Gate(gate));
    let say = mark.map(|m| format!("{}; ", m.echo())).unwrap_or_default();
    let say = format!("{say}{}; ", Mark::Wait.echo_with(step.name()));
    s.line(format!(
        "{say}read -r go || go=stop; [ \"$go\" = go ] || {{ {}; {}; }}",
        Mark::Halted.echo(),
        Exit::Halted.exit()
    ));
    s
}

/// Until its boot, a script can be stopped (Ctrl-C): SIGTERM makes it say so, stop the background
/// command it waits for (`$bg`, a `docker pull`), and exit with `Exit::Interrupted`. It reports its PID
/// first, so that kamal_rs can send the signal. While `$hold` is set (the lock being taken) the signal
/// is kept for `release_held` instead, so the script never stops between taking the lock and saying so.
pub fn interruptible() -> String {
    format!(
        "trap 'if [ -n \"$hold\" ]; then held=1; else {}; [ -z \"$bg\" ] || kill $bg 2>/dev/null; {}; fi' TERM; {}",
        Mark::Interrupted.echo(),
        Exit::Interrupted.exit(),
        Mark::Pid.echo_with("$$")
    )
}

/// Holds SIGTERM (`interruptible`) around `body`, then acts on one that came meanwhile.
pub fn holding_interrupts(body: &str) -> String {
    format!(
        "hold=1; {body}; hold=; [ -z \"$held\" ] || {{ {}; {}; }}",
        Mark::Interrupted.echo(),
        Exit::Interrupted.exit()
    )
}

/// From here on SIGTERM is ignored: a boot always finishes.
pub fn uninterruptible() -> String {
    format!("trap '' TERM; {}", Mark::Boot.echo())
}

/// `command` in the background, waited for: a trapped SIGTERM interrupts the wait (and the trap stops
/// the command), where a foreground command would have to finish first.
pub fn waited(command: &str) -> String {
    format!("{{ {command} </dev/null & bg=$!; wait $bg; }}")
}

/// `{ body; } </dev/null`: a part that must not read the script's stdin (it carries the env file).
pub fn no_stdin(body: &str) -> String {
    format!("{{ {body}; }} </dev/null")
}

/// `{ body; } || exit N`.
pub fn or_exit(body: &str, exit: Exit) -> String {
    format!("{{ {body}; }} || {}", exit.exit())
}

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

/// The ids in a part's marked commands, moved up by `by` (the part follows `by` shown commands).
fn shift_ids(line: &str, by: usize) -> String {
    static IDS: OnceLock<Regex> = OnceLock::new();
    if by == 0 {
        return line.to_string();
    }
    let ids =
        IDS.get_or_init(|| Regex::new(r"(kamal-rs:start |kamal_rs_end )(\d+)\b").expect("regex"));
    ids.replace_all(line, |c: &regex::Captures<'_>| {
        let id: usize = c[2].parse().unwrap_or(0);
        format!("{}{}", &c[1], id + by)
    })
    .into_owned()
}

/// A part of what a script reads on stdin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A line written once the gate is decided: `go`, or nothing more after `stop`.
    Gate(Gate),
    /// File contents (an env file, certificates), read with `head -c N`.
    Bytes(Vec<u8>),
}

/// A command that begins with Kamal's `mkdir -p DIR` tests for the directory first: it exists on
/// every deploy but the first, and the shell's `[` is a builtin, where `mkdir` is a process on the
/// host (a fleet pays each once per host and command). Same effect and exit status.
fn existing_directory_skipped(body: &str) -> std::borrow::Cow<'_, str> {
    let Some(rest) = body.strip_prefix("mkdir -p ") else {
        return body.into();
    };
    let (dir, after) = rest.split_at(rest.find(' ').unwrap_or(rest.len()));
    let plain = !dir.is_empty()
        && dir
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
    if plain && (after.is_empty() || after.starts_with(" && ") || after.starts_with(" ; ")) {
        format!("{{ [ -d {dir} ] || mkdir -p {dir}; }}{after}").into()
    } else {
        body.into()
    }
}

/// Shell lines, the Kamal commands they stand for, and what they read from stdin, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    lines: Vec<String>,
    pub shown: Vec<Shown>,
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
        let body = existing_directory_skipped(body);
        let id = self.shown.len();
        let value = shown.var.map(|v| format!(" {v}")).unwrap_or_default();
        self.shown.push(shown);
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
        let by = self.shown.len();
        self.lines
            .extend(other.lines.iter().map(|line| shift_ids(line, by)));
        self.shown.extend(other.shown);
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

    /// The script's text, one part a line, after the end marker's function when it shows commands.
    pub fn text(&self) -> String {
        if self.shown.is_empty() {
            self.body()
        } else {
            format!("{PROLOGUE}\n{}", self.body())
        }
    }

    /// The lines alone, to place inside another script's line (`map`).
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
    let start = Regex::new(r#"\{ echo "kamal-rs:start \d+[^"]*"; "#).unwrap();
    let end = Regex::new(r"; kamal_rs_end \d+ \$\?; \}").unwrap();
    let dir = Regex::new(r"\{ \[ -d (\S+) \] \|\| mkdir -p \S+; \}").unwrap();
    let text = text
        .strip_prefix(PROLOGUE)
        .map_or(text, |t| t.trim_start_matches('\n'));
    let text = end
        .replace_all(&start.replace_all(text, ""), "")
        .into_owned();
    dir.replace_all(&text, "mkdir -p $1").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_directory_is_not_made_again() {
        for (kamal, run) in [
            ("mkdir -p .kamal", "{ [ -d .kamal ] || mkdir -p .kamal; }"),
            (
                "mkdir -p .kamal && echo \"x\" >> .kamal/app-audit.log",
                "{ [ -d .kamal ] || mkdir -p .kamal; } && echo \"x\" >> .kamal/app-audit.log",
            ),
            (
                "mkdir -p .kamal/cords/a ; touch .kamal/cords/a/cord",
                "{ [ -d .kamal/cords/a ] || mkdir -p .kamal/cords/a; } ; touch .kamal/cords/a/cord",
            ),
            ("mkdir -p a b", "mkdir -p a b"),
            ("mkdir -p \"$d\"", "mkdir -p \"$d\""),
            ("mkdir -p .kamal| cat", "mkdir -p .kamal| cat"),
            ("docker ps", "docker ps"),
        ] {
            assert_eq!(existing_directory_skipped(kamal), run);
            assert_eq!(unmarked(run), kamal);
        }
    }

    #[test]
    fn every_mark_is_printed_then_parsed_back() {
        for mark in Mark::ALL {
            let echo = mark.echo_with("v1 2");
            // What `echo "..."` prints: the text between the quotes.
            let printed = echo
                .strip_prefix("echo \"")
                .and_then(|s| s.strip_suffix('"'))
                .unwrap();
            assert_eq!(Mark::parse(printed), Some((mark, "v1 2")), "{echo}");
            let bare = mark.echo();
            let printed = &bare[6..bare.len() - 1];
            assert_eq!(Mark::parse(printed), Some((mark, "")), "{bare}");
        }
        let names: std::collections::HashSet<&str> = Mark::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Mark::ALL.len(), "mark names are distinct");
        assert_eq!(Mark::parse("kamal-rs:nonsense x"), None);
        assert_eq!(Mark::parse("app v1"), None);
    }

    #[test]
    fn every_exit_code_is_its_own() {
        let codes: std::collections::HashSet<i32> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), Exit::ALL.len(), "exit codes are distinct");
        for exit in Exit::ALL {
            assert_eq!(Exit::of(Some(exit.code())), Some(exit));
        }
        assert_eq!(Exit::of(Some(0)), None);
        assert_eq!(Exit::of(Some(1)), None);
        assert_eq!(Exit::of(None), None);
    }

    /// Runs `script` with `sh -c`, `input` on its stdin: (exit status, stdout).
    fn sh_with_stdin(script: &str, input: &str) -> (Option<i32>, String) {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.code(), stdout)
    }

    #[test]
    fn the_gate_goes_on_or_halts() {
        let script = format!("{}\necho booted", gate().text());
        let (code, out) = sh_with_stdin(&script, "go\nENV=1\n");
        let waits = "kamal-rs:ready\nkamal-rs:wait pull-barrier\n";
        assert_eq!((code, out), (Some(0), format!("{waits}booted\n")));
        let (code, out) = sh_with_stdin(&script, "stop\n");
        assert_eq!((code, out), (Some(85), format!("{waits}kamal-rs:halted\n")));
        let (code, _) = sh_with_stdin(&script, "");
        assert_eq!(code, Some(85), "stdin closed: no boot");
    }

    /// After its boot a script says so and tags only on `go`; without it, it ends with 85.
    #[test]
    fn the_booted_gate_tags_or_halts() {
        let script = format!("{}\necho tagged", booted_gate(false).text());
        let (code, out) = sh_with_stdin(&script, "go\n");
        let waits = "kamal-rs:booted\nkamal-rs:wait tag-wait\n";
        assert_eq!((code, out), (Some(0), format!("{waits}tagged\n")));
        let (code, out) = sh_with_stdin(&script, "");
        assert_eq!((code, out), (Some(85), format!("{waits}kamal-rs:halted\n")));
        assert_eq!(Exit::of(code).map(Exit::step), Some(Step::Halt));
        // Announced by the boot already: only the wait.
        let script = format!("{}\necho tagged", booted_gate(true).text());
        let (code, out) = sh_with_stdin(&script, "go\n");
        assert_eq!(
            (code, out),
            (Some(0), "kamal-rs:wait tag-wait\ntagged\n".to_string())
        );
    }

    /// SIGTERM while the lock is taken waits until the script has said so, then ends it.
    #[test]
    fn an_interrupt_while_taking_the_lock_waits_for_the_locked_mark() {
        let script = format!(
            "{}\n{}\necho after",
            interruptible(),
            holding_interrupts("kill -TERM $$; sleep 0.2; echo \"kamal-rs:locked\"")
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(130), "{stdout}");
        assert!(
            stdout.contains("kamal-rs:locked\nkamal-rs:interrupted"),
            "{stdout}"
        );
        assert!(!stdout.contains("after"));
    }

    /// SIGTERM during a waited command ends the script at once, the command stopped with it.
    #[test]
    fn an_interrupt_stops_a_waited_command_at_once() {
        let script = format!("{}\n{}\necho after", interruptible(), waited("sleep 30"));
        let started = std::time::Instant::now();
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            Mark::Interrupted.seen(&stdout) && !stdout.contains("after"),
            "{stdout}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "not waiting for the command"
        );
    }

    /// Each shown command says when it starts and how it ended, ids stay right when parts are
    /// appended or wrapped, a guard still sees the command's own status, and a command after the one
    /// that failed never says it started.
    #[test]
    fn shown_commands_mark_their_start_and_end() {
        let mut first = Script::new();
        first.run(Shown::info(Phase::Pull, "echo one"), "echo one");
        let mut second = Script::new();
        let failing = second.marked(Shown::info(Phase::Boot, "sh -c 'exit 3'"), "sh -c 'exit 3'");
        second.line(guard(&failing, Exit::Run));
        second.run(Shown::info(Phase::Boot, "echo never"), "echo never");
        let mut s = Script::new();
        s.append(first.map(|t| format!("( {t} )")));
        s.append(second);
        assert_eq!(s.shown.len(), 3);
        let text = s.text();
        assert!(text.starts_with(PROLOGUE), "{text}");
        assert!(
            text.contains("kamal-rs:start 1\"; sh -c 'exit 3'; kamal_rs_end 1 $?"),
            "{text}"
        );
        let (code, out) = sh_with_stdin(&text, "");
        assert_eq!(code, Some(72));
        let marks: Vec<(Mark, &str)> = out.lines().filter_map(Mark::parse).collect();
        assert_eq!(
            marks,
            [
                (Mark::Start, "0"),
                (Mark::End, "0 0"),
                (Mark::Start, "1"),
                (Mark::End, "1 3"),
                (Mark::Failed, "3"),
            ],
            "{out}"
        );
        assert!(out.contains("one\n"));
    }

    #[test]
    fn a_guarded_part_reports_its_status_and_exits_with_its_code() {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{}\necho after", guard("false", Exit::Pull)))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(Mark::Failed.find(&stdout), Some("1"));
        assert!(!stdout.contains("after"));
    }
}
