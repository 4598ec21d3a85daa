//! A Kamal 1.x config's settings as its deploy reads them (tag v1.9.3): a role's health check
//! (`lib/kamal/configuration/healthcheck.rb`), Traefik's (`lib/kamal/configuration/traefik.rb`),
//! `stop_wait_time`. `nil` counts as unset.

use super::{Configuration, Role};
use crate::value::{Map, Value};

/// Kamal 1.9's `Configuration::Healthcheck`: the role's settings merged over the root's (for roles
/// running Traefik), over 1.9's defaults.
#[derive(Debug, Clone)]
pub struct Healthcheck {
    own: Map,
}

impl Healthcheck {
    fn get(&self, key: &str) -> Option<&Value> {
        self.own.get(key).filter(|v| !v.is_nil())
    }

    pub fn port(&self) -> String {
        self.get("port")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "3000".into())
    }

    pub fn path(&self) -> String {
        self.get("path")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "/up".into())
    }

    /// `cmd`, else `curl -f http://localhost:<port><path> || exit 1` as 1.9.3 joins it.
    pub fn cmd(&self) -> String {
        self.get("cmd")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| super::v1::http_health_check(&self.port(), &self.path()))
    }

    pub fn interval(&self) -> String {
        self.get("interval")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "1s".into())
    }

    pub fn max_attempts(&self) -> i64 {
        self.get("max_attempts")
            .and_then(Value::as_int)
            .unwrap_or(7)
    }

    pub fn cord(&self) -> Option<String> {
        match self.own.get("cord") {
            Some(Value::Nil) | Some(Value::Bool(false)) => None,
            Some(v) => Some(v.to_ruby_s()),
            None => Some("/tmp/kamal-cord".into()),
        }
    }

    pub fn set_port_or_path(&self) -> bool {
        self.get("port").is_some_and(Value::is_present)
            || self.get("path").is_some_and(Value::is_present)
    }
}

impl Healthcheck {
    /// The role's settings merged over the root's (the root's only for a role running Traefik).
    pub fn of(config: &Configuration, role: &Role, running_traefik: bool) -> Healthcheck {
        let mut own = Map::new();
        if running_traefik {
            if let Some(Value::Map(root)) = config.get("healthcheck") {
                for (k, v) in root.iter() {
                    own.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(Value::Map(role)) = role.specializations.get("healthcheck") {
            for (k, v) in role.iter() {
                own.insert(k.clone(), v.clone());
            }
        }
        Healthcheck { own }
    }

    /// The root `healthcheck.max_attempts` (what 1.9's poller reads), default 7.
    pub fn root_max_attempts(config: &Configuration) -> i64 {
        config
            .get("healthcheck")
            .and_then(Value::as_map)
            .and_then(|h| h.get("max_attempts"))
            .and_then(Value::as_int)
            .unwrap_or(7)
    }
}

/// `stop_wait_time`: `docker stop -t`.
pub fn stop_wait_time(config: &Configuration) -> Option<String> {
    config
        .get("stop_wait_time")
        .filter(|v| !v.is_nil())
        .map(Value::to_ruby_s)
}

/// `traefik:`.
pub struct TraefikSettings(Map);

impl TraefikSettings {
    pub fn of(config: &Configuration) -> TraefikSettings {
        TraefikSettings(
            config
                .get("traefik")
                .and_then(Value::as_map)
                .cloned()
                .unwrap_or_default(),
        )
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_nil())
    }

    fn map(&self, key: &str) -> Option<&Map> {
        self.get(key).and_then(Value::as_map)
    }

    pub fn env(&self) -> Value {
        self.get("env").cloned().unwrap_or(Value::Nil)
    }

    pub fn image(&self) -> Option<String> {
        self.get("image").map(Value::to_ruby_s)
    }

    /// `publish` (true unless `false`), on `host_port` (80).
    pub fn published_port(&self) -> Option<String> {
        if matches!(self.get("publish"), Some(Value::Bool(false))) {
            return None;
        }
        Some(
            self.get("host_port")
                .map(Value::to_ruby_s)
                .unwrap_or_else(|| "80".into()),
        )
    }

    /// `labels`, over Traefik's own.
    pub fn labels(&self) -> Option<&Map> {
        self.map("labels")
    }

    /// `options`: extra `docker run` options, in order.
    pub fn options(&self) -> Vec<(String, Value)> {
        self.map("options")
            .map(|m| m.iter().map(|(k, v)| (k.to_ruby_s(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// `args`: Traefik's own arguments, over `log.level`.
    pub fn args(&self) -> Option<&Map> {
        self.map("args")
    }
}
