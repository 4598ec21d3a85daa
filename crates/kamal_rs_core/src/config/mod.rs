//! The resolved `deploy.yml`: merged, validated as Kamal 2.12 validates it, with every derived name.
//!
//! Ruby reads the files (ERB, then YAML via Psych) and hands each file's tree over; everything from the
//! destination merge on happens here, so that the model is the same whichever way kamal_rs is driven.

pub mod accessory;
pub mod builder;
mod ensure;
pub mod env;
#[cfg(test)]
mod fuzz;
pub mod gem_version;
mod git;
pub mod lockfile;
pub mod proxy;
pub use git::random_hex;
pub mod role;
pub mod role_settings;
pub mod schema;
mod settings;
pub use settings::{Boot, BootLimit, OutputSetting, Registry, Timeouts};
pub mod ssh;
pub mod v1;
mod v1_schema;
pub mod v1_settings;
pub mod validator;

use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::secrets::{Secrets, SecretsSource, ShellCommand};
use crate::shell::{argumentize, optionize};
use crate::value::{Map, Value};
pub use accessory::Accessory;
pub use role::Role;

/// Which Kamal generation a config was written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KamalMajor {
    /// Kamal 1.x: Traefik, `healthcheck:`, `.env` files.
    V1,
    /// Kamal 2.x: kamal-proxy, `.kamal/secrets`.
    V2,
}

pub struct LoadOptions {
    pub destination: Option<String>,
    /// `--version`.
    pub version: Option<String>,
    /// `ENV["VERSION"]`, read by the caller.
    pub env_version: Option<String>,
    /// Who reads `.kamal/secrets*` (2.x).
    pub secrets: SecretsSource,
    /// The Kamal the app's Gemfile.lock locks (`lockfile::for_app`).
    pub locked: lockfile::Locked,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            destination: None,
            version: None,
            env_version: None,
            secrets: SecretsSource::Read(Arc::new(ShellCommand)),
            locked: lockfile::Locked::Nothing,
        }
    }
}

#[derive(Debug)]
pub struct Configuration {
    pub raw: Map,
    pub destination: Option<String>,
    pub major: KamalMajor,
    pub roles: Vec<Role>,
    pub accessories: Vec<Accessory>,
    pub secrets: Secrets,
    /// Read as 1.x only because nothing in it is 2.x (no `builder.arch`): a deploy says so.
    pub v1_by_elimination: bool,
    /// The Kamal the app's Gemfile.lock locks: it decided the major; a deploy names a locked release
    /// other than the one kamal_rs behaves as.
    pub locked: lockfile::Locked,
    declared_version: Option<String>,
    env_version: Option<String>,
    version: OnceLock<std::result::Result<String, Error>>,
}

impl Configuration {
    /// Merges the files (the base config, then the destination's) and validates the result.
    pub fn load(files: &[Value], options: LoadOptions) -> Result<Configuration> {
        let mut merged = Value::map(Map::new());
        for file in files {
            merged = merged.deep_merge(&root_hash(file)?);
        }
        let raw = merged.as_map().cloned().unwrap_or_default();
        // The app's locked Kamal decides; without one, the config's keys.
        let detected = match &options.locked {
            lockfile::Locked::Kamal { version, .. } => Some(lockfile::major(version)),
            _ => v1::detect(&raw),
        };
        let locked = options.locked.clone();
        let mut config = Configuration::build(raw, detected.unwrap_or(KamalMajor::V1), options)?;
        config.v1_by_elimination = detected.is_none();
        config.locked = locked;
        Ok(config)
    }

    /// The configuration as Kamal `major` reads it: validated section by section in its order, then
    /// its whole-config checks.
    fn build(raw: Map, major: KamalMajor, options: LoadOptions) -> Result<Configuration> {
        let secrets = match major {
            KamalMajor::V1 => Secrets::from_env(v1::secret_keys(&raw)),
            KamalMajor::V2 => {
                let secrets_path = raw
                    .get("secrets_path")
                    .map(Value::to_ruby_s)
                    .unwrap_or_else(|| ".kamal/secrets".into());
                Secrets::new(
                    &secrets_path,
                    options.destination.as_deref(),
                    options.secrets,
                )
            }
        };
        match major {
            KamalMajor::V2 => validator::Validator::root()
                .validate_fields(&Value::map(raw.clone()), schema::ROOT)?,
            KamalMajor::V1 => v1::validate(&raw)?,
        }
        let roles = build_roles(&raw, major)?;
        let mut config = Configuration {
            raw,
            destination: options.destination,
            major,
            roles,
            accessories: Vec::new(),
            secrets,
            v1_by_elimination: false,
            locked: lockfile::Locked::Nothing,
            declared_version: options.version.filter(|v| !v.trim().is_empty()),
            env_version: options.env_version,
            version: OnceLock::new(),
        };
        if major == KamalMajor::V2 {
            config.validate_sections()?;
        }
        config.accessories = config.build_accessories()?;
        match major {
            KamalMajor::V2 => config.ensure_valid()?,
            KamalMajor::V1 => v1::ensure_valid(&config)?,
        }
        Ok(config)
    }

