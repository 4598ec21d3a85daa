//! The checks Kamal runs once every section of a Kamal 2 config is built
//! (`Kamal::Configuration#ensure_*`, lib/kamal/configuration.rb, Kamal 2.12.0), with its messages.

use std::cmp::Ordering;
use std::path::Path;

use regex::Regex;

use super::{gem_version, proxy_hosts, Configuration};
use crate::error::{Error, Result};
use crate::value::Value;

impl Configuration {
    pub(super) fn ensure_valid(&self) -> Result<()> {
        if self.get("require_destination").is_some_and(Value::truthy) && self.destination.is_none()
        {
            return Err(Error::argument("You must specify a destination"));
        }
        self.ensure_required_keys_present()?;
        self.ensure_minimum_version()?;
        if self.retain_containers() < 1 {
            return Err(Error::config("Must retain at least 1 container"));
        }
        self.ensure_valid_service_name()?;
        self.ensure_no_traefik_reboot_hooks()?;
        self.ensure_ssl_hosts()?;
        self.ensure_local_registry_remote_builder()?;
        self.ensure_no_conflicting_proxy_runs()?;
        self.ensure_valid_hooks_output()
    }

    fn ensure_required_keys_present(&self) -> Result<()> {
        for key in ["service", "registry"] {
            if !self.get(key).is_some_and(Value::is_present) {
                return Err(Error::config(format!(
                    "Missing required configuration for {key}"
                )));
            }
        }
        if self.image().is_none_or(|i| i.trim().is_empty()) {
            return Err(Error::config("Missing required configuration for image"));
        }
        self.ensure_roles_have_hosts()
    }

