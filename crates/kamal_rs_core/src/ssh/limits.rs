//! What a run needs of this machine, checked before any host is contacted, so that a large fleet
//! stops with an error naming the limit instead of failing midway through a rollout:
//! - open files: each host's connection holds a few descriptors in this process (the ControlMaster's
//!   socket, and for each running command its mux socket and stdio pipes);
//! - processes: each host has an ssh ControlMaster, a mux client for its running command, and through
//!   a jump host the master's `ssh -W`;
//! - memory: each of those ssh processes keeps about 1.4 MB of its own (measured: `Pss` in smaps);
//! - local ports: through one jump host every master is a TCP connection to that same address and
//!   port, each needing its own local port.

use std::os::unix::fs::MetadataExt;

use crate::error::{Error, Result};

/// Descriptors of the process itself (Ruby, its libraries, the runtime, the log).
pub const BASE: u64 = 64;
/// Descriptors per host at the busiest moment of a rollout (measured: see the README's resource table).
pub const PER_HOST: u64 = 8;

pub fn needed(hosts: usize) -> u64 {
    BASE + PER_HOST * hosts as u64
}

/// What the open-file limit must be for `needed` descriptors: `Ok(None)` when the soft limit
/// suffices, `Ok(Some(n))` to raise it to `n` (within the hard limit), else the error to show.
pub fn plan(needed: u64, soft: u64, hard: u64, hosts: usize) -> Result<Option<u64>> {
    if soft >= needed {
        return Ok(None);
    }
    if hard >= needed {
        return Ok(Some(hard.min(needed.saturating_mul(2)).max(needed)));
    }
    Err(Error::runtime(format!(
        "{hosts} hosts need about {needed} open files and this process may open only {hard} \
         (`ulimit -n` hard limit): raise it (`ulimit -n {needed}`, or LimitNOFILE= for a service) and run again"
    )))
}

/// Raises this process's soft open-file limit when the hosts need more (as Go's runtime does for any
/// program); an error before any connection when even the hard limit is too low.
pub fn ensure_open_files(hosts: usize) -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Ok(());
    }
    let Some(raise) = plan(needed(hosts), limit.rlim_cur, limit.rlim_max, hosts)? else {
        return Ok(());
    };
    let soft = limit.rlim_cur;
    limit.rlim_cur = raise;
    // SAFETY: setrlimit reads the struct we own; a failure leaves the limit as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        let needed = needed(hosts);
        return Err(Error::runtime(format!(
            "{hosts} hosts need about {needed} open files and the limit could not be raised from \
             {soft}: raise it (`ulimit -n {needed}`) and run again"
        )));
    }
    Ok(())
}

/// ssh processes per host at the busiest moment: the master and the running command's mux client
/// (and the jump's `ssh -W` through a jump host).
pub fn processes_per_host(through_jump: bool) -> u64 {
    if through_jump {
        3
    } else {
        2
    }
}

/// Memory per ssh process, in bytes (its own pages; the rest is shared).
pub const MEMORY_PER_PROCESS: u64 = 2 * 1024 * 1024;

/// What this machine has left, read from /proc and getrlimit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub root: bool,
    /// `ulimit -u` soft and hard limits (processes of this user), and this user's processes now.
    pub nproc_soft: u64,
    pub nproc_hard: u64,
    pub user_processes: u64,
    /// `kernel.pid_max` / `kernel.threads-max`, whichever is lower, and the tasks running now.
    pub tasks_max: u64,
    pub tasks: u64,
    /// `MemAvailable`, bytes.
    pub memory_available: u64,
    /// `net.ipv4.ip_local_port_range`'s size.
    pub local_ports: u64,
}

/// Whether `hosts` connections fit this machine: `Ok(Some(n))` to raise the soft process limit to
/// `n` first, or the error naming the limit that does not fit.
pub fn plan_machine(m: &Machine, hosts: usize, through_jump: bool) -> Result<Option<u64>> {
    let n = hosts as u64;
    let processes = n * processes_per_host(through_jump);
    if m.tasks + processes > m.tasks_max {
        return Err(Error::runtime(format!(
            "{hosts} hosts need about {processes} ssh processes and this machine may start only {} more \
             (kernel.pid_max / kernel.threads-max {}, {} running): raise them, or deploy to fewer hosts at once \
             (--hosts, --roles)",
            m.tasks_max.saturating_sub(m.tasks),
            m.tasks_max,
            m.tasks
        )));
    }
    let memory = processes * MEMORY_PER_PROCESS;
    if memory > m.memory_available {
        return Err(Error::runtime(format!(
            "{hosts} hosts need about {} MB of memory for their ssh processes and {} MB is available: \
             free some, or deploy to fewer hosts at once (--hosts, --roles)",
            memory >> 20,
            m.memory_available >> 20
        )));
    }
    if through_jump && n > m.local_ports {
        return Err(Error::runtime(format!(
            "{hosts} hosts through one jump host need {hosts} local ports to it and \
             net.ipv4.ip_local_port_range has {}: widen it, or deploy to fewer hosts at once",
            m.local_ports
        )));
    }
    // Root is not held to `ulimit -u`.
    let needed = m.user_processes + processes;
    if m.root || m.nproc_soft >= needed {
        return Ok(None);
    }
    if m.nproc_hard >= needed {
        return Ok(Some(m.nproc_hard.min(needed.saturating_mul(2)).max(needed)));
    }
    Err(Error::runtime(format!(
        "{hosts} hosts need about {processes} ssh processes and this user may run only {} more \
         (`ulimit -u` hard limit {}, {} running): raise it (`ulimit -u {needed}`, or LimitNPROC= for a \
         service) and run again",
        m.nproc_hard.saturating_sub(m.user_processes),
        m.nproc_hard,
        m.user_processes
    )))
}

