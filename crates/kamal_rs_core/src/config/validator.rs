//! Kamal's config validator: checks a section against its example (see `schema.rs`) and raises
//! `<context>: <problem>` with Kamal's own wording, the context being the slash-joined path of keys
//! (`servers/web/0: should be a string or a hash`).

use regex::Regex;

use super::schema::{self, Ex, Fields};
use crate::error::{Error, Result};
use crate::value::{Map, Value};

/// The Ruby classes Kamal names in "should be ..." messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Bool,
    Arr,
    Hash,
    Sym,
}

impl Ty {
    fn describe(self) -> &'static str {
        match self {
            Ty::Str => "a string",
            Ty::Int => "an integer",
            Ty::Bool => "a boolean",
            Ty::Arr => "an array",
            Ty::Hash => "a hash",
            Ty::Sym => "a symbol",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Ty::Str => value.is_stringish(),
            Ty::Int => matches!(value, Value::Int(_)),
            Ty::Bool => matches!(value, Value::Bool(_)),
            Ty::Arr => matches!(value, Value::Seq(_)),
            Ty::Hash => matches!(value, Value::Map(_)),
            Ty::Sym => matches!(value, Value::Sym(_)),
        }
    }

    fn of_example(ex: &Ex) -> Ty {
        match ex {
            Ex::Str => Ty::Str,
            Ex::Int => Ty::Int,
            Ex::Bool => Ty::Bool,
            Ex::Arr(_) => Ty::Arr,
            Ex::Hash(_) | Ex::Section => Ty::Hash,
        }
    }
}

pub struct Validator {
    context: String,
    /// Only the root allows `x-` extension keys.
    allow_extensions: bool,
    /// Kamal 1.9.3's rules: none of the keys 2.x checks by name (`ssl`, `arch`, `config`, `files`...).
    v1: bool,
}

impl Validator {
    pub fn new(context: impl Into<String>) -> Self {
        Validator {
            context: context.into(),
            allow_extensions: false,
            v1: false,
        }
    }

    pub fn root() -> Self {
        Validator {
            context: String::new(),
            allow_extensions: true,
            v1: false,
        }
    }

    /// A validator with Kamal 1.9.3's rules.
    pub fn v1(mut self) -> Self {
        self.v1 = true;
        self
    }

    pub fn error(&self, message: impl AsRef<str>) -> Error {
        if self.context.is_empty() {
            Error::config(message.as_ref())
        } else {
            Error::config(format!("{}: {}", self.context, message.as_ref()))
        }
    }

    pub fn with<T>(&mut self, key: &str, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let saved = self.context.clone();
        if !key.is_empty() {
            if !self.context.is_empty() {
                self.context.push('/');
            }
            self.context.push_str(key);
        }
        let result = f(self);
        self.context = saved;
        result
    }

    pub fn validate_type(&self, value: &Value, types: &[Ty]) -> Result<()> {
        if types.iter().any(|t| t.accepts(value)) {
            Ok(())
        } else {
            Err(self.type_error(types))
        }
    }

    pub fn type_error(&self, types: &[Ty]) -> Error {
        let mut descriptions: Vec<&str> = Vec::new();
        for t in types {
            if !descriptions.contains(&t.describe()) {
                descriptions.push(t.describe());
            }
        }
        self.error(format!("should be {}", descriptions.join(" or ")))
    }

    /// Checks a whole section against its example.
    pub fn validate_fields(&mut self, value: &Value, fields: Fields) -> Result<()> {
        self.validate_against_example(value, &Ex::Hash(fields), true)
    }

    fn validate_against_example(&mut self, value: &Value, example: &Ex, top: bool) -> Result<()> {
        self.validate_type(value, &[Ty::of_example(example)])?;
        let (Ex::Hash(fields), Value::Map(map)) = (example, value) else {
            return Ok(());
        };
        self.check_unknown_keys(map, fields)?;
        let at_root = top && self.allow_extensions;
        for (key, val) in map.iter() {
            let name = key.to_ruby_s();
            if name.starts_with("x-") && self.allow_extensions {
                continue;
            }
            let Some((_, ex)) = fields.iter().find(|(k, _)| *k == name) else {
                continue;
            };
            self.with(&name, |v| v.validate_key(&name, val, ex, at_root))?;
        }
        Ok(())
    }