    /// What Kamal warns about on stderr when it reads this config (2.x: inline `ssh.key_data`).
    pub fn warnings(&self) -> Vec<String> {
        match self.major {
            KamalMajor::V2 => ssh::warnings(self.get("ssh"), &self.secrets),
            KamalMajor::V1 => Vec::new(),
        }
    }

    // ---- raw settings -------------------------------------------------------------------------

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.raw.get(key).filter(|v| !v.is_nil())
    }

    fn section(&self, key: &str) -> Value {
        self.get(key)
            .cloned()
            .unwrap_or_else(|| Value::map(Map::new()))
    }

    pub fn service(&self) -> String {
        self.get("service")
            .map(Value::to_ruby_s)
            .unwrap_or_default()
    }

    /// `image`, or the service name when the registry is local.
    pub fn image(&self) -> Option<String> {
        match self.get("image").filter(|v| v.is_present()) {
            Some(image) => Some(image.to_ruby_s()),
            None if self.registry().local() => self.get("service").map(Value::to_ruby_s),
            None => None,
        }
    }

    pub fn primary_role_name(&self) -> String {
        self.get("primary_role")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "web".into())
    }

    pub fn primary_role(&self) -> Option<&Role> {
        let name = self.primary_role_name();
        self.roles.iter().find(|r| r.name == name)
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    pub fn primary_host(&self) -> Option<&str> {
        self.primary_role().and_then(Role::primary_host)
    }

    /// Role hosts in role order, then accessory hosts, each once.
    pub fn all_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = Vec::new();
        let role_hosts = self.roles.iter().flat_map(|r| r.hosts.iter());
        let accessory_hosts = self.accessories.iter().flat_map(|a| a.hosts.iter());
        for h in role_hosts.chain(accessory_hosts) {
            if !hosts.contains(h) {
                hosts.push(h.clone());
            }
        }
        hosts
    }

    pub fn hooks_path(&self) -> String {
        self.get("hooks_path")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| ".kamal/hooks".into())
    }

    pub fn retain_containers(&self) -> i64 {
        self.get("retain_containers")
            .and_then(Value::as_int)
            .unwrap_or(5)
    }

    pub fn builder_config(&self) -> Value {
        self.section("builder")
    }

    // ---- derived names (lib/kamal/configuration.rb) -------------------------------------------------------

    /// The version given with `--version` (a rollback's target), if any.
    pub fn declared_version(&self) -> Option<&str> {
        self.declared_version.as_deref()
    }

    /// `--version` > `VERSION` > git HEAD (with `_uncommitted_<hex>` when building from the working tree).
    pub fn version(&self) -> Result<String> {
        self.version
            .get_or_init(|| {
                if let Some(v) = &self.declared_version {
                    return Ok(v.clone());
                }
                if let Some(v) = &self.env_version {
                    return Ok(v.clone());
                }
                git::version(self.builder_uses_git_clone())
            })
            .clone()
    }

    /// The app's own version, whatever `--version` says: `VERSION`, else git HEAD. A rollback's
    /// `pre-connect` hook sees this one, since Kamal runs it before it sets the rollback's version.
    pub fn app_version(&self) -> Result<String> {
        match &self.env_version {
            Some(v) => Ok(v.clone()),
            None => git::version(self.builder_uses_git_clone()),
        }
    }

    /// The build uses a clean git clone unless `builder.context` is set.
    pub fn builder_uses_git_clone(&self) -> bool {
        !self.builder().context_set()
    }

    /// `builder:`, typed.
    pub fn builder(&self) -> builder::BuilderSettings {
        builder::BuilderSettings::of(self)
    }

    pub fn repository(&self) -> String {
        [self.registry().server, self.image()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/")
    }

    pub fn absolute_image(&self) -> Result<String> {
        Ok(format!("{}:{}", self.repository(), self.version()?))
    }

    pub fn latest_tag(&self) -> String {
        match &self.destination {
            Some(d) => format!("latest-{d}"),
            None => "latest".into(),
        }
    }

    pub fn service_and_destination(&self) -> String {
        match &self.destination {
            Some(d) => format!("{}-{d}", self.service()),
            None => self.service(),
        }
    }

    pub fn volume_args(&self) -> Vec<String> {
        match self.get("volumes") {
            Some(v) if v.is_present() => argumentize("--volume", v),
            _ => Vec::new(),
        }
    }

    /// `--log-driver` / `--log-opt` for `docker run`; `max-size="10m"` when nothing is configured.
    pub fn logging_args(&self) -> Vec<String> {
        logging_args(&self.section("logging"))
    }

    // ---- `kamal config` -------------------------------------------------------------------------

    /// What `kamal config` prints (Kamal's `Configuration#to_h`), as a tree with Symbol keys.
    pub fn to_h(&self) -> Result<Value> {
        let mut h = Map::new();
        h.set_sym(
            "roles",
            Value::strs(
                &self
                    .roles
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
            ),
        );
        h.set_sym("hosts", Value::strs(&self.all_hosts()));
        if let Some(primary) = self.primary_host() {
            h.set_sym("primary_host", Value::str(primary));
        }
        let version = self.version()?;
        h.set_sym("version", Value::str(&version));
        h.set_sym("repository", Value::str(self.repository()));
        h.set_sym(
            "absolute_image",
            Value::str(format!("{}:{version}", self.repository())),
        );
        h.set_sym(
            "service_with_version",
            Value::str(format!("{}-{version}", self.service())),
        );
        h.set_sym("volume_args", Value::strs(&self.volume_args()));
        h.set_sym(
            "ssh_options",
            ssh::to_h(&self.section("ssh"), &self.secrets)?,
        );
        h.set_sym("sshkit", self.section("sshkit"));
        h.set_sym("builder", self.builder_config());
        if let Some(accessories) = self.get("accessories") {
            h.set_sym("accessories", accessories.clone());
        }
        h.set_sym("logging", Value::strs(&self.logging_args()));
        if self.major == KamalMajor::V1 {
            h.set_sym("healthcheck", v1::healthcheck(self));
        }
        Ok(Value::map(h))
    }

    // ---- validation ---------------------------------------------------------------------------

    /// Each section checked by its own rules, in the order Kamal 2.12's `Configuration#initialize`
    /// builds them: `servers` and each role (sorted, with its env, logging and own proxy), `registry`,
    /// each accessory (its roles too), `aliases`, `boot`, `builder`, `env`, `logging`, `output`,
    /// `proxy`, `ssh`, `sshkit`.
    fn validate_sections(&self) -> Result<()> {
        validator::validate_servers_section(self.get("servers").unwrap_or(&Value::Nil))?;
        if let Some(Value::Map(roles)) = self.get("servers") {
            let mut names: Vec<(String, &Value)> =
                roles.iter().map(|(k, r)| (k.to_ruby_s(), r)).collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, role) in names {
                self.validate_role(&name, role)?;
            }
        }
        validator::validate_registry(&self.section("registry"), "registry")?;
        if let Some(Value::Map(accessories)) = self.get("accessories") {
            for (name, accessory) in accessories.iter() {
                self.validate_accessory(&name.to_ruby_s(), accessory)?;
            }
        }
        if let Some(Value::Map(aliases)) = self.get("aliases") {
            for (name, command) in aliases.iter() {
                validator::validate_alias(command, &name.to_ruby_s())?;
            }
        }
        validator::validate_section(&self.section("boot"), schema::BOOT, "boot")?;
        validator::validate_builder(&self.builder_config())?;
        validator::validate_env(&self.section("env"), "env")?;
        validator::validate_section(&self.section("logging"), schema::LOGGING, "logging")?;
        validator::validate_section(&self.section("output"), schema::OUTPUT, "output")?;
        validator::validate_proxy(self.get("proxy").unwrap_or(&Value::Nil), "proxy")?;
        validator::validate_section(&self.section("ssh"), schema::SSH, "ssh")?;
        validator::validate_section(&self.section("sshkit"), schema::SSHKIT, "sshkit")?;
        Ok(())
    }

    /// A role as Kamal's `Role` builds itself: its settings, env, logging, then its own `proxy:` (not
    /// yet merged over the root's).
    fn validate_role(&self, name: &str, role: &Value) -> Result<()> {
        validator::validate_role(role, name)?;
        let Some(map) = role.as_map() else {
            return Ok(());
        };
        if let Some(env) = map.get("env") {
            validator::validate_env(env, &format!("servers/{name}/env"))?;
        }
        if let Some(logging) = map.get("logging") {
            validator::validate_section(
                logging,
                schema::LOGGING,
                &format!("servers/{name}/logging"),
            )?;
        }
        if let Some(proxy @ Value::Map(_)) = map.get("proxy") {
            validator::validate_proxy(proxy, &format!("servers/{name}/proxy"))?;
        }
        Ok(())
    }

    /// An accessory as Kamal's `Accessory` builds itself: its settings, the roles it names, its env,
    /// proxy and registry.
    fn validate_accessory(&self, name: &str, accessory: &Value) -> Result<()> {
        validator::validate_accessory(accessory, name)?;
        let map = accessory.as_map().expect("validated");
        let known = |role: &str| self.roles.iter().any(|r| r.name == role);
        if let Some(Value::Seq(roles)) = map.get("roles") {
            let missing: Vec<String> = roles
                .iter()
                .map(Value::to_ruby_s)
                .filter(|r| !known(r))
                .collect();
            if !missing.is_empty() {
                return Err(Error::config(format!(
                    "accessories/{name}: unknown roles {}",
                    missing.join(", ")
                )));
            }
        } else if let Some(role) = map.get("role").filter(|r| !known(&r.to_ruby_s())) {
            return Err(Error::config(format!(
                "accessories/{name}: unknown role {}",
                role.to_ruby_s()
            )));
        }
        if let Some(env) = map.get("env") {
            validator::validate_env(env, &format!("accessories/{name}/env"))?;
        }
        if let Some(proxy @ Value::Map(_)) = map.get("proxy") {
            validator::validate_proxy(proxy, &format!("accessories/{name}/proxy"))?;
        }
        if let Some(registry) = map.get("registry").filter(|r| r.is_present()) {
            validator::validate_registry(registry, &format!("accessories/{name}/registry"))?;
        }
        Ok(())
    }

    fn build_accessories(&self) -> Result<Vec<Accessory>> {
        let Some(Value::Map(accessories)) = self.get("accessories") else {
            return Ok(Vec::new());
        };
        accessories
            .iter()
            .filter_map(|(name, cfg)| cfg.as_map().map(|m| (name.to_ruby_s(), m)))
            .map(|(name, cfg)| Accessory::new(&name, cfg, &self.roles))
            .collect()
    }
}

