//! Kamal 1.x configs (Traefik era; `lib/kamal/configuration.rb` and `lib/kamal/configuration/{traefik,healthcheck}.rb`, tag v1.9.3): recognised, checked with 1.9's rules and
//! printed as 1.9's `kamal config` does. Their deploy follows Kamal 1.9's steps (a later module).

use super::validator::{self, Validator};
use super::{v1_schema as schema, Configuration, KamalMajor};
use crate::error::{Error, Result};
use crate::value::{Map, Value};

/// The Kamal release whose 1.x behaviour kamal_rs reproduces (what a 1.x `minimum_version` is checked
/// against).
pub const KAMAL_1_VERSION: &str = "1.9.3";

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

/// Which Kamal a config is for: 2.x when it uses a 2.x-only root key; else 1.x when it uses a
/// 1.x-only setting (`traefik`, `healthcheck`, `stop_wait_time`, a role's `traefik`/`healthcheck`,
/// `builder.multiarch`, or the 1.x `builder.local`/`remote` hashes); else 2.x when its builder or a
/// role uses a 2.x-only key (`builder.arch`, which Kamal 2 requires, `driver`, `pack`..., a role's
/// `proxy`). `None` when nothing tells: an early 1.x config, which Kamal 2.12 refuses for its missing
/// `builder.arch` and Kamal 1.9.3 accepts.
pub fn detect(raw: &Map) -> Option<KamalMajor> {
    if V2_ROOT_KEYS.iter().any(|k| raw.contains_key(k)) {
        return Some(KamalMajor::V2);
    }
    let builder = raw.get("builder").and_then(Value::as_map);
    let roles: Vec<&Map> = raw
        .get("servers")
        .and_then(Value::as_map)
        .map(|roles| roles.iter().filter_map(|(_, r)| r.as_map()).collect())
        .unwrap_or_default();
    let role_has = |keys: &[&str]| roles.iter().any(|r| keys.iter().any(|k| r.contains_key(k)));
    let builder_v1 = builder.is_some_and(|b| {
        b.contains_key("multiarch")
            || matches!(b.get("local"), Some(Value::Map(_)))
            || matches!(b.get("remote"), Some(Value::Map(_)))
    });
    if V1_ROOT_KEYS.iter().any(|k| raw.contains_key(k))
        || role_has(&["traefik", "healthcheck"])
        || builder_v1
    {
        return Some(KamalMajor::V1);
    }
    let builder_v2 = builder.is_some_and(|b| {
        ["arch", "driver", "pack", "provenance", "sbom"]
            .iter()
            .any(|k| b.contains_key(k))
            || matches!(b.get("local"), Some(Value::Bool(_)))
            || matches!(b.get("remote"), Some(Value::Str(_)))
    });
    (builder_v2 || role_has(&["proxy", "stop_timeout"])).then_some(KamalMajor::V2)
}

/// Kamal 1.9.3's checks, in the order its `Configuration#initialize` builds the sections: the root
/// against its example, `servers` and each role (sorted), `registry`, each accessory, `boot`,
/// `builder`, `env`, `healthcheck`, `logging`, `traefik`, `ssh`, `sshkit`.
pub fn validate(raw: &Map) -> Result<()> {
    Validator::root()
        .v1()
        .validate_fields(&Value::map(raw.clone()), schema::ROOT)?;
    validate_servers(raw.get("servers").unwrap_or(&Value::Nil))?;
    let section = |key: &str| {
        raw.get(key)
            .filter(|v| !v.is_nil())
            .cloned()
            .unwrap_or_else(|| Value::map(Map::new()))
    };
    validator::validate_registry_v1(&section("registry"))?;
    if let Some(Value::Map(accessories)) = raw.get("accessories") {
        for (name, accessory) in accessories.iter() {
            validate_accessory(accessory, &name.to_ruby_s())?;
        }
    }
    validator::validate_section_v1(&section("boot"), schema::BOOT, "boot")?;
    validate_builder(&section("builder"))?;
    validator::validate_env(&section("env"), "env")?;
    for (key, fields) in [
        ("healthcheck", schema::HEALTHCHECK),
        ("logging", super::schema::LOGGING),
        ("traefik", schema::TRAEFIK),
        ("ssh", schema::SSH),
        ("sshkit", schema::SSHKIT),
    ] {
        validator::validate_section_v1(&section(key), fields, key)?;
    }
    Ok(())
}

