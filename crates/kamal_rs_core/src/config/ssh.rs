//! `ssh:` settings as Kamal hands them to Net::SSH (and prints them in `kamal config`).

use crate::error::Result;
use crate::secrets::Secrets;
use crate::value::{Map, Object, Value};
use std::sync::Arc;

/// Kamal's `Ssh#to_h`: the Net::SSH options without the logger, plus `log_level`.
///
/// `key_data` entries naming a secret are shown as `[REDACTED]`: Kamal would print the private key
/// itself, kamal_rs never prints a secret.
pub fn to_h(ssh: &Value, secrets: &Secrets) -> Result<Value> {
    let cfg = ssh.as_map().cloned().unwrap_or_default();
    let present = |key: &str| cfg.get(key).filter(|v| !v.is_nil()).cloned();
    let mut h = Map::new();
    h.set_sym(
        "user",
        present("user").unwrap_or_else(|| Value::str("root")),
    );
    h.set_sym("port", present("port").unwrap_or(Value::Int(22)));
    if let Some(proxy) = proxy_object(&cfg) {
        h.set_sym("proxy", proxy);
    }
    h.set_sym("keepalive", Value::Bool(true));
    h.set_sym("keepalive_interval", Value::Int(30));
    for key in ["keys_only", "keys"] {
        if let Some(v) = present(key) {
            h.set_sym(key, v);
        }
    }
    if let Some(Value::Seq(keys)) = present("key_data") {
        let mut shown = Vec::new();
        for k in keys.iter() {
            let name = k.to_ruby_s();
            shown.push(if secrets.contains(&name)? {
                Value::str("[REDACTED]")
            } else {
                k.clone()
            });
        }
        h.set_sym("key_data", Value::seq(shown));
    }
    for key in ["config", "forward_agent"] {
        if let Some(v) = present(key) {
            h.set_sym(key, v);
        }
    }
    h.set_sym(
        "log_level",
        present("log_level").unwrap_or_else(|| Value::sym("fatal")),
    );
    Ok(Value::map(h))
}

/// Kamal 2.12 warns (on stderr) for each `ssh.key_data` entry that is a key itself rather than the
/// name of a secret (`lib/kamal/configuration/ssh.rb#key_data`).
pub const INLINE_KEY_DATA: &str =
    "Inline key_data usage is deprecated and will be removed in Kamal 3. Please store your key_data in a secret.";

pub fn warnings(ssh: Option<&Value>, secrets: &Secrets) -> Vec<String> {
    let keys = ssh
        .and_then(Value::as_map)
        .and_then(|m| m.get("key_data"))
        .and_then(Value::as_seq)
        .unwrap_or_default();
    keys.iter()
        .filter(|k| !secrets.contains(&k.to_ruby_s()).unwrap_or(false))
        .map(|_| INLINE_KEY_DATA.to_string())
        .collect()
}

/// `ssh.proxy` (a jump host, `root@` added when no user is given) or `ssh.proxy_command`, as the
/// Net::SSH proxy objects Kamal builds from them.
fn proxy_object(cfg: &Map) -> Option<Value> {
    if let Some(proxy) = cfg.get("proxy").filter(|v| !v.is_nil()) {
        let proxy = proxy.to_ruby_s();
        let jump = if proxy.contains('@') {
            proxy
        } else {
            format!("root@{proxy}")
        };
        let mut ivars = Map::new();
        ivars.set("jump_proxies", Value::str(jump));
        return Some(Value::Object(Arc::new(Object {
            class: "Net::SSH::Proxy::Jump".into(),
            ivars,
        })));
    }
    let command = cfg.get("proxy_command").filter(|v| !v.is_nil())?;
    let mut ivars = Map::new();
    ivars.set("command_line_template", command.clone());
    ivars.set("command_line", Value::Nil);
    ivars.set("timeout", Value::Int(60));
    Some(Value::Object(Arc::new(Object {
        class: "Net::SSH::Proxy::Command".into(),
        ivars,
    })))
}
