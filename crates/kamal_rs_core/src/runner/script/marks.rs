//! The markers a script prints and the exit codes it ends with: one enum each, used to print and to
//! read, so a marker or code renamed on one side is renamed on the other.

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