    fn validate_key(&mut self, name: &str, value: &Value, ex: &Ex, at_root: bool) -> Result<()> {
        if self.v1 {
            return self.validate_key_v1(name, value, ex, at_root);
        }
        match (name, ex) {
            ("proxy", Ex::Section) if matches!(value, Value::Bool(_)) => Ok(()),
            ("servers", Ex::Section) if at_root => self.validate_type(value, &[Ty::Arr, Ty::Hash]),
            ("hooks_output", _) => self.validate_hooks_output(value),
            (_, Ex::Section) => self.validate_type(value, &[Ty::Hash]),
            ("ssl", _) => self.validate_type(value, &[Ty::Bool, Ty::Hash]),
            ("hosts", _) if !at_root => self.validate_servers(value),
            ("arch", Ex::Arr(inner)) => {
                self.validate_array_of_or_type(value, Ty::of_example(inner))
            }
            ("config", Ex::Arr(_)) => self.validate_ssh_config(value),
            ("files" | "directories", Ex::Arr(_)) => self.validate_paths(value),
            (_, Ex::Arr(inner)) => self.validate_array_of(value, Ty::of_example(inner)),
            ("options" | "args" | "additional_contexts", Ex::Hash(_)) => {
                self.validate_type(value, &[Ty::Hash])
            }
            ("labels", Ex::Hash(fields)) => {
                let ty = fields
                    .first()
                    .map(|(_, e)| Ty::of_example(e))
                    .unwrap_or(Ty::Str);
                self.validate_hash_of(value, ty)
            }
            (_, Ex::Hash(_)) => self.validate_against_example(value, ex, false),
            _ => self.validate_type(value, &[Ty::of_example(ex)]),
        }
    }

    /// Kamal 1.9.3's `validate_against_example!`: only `servers`, `hosts`, `options`/`args` and
    /// `labels` have rules of their own.
    fn validate_key_v1(&mut self, name: &str, value: &Value, ex: &Ex, at_root: bool) -> Result<()> {
        match (name, ex) {
            ("servers", Ex::Section) if at_root => self.validate_type(value, &[Ty::Arr, Ty::Hash]),
            (_, Ex::Section) => self.validate_type(value, &[Ty::Hash]),
            ("hosts", _) if !at_root => self.validate_servers(value),
            // kamal_rs's one extension to 1.9.3's `ssh:` (see `v1_schema.rs`), checked as 2.x does.
            ("config", Ex::Arr(_)) => self.validate_ssh_config(value),
            (_, Ex::Arr(inner)) => self.validate_array_of(value, Ty::of_example(inner)),
            ("options" | "args", Ex::Hash(_)) => self.validate_type(value, &[Ty::Hash]),
            ("labels", Ex::Hash(fields)) => {
                let ty = fields
                    .first()
                    .map(|(_, e)| Ty::of_example(e))
                    .unwrap_or(Ty::Str);
                self.validate_hash_of(value, ty)
            }
            (_, Ex::Hash(_)) => self.validate_against_example(value, ex, false),
            _ => self.validate_type(value, &[Ty::of_example(ex)]),
        }
    }

