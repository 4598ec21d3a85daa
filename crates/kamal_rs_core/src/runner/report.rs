//! What a run did, host by host: the per-host lines printed after a failure, and the report Ruby gets
//! back (through serde) as `KamalRs::Result`.

use std::sync::Mutex;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::error::Error;
use crate::output::fleet::PER_HOST_UP_TO;

/// Where one role on one host stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleState {
    /// Its boot never started: the old version (if any) still serves.
    NotBooted,
    /// The new version is live (proxy roles) or running (others).
    Live,
    /// Its boot failed: the new container was stopped, the old version still serves.
    Failed(String),
    /// The connection was lost during its boot: what the host runs is not known.
    Unknown(String),
    /// The new version went live, then the run failed and `--revert-on-failure` booted this version
    /// (the one it ran before) again.
    Reverted(String),
}

#[derive(Debug, Clone)]
pub struct RoleReport {
    pub role: String,
    pub old_version: Option<String>,
    /// Why the running version could not be checked (then `old_version` says nothing).
    pub unchecked: Option<String>,
    pub state: RoleState,
}

/// `{role:, old_version:, unchecked: <why> | nil, state: "live" | "not_booted" | "failed" | "unknown",
/// detail: <failure> | nil}`.
impl Serialize for RoleReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (state, detail) = match &self.state {
            RoleState::NotBooted => ("not_booted", None),
            RoleState::Live => ("live", None),
            RoleState::Failed(why) => ("failed", Some(why)),
            RoleState::Unknown(why) => ("unknown", Some(why)),
            RoleState::Reverted(version) => ("reverted", Some(version)),
        };
        let mut s = serializer.serialize_struct("RoleReport", 5)?;
        s.serialize_field("role", &self.role)?;
        s.serialize_field("old_version", &self.old_version)?;
        s.serialize_field("unchecked", &self.unchecked)?;
        s.serialize_field("state", state)?;
        s.serialize_field("detail", &detail)?;
        s.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub roles: Vec<RoleReport>,
    pub error: Option<String>,
}

/// The deploy lock when the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    /// Never taken (the run stopped before, or a caller holds it: `KAMAL_LOCK=true`).
    NotTaken,
    Released,
    /// Still held: releasing it failed (the primary host could not be reached, say).
    Held,
}

impl LockOutcome {
    pub fn name(self) -> &'static str {
        match self {
            LockOutcome::NotTaken => "not_taken",
            LockOutcome::Released => "released",
            LockOutcome::Held => "held",
        }
    }
}

#[derive(Debug)]
pub struct DeployReport {
    pub version: String,
    pub runtime: f64,
    pub hosts: Vec<HostReport>,
    pub error: Option<Error>,
    /// Some remote command ran (false after a failed build or connect: no server was touched).
    pub touched: bool,
    pub lock: LockOutcome,
    /// Where the lock lives.
    pub primary_host: String,
    /// Hosts left behind within the failure budget (`--max-fail`), each with its reason.
    pub left_behind: Vec<LeftBehind>,
    /// The command line that deploys exactly those hosts with the same version, destination and roles.
    pub finish_command: Option<String>,
    /// `--revert-on-failure`: the hosts that went back, by the version each went back to, and how long
    /// the revert took.
    pub reverted: Vec<Reverted>,
    pub revert_seconds: Option<f64>,
}

/// Hosts reverted to one version (`--revert-on-failure`).
#[derive(Debug, Clone, Serialize)]
pub struct Reverted {
    pub version: String,
    pub hosts: Vec<String>,
}

/// A host the run went on without (`--max-fail`).
#[derive(Debug, Clone, Serialize)]
pub struct LeftBehind {
    pub host: String,
    pub reason: String,
}

impl DeployReport {
    /// A run that ended before it began (no host was looked at).
    pub fn failed_early(error: Error, runtime: f64) -> DeployReport {
        DeployReport {
            version: String::new(),
            runtime,
            hosts: Vec::new(),
            error: Some(error),
            touched: false,
            lock: LockOutcome::NotTaken,
            primary_host: String::new(),
            left_behind: Vec::new(),
            finish_command: None,
            reverted: Vec::new(),
            revert_seconds: None,
        }
    }

