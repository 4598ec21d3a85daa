//! Under GitHub Actions (`GITHUB_ACTIONS=true`): a Markdown summary of the run appended to
//! `$GITHUB_STEP_SUMMARY` (a row per host and role: outcome, version, seconds per step; the lock's
//! fate), an `::error::` annotation per host that failed, and each host's own log lines in a
//! collapsible group (`::group::` / `::endgroup::`) after the run's log.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use super::report::{DeployReport, LockOutcome, RoleState};
use crate::output::timeline::{Phase, Span};
use crate::output::{LogLine, Sink};

/// Is this run under GitHub Actions?
pub fn detected() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Collects each host's lines for its group.
#[derive(Default)]
pub struct GithubActions {
    lines: Mutex<HashMap<String, Vec<String>>>,
}

impl Sink for GithubActions {
    fn line(&self, line: &LogLine<'_>) {
        if let Some(host) = line.host {
            let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
            lines
                .entry(host.to_string())
                .or_default()
                .push(line.text.to_string());
        }
    }
}

/// What the summary says about the run besides its report.
pub struct RunFacts<'a> {
    pub command: &'a str,
    pub runtime: f64,
    pub spans: &'a [Span],
}

impl GithubActions {
    /// The annotations and groups, as printed after the log.
    pub fn workflow_commands(&self, report: &DeployReport, facts: &RunFacts<'_>) -> String {
        let mut out = String::new();
        for host in &report.hosts {
            let failed = host
                .roles
                .iter()
                .any(|r| matches!(r.state, RoleState::Failed(_) | RoleState::Unknown(_)))
                || (report.error.is_some() && host.error.is_some());
            if failed {
                let detail: Vec<String> = host.roles.iter().map(|r| report.role_line(r)).collect();
                let mut message = detail.join("; ");
                if let Some(e) = &host.error {
                    message = format!("{message} ({e})");
                }
                let title = format!("kamal-rs {} failed on {}", facts.command, host.host);
                let _ = writeln!(
                    out,
                    "::error title={}::{}",
                    escape_property(&title),
                    escape_data(&message)
                );
            }
        }
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for host in &report.hosts {
            let outcome: Vec<String> = host.roles.iter().map(|r| report.role_line(r)).collect();
            let _ = writeln!(
                out,
                "::group::{}: {}",
                host.host,
                escape_data(&outcome.join("; "))
            );
            for line in lines.get(&host.host).map(Vec::as_slice).unwrap_or_default() {
                let _ = writeln!(out, "{line}");
            }
            let _ = writeln!(out, "::endgroup::");
        }
        out
    }
}

/// The step summary in Markdown.
pub fn summary(report: &DeployReport, facts: &RunFacts<'_>) -> String {
    let ok = report.error.is_none();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### {} kamal-rs {} {} {} in {:.1} s\n",
        if ok { "✅" } else { "❌" },
        facts.command,
        report.version,
        if ok { "succeeded" } else { "failed" },
        facts.runtime
    );
    if let Some(e) = &report.error {
        let _ = writeln!(md, "**{}**: {}\n", e.kind.kamal_class(), cell(&e.message));
    }
    let lock = match report.lock {
        LockOutcome::Released => "taken and released".to_string(),
        LockOutcome::Held => "**still held** (release it with `kamal lock release`)".to_string(),
        LockOutcome::NotTaken => "not taken".to_string(),
    };
    let _ = writeln!(md, "Deploy lock on {}: {lock}.\n", report.primary_host);
    if let Some(command) = &report.finish_command {
        let _ = writeln!(
            md,
            "**Left behind** ({} hosts, each still running what it ran before):\n",
            report.left_behind.len()
        );
        for l in &report.left_behind {
            let _ = writeln!(md, "- `{}`: {}", l.host, cell(&l.reason));
        }
        let _ = writeln!(
            md,
            "\nFinish the job once they are back:\n\n```\n{command}\n```\n"
        );
    }
    let steps: Vec<Phase> = facts
        .spans
        .iter()
        .map(|s| s.step)
        .filter(|p| *p != Phase::Other && !p.is_wait())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut header = "| Host | Role | Outcome | Version |".to_string();
    let mut rule = "|---|---|---|---|".to_string();
    for s in &steps {
        let _ = write!(header, " {} |", s.name());
        rule.push_str("---:|");
    }
    header.push_str(" waiting |");
    rule.push_str("---:|");
    let _ = writeln!(md, "{header}\n{rule}");
    for host in &report.hosts {
        for (i, role) in host.roles.iter().enumerate() {
            let (outcome, version) = match &role.state {
                RoleState::Live => (
                    "✅ live".to_string(),
                    match &role.old_version {
                        Some(old) if !old.is_empty() => format!("{} (was {old})", report.version),
                        _ => report.version.clone(),
                    },
                ),
                RoleState::NotBooted => (
                    "⏸ not booted".to_string(),
                    role.old_version.clone().unwrap_or_else(|| "–".into()),
                ),
                RoleState::Failed(why) => (
                    format!("❌ failed: {}", cell(why)),
                    role.old_version.clone().unwrap_or_else(|| "–".into()),
                ),
                RoleState::Unknown(why) => (format!("❓ {}", cell(why)), "unknown".into()),
                RoleState::Reverted(v) => {
                    (format!("↩ reverted from {}", report.version), v.clone())
                }
            };
            let mut row = format!("| {} | {} | {outcome} | {version} |", host.host, role.role);
            for s in &steps {
                let mine = |span: &&Span| {
                    span.host == host.host
                        && span.step == *s
                        && (span.role.as_deref() == Some(role.role.as_str())
                            || (span.role.is_none() && i == 0))
                };
                let _ = write!(row, " {} |", seconds(facts.spans.iter().filter(mine)));
            }
            let waits = facts.spans.iter().filter(|span| {
                span.host == host.host
                    && span.step.is_wait()
                    && (span.role.as_deref() == Some(role.role.as_str())
                        || (span.role.is_none() && i == 0))
            });
            let _ = write!(row, " {} |", seconds(waits));
            let _ = writeln!(md, "{row}");
        }
    }
    md.push('\n');
    md
}

