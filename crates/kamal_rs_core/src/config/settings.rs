//! Typed views of the settings a run reads, with Kamal's defaults written once: `boot:`
//! (`lib/kamal/configuration/boot.rb`), the deploy's timeouts (`lib/kamal/configuration.rb`) and
//! `registry:` (`lib/kamal/configuration/registry.rb`), Kamal 2.12.0. The raw map stays what
//! `kamal config` prints.

use regex::Regex;

use super::Configuration;
use crate::error::Result;
use crate::secrets::Secrets;
use crate::value::{Map, Value};

/// `deploy_timeout`'s default: kamal-proxy's `--deploy-timeout`, and the readiness poll's deadline.
pub const DEPLOY_TIMEOUT: i64 = 30;
/// `drain_timeout`'s default: kamal-proxy's `--drain-timeout`, and `docker stop -t` for other roles.
pub const DRAIN_TIMEOUT: i64 = 30;
/// `readiness_delay`'s default: the wait for a container without a health check.
pub const READINESS_DELAY: i64 = 7;

/// `sshkit.max_concurrent_starts`' default: SSH connections being started at once.
pub const MAX_CONCURRENT_STARTS: i64 = 30;
/// `sshkit.dns_retries`' default: retries of a connection whose host name did not resolve.
pub const DNS_RETRIES: i64 = 3;

/// `sshkit:` (`lib/kamal/configuration/sshkit.rb`). `pool_idle_timeout` has no meaning here: each
/// host's one connection lives for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sshkit {
    /// At least 1 (Kamal's semaphore of 0 would never start a connection).
    pub max_concurrent_starts: usize,
    pub dns_retries: u32,
}

/// `boot:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub limit: Option<BootLimit>,
    /// Seconds to sleep after each boot group.
    pub wait: Option<i64>,
    /// Roles of a host boot at once instead of one after the other (2.10+).
    pub parallel_roles: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootLimit {
    Hosts(usize),
    /// `"N%"` of every host, accessories included.
    Percent(usize),
}

impl Boot {
    fn of(section: Option<&Value>) -> Boot {
        let get = |k: &str| {
            section
                .and_then(Value::as_map)
                .and_then(|b| b.get(k))
                .filter(|v| !v.is_nil())
        };
        let limit = get("limit").and_then(|v| match v {
            Value::Int(n) if *n > 0 => Some(BootLimit::Hosts(*n as usize)),
            Value::Str(s) if s.ends_with('%') => Some(BootLimit::Percent(
                s.trim_end_matches('%').trim().parse().unwrap_or(100),
            )),
            other => other
                .to_ruby_s()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(BootLimit::Hosts),
        });
        Boot {
            limit,
            wait: get("wait").and_then(Value::as_int),
            parallel_roles: get("parallel_roles").is_some_and(Value::truthy),
        }
    }

    /// Hosts per boot group: the limit, `max(all_hosts * N / 100, 1)` for a percentage, else every app host.
    pub fn group_size(&self, all_hosts: usize, app_hosts: usize) -> usize {
        match self.limit {
            Some(BootLimit::Hosts(n)) => n,
            Some(BootLimit::Percent(p)) => (all_hosts * p / 100).max(1),
            None => app_hosts.max(1),
        }
    }
}

/// The waits of a boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub deploy_timeout: i64,
    pub drain_timeout: i64,
    pub readiness_delay: i64,
    /// `stop_timeout` at the root (2.12+); a role's own wins.
    pub stop_timeout: Option<i64>,
}

/// `registry:`.
#[derive(Debug, Clone)]
pub struct Registry {
    pub server: Option<String>,
    section: Map,
}

impl Registry {
    /// `localhost[:port]`: Kamal runs it on this machine and forwards it over SSH (2.8+); no login.
    pub fn local(&self) -> bool {
        self.server
            .as_deref()
            .is_some_and(|s| Regex::new("^localhost[:$]").unwrap().is_match(s))
    }

    /// A local registry's port (80 when none is given).
    pub fn local_port(&self) -> Option<u16> {
        self.local().then(|| {
            self.server
                .as_deref()
                .and_then(|s| s.split(':').nth(1).and_then(|p| p.parse().ok()))
                .unwrap_or(80)
        })
    }

    /// Docker Hub (no server, or one of its names): the only registry Docker's mirrors apply to.
    pub fn docker_hub(&self) -> bool {
        self.server
            .as_deref()
            .is_none_or(|s| ["docker.io", "index.docker.io", "registry-1.docker.io"].contains(&s))
    }

    /// Username and password; a one-element list names a secret.
    pub fn credentials(&self, secrets: &Secrets) -> Result<(String, String)> {
        let lookup = |key: &str| -> Result<String> {
            match self.section.get(key) {
                Some(Value::Seq(items)) if items.len() == 1 => secrets.get(&items[0].to_ruby_s()),
                Some(v) if !v.is_nil() => Ok(v.to_ruby_s()),
                _ => Ok(String::new()),
            }
        };
        Ok((lookup("username")?, lookup("password")?))
    }
}

impl Configuration {
    pub fn boot(&self) -> Boot {
        Boot::of(self.get("boot"))
    }