    /// One line per host saying where it stopped.
    pub fn summary_lines(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| {
                let parts: Vec<String> = h.roles.iter().map(|r| self.role_line(r)).collect();
                let body = if !self.touched || parts.is_empty() {
                    h.error.clone().unwrap_or_else(|| "untouched".into())
                } else {
                    parts.join("; ")
                };
                format!("{}: {body}", h.host)
            })
            .collect()
    }

    /// The summary as printed after a failure: a line per host up to `PER_HOST_UP_TO` hosts (or with
    /// `every_host`, `-v`); beyond, a fleet's hosts grouped by where they stopped, the rarest outcome
    /// (a failed host, usually) first and with its hosts named, so that one failure among a thousand
    /// hosts is on the first line, not somewhere in a thousand.
    pub fn printed_summary(&self, every_host: bool) -> Vec<String> {
        let lines = self.summary_lines();
        if every_host || lines.len() <= PER_HOST_UP_TO {
            return lines;
        }
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for line in lines {
            let (host, body) = line.split_once(": ").unwrap_or(("", &line));
            match groups.iter_mut().find(|(b, _)| b == body) {
                Some((_, hosts)) => hosts.push(host.to_string()),
                None => groups.push((body.to_string(), vec![host.to_string()])),
            }
        }
        // Stable: outcomes of the same size keep the hosts' order.
        groups.sort_by_key(|(_, hosts)| hosts.len());
        groups
            .into_iter()
            .flat_map(|(body, hosts)| grouped(&body, &hosts))
            .collect()
    }

    /// What is known of a role: "could not check" is not "none".
    pub fn role_line(&self, r: &RoleReport) -> String {
        let old = match (&r.old_version, &r.unchecked) {
            (Some(v), _) => format!("old version {v} still serving"),
            (None, Some(why)) => format!("running version unknown ({why})"),
            (None, None) => "no previous version".into(),
        };
        match &r.state {
            RoleState::Live => format!("{}: new version {} live", r.role, self.version),
            RoleState::NotBooted => format!("{}: not booted, {old}", r.role),
            RoleState::Failed(_) => format!("{}: boot failed, {old}", r.role),
            RoleState::Unknown(why) => format!("{}: state unknown ({why})", r.role),
            RoleState::Reverted(v) => format!("{}: reverted, {v} serving again", r.role),
        }
    }
}

/// One outcome's lines: each host on its own up to `NAMED_ALONE` hosts, else one line counting them
/// and naming the first `NAMED`.
fn grouped(body: &str, hosts: &[String]) -> Vec<String> {
    const NAMED_ALONE: usize = 3;
    const NAMED: usize = 10;
    if hosts.len() <= NAMED_ALONE {
        return hosts.iter().map(|h| format!("{h}: {body}")).collect();
    }
    let named = hosts[..hosts.len().min(NAMED)].join(", ");
    let rest = match hosts.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!(" and {n} more; -v lists them all"),
    };
    vec![format!("{} hosts: {body} [{named}{rest}]", hosts.len())]
}

/// `{version:, runtime:, hosts: [...], summary: [...], lock: "released" | "held" | "not_taken",
/// primary_host:, left_behind: [{host:, reason:}], finish_command:, error: {class:, message:} | nil}`.
impl Serialize for DeployReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct ErrorOut<'e> {
            class: &'static str,
            kamal_class: &'static str,
            message: &'e str,
        }
        let mut s = serializer.serialize_struct("DeployReport", 11)?;
        s.serialize_field("version", &self.version)?;
        s.serialize_field("runtime", &self.runtime)?;
        s.serialize_field("hosts", &self.hosts)?;
        s.serialize_field("summary", &self.summary_lines())?;
        s.serialize_field("lock", self.lock.name())?;
        s.serialize_field("primary_host", &self.primary_host)?;
        s.serialize_field("left_behind", &self.left_behind)?;
        s.serialize_field("finish_command", &self.finish_command)?;
        s.serialize_field("reverted", &self.reverted)?;
        s.serialize_field("revert_seconds", &self.revert_seconds)?;
        let error = self.error.as_ref().map(|e| ErrorOut {
            class: e.kind.ruby_class(),
            kamal_class: e.kind.kamal_class(),
            message: &e.message,
        });
        s.serialize_field("error", &error)?;
        s.end()
    }
}

/// The per-host reports while a run is under way.
#[derive(Default)]
pub struct Reports(Mutex<Vec<HostReport>>);

impl Reports {
    /// Every host, each with its roles not booted yet.
    pub fn new(hosts: impl IntoIterator<Item = (String, Vec<String>)>) -> Reports {
        Reports(Mutex::new(
            hosts
                .into_iter()
                .map(|(host, roles)| HostReport {
                    host,
                    roles: roles
                        .into_iter()
                        .map(|role| RoleReport {
                            role,
                            old_version: None,
                            unchecked: None,
                            state: RoleState::NotBooted,
                        })
                        .collect(),
                    error: None,
                })
                .collect(),
        ))
    }

    fn with_host<R>(&self, host: &str, f: impl FnOnce(&mut HostReport) -> R) -> Option<R> {
        let mut hosts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        hosts.iter_mut().find(|h| h.host == host).map(f)
    }

    /// The host's first error (a later one does not replace it).
    pub fn host_error(&self, host: &str, message: &str) {
        self.with_host(host, |h| {
            h.error.get_or_insert_with(|| message.to_string());
        });
    }

    pub fn set_state(&self, host: &str, role: &str, state: RoleState) {
        self.with_role(host, role, |r| r.state = state);
    }

    pub fn set_old_version(&self, host: &str, role: &str, version: Option<String>) {
        self.with_role(host, role, |r| {
            r.old_version = version.filter(|v| !v.is_empty());
            r.unchecked = None;
        });
    }

    /// The running version could not be read (why).
    pub fn set_unchecked(&self, host: &str, role: &str, why: &str) {
        self.with_role(host, role, |r| r.unchecked = Some(why.to_string()));
    }

