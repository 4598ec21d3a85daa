//! The flags of `kamal-proxy deploy` for a role, in Kamal's order (`Kamal::Configuration::Proxy#deploy_options`,
//! lib/kamal/configuration/proxy.rb, Kamal 2.12.0): each `--flag=<escaped value>`, a true boolean as the
//! bare `--flag`, an unset setting left out.

use crate::config::{Configuration, Role};
use crate::shell::escape_shell_value;
use crate::value::{Map, Value};

/// The role's `proxy:` settings, read by path.
struct Settings(Map);

impl Settings {
    fn get(&self, path: &[&str]) -> Option<Value> {
        let mut v = Value::map(self.0.clone());
        for key in path {
            v = v.as_map()?.get(key)?.clone();
        }
        (!v.is_nil()).then_some(v)
    }

    fn list(&self, array_key: &str, comma_key: &str) -> Vec<String> {
        match self.get(&[array_key]) {
            Some(Value::Seq(items)) => items.iter().map(Value::to_ruby_s).collect(),
            _ => self
                .get(&[comma_key])
                .map(|v| v.to_ruby_s().split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        }
    }
}

fn quoted(flag: &str, value: impl AsRef<str>) -> String {
    format!("--{flag}={}", escape_shell_value(value.as_ref()))
}

fn secs(flag: &str, v: Option<Value>) -> Option<String> {
    v.map(|v| quoted(flag, format!("{}s", v.to_ruby_s())))
}

fn boolean(flag: &str, v: Option<Value>, default: Option<bool>) -> Option<String> {
    match v.or_else(|| default.map(Value::Bool)) {
        Some(Value::Bool(true)) => Some(format!("--{flag}")),
        Some(Value::Bool(false)) => Some(quoted(flag, "false")),
        Some(other) if other.truthy() => Some(format!("--{flag}")),
        _ => None,
    }
}

/// The flags of `kamal-proxy deploy` for `role` (its proxy settings: `proxy`, merged as the role's).
pub fn args(
    config: &Configuration,
    role: &Role,
    proxy: Map,
    container_id: &str,
    version: &str,
) -> Vec<String> {
    let p = Settings(proxy);
    let sd = config.service_and_destination();
    let mut a = target_and_tls(&role.name, &p, container_id, &sd);
    let timeouts = config.timeouts();
    a.push(quoted(
        "deploy-timeout",
        format!("{}s", timeouts.deploy_timeout),
    ));
    a.push(quoted(
        "drain-timeout",
        format!("{}s", timeouts.drain_timeout),
    ));
    a.extend(secs(
        "health-check-interval",
        p.get(&["healthcheck", "interval"]),
    ));
    a.extend(secs(
        "health-check-timeout",
        p.get(&["healthcheck", "timeout"]),
    ));
    if let Some(path) = p.get(&["healthcheck", "path"]) {
        a.push(quoted("health-check-path", path.to_ruby_s()));
    }
    a.extend(secs("target-timeout", p.get(&["response_timeout"])));
    a.extend(buffering(&p));
    for prefix in p.list("path_prefixes", "path_prefix") {
        a.push(quoted("path-prefix", prefix));
    }
    a.extend(boolean(
        "strip-path-prefix",
        p.get(&["strip_path_prefix"]),
        None,
    ));
    a.extend(boolean(
        "forward-headers",
        p.get(&["forward_headers"]),
        None,
    ));
    a.extend(boolean("tls-redirect", p.get(&["ssl_redirect"]), None));
    a.extend(logging(&p));
    if config.get("error_pages_path").is_some() {
        a.push(quoted(
            "error-pages",
            format!("/home/kamal-proxy/.apps-config/{sd}/error_pages/{version}"),
        ));
    }
    a
}

/// `--target`, each `--host`, `--tls` and custom certificates' paths.
fn target_and_tls(role: &str, p: &Settings, container_id: &str, sd: &str) -> Vec<String> {
    let port = p
        .get(&["app_port"])
        .map(|v| v.to_ruby_s())
        .unwrap_or_else(|| "80".into());
    let mut a = vec![quoted("target", format!("{container_id}:{port}"))];
    for host in crate::config::proxy_hosts(&p.0) {
        a.push(quoted("host", host));
    }
    let ssl = p.get(&["ssl"]);
    if ssl.as_ref().is_some_and(Value::truthy) {
        a.push("--tls".into());
    }
    let custom = ssl
        .as_ref()
        .and_then(Value::as_map)
        .is_some_and(|s| s.get("certificate_pem").is_some_and(Value::is_present));
    if custom {
        let dir = format!("/home/kamal-proxy/.apps-config/{sd}/tls/{role}");
        a.push(quoted("tls-certificate-path", format!("{dir}/cert.pem")));
        a.push(quoted("tls-private-key-path", format!("{dir}/key.pem")));
    }
    a
}

/// Request and response buffering (on by default), with their limits.
fn buffering(p: &Settings) -> Vec<String> {
    let mut a = Vec::new();
    a.extend(boolean(
        "buffer-requests",
        p.get(&["buffering", "requests"]),
        Some(true),
    ));
    a.extend(boolean(
        "buffer-responses",
        p.get(&["buffering", "responses"]),
        Some(true),
    ));
    for (flag, key) in [
        ("buffer-memory", "memory"),
        ("max-request-body", "max_request_body"),
        ("max-response-body", "max_response_body"),
    ] {
        if let Some(v) = p.get(&["buffering", key]) {
            a.push(quoted(flag, v.to_ruby_s()));
        }
    }
    a
}

/// The request headers kamal-proxy logs (Kamal's three by default), and the response headers.
fn logging(p: &Settings) -> Vec<String> {
    let headers = |key: &str, default: &[&str]| -> Vec<String> {
        match p.get(&["logging", key]) {
            Some(Value::Seq(items)) => items.iter().map(Value::to_ruby_s).collect(),
            _ => default.iter().map(|s| s.to_string()).collect(),
        }
    };
    let request = headers(
        "request_headers",
        &["Cache-Control", "Last-Modified", "User-Agent"],
    );
    let response = headers("response_headers", &[]);
    let mut a: Vec<String> = request
        .into_iter()
        .map(|h| quoted("log-request-header", h))
        .collect();
    a.extend(
        response
            .into_iter()
            .map(|h| quoted("log-response-header", h)),
    );
    a
}