    pub fn sshkit(&self) -> Sshkit {
        let section = self.get("sshkit");
        let int = |k: &str, default: i64| {
            section
                .and_then(Value::as_map)
                .and_then(|m| m.get(k))
                .and_then(Value::as_int)
                .unwrap_or(default)
        };
        Sshkit {
            max_concurrent_starts: int("max_concurrent_starts", MAX_CONCURRENT_STARTS).max(1)
                as usize,
            dns_retries: int("dns_retries", DNS_RETRIES).clamp(0, 100) as u32,
        }
    }

    pub fn timeouts(&self) -> Timeouts {
        let int = |k: &str, default: i64| self.get(k).and_then(Value::as_int).unwrap_or(default);
        Timeouts {
            deploy_timeout: int("deploy_timeout", DEPLOY_TIMEOUT),
            drain_timeout: int("drain_timeout", DRAIN_TIMEOUT),
            readiness_delay: int("readiness_delay", READINESS_DELAY),
            stop_timeout: self.get("stop_timeout").and_then(Value::as_int),
        }
    }

    pub fn registry(&self) -> Registry {
        let section = self
            .get("registry")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        Registry {
            server: section
                .get("server")
                .filter(|v| !v.is_nil())
                .map(Value::to_ruby_s),
            section,
        }
    }

    /// `ssh:`, as written: `ssh::SshSettings` reads it, every value checked.
    pub fn ssh_section(&self) -> Option<&Value> {
        self.get("ssh")
    }

    /// `error_pages_path`: the app's directory of `4xx.html` / `5xx.html` pages for kamal-proxy.
    pub fn error_pages_path(&self) -> Option<String> {
        self.get("error_pages_path")
            .filter(|v| !v.is_nil())
            .map(Value::to_ruby_s)
    }

    /// `hooks_output` for `hook`: `verbose`, `quiet`, or none (then -q/-v decide). Set for every hook,
    /// or per hook.
    pub fn hooks_output(&self, hook: &str) -> Option<String> {
        match self.get("hooks_output") {
            Some(Value::Map(m)) => m.get(hook).map(Value::to_ruby_s),
            Some(Value::Nil) | None => None,
            Some(v) => Some(v.to_ruby_s()),
        }
    }

    /// `output:`'s loggers (Kamal 2.12's `lib/kamal/configuration/output.rb`), in the config's order.
    pub fn output_loggers(&self) -> Vec<OutputSetting> {
        let section = self.get("output").and_then(Value::as_map);
        let setting = |value: &Value, name: &str| {
            value
                .as_map()
                .and_then(|m| m.get(name))
                .map(Value::to_ruby_s)
                .filter(|s| !s.is_empty())
        };
        section
            .iter()
            .flat_map(|m| m.iter())
            .filter_map(|(key, value)| match key.to_ruby_s().as_str() {
                "file" => Some(OutputSetting::File {
                    path: setting(value, "path"),
                }),
                "otel" => Some(OutputSetting::Otel {
                    endpoint: setting(value, "endpoint"),
                }),
                _ => None,
            })
            .collect()
    }
}

/// One of `output:`'s loggers; a missing path or endpoint is the run's to report (as Kamal does, once
/// the run starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSetting {
    File { path: Option<String> },
    Otel { endpoint: Option<String> },
}

#[cfg(test)]
mod tests {
    use crate::test_support::config;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({"service": "app", "image": "app", "servers": ["h1", "h2", "h3"],
               "registry": {"server": "localhost:5555"}, "builder": {"arch": "amd64"}})
    }

    #[test]
    fn defaults_and_values() {
        let c = config(&[base()], None, "v1");
        let t = c.timeouts();
        assert_eq!(
            (t.deploy_timeout, t.drain_timeout, t.readiness_delay),
            (30, 30, 7)
        );
        assert_eq!(c.boot().group_size(3, 3), 3);
        assert_eq!(c.registry().local_port(), Some(5555));
        let mut b = base();
        b["boot"] = json!({"limit": "34%", "wait": 2, "parallel_roles": true});
        b["deploy_timeout"] = json!(45);
        let c = config(&[b], None, "v1");
        assert_eq!(c.boot().group_size(3, 3), 1);
        assert_eq!(c.boot().wait, Some(2));
        assert!(c.boot().parallel_roles);
        assert_eq!(c.timeouts().deploy_timeout, 45);
    }

    #[test]
    fn sshkit_defaults_are_kamals_and_a_zero_start_limit_still_starts() {
        let c = config(&[base()], None, "v1");
        assert_eq!(
            c.sshkit(),
            super::Sshkit {
                max_concurrent_starts: 30,
                dns_retries: 3
            }
        );
        let mut b = base();
        b["sshkit"] =
            json!({"max_concurrent_starts": 8, "dns_retries": 0, "pool_idle_timeout": 60});
        let c = config(&[b.clone()], None, "v1");
        assert_eq!(
            (c.sshkit().max_concurrent_starts, c.sshkit().dns_retries),
            (8, 0)
        );
        b["sshkit"] = json!({"max_concurrent_starts": 0});
        assert_eq!(config(&[b], None, "v1").sshkit().max_concurrent_starts, 1);
    }
}