/// `servers` (an array of hosts, or a hash of roles), then each role by name, with its `env`,
/// `logging` and `healthcheck`.
fn validate_servers(servers: &Value) -> Result<()> {
    let mut v = Validator::new("servers").v1();
    v.validate_type(
        servers,
        &[super::validator::Ty::Arr, super::validator::Ty::Hash],
    )?;
    let Value::Map(roles) = servers else {
        return v.validate_servers(servers);
    };
    let mut names: Vec<(String, &Value)> = roles.iter().map(|(k, r)| (k.to_ruby_s(), r)).collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, role) in names {
        let context = format!("servers/{name}");
        // A role given as a list of hosts has no settings of its own.
        let own = match role {
            Value::Seq(_) => Value::map(Map::new()),
            other => other.clone(),
        };
        let mut v = Validator::new(&context).v1();
        v.validate_type(
            &own,
            &[super::validator::Ty::Arr, super::validator::Ty::Hash],
        )?;
        v.validate_fields(&own, schema::ROLE)?;
        let map = own.as_map().cloned().unwrap_or_default();
        let part = |key: &str| {
            map.get(key)
                .cloned()
                .unwrap_or_else(|| Value::map(Map::new()))
        };
        validator::validate_env(&part("env"), &format!("{context}/env"))?;
        validator::validate_section_v1(
            &part("logging"),
            super::schema::LOGGING,
            &format!("{context}/logging"),
        )?;
        validator::validate_section_v1(
            &part("healthcheck"),
            schema::HEALTHCHECK,
            &format!("{context}/healthcheck"),
        )?;
    }
    Ok(())
}

fn validate_accessory(accessory: &Value, name: &str) -> Result<()> {
    let context = format!("accessories/{name}");
    let mut v = Validator::new(&context).v1();
    v.validate_fields(accessory, schema::ACCESSORY)?;
    let map = accessory.as_map().cloned().unwrap_or_default();
    if ["host", "hosts", "roles"]
        .iter()
        .filter(|k| map.contains_key(k))
        .count()
        != 1
    {
        return Err(v.error("specify one of `host`, `hosts` or `roles`"));
    }
    let env = map
        .get("env")
        .cloned()
        .unwrap_or_else(|| Value::map(Map::new()));
    validator::validate_env(&env, &format!("{context}/env"))
}

fn validate_builder(builder: &Value) -> Result<()> {
    let v = Validator::new("builder").v1();
    validator::validate_section_v1(builder, schema::BUILDER, "builder")?;
    let cache_type = builder
        .as_map()
        .and_then(|b| b.get("cache"))
        .and_then(Value::as_map)
        .and_then(|c| c.get("type"))
        .filter(|t| t.truthy());
    if let Some(t) = cache_type {
        if !["gha", "registry"].contains(&t.to_ruby_s().as_str()) {
            return Err(v.error(format!("Invalid cache type: {}", t.to_ruby_s())));
        }
    }
    Ok(())
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
    config.ensure_minimum_version_of(KAMAL_1_VERSION)?;
    if config.retain_containers() < 1 {
        return Err(Error::config("Must retain at least 1 container"));
    }
    config.ensure_valid_service_name()
}

/// 1.9.3's `Healthcheck#to_h`: the root `healthcheck:` over 1.9's defaults, `cmd` filled in, in its
/// order (cmd, interval, max_attempts, port, path, cord, log_lines).
pub fn healthcheck(config: &Configuration) -> Value {
    let own = config
        .get("healthcheck")
        .and_then(Value::as_map)
        .cloned()
        .unwrap_or_default();
    // `fetch` with a default: a key given (even as nil) wins.
    let fetch = |key: &str, default: Value| own.get(key).cloned().unwrap_or(default);
    let port = fetch("port", Value::Int(3000));
    let path = fetch("path", Value::str("/up"));
    let http = (path.is_present() || port.is_present())
        .then(|| Value::str(http_health_check(&port.to_ruby_s(), &path.to_ruby_s())));
    let mut h = Map::new();
    h.set("cmd", fetch("cmd", http.unwrap_or(Value::Nil)));
    h.set("interval", fetch("interval", Value::str("1s")));
    h.set("max_attempts", fetch("max_attempts", Value::Int(7)));
    h.set("port", port);
    h.set("path", path);
    h.set("cord", fetch("cord", Value::str("/tmp/kamal-cord")));
    h.set("log_lines", fetch("log_lines", Value::Int(50)));
    Value::map(h)
}

