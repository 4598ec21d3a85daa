//! A role's `proxy:` as a run reads it: the root section with the role's own merged over it
//! (`lib/kamal/configuration/proxy.rb`, Kamal 2.12.0). `nil` counts as unset.

use super::{Configuration, Role};
use crate::value::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct ProxySettings(Map);

impl ProxySettings {
    /// The role's settings; `None` for a role that does not run behind kamal-proxy.
    pub fn of(config: &Configuration, role: &Role) -> Option<ProxySettings> {
        role.proxy_config(config.get("proxy"))
            .map(|v| ProxySettings(v.as_map().cloned().unwrap_or_default()))
    }

    fn get(&self, path: &[&str]) -> Option<Value> {
        let (first, rest) = path.split_first()?;
        let mut v = self.0.get(first)?;
        for key in rest {
            v = v.as_map()?.get(key)?;
        }
        (!v.is_nil()).then(|| v.clone())
    }

    fn string(&self, path: &[&str]) -> Option<String> {
        self.get(path).map(|v| v.to_ruby_s())
    }

    fn strings(&self, path: &[&str]) -> Option<Vec<String>> {
        match self.get(path) {
            Some(Value::Seq(items)) => Some(items.iter().map(Value::to_ruby_s).collect()),
            _ => None,
        }
    }

    /// `app_port` (80 by default).
    pub fn app_port(&self) -> String {
        self.string(&["app_port"]).unwrap_or_else(|| "80".into())
    }

    /// `hosts`, or `host` split on commas.
    pub fn hosts(&self) -> Vec<String> {
        super::proxy_hosts(&self.0)
    }

    /// `path_prefixes`, or `path_prefix` split on commas.
    pub fn path_prefixes(&self) -> Vec<String> {
        self.strings(&["path_prefixes"]).unwrap_or_else(|| {
            self.string(&["path_prefix"])
                .map(|v| v.split(',').map(str::to_string).collect())
                .unwrap_or_default()
        })
    }

    /// `ssl` set to something truthy: `true`, or custom certificates.
    pub fn ssl(&self) -> bool {
        self.get(&["ssl"]).as_ref().is_some_and(Value::truthy)
    }

    /// `ssl: {certificate_pem:, private_key_pem:}`: the names of the two secrets.
    pub fn custom_certificates(&self) -> Option<(String, String)> {
        let cert = self
            .get(&["ssl", "certificate_pem"])
            .filter(Value::is_present)?;
        let key = self.get(&["ssl", "private_key_pem"])?;
        Some((cert.to_ruby_s(), key.to_ruby_s()))
    }

    /// `healthcheck.interval` and `.timeout` (seconds), `.path`.
    pub fn healthcheck(&self, key: &str) -> Option<String> {
        self.string(&["healthcheck", key])
    }

    /// `response_timeout` (seconds).
    pub fn response_timeout(&self) -> Option<String> {
        self.string(&["response_timeout"])
    }

    /// A boolean setting (`strip_path_prefix`, `forward_headers`, `ssl_redirect`) as set.
    pub fn flag(&self, key: &str) -> Option<Value> {
        self.get(&[key])
    }

    /// `buffering.requests` / `.responses` as set (kamal-proxy buffers by default), and the limits
    /// (`memory`, `max_request_body`, `max_response_body`).
    pub fn buffering(&self, key: &str) -> Option<Value> {
        self.get(&["buffering", key])
    }

    /// `logging.request_headers` (Kamal's three by default) or `.response_headers` (none).
    pub fn logged_headers(&self, key: &str) -> Vec<String> {
        self.strings(&["logging", key]).unwrap_or_else(|| {
            let default: &[&str] = if key == "request_headers" {
                &["Cache-Control", "Last-Modified", "User-Agent"]
            } else {
                &[]
            };
            default.iter().map(|s| s.to_string()).collect()
        })
    }

    /// `run:`: how kamal-proxy itself runs on the host (`kamal proxy boot`'s settings).
    pub fn run(&self) -> Option<Map> {
        self.get(&["run"]).and_then(|v| v.as_map().cloned())
    }
}
