//! The flags of `kamal-proxy deploy` for a role, in Kamal's order (`Kamal::Configuration::Proxy#deploy_options`,
//! lib/kamal/configuration/proxy.rb, Kamal 2.12.0): each `--flag=<escaped value>`, a true boolean as the
//! bare `--flag`, an unset setting left out.

use crate::config::proxy::ProxySettings;
use crate::config::{Configuration, Role};
use crate::shell::escape_shell_value;
use crate::value::Value;

fn quoted(flag: &str, value: impl AsRef<str>) -> String {
    format!("--{flag}={}", escape_shell_value(value.as_ref()))
}

fn secs(flag: &str, v: Option<String>) -> Option<String> {
    v.map(|v| quoted(flag, format!("{v}s")))
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
    p: &ProxySettings,
    container_id: &str,
    version: &str,
) -> Vec<String> {
    let sd = config.service_and_destination();
    let mut a = target_and_tls(&role.name, p, container_id, &sd);
    let timeouts = config.timeouts();
    a.push(quoted(
        "deploy-timeout",
        format!("{}s", timeouts.deploy_timeout),
    ));
    a.push(quoted(
        "drain-timeout",
        format!("{}s", timeouts.drain_timeout),
    ));
    a.extend(secs("health-check-interval", p.healthcheck("interval")));
    a.extend(secs("health-check-timeout", p.healthcheck("timeout")));
    if let Some(path) = p.healthcheck("path") {
        a.push(quoted("health-check-path", path));
    }
    a.extend(secs("target-timeout", p.response_timeout()));
    a.extend(buffering(p));
    for prefix in p.path_prefixes() {
        a.push(quoted("path-prefix", prefix));
    }
    a.extend(boolean(
        "strip-path-prefix",
        p.flag("strip_path_prefix"),
        None,
    ));
    a.extend(boolean("forward-headers", p.flag("forward_headers"), None));
    a.extend(boolean("tls-redirect", p.flag("ssl_redirect"), None));
    a.extend(logging(p));
    if config.error_pages_path().is_some() {
        a.push(quoted(
            "error-pages",
            format!("/home/kamal-proxy/.apps-config/{sd}/error_pages/{version}"),
        ));
    }
    a
}

/// `--target`, each `--host`, `--tls` and custom certificates' paths.
fn target_and_tls(role: &str, p: &ProxySettings, container_id: &str, sd: &str) -> Vec<String> {
    let port = p.app_port();
    let mut a = vec![quoted("target", format!("{container_id}:{port}"))];
    for host in p.hosts() {
        a.push(quoted("host", host));
    }
    if p.ssl() {
        a.push("--tls".into());
    }
    if p.custom_certificates().is_some() {
        let dir = format!("/home/kamal-proxy/.apps-config/{sd}/tls/{role}");
        a.push(quoted("tls-certificate-path", format!("{dir}/cert.pem")));
        a.push(quoted("tls-private-key-path", format!("{dir}/key.pem")));
    }
    a
}

/// Request and response buffering (on by default), with their limits.
fn buffering(p: &ProxySettings) -> Vec<String> {
    let mut a = Vec::new();
    a.extend(boolean(
        "buffer-requests",
        p.buffering("requests"),
        Some(true),
    ));
    a.extend(boolean(
        "buffer-responses",
        p.buffering("responses"),
        Some(true),
    ));
    for (flag, key) in [
        ("buffer-memory", "memory"),
        ("max-request-body", "max_request_body"),
        ("max-response-body", "max_response_body"),
    ] {
        if let Some(v) = p.buffering(key) {
            a.push(quoted(flag, v.to_ruby_s()));
        }
    }
    a
}

/// The request headers kamal-proxy logs (Kamal's three by default), and the response headers.
fn logging(p: &ProxySettings) -> Vec<String> {
    let request = p.logged_headers("request_headers");
    let response = p.logged_headers("response_headers");
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
