//! The failure budget (`--max-fail N` or `--max-fail P%`, `KAMAL_RS_MAX_FAIL`): a host that cannot
//! be reached, whose pull fails or whose boot fails is left behind, and the run goes on with the rest,
//! while the hosts left behind stay within the budget. Without one (the default, 0) the first such
//! failure stops the run, as Kamal's does. A host left behind keeps serving what it served: its
//! failure came before kamal-proxy switched to the new container (Kamal leaves a failed boot so too).

use std::collections::HashMap;
use std::sync::Mutex;

use super::options::{Command, CONFIG_FILE};
use super::plan;
use super::run::Run;
use crate::config::KamalMajor;
use crate::error::{Error, Result};

/// How many hosts may be left behind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxFail {
    Hosts(usize),
    Percent(f64),
}

impl MaxFail {
    /// `N` or `P%` (`P` may have decimals).
    pub fn parse(text: &str) -> Result<MaxFail> {
        let text = text.trim();
        let bad = || {
            Error::argument(format!(
                "--max-fail takes a number of hosts or a percentage of them (3, 2%), not {text:?}"
            ))
        };
        if let Some(percent) = text.strip_suffix('%') {
            let p: f64 = percent.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(bad());
            }
            return Ok(MaxFail::Percent(p));
        }
        text.parse().map(MaxFail::Hosts).map_err(|_| bad())
    }

    /// The number of hosts, of `targeted`, that may be left behind (a percentage rounds down).
    pub fn hosts(self, targeted: usize) -> usize {
        match self {
            MaxFail::Hosts(n) => n,
            MaxFail::Percent(p) => ((targeted as f64) * p / 100.0 + 1e-9).floor() as usize,
        }
    }
}

/// The run's hosts left behind, each with its reason, against the budget.
pub struct Budget {
    max: usize,
    /// Host, reason, and whether it was within the budget; in the order they failed.
    left: Mutex<Vec<(String, String, bool)>>,
    decided: Mutex<HashMap<String, bool>>,
}

impl Budget {
    pub fn new(max: usize) -> Budget {
        Budget {
            max,
            left: Mutex::new(Vec::new()),
            decided: Mutex::new(HashMap::new()),
        }
    }

    /// Whether hosts may be left behind at all.
    pub fn allows_any(&self) -> bool {
        self.max > 0
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// `host` failed for `reason`: true when it is left behind within the budget and the run goes on
    /// without it. Asked again for the same host, the same answer.
    pub fn leave(&self, host: &str, reason: &str) -> bool {
        let mut decided = self.decided.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(within) = decided.get(host) {
            return *within;
        }
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        let within = left.len() < self.max;
        left.push((host.to_string(), reason.to_string(), within));
        decided.insert(host.to_string(), within);
        within
    }

    /// Hosts left behind within the budget: (host, reason).
    pub fn left_behind(&self) -> Vec<(String, String)> {
        let left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        left.iter()
            .filter(|(_, _, within)| *within)
            .map(|(h, r, _)| (h.clone(), r.clone()))
            .collect()
    }

    pub fn is_left_behind(&self, host: &str) -> bool {
        self.decided
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
            .copied()
            .unwrap_or(false)
    }
}

/// A budget needs the per-host rollout of a Kamal 2 config, where each host goes on by itself; in boot
/// groups (a `pre-deploy` or `pre-app-boot` hook, `boot.limit`, `boot.wait`, a Docker Hub mirror to
/// seed) or a 1.x config, the run says so before any host rather than ignore the option.
pub fn fits(run: &Run<'_>) -> Result<()> {
    let option = if run.budget.allows_any() {
        "--max-fail leaves hosts behind"
    } else if run.canary.is_some() {
        "--canary boots its wave first"
    } else {
        return Ok(());
    };
    let why = if run.config.major != KamalMajor::V2 {
        "a Kamal 1.x config"
    } else if run.hooks.exists("pre-deploy") || run.hooks.exists("pre-app-boot") {
        "a pre-deploy or pre-app-boot hook, which runs between every host's pull and any boot"
    } else if !plan::per_host(run) {
        "boot groups (boot.limit or boot.wait) or a Docker Hub mirror to seed first"
    } else {
        return Ok(());
    };
    let name = option.split(' ').next().unwrap_or(option);
    Err(Error::argument(format!(
        "{option} in the per-host rollout, and this run has {why}: run it without {name}"
    )))
}

/// The command line that deploys exactly `hosts` with the run's version, destination and roles, once
/// they are back: a deploy's or redeploy's image is pushed already (`redeploy -P`), a rollback's
/// containers are on the hosts.
pub fn finish_command(run: &Run<'_>, hosts: &[String]) -> String {
    let mut words: Vec<String> = vec!["kamal-rs".into()];
    match run.options.command {
        Command::Rollback => words.extend(["rollback".into(), run.version.clone()]),
        _ => words.extend([
            "redeploy".into(),
            "-P".into(),
            "--version".into(),
            run.version.clone(),
        ]),
    }
    if let Some(file) = run
        .options
        .config_file
        .as_deref()
        .filter(|f| *f != CONFIG_FILE)
    {
        words.extend(["-c".into(), file.to_string()]);
    }
    if let Some(d) = &run.config.destination {
        words.extend(["-d".into(), d.clone()]);
    }
    if let Some(roles) = run.options.roles() {
        words.extend(["-r".into(), roles.to_string()]);
    }
    if run.options.skip_hooks {
        words.push("-H".into());
    }
    words.extend(["-h".into(), hosts.join(",")]);
    words
        .iter()
        .map(|w| crate::shell::shellescape(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The reason a host is left behind, in a few words: the first line of its error, without SSHKit's
/// `Exception while executing on host H: ` prefix.
pub fn reason(message: &str) -> String {
    let first = message.lines().next().unwrap_or("");
    first
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("Exception while executing on host"))
        .map(|(_, rest)| rest)
        .unwrap_or(first)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_hosts_or_a_share_of_them() {
        assert_eq!(MaxFail::parse("3").unwrap().hosts(1000), 3);
        assert_eq!(MaxFail::parse("3%").unwrap().hosts(1000), 30);
        assert_eq!(MaxFail::parse("2.5%").unwrap().hosts(100), 2);
        assert_eq!(MaxFail::parse("10%").unwrap().hosts(6), 0);
        assert_eq!(MaxFail::parse("20%").unwrap().hosts(5), 1);
        for bad in ["", "x", "-1", "101%", "3 hosts"] {
            let e = MaxFail::parse(bad).unwrap_err();
            assert!(
                e.message.starts_with("--max-fail takes"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn hosts_are_left_behind_until_the_budget_is_spent() {
        let b = Budget::new(2);
        assert!(b.leave("a", "unreachable"));
        assert!(b.leave("a", "again"), "the same answer for the same host");
        assert!(b.leave("b", "pull failed"));
        assert!(!b.leave("c", "boot failed"));
        assert_eq!(
            b.left_behind(),
            vec![
                ("a".to_string(), "unreachable".to_string()),
                ("b".to_string(), "pull failed".to_string())
            ]
        );
        assert!(!Budget::new(0).leave("a", "x"));
        assert_eq!(
            reason("Exception while executing on host 10.0.0.7: could not connect: refused\nmore"),
            "could not connect: refused"
        );
    }
}