/// Each file's top level must be a hash; its keys become plain strings (Kamal symbolizes them).
fn root_hash(file: &Value) -> Result<Value> {
    match file {
        Value::Map(map) => Ok(Value::map(
            map.iter()
                .map(|(k, v)| match k {
                    Value::Sym(s) => (Value::Str(s.clone()), v.clone()),
                    other => (other.clone(), v.clone()),
                })
                .collect(),
        )),
        Value::Nil | Value::Bool(false) => Ok(Value::map(Map::new())),
        _ => Err(Error::config(
            "The configuration file must contain a hash of settings",
        )),
    }
}

/// Roles sorted by name (`servers` as an array is the single role `web`).
fn build_roles(raw: &Map, major: KamalMajor) -> Result<Vec<Role>> {
    let primary = match major {
        KamalMajor::V2 => raw
            .get("primary_role")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "web".into()),
        KamalMajor::V1 => String::from("web"),
    };
    Ok(match raw.get("servers") {
        Some(list @ Value::Seq(_)) => vec![Role::new("web", list, primary == "web")],
        Some(Value::Map(roles)) => {
            let mut names: Vec<(String, &Value)> =
                roles.iter().map(|(k, v)| (k.to_ruby_s(), v)).collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            names
                .into_iter()
                .map(|(name, v)| Role::new(&name, v, name == primary))
                .collect()
        }
        _ => Vec::new(),
    })
}

/// `proxy.hosts`, or `proxy.host` split on commas.
pub fn proxy_hosts(proxy: &Map) -> Vec<String> {
    if let Some(Value::Seq(hosts)) = proxy.get("hosts") {
        return hosts.iter().map(Value::to_ruby_s).collect();
    }
    match proxy.get("host") {
        Some(h) if !h.is_nil() => h.to_ruby_s().split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// `logging:` (root, or a role's merged over it) as `docker run` options.
pub fn logging_args(logging: &Value) -> Vec<String> {
    let map = logging.as_map().cloned().unwrap_or_default();
    let driver = map.get("driver").filter(|d| d.is_present());
    let options = map.get("options").filter(|o| o.is_present());
    if driver.is_none() && options.is_none() {
        let mut default = Map::new();
        default.set("max-size", Value::str("10m"));
        return argumentize("--log-opt", &Value::map(default));
    }
    let mut args = Vec::new();
    if let Some(driver) = driver {
        args.extend(optionize(
            &[("log-driver".to_string(), driver.clone())],
            None,
        ));
    }
    if let Some(options) = options {
        args.extend(argumentize("--log-opt", options));
    }
    args
}
