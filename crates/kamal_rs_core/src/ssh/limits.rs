//! The open files a run needs, checked before any host is contacted: each host's connection holds a
//! few descriptors in this process (the ControlMaster's socket, and for each running command its
//! mux socket and stdio pipes), so a large fleet can exceed a low `ulimit -n` midway through a rollout.

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

#[cfg(test)]
mod tests {
    use super::*;

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