    fn check_unknown_keys(&self, map: &Map, fields: Fields) -> Result<()> {
        let unknown: Vec<String> = map
            .key_names()
            .into_iter()
            .filter(|k| !fields.iter().any(|(f, _)| f == k))
            .filter(|k| !(self.allow_extensions && k.starts_with("x-")))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(self.unknown_keys_error(&unknown))
        }
    }

    pub fn unknown_keys_error(&self, unknown: &[String]) -> Error {
        let noun = if unknown.len() == 1 { "key" } else { "keys" };
        self.error(format!("unknown {noun}: {}", unknown.join(", ")))
    }

    pub fn validate_array_of(&mut self, value: &Value, ty: Ty) -> Result<()> {
        self.validate_type(value, &[Ty::Arr])?;
        for (i, item) in value.as_seq().unwrap_or_default().iter().enumerate() {
            self.with(&i.to_string(), |v| v.validate_type(item, &[ty]))?;
        }
        Ok(())
    }

    fn validate_array_of_or_type(&mut self, value: &Value, ty: Ty) -> Result<()> {
        let result = if matches!(value, Value::Seq(_)) {
            self.validate_array_of(value, ty)
        } else {
            self.validate_type(value, &[ty])
        };
        result.map_err(|_| self.type_error(&[Ty::Arr, ty]))
    }

    pub fn validate_hash_of(&mut self, value: &Value, ty: Ty) -> Result<()> {
        self.validate_type(value, &[Ty::Hash])?;
        for (k, v) in value
            .as_map()
            .map(|m| m.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            self.with(&k.to_ruby_s(), |s| s.validate_type(v, &[ty]))?;
        }
        Ok(())
    }

    /// A list of hosts, each a string or a one-entry hash `host: tag` / `host: [tags]`.
    pub fn validate_servers(&mut self, value: &Value) -> Result<()> {
        self.validate_type(value, &[Ty::Arr])?;
        for (i, server) in value.as_seq().unwrap_or_default().iter().enumerate() {
            self.with(&i.to_string(), |v| {
                v.validate_type(server, &[Ty::Str, Ty::Hash])?;
                if let Value::Map(map) = server {
                    if map.len() != 1 {
                        return Err(v.error("multiple hosts found"));
                    }
                    let (host, tags) = map.iter().next().expect("one entry");
                    v.with(&host.to_ruby_s(), |v| {
                        v.validate_type(tags, &[Ty::Str, Ty::Arr])?;
                        if matches!(tags, Value::Seq(_)) {
                            v.validate_array_of(tags, Ty::Str)?;
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn validate_ssh_config(&mut self, value: &Value) -> Result<()> {
        match value {
            Value::Seq(_) => self.validate_array_of(value, Ty::Str),
            Value::Bool(_) | Value::Str(_) => Ok(()),
            _ => Err(self.type_error(&[Ty::Bool, Ty::Str, Ty::Arr])),
        }
    }

    fn validate_paths(&mut self, value: &Value) -> Result<()> {
        self.validate_type(value, &[Ty::Arr])?;
        for (i, path) in value.as_seq().unwrap_or_default().iter().enumerate() {
            self.with(&i.to_string(), |v| {
                v.validate_type(path, &[Ty::Str, Ty::Hash])?;
                if let Value::Map(map) = path {
                    for key in ["local", "remote", "mode", "owner", "options"] {
                        if let Some(val) = map.get(key) {
                            v.with(key, |v| v.validate_type(val, &[Ty::Str]))?;
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn validate_hooks_output(&mut self, value: &Value) -> Result<()> {
        if let Value::Map(map) = value {
            for (hook, level) in map.iter() {
                self.with(&hook.to_ruby_s(), |v| {
                    v.validate_type(level, &[Ty::Str, Ty::Sym])
                })?;
            }
            Ok(())
        } else {
            self.validate_type(value, &[Ty::Str, Ty::Sym])
        }
    }

    /// Role and accessory labels may not use the names Kamal sets itself.
    pub fn validate_labels(&mut self, labels: &Value) -> Result<()> {
        let Some(map) = labels.as_map() else {
            return Ok(());
        };
        self.with("labels", |v| {
            for key in map.key_names() {
                if ["destination", "role", "service"].contains(&key.as_str()) {
                    return v.with(&key, |v| {
                        Err(v.error(
                            "invalid label. destination, role, and service are reserved labels",
                        ))
                    });
                }
            }
            Ok(())
        })
    }

    /// `options.restart` sets Docker's restart policy (Kamal 2.12).
    pub fn validate_docker_options(&mut self, options: Option<&Value>) -> Result<()> {
        let Some(Value::Map(map)) = options else {
            return Ok(());
        };
        let Some((_, policy)) = map.iter().find(|(k, _)| k.to_ruby_s() == "restart") else {
            return Ok(());
        };
        self.with("options/restart", |v| {
            let Value::Str(policy) = policy else {
                return Err(v.error(r#"should be a string. Use "no" to disable restarts"#));
            };
            let valid =
                Regex::new(r"\A(?:no|always|unless-stopped|on-failure(?::\d+)?)\z").unwrap();
            if !valid.is_match(policy) {
                return Err(
                    v.error("should be no, always, unless-stopped, on-failure, or on-failure:N")
                );
            }
            Ok(())
        })
    }
}

/// `env` in its two forms: a flat hash of clear values, or `clear:` / `secret:` / `tags:` (the same
/// rules in 1.9.3 and 2.12).
pub fn validate_env(env: &Value, context: &str) -> Result<()> {
    let mut v = Validator::new(context);
    v.validate_env(env)
}

impl Validator {
    fn validate_env(&mut self, env: &Value) -> Result<()> {
        const SPECIAL: [&str; 3] = ["clear", "secret", "tags"];
        let Some(map) = env.as_map() else {
            return self.validate_hash_of(env, Ty::Str);
        };
        let keys = map.key_names();
        if !keys.iter().any(|k| SPECIAL.contains(&k.as_str())) {
            return self.validate_hash_of(env, Ty::Str);
        }
        let unknown: Vec<String> = keys
            .into_iter()
            .filter(|k| !SPECIAL.contains(&k.as_str()))
            .collect();
        if !unknown.is_empty() {
            return Err(self.unknown_keys_error(&unknown));
        }
        if let Some(clear) = map.get("clear") {
            self.with("clear", |v| v.validate_hash_of(clear, Ty::Str))?;
        }
        if let Some(secret) = map.get("secret") {
            self.with("secret", |v| v.validate_array_of(secret, Ty::Str))?;
        }
        if let Some(tags) = map.get("tags") {
            if self.context != "env" {
                return Err(self.error("tags are only allowed in the root env"));
            }
            self.with("tags", |v| {
                v.validate_type(tags, &[Ty::Hash])?;
                for (tag, tag_env) in tags.as_map().expect("checked").iter() {
                    v.with(&tag.to_ruby_s(), |v| {
                        v.validate_type(tag_env, &[Ty::Hash])?;
                        v.validate_env(tag_env)
                    })?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// `registry` (root, or an accessory's own). `v1`: Kamal 1.9.3, which knows no local registry.
pub fn validate_registry(registry: &Value, context: &str) -> Result<()> {
    check_registry(registry, Validator::new(context))
}

pub fn validate_registry_v1(registry: &Value) -> Result<()> {
    check_registry(registry, Validator::new("registry").v1())
}

fn check_registry(registry: &Value, mut v: Validator) -> Result<()> {
    let others = registry
        .as_map()
        .map(|m| Value::map(m.except(&["username", "password"])));
    v.validate_against_example(
        others.as_ref().unwrap_or(registry),
        &Ex::Hash(&schema::REGISTRY[..1]),
        false,
    )?;
    let map = registry.as_map().expect("checked");
    let local = !v.v1
        && map
            .get("server")
            .map(|s| {
                Regex::new("^localhost[:$]")
                    .unwrap()
                    .is_match(&s.to_ruby_s())
            })
            .unwrap_or(false);
    for key in ["username", "password"] {
        v.with(key, |v| {
            if local {
                return Ok(());
            }
            let value = map.get(key).cloned().unwrap_or(Value::Nil);
            if value.is_blank() {
                return Err(v.error("is required"));
            }
            let ok = match &value {
                Value::Str(_) => true,
                Value::Seq(items) => items.len() == 1 && matches!(items[0], Value::Str(_)),
                _ => false,
            };
            if !ok {
                return Err(
                    v.error("should be a string or an array with one string (for secret lookup)")
                );
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// `servers`: an array of hosts (one `web` role) or a hash of roles.
pub fn validate_servers_section(servers: &Value) -> Result<()> {
    if servers.is_nil() {
        return Ok(());
    }
    let mut v = Validator::new("servers");
    v.validate_type(servers, &[Ty::Arr, Ty::Hash])?;
    if matches!(servers, Value::Seq(_)) {
        v.validate_servers(servers)?;
    }
    Ok(())
}

/// One role given under `servers:` as a hash entry.
pub fn validate_role(role: &Value, name: &str) -> Result<()> {
    let mut v = Validator::new(format!("servers/{name}"));
    v.validate_type(role, &[Ty::Arr, Ty::Hash])?;
    match role {
        Value::Seq(_) => v.validate_servers(role),
        Value::Map(map) => {
            v.validate_fields(role, schema::ROLE)?;
            if let Some(labels) = map.get("labels") {
                v.validate_labels(labels)?;
            }
            v.validate_docker_options(map.get("options"))
        }
        _ => unreachable!("checked above"),
    }
}

pub fn validate_accessory(accessory: &Value, name: &str) -> Result<()> {
    let mut v = Validator::new(format!("accessories/{name}"));
    v.validate_fields(accessory, schema::ACCESSORY)?;
    let map = accessory.as_map().expect("checked");
    let placements = ["host", "hosts", "role", "roles", "tag", "tags"];
    if placements.iter().filter(|k| map.contains_key(k)).count() != 1 {
        return Err(v.error("specify one of `host`, `hosts`, `role`, `roles`, `tag` or `tags`"));
    }
    if let Some(labels) = map.get("labels") {
        v.validate_labels(labels)?;
    }
    v.validate_docker_options(map.get("options"))
}

pub fn validate_builder(builder: &Value) -> Result<()> {
    let mut v = Validator::new("builder");
    v.validate_fields(builder, schema::BUILDER)?;
    let map = builder.as_map().expect("checked");
    if let Some(cache_type) = map
        .get("cache")
        .and_then(|c| c.as_map())
        .and_then(|c| c.get("type"))
    {
        if cache_type.truthy() && !["gha", "registry"].contains(&cache_type.to_ruby_s().as_str()) {
            return Err(v.error(format!("Invalid cache type: {}", cache_type.to_ruby_s())));
        }
    }
    if !map.get("arch").map(Value::is_present).unwrap_or(false) {
        return Err(v.error("Builder arch not set"));
    }
    if matches!(map.get("local"), Some(Value::Bool(false)))
        && map.get("remote").map(Value::is_blank).unwrap_or(true)
    {
        return Err(v.error("Cannot disable local builds, no remote is set"));
    }
    if map.get("pack").is_some_and(Value::truthy)
        && map
            .get("arch")
            .and_then(Value::as_seq)
            .is_some_and(|a| a.len() > 1)
    {
        return Err(v.error("buildpacks only support building for one arch"));
    }
    Ok(())
}

pub fn validate_proxy(proxy: &Value, context: &str) -> Result<()> {
    if proxy.is_nil() {
        return Ok(());
    }
    let mut v = Validator::new(context);
    v.validate_fields(proxy, schema::PROXY)?;
    let map = proxy.as_map().expect("checked");
    let blank = |key: &str| map.get(key).map(Value::is_blank).unwrap_or(true);
    if let Some(ssl @ Value::Map(_)) = map.get("ssl") {
        v.with("ssl", |v| v.validate_fields(ssl, schema::SSL))?;
    }
    if blank("host") && blank("hosts") && map.get("ssl").is_some_and(Value::truthy) {
        return Err(v.error("Must set a host to enable automatic SSL"));
    }
    if map.contains_key("host") && map.contains_key("hosts") {
        return Err(v.error("Specify one of 'host' or 'hosts', not both"));
    }
    if let Some(ssl) = map.get("ssl").and_then(Value::as_map) {
        let ssl_blank = |key: &str| ssl.get(key).map(Value::is_blank).unwrap_or(true);
        if !ssl_blank("certificate_pem") && ssl_blank("private_key_pem") {
            return Err(v.error(
                "Missing private_key_pem setting (required when certificate_pem is present)",
            ));
        }
        if !ssl_blank("private_key_pem") && ssl_blank("certificate_pem") {
            return Err(v.error(
                "Missing certificate_pem setting (required when private_key_pem is present)",
            ));
        }
    }
    if let Some(run) = map.get("run").and_then(Value::as_map) {
        v.with("run", |v| {
            if matches!(run.get("publish"), Some(Value::Bool(false)))
                && ["http_port", "https_port", "bind_ips"]
                    .iter()
                    .any(|k| run.contains_key(k))
            {
                return Err(
                    v.error("Cannot set http_port, https_port or bind_ips when publish is false")
                );
            }
            for ip in run
                .get("bind_ips")
                .and_then(Value::as_seq)
                .unwrap_or_default()
            {
                let text = ip.to_ruby_s();
                if text.parse::<std::net::IpAddr>().is_err() {
                    return Err(v.error(format!("Invalid publish IP address: {text}")));
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

pub fn validate_alias(command: &Value, name: &str) -> Result<()> {
    let v = Validator::new(format!("aliases/{name}"));
    v.validate_type(command, &[Ty::Str])?;
    if !Regex::new(r"\A[a-z0-9_-]+\z").unwrap().is_match(name) {
        return Err(v.error(format!(
            "Invalid alias name: '{name}'. Must only contain lowercase letters, alphanumeric, hyphens and underscores."
        )));
    }
    if schema::BUILT_IN_COMMANDS.contains(&name) {
        return Err(v.error(format!("Alias '{name}' conflicts with a built-in command.")));
    }
    Ok(())
}

/// A plain section (`ssh`, `sshkit`, `boot`, `logging`, `output`): only its example applies.
pub fn validate_section(value: &Value, fields: Fields, context: &str) -> Result<()> {
    Validator::new(context).validate_fields(value, fields)
}

/// The same with Kamal 1.9.3's rules.
pub fn validate_section_v1(value: &Value, fields: Fields, context: &str) -> Result<()> {
    Validator::new(context).v1().validate_fields(value, fields)
}
