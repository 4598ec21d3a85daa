//! Where a script waits for other hosts (a line on its stdin), and how Ctrl-C stops it before its
//! boot.

use super::{Exit, Input, Mark, Script};
use crate::output::timeline::Phase;

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