    /// Shared by 1.x and 2.x: servers or accessories exist, the primary role exists and has hosts.
    pub(crate) fn ensure_roles_have_hosts(&self) -> Result<()> {
        if self.get("servers").is_none() {
            if !self.get("accessories").is_some_and(Value::is_present) {
                return Err(Error::config("No servers or accessories specified"));
            }
            return Ok(());
        }
        let primary = self.primary_role().ok_or_else(|| {
            Error::config(format!(
                "The primary_role {} isn't defined",
                self.primary_role_name()
            ))
        })?;
        if primary.hosts.is_empty() {
            return Err(Error::config(format!(
                "No servers specified for the {} primary_role",
                primary.name
            )));
        }
        if !self.get("allow_empty_roles").is_some_and(Value::truthy) {
            if let Some(role) = self.roles.iter().find(|r| r.hosts.is_empty()) {
                return Err(Error::config(format!(
                    "No servers specified for the {} role. You can ignore this with allow_empty_roles: true",
                    role.name
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn ensure_minimum_version(&self) -> Result<()> {
        self.ensure_minimum_version_of(crate::KAMAL_VERSION)
    }

    /// `minimum_version` against the Kamal release this config's major is checked as.
    pub(crate) fn ensure_minimum_version_of(&self, kamal_version: &str) -> Result<()> {
        let Some(minimum) = self.get("minimum_version") else {
            return Ok(());
        };
        let minimum = minimum.to_ruby_s();
        let current = gem_version::GemVersion::parse(kamal_version)?;
        if gem_version::GemVersion::parse(&minimum)?.cmp_version(&current) == Ordering::Greater {
            return Err(Error::config(format!(
                "Current version is {kamal_version}, minimum required is {minimum}"
            )));
        }
        Ok(())
    }

    pub(crate) fn ensure_valid_service_name(&self) -> Result<()> {
        let valid = Regex::new(r"(?m)^[a-zA-Z0-9_-]+$").unwrap();
        let ok = match self.get("service") {
            Some(Value::Str(s) | Value::Sym(s)) => valid.is_match(s),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::config(
                "Service name can only include alphanumeric characters, hyphens, and underscores",
            ))
        }
    }

    fn ensure_no_traefik_reboot_hooks(&self) -> Result<()> {
        let hooks_path = self.hooks_path();
        let found: Vec<&str> = ["pre-traefik-reboot", "post-traefik-reboot"]
            .into_iter()
            .filter(|h| Path::new(&hooks_path).join(h).exists())
            .collect();
        if found.is_empty() {
            Ok(())
        } else {
            Err(Error::config(format!(
                "Found {}, these should be renamed to (pre|post)-proxy-reboot",
                found.join(", ")
            )))
        }
    }

    /// Let's Encrypt certificates need one host per role, and one role per SSL host name.
    fn ensure_ssl_hosts(&self) -> Result<()> {
        let mut ssl_hosts: Vec<String> = Vec::new();
        for role in &self.roles {
            let Some(proxy) = role.proxy_config(self.get("proxy")) else {
                continue;
            };
            let proxy = proxy.as_map().cloned().unwrap_or_default();
            let ssl = proxy.get("ssl").cloned().unwrap_or(Value::Bool(false));
            if !ssl.truthy() {
                continue;
            }
            let custom_certs = ssl
                .as_map()
                .is_some_and(|s| s.get("certificate_pem").is_some_and(Value::is_present));
            if role.hosts.len() > 1 && !custom_certs {
                return Err(Error::config(format!(
                    "SSL is only supported on a single server unless you provide custom certificates, found {} servers for role {}",
                    role.hosts.len(),
                    role.name
                )));
            }
            ssl_hosts.extend(proxy_hosts(&proxy));
        }
        let mut duplicates: Vec<String> = Vec::new();
        for (i, h) in ssl_hosts.iter().enumerate() {
            if ssl_hosts[..i].contains(h) && !duplicates.contains(h) {
                duplicates.push(h.clone());
            }
        }
        if duplicates.is_empty() {
            Ok(())
        } else {
            Err(Error::config(format!(
                "Different roles can't share the same host for SSL: {}",
                duplicates.join(", ")
            )))
        }
    }

    fn ensure_local_registry_remote_builder(&self) -> Result<()> {
        let builder = self.builder_config();
        let remote = builder
            .as_map()
            .and_then(|b| b.get("remote"))
            .filter(|r| r.is_present())
            .map(Value::to_ruby_s);
        if let (true, Some(remote)) = (self.registry().local(), remote) {
            if !remote.starts_with("ssh://") {
                return Err(Error::config("Local registry with remote builder requires an SSH URL (e.g., ssh://user@host)"));
            }
        }
        Ok(())
    }

    /// Every role or accessory with its own `proxy.run` is a separate proxy run configuration; two on one
    /// host conflict (Kamal compares them by identity).
    fn ensure_no_conflicting_proxy_runs(&self) -> Result<()> {
        for host in self.all_hosts() {
            let role_runs = self
                .roles
                .iter()
                .filter(|r| r.hosts.contains(&host))
                .filter_map(|r| r.proxy_config(self.get("proxy")))
                .filter(|p| {
                    p.as_map()
                        .and_then(|m| m.get("run"))
                        .is_some_and(Value::truthy)
                })
                .count();
            let accessory_runs = self
                .accessories
                .iter()
                .filter(|a| a.hosts.contains(&host) && a.running_proxy())
                .filter(|a| {
                    a.config
                        .get("proxy")
                        .and_then(Value::as_map)
                        .and_then(|p| p.get("run"))
                        .is_some_and(Value::truthy)
                })
                .count();
            if role_runs + accessory_runs > 1 {
                return Err(Error::config(format!(
                    "Conflicting proxy run configurations for host {host}"
                )));
            }
        }
        Ok(())
    }

    fn ensure_valid_hooks_output(&self) -> Result<()> {
        let valid = |v: &Value| matches!(v, Value::Str(s) | Value::Sym(s) if s == "quiet" || s == "verbose");
        match self.get("hooks_output") {
            None => Ok(()),
            Some(Value::Map(map)) => {
                for (hook, level) in map.iter() {
                    if !valid(level) {
                        return Err(Error::config(format!(
                            "Invalid hooks_output '{}' for hook '{}', must be one of: quiet, verbose",
                            level.to_ruby_s(),
                            hook.to_ruby_s()
                        )));
                    }
                }
                Ok(())
            }
            Some(level) if valid(level) => Ok(()),
            Some(level) => Err(Error::config(format!(
                "Invalid hooks_output '{}', must be one of: quiet, verbose",
                level.to_ruby_s()
            ))),
        }
    }
}
