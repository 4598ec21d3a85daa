//! Kamal 1.x configs (Traefik era; `lib/kamal/configuration.rb` and `lib/kamal/configuration/{traefik,healthcheck}.rb`, tag v1.9.3): recognised, checked with 1.9's rules and
//! printed as 1.9's `kamal config` does. Their deploy follows Kamal 1.9's steps (a later module).

use super::{Configuration, KamalMajor};
use crate::error::{Error, Result};
use crate::value::{Map, Value};

/// Root keys only Kamal 1.x knows.
const V1_ROOT_KEYS: &[&str] = &["traefik", "healthcheck", "stop_wait_time"];
/// Root keys only Kamal 2.x knows: any of them makes the config a 2.x one.
const V2_ROOT_KEYS: &[&str] = &[
    "proxy",
    "secrets_path",
    "error_pages_path",
    "deploy_timeout",
    "drain_timeout",
    "stop_timeout",
    "hooks_output",
    "output",
    "aliases",
];

/// A config is 1.x when it uses a 1.x-only setting (`traefik`, `healthcheck`, `stop_wait_time`, a role's
/// `traefik`/`healthcheck`, `builder.multiarch`, or the 1.x `builder.local`/`remote` hashes) and no 2.x-only one.
pub fn detect(raw: &Map) -> KamalMajor {
    if V2_ROOT_KEYS.iter().any(|k| raw.contains_key(k)) {
        return KamalMajor::V2;
    }
    let role_v1 = raw
        .get("servers")
        .and_then(Value::as_map)
        .is_some_and(|roles| {
            roles.iter().any(|(_, r)| {
                r.as_map()
                    .is_some_and(|r| r.contains_key("traefik") || r.contains_key("healthcheck"))
            })
        });
    let builder_v1 = raw.get("builder").and_then(Value::as_map).is_some_and(|b| {
        b.contains_key("multiarch")
            || matches!(b.get("local"), Some(Value::Map(_)))
            || matches!(b.get("remote"), Some(Value::Map(_)))
    });
    if V1_ROOT_KEYS.iter().any(|k| raw.contains_key(k)) || role_v1 || builder_v1 {
        KamalMajor::V1
    } else {
        KamalMajor::V2
    }
}

/// 1.9's checks: `service image registry servers` required, then the role, version and name rules.
pub fn ensure_valid(config: &Configuration) -> Result<()> {
    if config.get("require_destination").is_some_and(Value::truthy) && config.destination.is_none()
    {
        return Err(Error::argument("You must specify a destination"));
    }
    for key in ["service", "image", "registry", "servers"] {
        if !config.get(key).is_some_and(Value::is_present) {
            return Err(Error::config(format!(
                "Missing required configuration for {key}"
            )));
        }
    }
    config.ensure_roles_have_hosts()?;
    config.ensure_minimum_version()?;
    if config.retain_containers() < 1 {
        return Err(Error::config("Must retain at least 1 container"));
    }
    config.ensure_valid_service_name()
}

/// 1.9's healthcheck defaults with the root `healthcheck:` merged over them.
pub fn healthcheck(config: &Configuration) -> Value {
    let mut defaults = Map::new();
    defaults.set("path", Value::str("/up"));
    defaults.set("port", Value::Int(3000));
    defaults.set("max_attempts", Value::Int(7));
    defaults.set("interval", Value::str("1s"));
    defaults.set("cord", Value::str("/tmp/kamal-cord"));
    defaults.set("log_lines", Value::Int(50));
    let mut merged = defaults;
    if let Some(Value::Map(own)) = config.get("healthcheck") {
        for (k, v) in own.iter() {
            merged.insert(k.clone(), v.clone());
        }
    }
    Value::map(merged)
}

/// Every name a 1.x config reads from ENV: `env.secret` (root, roles, tags, Traefik's) and the registry
/// credentials given as `[NAME]`.
pub fn secret_keys(raw: &Map) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut add = |v: Option<&Value>| {
        for k in v.and_then(Value::as_seq).unwrap_or_default() {
            let k = k.to_ruby_s();
            let k = k.split_once(':').map(|(_, s)| s.to_string()).unwrap_or(k);
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    };
    let env_secret = |env: Option<&Value>| {
        env.and_then(Value::as_map)
            .and_then(|e| e.get("secret"))
            .cloned()
    };
    add(env_secret(raw.get("env")).as_ref());
    if let Some(tags) = raw
        .get("env")
        .and_then(Value::as_map)
        .and_then(|e| e.get("tags"))
        .and_then(Value::as_map)
    {
        for (_, t) in tags.iter() {
            add(env_secret(Some(t)).as_ref());
        }
    }
    if let Some(roles) = raw.get("servers").and_then(Value::as_map) {
        for (_, r) in roles.iter() {
            add(env_secret(r.as_map().and_then(|r| r.get("env"))).as_ref());
        }
    }
    add(env_secret(
        raw.get("traefik")
            .and_then(Value::as_map)
            .and_then(|t| t.get("env")),
    )
    .as_ref());
    if let Some(registry) = raw.get("registry").and_then(Value::as_map) {
        add(registry.get("username"));
        add(registry.get("password"));
    }
    keys
}
