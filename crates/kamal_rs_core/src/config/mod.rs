//! The resolved `deploy.yml`: merged, validated as Kamal 2.12 validates it, with every derived name.
//!
//! Ruby reads the files (ERB, then YAML via Psych) and hands each file's tree over; everything from the
//! destination merge on happens here, so that the model is the same whichever way kamal_rs is driven.

pub mod accessory;
pub mod env;
pub mod gem_version;
mod git;
pub use git::random_hex;
pub mod role;
pub mod schema;
pub mod ssh;
pub mod v1;
pub mod validator;

use std::cmp::Ordering;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use regex::Regex;

use crate::error::{Error, Result};
use crate::secrets::{CommandSubstitution, Secrets, ShellCommand};
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
    /// Runs `$(...)` in secrets files.
    pub commands: Arc<dyn CommandSubstitution + Send + Sync>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            destination: None,
            version: None,
            env_version: None,
            commands: Arc::new(ShellCommand),
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
        let major = v1::detect(&raw);
        let secrets_path = raw
            .get("secrets_path")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| ".kamal/secrets".into());
        let secrets = Secrets::new(
            &secrets_path,
            options.destination.as_deref(),
            options.commands,
        );

        if major == KamalMajor::V2 {
            validator::Validator::root().validate_fields(&Value::map(raw.clone()), schema::ROOT)?;
        }
        let roles = build_roles(&raw, major)?;
        let secrets = if major == KamalMajor::V1 {
            Secrets::from_env(v1::secret_keys(&raw))
        } else {
            secrets
        };
        let mut config = Configuration {
            raw,
            destination: options.destination,
            major,
            roles,
            accessories: Vec::new(),
            secrets,
            declared_version: options.version.filter(|v| !v.trim().is_empty()),
            env_version: options.env_version,
            version: OnceLock::new(),
        };
        config.accessories = config.build_accessories()?;
        match major {
            KamalMajor::V2 => {
                config.validate_sections()?;
                config.ensure_valid()?;
            }
            KamalMajor::V1 => v1::ensure_valid(&config)?,
        }
        Ok(config)
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

    pub fn registry_server(&self) -> Option<String> {
        self.get("registry")
            .and_then(Value::as_map)
            .and_then(|r| r.get("server"))
            .filter(|v| !v.is_nil())
            .map(Value::to_ruby_s)
    }

    /// A registry on `localhost:<port>`, which Kamal 2.8+ forwards over SSH and which needs no login.
    pub fn local_registry(&self) -> bool {
        self.registry_server()
            .is_some_and(|s| Regex::new("^localhost[:$]").unwrap().is_match(&s))
    }

    /// The port of a `localhost:<port>` registry (Kamal's `registry.local_port`, 80 when none is given).
    pub fn local_registry_port(&self) -> Option<u16> {
        self.local_registry().then(|| {
            self.registry_server()
                .and_then(|s| s.split(':').nth(1).and_then(|p| p.parse().ok()))
                .unwrap_or(80)
        })
    }

    /// `image`, or the service name when the registry is local.
    pub fn image(&self) -> Option<String> {
        match self.get("image").filter(|v| v.is_present()) {
            Some(image) => Some(image.to_ruby_s()),
            None if self.local_registry() => self.get("service").map(Value::to_ruby_s),
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

    /// A key of the `boot:` section (`limit`, `wait`, `parallel_roles`).
    pub fn boot_setting(&self, key: &str) -> Option<&Value> {
        self.get("boot")
            .and_then(Value::as_map)
            .and_then(|b| b.get(key))
            .filter(|v| !v.is_nil())
    }

    pub fn builder_config(&self) -> Value {
        self.section("builder")
    }

    // ---- derived names (reference §2.4) -------------------------------------------------------

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

    /// The build uses a clean git clone unless `builder.context` is set.
    pub fn builder_uses_git_clone(&self) -> bool {
        self.builder_config()
            .as_map()
            .and_then(|b| b.get("context"))
            .is_none_or(Value::is_nil)
    }

    pub fn repository(&self) -> String {
        [self.registry_server(), self.image()]
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

    /// Each section checked by its own rules, in the order Kamal builds them.
    fn validate_sections(&self) -> Result<()> {
        if let Some(servers) = self.get("servers") {
            validator::validate_servers_section(servers)?;
            if let Value::Map(roles) = servers {
                for (name, role) in roles.iter() {
                    let name = name.to_ruby_s();
                    validator::validate_role(role, &name)?;
                    if let Some(role) = role.as_map() {
                        if let Some(env) = role.get("env") {
                            validator::validate_env(env, &format!("servers/{name}/env"))?;
                        }
                        if let Some(logging) = role.get("logging") {
                            validator::validate_section(
                                logging,
                                schema::LOGGING,
                                &format!("servers/{name}/logging"),
                            )?;
                        }
                    }
                }
            }
        }
        validator::validate_registry(&self.section("registry"), "registry")?;
        if let Some(Value::Map(accessories)) = self.get("accessories") {
            for (name, accessory) in accessories.iter() {
                let name = name.to_ruby_s();
                validator::validate_accessory(accessory, &name)?;
                let map = accessory.as_map().expect("validated");
                if let Some(env) = map.get("env") {
                    validator::validate_env(env, &format!("accessories/{name}/env"))?;
                }
                if let Some(registry) = map.get("registry") {
                    validator::validate_registry(
                        registry,
                        &format!("accessories/{name}/registry"),
                    )?;
                }
                if let Some(proxy @ Value::Map(_)) = map.get("proxy") {
                    validator::validate_proxy(proxy, &format!("accessories/{name}/proxy"))?;
                }
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
        for role in &self.roles {
            if let Some(proxy) = role.proxy_config(self.get("proxy")) {
                if role
                    .specializations
                    .get("proxy")
                    .is_some_and(|p| matches!(p, Value::Map(_)))
                {
                    validator::validate_proxy(&proxy, &format!("servers/{}/proxy", role.name))?;
                }
            }
        }
        validator::validate_section(&self.section("ssh"), schema::SSH, "ssh")?;
        validator::validate_section(&self.section("sshkit"), schema::SSHKIT, "sshkit")?;
        Ok(())
    }

    /// The checks Kamal runs once every section is built (reference §2.3, "Post-validation").
    fn ensure_valid(&self) -> Result<()> {
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
        let Some(minimum) = self.get("minimum_version") else {
            return Ok(());
        };
        let minimum = minimum.to_ruby_s();
        let current = gem_version::GemVersion::parse(crate::KAMAL_VERSION)?;
        if gem_version::GemVersion::parse(&minimum)?.cmp_version(&current) == Ordering::Greater {
            return Err(Error::config(format!(
                "Current version is {}, minimum required is {minimum}",
                crate::KAMAL_VERSION
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
        if let (true, Some(remote)) = (self.local_registry(), remote) {
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