    pub fn old_version(&self, host: &str, role: &str) -> Option<String> {
        self.with_host(host, |h| {
            h.roles
                .iter()
                .find(|r| r.role == role)
                .and_then(|r| r.old_version.clone())
        })
        .flatten()
    }

    fn with_role(&self, host: &str, role: &str, f: impl FnOnce(&mut RoleReport)) {
        self.with_host(host, |h| {
            if let Some(r) = h.roles.iter_mut().find(|r| r.role == role) {
                f(r)
            }
        });
    }

    /// (host, role) pairs not running the new version whose running version is not known yet.
    pub fn to_probe(&self) -> Vec<(String, String)> {
        let hosts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .iter()
            .flat_map(|h| {
                h.roles
                    .iter()
                    .filter(|r| {
                        matches!(r.state, RoleState::NotBooted | RoleState::Failed(_))
                            && r.old_version.is_none()
                            && r.unchecked.is_none()
                    })
                    .map(|r| (h.host.clone(), r.role.clone()))
            })
            .collect()
    }

    pub fn snapshot(&self) -> Vec<HostReport> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn report() -> DeployReport {
        let reports = Reports::new([
            ("h1".to_string(), vec!["web".to_string()]),
            (
                "h2".to_string(),
                vec!["web".to_string(), "workers".to_string()],
            ),
        ]);
        reports.set_state("h1", "web", RoleState::Live);
        reports.set_old_version("h2", "web", Some("v1".into()));
        reports.set_state("h2", "web", RoleState::Failed("unhealthy".into()));
        DeployReport {
            version: "v2".into(),
            runtime: 1.5,
            hosts: reports.snapshot(),
            error: Some(Error::new(ErrorKind::Healthcheck, "boom")),
            touched: true,
            lock: LockOutcome::Released,
            primary_host: "h1".into(),
            left_behind: Vec::new(),
            finish_command: None,
            reverted: Vec::new(),
            revert_seconds: None,
        }
    }

    #[test]
    fn summary_says_where_each_host_stopped() {
        assert_eq!(
            report().summary_lines(),
            [
                "h1: web: new version v2 live",
                "h2: web: boot failed, old version v1 still serving; workers: not booted, no previous version"
            ]
        );
    }

    /// At a thousand hosts, the one that failed comes first, named; the rest are counted.
    #[test]
    fn a_fleets_summary_groups_hosts_by_outcome() {
        let hosts: Vec<String> = (1..=1000).map(|i| format!("h{i}")).collect();
        let reports = Reports::new(hosts.iter().map(|h| (h.clone(), vec!["web".to_string()])));
        for h in &hosts {
            reports.set_old_version(h, "web", Some("v1".into()));
        }
        reports.set_state("h500", "web", RoleState::Failed("unhealthy".into()));
        for h in ["h7", "h8", "h9", "h10"] {
            reports.set_state(h, "web", RoleState::Live);
        }
        let r = DeployReport {
            hosts: reports.snapshot(),
            ..report()
        };
        assert_eq!(
            r.printed_summary(false),
            [
                "h500: web: boot failed, old version v1 still serving",
                "4 hosts: web: new version v2 live [h7, h8, h9, h10]",
                "995 hosts: web: not booted, old version v1 still serving [h1, h2, h3, h4, h5, h6, h11, h12, h13, h14 and 985 more; -v lists them all]",
            ]
        );
        assert_eq!(r.printed_summary(true).len(), 1000);
        assert_eq!(report().printed_summary(false), report().summary_lines());
    }

    #[test]
    fn what_could_not_be_checked_is_not_none() {
        let reports = Reports::new([(
            "h2".to_string(),
            vec!["web".to_string(), "jobs".to_string()],
        )]);
        reports.set_unchecked("h2", "web", "docker is not answering");
        reports.set_state("h2", "jobs", RoleState::Unknown("connection lost".into()));
        let r = DeployReport {
            version: "v2".into(),
            runtime: 1.0,
            hosts: reports.snapshot(),
            error: None,
            touched: true,
            lock: LockOutcome::NotTaken,
            primary_host: "h2".into(),
            left_behind: Vec::new(),
            finish_command: None,
            reverted: Vec::new(),
            revert_seconds: None,
        };
        assert_eq!(
            r.summary_lines(),
            ["h2: web: not booted, running version unknown (docker is not answering); jobs: state unknown (connection lost)"]
        );
        assert!(reports.to_probe().is_empty());
    }

    #[test]
    fn serializes_as_ruby_reads_it() {
        let json = serde_json::to_value(report()).unwrap();
        assert_eq!(json["hosts"][0]["roles"][0]["state"], "live");
        assert_eq!(json["hosts"][1]["roles"][0]["state"], "failed");
        assert_eq!(json["hosts"][1]["roles"][0]["detail"], "unhealthy");
        assert_eq!(json["hosts"][1]["roles"][0]["old_version"], "v1");
        assert_eq!(json["hosts"][1]["roles"][1]["state"], "not_booted");
        assert_eq!(json["error"]["class"], "HealthcheckError");
        assert_eq!(json["summary"][0], "h1: web: new version v2 live");
        assert_eq!(json["lock"], "released");
    }
}