/// Checks processes, memory and local ports for `hosts` connections (raising the soft process limit
/// when the hard one allows); an error before any connection when one does not fit.
pub fn ensure_machine(hosts: usize, through_jump: bool) -> Result<()> {
    let Some(machine) = read_machine() else {
        return Ok(());
    };
    let Some(raise) = plan_machine(&machine, hosts, through_jump)? else {
        return Ok(());
    };
    let limit = libc::rlimit {
        rlim_cur: raise,
        rlim_max: machine.nproc_hard,
    };
    // SAFETY: setrlimit reads the struct we own; a failure leaves the limit as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &limit) } != 0 {
        return Err(Error::runtime(format!(
            "{hosts} hosts need about {} ssh processes and the process limit could not be raised \
             from {}: raise it (`ulimit -u`) and run again",
            hosts as u64 * processes_per_host(through_jump),
            machine.nproc_soft
        )));
    }
    Ok(())
}

/// This machine's limits and use, from /proc; `None` where /proc cannot be read (not Linux).
fn read_machine() -> Option<Machine> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let number = |path: &str| read(path).and_then(|t| t.trim().parse::<u64>().ok());
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut limit) } != 0 {
        return None;
    }
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let (mut tasks, mut user_processes) = (0u64, 0u64);
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        tasks += 1;
        if entry.metadata().is_ok_and(|m| m.uid() == uid) {
            user_processes += 1;
        }
    }
    let memory_available = read("/proc/meminfo")?
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())?
        * 1024;
    let ports = read("/proc/sys/net/ipv4/ip_local_port_range")?;
    let mut range = ports
        .split_whitespace()
        .filter_map(|p| p.parse::<u64>().ok());
    let (low, high) = (range.next()?, range.next()?);
    Some(Machine {
        root: uid == 0,
        nproc_soft: limit.rlim_cur,
        nproc_hard: limit.rlim_max,
        user_processes,
        tasks_max: number("/proc/sys/kernel/pid_max")?.min(number("/proc/sys/kernel/threads-max")?),
        tasks,
        memory_available,
        local_ports: high.saturating_sub(low) + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            root: false,
            nproc_soft: 4096,
            nproc_hard: 4096,
            user_processes: 100,
            tasks_max: 32768,
            tasks: 400,
            memory_available: 16 << 30,
            local_ports: 28232,
        }
    }

    /// Each limit of the machine is named when a fleet does not fit it, before any host is touched.
    #[test]
    fn a_fleet_that_does_not_fit_the_machine_is_stopped_naming_the_limit() {
        let m = machine();
        assert_eq!(plan_machine(&m, 1000, false).unwrap(), None);
        let e = plan_machine(&m, 2000, false).unwrap_err();
        assert_eq!(
            e.message,
            "2000 hosts need about 4000 ssh processes and this user may run only 3996 more (`ulimit -u` hard limit 4096, 100 running): raise it (`ulimit -u 4100`, or LimitNPROC= for a service) and run again"
        );
        assert_eq!(
            plan_machine(&Machine { root: true, ..m }, 2000, false).unwrap(),
            None,
            "root is not held to ulimit -u"
        );
        let raisable = Machine {
            nproc_soft: 1024,
            nproc_hard: 1 << 20,
            ..m
        };
        assert_eq!(plan_machine(&raisable, 1000, false).unwrap(), Some(4200));
        let e = plan_machine(&Machine { tasks: 31000, ..m }, 1000, false).unwrap_err();
        assert!(
            e.message
                .contains("this machine may start only 1768 more (kernel.pid_max"),
            "{}",
            e.message
        );
        let e = plan_machine(
            &Machine {
                memory_available: 1 << 30,
                ..m
            },
            1000,
            false,
        )
        .unwrap_err();
        assert!(e.message.starts_with("1000 hosts need about 4000 MB of memory for their ssh processes and 1024 MB is available"), "{}", e.message);
        let e = plan_machine(
            &Machine {
                local_ports: 500,
                root: true,
                ..m
            },
            1000,
            true,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("need 1000 local ports to it and net.ipv4.ip_local_port_range has 500"),
            "{}",
            e.message
        );
        assert!(read_machine().is_some(), "this machine's /proc is read");
    }

    #[test]
    fn the_soft_limit_is_raised_within_the_hard_one_or_the_run_stops_first() {
        assert_eq!(needed(128), 64 + 8 * 128);
        assert_eq!(plan(1088, 1024, 1_048_576, 128).unwrap(), Some(2176));
        assert_eq!(plan(1088, 4096, 4096, 128).unwrap(), None);
        assert_eq!(plan(1088, 1024, 1100, 128).unwrap(), Some(1100));
        let e = plan(8064, 1024, 4096, 1000).unwrap_err();
        assert_eq!(
            e.message,
            "1000 hosts need about 8064 open files and this process may open only 4096 (`ulimit -n` hard limit): raise it (`ulimit -n 8064`, or LimitNOFILE= for a service) and run again"
        );
    }
}
