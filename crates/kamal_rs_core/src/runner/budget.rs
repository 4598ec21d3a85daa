//! The failure budget (`--max-fail N` or `--max-fail P%`, `KAMAL_RS_MAX_FAIL`): a host that cannot
//! be reached, whose pull fails or whose boot fails is left behind, and the run goes on with the rest,
//! while the hosts left behind stay within the budget. Without one (the default, 0) the first such
//! failure stops the run, as Kamal's does. A host left behind keeps serving what it served: its
//! failure came before kamal-proxy switched to the new container (Kamal leaves a failed boot so too).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use super::options::{Command, CONFIG_FILE};

use super::failure::HostError;
use super::run::{Plan, Run};
use crate::config::KamalMajor;
use crate::error::{Error, ErrorKind, Result};

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

/// Whether a host that failed is left behind within the failure budget: the others stop waiting for
/// it and go on. Never the primary host, which holds the deploy lock, nor a host stopped by Ctrl-C.
pub fn leave_behind(run: &Run<'_>, host: &str, error: &HostError) -> bool {
    if !run.budget.allows_any() {
        return false;
    }
    let eligible = matches!(
        error.kind,
        ErrorKind::Connection | ErrorKind::CommandFailed | ErrorKind::Boot | ErrorKind::Healthcheck
    );
    if !eligible || host == run.sel.primary_host || run.io.cancel.is_cancelled() {
        return false;
    }
    if !run.budget.leave(host, &reason(&error.message)) {
        return false;
    }
    run.sync.leave(host);
    if let Some(wave) = &run.sync.canary {
        wave.left_behind(host);
    }
    run.io
        .output
        .progress_failed(host, &format!("left behind: {}", reason(&error.message)));
    true
}

/// `step` on each of `hosts` still in the run (`Run::on_hosts`), a host that fails within the budget
/// left behind rather than failing the step: the boot groups' steps, where every host takes each step
/// before any takes the next.
pub async fn on_hosts<'b, F, Fut>(run: &'b Run<'_>, hosts: &'b [String], step: F) -> Result<()>
where
    F: Fn(&'b str) -> Fut,
    Fut: Future<Output = std::result::Result<(), HostError>> + 'b,
{
    run.io
        .on_hosts(hosts, |h| {
            let work = step(h);
            async move {
                if run.budget.is_left_behind(h) {
                    return Ok(());
                }
                match work.await {
                    Err(e) if leave_behind(run, h, &e) => Ok(()),
                    result => result,
                }
            }
        })
        .await
}

/// A budget or a canary wave needs a Kamal 2 config (the per-host rollout or boot groups); with a 1.x
/// config the run says so before any host rather than ignore the option.
pub fn fits(run: &Run<'_>) -> Result<()> {
    let option = if run.budget.allows_any() {
        "--max-fail"
    } else if run.sync.canary.is_some() {
        "--canary"
    } else {
        return Ok(());
    };
    if run.config.major == KamalMajor::V2 {
        return Ok(());
    }
    Err(Error::argument(format!(
        "{option} needs a Kamal 2 config, and this is a Kamal 1.x config: run it without {option}"
    )))
}

/// The command line that deploys exactly `hosts` with the run's version, destination and roles, once
/// they are back: a deploy's or redeploy's image is pushed already (`redeploy -P`), a rollback's
/// containers are on the hosts.
pub fn finish_command(run: &Plan<'_>, hosts: &[String]) -> String {
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
    let head = first
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("Exception while executing on host"))
        .map(|(_, rest)| rest)
        .unwrap_or(first);
    // A command's failure (`docker exit status: 1`): with the last line it wrote to say why.
    match said(message) {
        Some(why) if head.contains(" exit status: ") => format!("{head} ({why})"),
        _ => head.to_string(),
    }
}

/// The last line a failed command wrote, from its stderr, else its stdout (`failure_text`'s layout:
/// `docker stdout: ...` then `docker stderr: ...`, each possibly over several lines).
fn said(message: &str) -> Option<String> {
    let lines: Vec<&str> = message.lines().collect();
    let start = |stream: &str| {
        lines
            .iter()
            .position(|l| l.contains(&format!(" {stream}: ")))
    };
    let (out, err) = (start("stdout")?, start("stderr")?);
    let last = |section: &[&str], first: &str| {
        let first = first.split_once(": ").map(|(_, rest)| rest).unwrap_or("");
        std::iter::once(first)
            .chain(section.iter().copied())
            .map(str::trim)
            .rfind(|l| !l.is_empty() && *l != "Nothing written")
            .map(str::to_string)
    };
    last(&lines[err + 1..], lines[err]).or_else(|| last(&lines[out + 1..err], lines[out]))
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
        let failed = "Exception while executing on host 10.0.0.7: docker exit status: 1\ndocker stdout: Nothing written\ndocker stderr: Error: target failed to become healthy within configured timeout (6s)";
        assert_eq!(
            reason(failed),
            "docker exit status: 1 (Error: target failed to become healthy within configured timeout (6s))"
        );
        let stdout_only = "docker exit status: 2\ndocker stdout: pulling\n  no space left on device\ndocker stderr: Nothing written";
        assert_eq!(
            reason(stdout_only),
            "docker exit status: 2 (no space left on device)"
        );
    }
}