/// 1.9.3's `curl -f #{URI.join("http://localhost:#{port}", path)} || exit 1`.
pub fn http_health_check(port: &str, path: &str) -> String {
    format!(
        "curl -f {} || exit 1",
        join_url(&format!("http://localhost:{port}"), path)
    )
}

/// Ruby's `URI.join(base, path)` for an http base without a path: an absolute path replaces it,
/// a relative one goes after `/`. The result is printed as `URI#to_s` prints it, which leaves out
/// the scheme's default port: `http://localhost:80` + `/health` is `http://localhost/health`.
fn join_url(base: &str, path: &str) -> String {
    let base = match base.rsplit_once(':') {
        Some((host, port)) if port.parse::<u32>() == Ok(80) => host.to_string(),
        _ => base.to_string(),
    };
    if path.starts_with("http://") || path.starts_with("https://") {
        path.to_string()
    } else if path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{config, value};
    use serde_json::json;

    fn detect_of(json: serde_json::Value) -> Option<KamalMajor> {
        detect(value(&json).as_map().unwrap())
    }

    #[test]
    fn which_kamal_a_config_is_for() {
        let base = json!({"service": "a", "image": "a", "servers": ["1.1.1.1"]});
        let with = |k: &str, v: serde_json::Value| {
            let mut c = base.clone();
            c[k] = v;
            c
        };
        assert_eq!(
            detect_of(base.clone()),
            None,
            "nothing tells: an early 1.x config"
        );
        assert_eq!(detect_of(with("traefik", json!({}))), Some(KamalMajor::V1));
        assert_eq!(detect_of(with("proxy", json!({}))), Some(KamalMajor::V2));
        assert_eq!(
            detect_of(with("builder", json!({"arch": "amd64"}))),
            Some(KamalMajor::V2)
        );
        assert_eq!(
            detect_of(with("builder", json!({"driver": "docker"}))),
            Some(KamalMajor::V2)
        );
        assert_eq!(
            detect_of(with("builder", json!({"multiarch": false}))),
            Some(KamalMajor::V1)
        );
        assert_eq!(
            detect_of(with(
                "servers",
                json!({"web": {"hosts": ["1.1.1.1"], "healthcheck": {}}})
            )),
            Some(KamalMajor::V1)
        );
    }

    #[test]
    fn the_healthcheck_as_1_9_prints_it() {
        let c = config(
            &[json!({"service": "a", "image": "a", "servers": ["1.1.1.1"],
                     "registry": {"username": "u", "password": "p"},
                     "healthcheck": {"path": "health", "port": 4000, "max_attempts": 3}})],
            None,
            "v1",
        );
        assert_eq!(c.major, KamalMajor::V1);
        assert!(!c.v1_by_elimination, "healthcheck: is 1.x-only");
        let h = healthcheck(&c);
        let keys: Vec<String> = h.as_map().unwrap().key_names();
        assert_eq!(
            keys,
            [
                "cmd",
                "interval",
                "max_attempts",
                "port",
                "path",
                "cord",
                "log_lines"
            ]
        );
        assert_eq!(
            h.as_map().unwrap().get("cmd").unwrap().to_ruby_s(),
            "curl -f http://localhost:4000/health || exit 1"
        );
    }

    /// Ruby's `URI.join` leaves out http's default port, and joins a relative path after `/`.
    #[test]
    fn the_health_check_url_as_uri_join_prints_it() {
        assert_eq!(
            http_health_check("80", "/health"),
            "curl -f http://localhost/health || exit 1"
        );
        assert_eq!(
            http_health_check("3000", "up"),
            "curl -f http://localhost:3000/up || exit 1"
        );
        assert_eq!(
            http_health_check("443", "/up"),
            "curl -f http://localhost:443/up || exit 1"
        );
    }
}