/// The steps' total, `0.42 s`, or blank when there were none.
fn seconds<'s>(spans: impl Iterator<Item = &'s Span>) -> String {
    let mut total = None;
    for s in spans {
        *total.get_or_insert(0.0) += s.duration();
    }
    total.map(|t| format!("{t:.2} s")).unwrap_or_default()
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A workflow command's message: `%`, CR and LF escaped.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property: also `:` and `,`.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, ErrorKind};
    use crate::output::timeline::Status;
    use crate::runner::report::{HostReport, RoleReport};

    fn report() -> DeployReport {
        let role = |state| RoleReport {
            role: "web".into(),
            old_version: Some("v1".into()),
            unchecked: None,
            state,
        };
        DeployReport {
            version: "v2".into(),
            runtime: 3.0,
            hosts: vec![
                HostReport {
                    host: "10.0.0.1".into(),
                    roles: vec![role(RoleState::Live)],
                    error: None,
                },
                HostReport {
                    host: "10.0.0.2".into(),
                    roles: vec![role(RoleState::Failed("docker: exit 1".into()))],
                    error: Some("Failed to boot".into()),
                },
            ],
            error: Some(Error::new(
                ErrorKind::Boot,
                "Failed to boot web on 10.0.0.2",
            )),
            touched: true,
            lock: LockOutcome::Released,
            left_behind: Vec::new(),
            finish_command: None,
            reverted: Vec::new(),
            revert_seconds: None,
            primary_host: "10.0.0.1".into(),
        }
    }

    fn spans() -> Vec<Span> {
        let span = |host: &str, step, start, end| Span {
            host: host.into(),
            role: Phase::is_role_step(step).then(|| "web".into()),
            step,
            start,
            end,
            status: Status::Ok,
        };
        vec![
            span("10.0.0.1", Phase::Pull, 0.5, 1.5),
            span("10.0.0.1", Phase::PullBarrier, 1.5, 1.75),
            span("10.0.0.1", Phase::Boot, 1.75, 2.0),
            span("10.0.0.2", Phase::Pull, 0.5, 1.75),
            span("10.0.0.2", Phase::Boot, 1.75, 2.5),
        ]
    }

    #[test]
    fn a_row_per_host_and_role_with_seconds_per_step() {
        let spans = spans();
        let facts = RunFacts {
            command: "redeploy",
            runtime: 3.0,
            spans: &spans,
        };
        let md = summary(&report(), &facts);
        assert!(
            md.starts_with("### ❌ kamal-rs redeploy v2 failed in 3.0 s"),
            "{md}"
        );
        assert!(md.contains("Deploy lock on 10.0.0.1: taken and released."));
        assert!(
            md.contains("| Host | Role | Outcome | Version | pull | boot | waiting |"),
            "{md}"
        );
        assert!(
            md.contains("| 10.0.0.1 | web | ✅ live | v2 (was v1) | 1.00 s | 0.25 s | 0.25 s |"),
            "{md}"
        );
        assert!(
            md.contains("| 10.0.0.2 | web | ❌ failed: docker: exit 1 | v1 | 1.25 s | 0.75 s |  |"),
            "{md}"
        );
    }

    #[test]
    fn annotations_for_failed_hosts_and_a_group_per_host() {
        let gh = GithubActions::default();
        gh.line(&LogLine {
            level: None,
            text: "  INFO [ab] Running docker run on 10.0.0.2",
            host: Some("10.0.0.2"),
            stream: None,
        });
        let spans = spans();
        let facts = RunFacts {
            command: "redeploy",
            runtime: 3.0,
            spans: &spans,
        };
        let out = gh.workflow_commands(&report(), &facts);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "::error title=kamal-rs redeploy failed on 10.0.0.2::web: boot failed, old version v1 still serving (Failed to boot)"
        );
        assert_eq!(out.matches("::group::").count(), 2);
        assert!(out.contains("::group::10.0.0.2: web: boot failed, old version v1 still serving\n  INFO [ab] Running docker run on 10.0.0.2\n::endgroup::"));
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }
}
