//! What a role runs with: its own settings over the root's, as Kamal's `Configuration::Role` reads them
//! (`lib/kamal/configuration/role.rb`, Kamal 2.12.0). `nil` counts as unset.

use super::env::Env;
use super::proxy::ProxySettings;
use super::{Configuration, Role};
use crate::value::{Map, Value};

/// A role's settings in its config.
pub struct RoleSettings<'a> {
    config: &'a Configuration,
    role: &'a Role,
}

impl<'a> RoleSettings<'a> {
    pub fn new(config: &'a Configuration, role: &'a Role) -> Self {
        RoleSettings { config, role }
    }

    fn own(&self, key: &str) -> Option<&'a Value> {
        self.role.specializations.get(key).filter(|v| !v.is_nil())
    }

    fn root(&self, key: &str) -> Option<&'a Value> {
        self.config.get(key).filter(|v| !v.is_nil())
    }

    /// The env: the root's, the role's over it, then the host's tags' (`env.tags.<tag>`).
    pub fn env(&self, host: &str) -> Env {
        let root = self.root("env").cloned().unwrap_or(Value::Nil);
        let mut env = Env::from_config(&root)
            .merge(&Env::from_config(self.own("env").unwrap_or(&Value::Nil)));
        let tags = root
            .as_map()
            .and_then(|m| m.get("tags"))
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        for tag in self.role.tags_of(host) {
            if let Some(tag_env) = tags.get(tag) {
                env = env.merge(&Env::from_config(tag_env));
            }
        }
        env
    }

    /// `options:`' `restart` (the container's restart policy), when set.
    pub fn restart(&self) -> Option<String> {
        self.options()
            .into_iter()
            .find(|(k, _)| k == "restart")
            .map(|(_, v)| v.to_ruby_s())
    }

    /// `options:`, in order: extra `docker run` options (`restart` is read on its own).
    pub fn options(&self) -> Vec<(String, Value)> {
        self.own("options")
            .and_then(Value::as_map)
            .map(|m| m.iter().map(|(k, v)| (k.to_ruby_s(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// `labels:`, the root's then the role's.
    pub fn labels(&self) -> Vec<&'a Value> {
        [self.root("labels"), self.own("labels")]
            .into_iter()
            .flatten()
            .collect()
    }

    /// `cmd:`, the container's command.
    pub fn cmd(&self) -> Option<String> {
        self.own("cmd").map(Value::to_ruby_s)
    }

    /// `logging:`, the role's deep-merged over the root's.
    pub fn logging(&self) -> Value {
        let root = self
            .root("logging")
            .cloned()
            .unwrap_or_else(|| Value::map(Map::new()));
        match self.own("logging") {
            Some(own @ Value::Map(_)) => root.deep_merge(own),
            _ => root,
        }
    }

    /// `asset_path` (the role's, else the root's), only for a role behind kamal-proxy.
    pub fn asset_path(&self) -> Option<String> {
        self.role
            .running_proxy()
            .then(|| self.asset_path_setting())
            .flatten()
    }

    /// `asset_path` as set: the role's, else the root's.
    pub fn asset_path_setting(&self) -> Option<String> {
        self.own("asset_path")
            .or_else(|| self.root("asset_path"))
            .filter(|v| v.is_present())
            .map(Value::to_ruby_s)
    }

    /// Kamal 1.x: the role runs behind Traefik when it says so, else when it is the primary role.
    pub fn running_traefik(&self) -> bool {
        match self.own("traefik") {
            None => self.role.primary,
            Some(v) => v.truthy(),
        }
    }

    /// `stop_timeout`: the role's, else the root's (2.12+).
    pub fn stop_timeout(&self) -> Option<i64> {
        self.own("stop_timeout")
            .and_then(Value::as_int)
            .or(self.config.timeouts().stop_timeout)
    }

    /// `proxy:` for a role behind kamal-proxy; `None` for one that is not.
    pub fn proxy(&self) -> Option<ProxySettings> {
        ProxySettings::of(self.config, self.role)
    }
}
