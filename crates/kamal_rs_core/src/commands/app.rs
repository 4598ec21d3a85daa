//! The app container of one role: `docker run` with Kamal's exact tokens, version detection, stop,
//! rename, readiness, tag (Kamal's `Commands::App`).

use super::single_quote;
use crate::config::env::Env;
use crate::config::{logging_args, Configuration, Role};
use crate::error::Result;
use crate::shell::{argumentize, escape_shell_value, optionize};
use crate::value::{Map, Value};

pub struct App<'a> {
    pub config: &'a Configuration,
    pub role: &'a Role,
}

impl<'a> App<'a> {
    pub fn new(config: &'a Configuration, role: &'a Role) -> Self {
        App { config, role }
    }

    /// `S-R[-D]`: container name prefix, and the kamal-proxy service name.
    pub fn container_prefix(&self) -> String {
        let mut p = format!("{}-{}", self.config.service(), self.role.name);
        if let Some(d) = &self.config.destination {
            p.push('-');
            p.push_str(d);
        }
        p
    }

    pub fn container_name(&self, version: &str) -> String {
        format!("{}-{version}", self.container_prefix())
    }

    pub fn env_directory(&self) -> String {
        format!(
            ".kamal/apps/{}/env/roles",
            self.config.service_and_destination()
        )
    }

    pub fn env_file_path(&self) -> String {
        format!("{}/{}.env", self.env_directory(), self.role.name)
    }

    /// Root env, the role's, then the host's tags'.
    pub fn env(&self, host: &str) -> Env {
        let root = self.config.get("env").cloned().unwrap_or(Value::Nil);
        let mut env = Env::from_config(&root).merge(&Env::from_config(
            self.role.specializations.get("env").unwrap_or(&Value::Nil),
        ));
        let tags = root
            .as_map()
            .and_then(|m| m.get("tags"))
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        for tag in self.role.tags_of(host) {
            if let Some(tag_env) = tags.get(tag) {
                env = env.merge(&Env::from_config(tag_env));
            }
        }
        env
    }

    pub fn filters(&self) -> String {
        format!(
            "--filter label=service={} --filter label=destination={} --filter label=role={}",
            self.config.service(),
            self.config.destination.as_deref().unwrap_or(""),
            self.role.name
        )
    }

    pub fn running_proxy(&self) -> bool {
        self.role.running_proxy()
    }

    /// The role's proxy settings (root `proxy:` with the role's own merged over it).
    pub fn proxy_config(&self) -> Map {
        self.role
            .proxy_config(self.config.get("proxy"))
            .and_then(|v| v.as_map().cloned())
            .unwrap_or_default()
    }

    /// `asset_path` (role's, else root's), only for roles running the proxy.
    pub fn asset_path(&self) -> Option<String> {
        if !self.running_proxy() {
            return None;
        }
        self.role
            .specializations
            .get("asset_path")
            .or_else(|| self.config.get("asset_path"))
            .filter(|v| v.is_present())
            .map(Value::to_ruby_s)
    }

    /// `docker run` (reference §4.5.4, token order of v2.12.0's `Commands::App#run`).
    pub fn run(&self, host: &str, version: &str, hostname: &str) -> String {
        let cfg = self.config;
        let options = self
            .role
            .specializations
            .get("options")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        let restart = options
            .iter()
            .find(|(k, _)| k.to_ruby_s() == "restart")
            .map(|(_, v)| v.to_ruby_s());
        let name = self.container_name(version);
        let mut t: Vec<String> = vec![
            "docker run --detach".into(),
            format!(
                "--restart {}",
                restart.as_deref().unwrap_or("unless-stopped")
            ),
            format!("--name {name} --network kamal --hostname {hostname}"),
            format!("--env KAMAL_CONTAINER_NAME=\"{name}\""),
            format!("--env KAMAL_VERSION=\"{version}\""),
            format!("--env KAMAL_HOST=\"{host}\""),
        ];
        if let Some(d) = &cfg.destination {
            t.push(format!("--env KAMAL_DESTINATION=\"{d}\""));
        }
        let env = self.env(host);
        t.extend(argumentize("--env", &env.clear_map()));
        t.push(format!("--env-file {}", self.env_file_path()));
        t.extend(self.logging_args());
        t.extend(cfg.volume_args());
        if let Some(asset_path) = self.asset_path() {
            t.push(format!(
                "--volume $PWD/.kamal/apps/{}/assets/volumes/{}-{version}:{asset_path}",
                cfg.service_and_destination(),
                self.role.name
            ));
        }
        t.push(format!(
            "--label service={}",
            escape_shell_value(&cfg.service())
        ));
        t.push(format!(
            "--label role={}",
            escape_shell_value(&self.role.name)
        ));
        match &cfg.destination {
            Some(d) => t.push(format!("--label destination={}", escape_shell_value(d))),
            None => t.push("--label destination".into()),
        }
        for labels in [cfg.get("labels"), self.role.specializations.get("labels")]
            .into_iter()
            .flatten()
        {
            t.extend(argumentize("--label", labels));
        }
        let other_options: Vec<(String, Value)> = options
            .iter()
            .filter(|(k, _)| k.to_ruby_s() != "restart")
            .map(|(k, v)| (k.to_ruby_s(), v.clone()))
            .collect();
        t.extend(optionize(&other_options, None));
        t.push(format!("{}:{version}", cfg.repository()));
        if let Some(cmd) = self.role.specializations.get("cmd").filter(|c| !c.is_nil()) {
            t.push(cmd.to_ruby_s());
        }
        t.join(" ")
    }

    /// Role logging deep-merged over the root logging.
    pub fn logging_args(&self) -> Vec<String> {
        let root = self
            .config
            .get("logging")
            .cloned()
            .unwrap_or_else(|| Value::map(Map::new()));
        match self.role.specializations.get("logging") {
            Some(own @ Value::Map(_)) => logging_args(&root.deep_merge(own)),
            _ => logging_args(&root),
        }
    }

    /// `docker container ls --all --filter 'name=^NAME$' --quiet`: the container's ID, or nothing.
    pub fn container_id_for(&self, version: &str) -> String {
        format!(
            "docker container ls --all --filter 'name=^{}$' --quiet",
            self.container_name(version)
        )
    }

    /// The running versions of this role (only running containers: `docker ps` without `-a`).
    pub fn list_versions(&self) -> String {
        format!(
            "docker ps {} --format \"{{{{.Names}}}}\" | while read line; do echo ${{line#{}-}}; done",
            self.filters(),
            self.container_prefix()
        )
    }

    fn latest_running(&self, format: &str) -> String {
        let f = self.filters();
        let reference = format!("{}:{}", self.config.repository(), self.config.latest_tag());
        let inner = format!(
            "docker ps --latest {format} {f} --filter status=running --filter status=restarting --filter ancestor=$(docker image ls --filter reference={reference} --format '{{{{.ID}}}}') ; docker ps --latest {format} {f} --filter status=running --filter status=restarting"
        );
        format!("sh -c {} | head -1", single_quote(&inner))
    }

    /// The current version: the newest running container whose image is tagged latest, else the newest running.
    pub fn current_running_version(&self) -> String {
        format!(
            "{} | while read line; do echo ${{line#{}-}}; done",
            self.latest_running("--format '{{.Names}}'"),
            self.container_prefix()
        )
    }

    /// `current_running_version` in one or two docker calls instead of three, with the same result:
    /// `--filter ancestor=IMG:latest` matches what the image ID looked up by reference matches (and
    /// nothing when the tag is missing, as an empty ID does), and the fallback listing is only needed
    /// when the first one is empty. Sets `$old` in the remote shell.
    pub fn current_version_into_old(&self) -> String {
        let f = format!(
            "--format '{{{{.Names}}}}' {} --filter status=running --filter status=restarting",
            self.filters()
        );
        let reference = format!("{}:{}", self.config.repository(), self.config.latest_tag());
        format!(
            "old=$(docker ps --latest {f} --filter ancestor={reference}); [ -n \"$old\" ] || old=$(docker ps --latest {f}); old=${{old#{}-}}",
            self.container_prefix()
        )
    }

    /// Every container of the role with its state (`docker ps -a`): gives both the running versions
    /// (`list_versions`) and whether the new version's name is taken, in one docker call.
    pub fn containers_with_state(&self) -> String {
        format!(
            "docker ps -a {} --format '{{{{.Names}}}} {{{{.State}}}}'",
            self.filters()
        )
    }

    /// Stop timeout: role `stop_timeout`, else root `stop_timeout`, else `drain_timeout` for roles
    /// without the proxy (kamal-proxy has already drained a proxy role's container).
    pub fn stop_timeout(&self) -> Option<i64> {
        let own = self
            .role
            .specializations
            .get("stop_timeout")
            .and_then(Value::as_int);
        let root = self.config.get("stop_timeout").and_then(Value::as_int);
        own.or(root).or_else(|| {
            (!self.running_proxy()).then(|| {
                self.config
                    .get("drain_timeout")
                    .and_then(Value::as_int)
                    .unwrap_or(30)
            })
        })
    }

    pub fn stop(&self, version: &str) -> String {
        let t = self
            .stop_timeout()
            .map(|t| format!(" -t {t}"))
            .unwrap_or_default();
        format!("{} | xargs docker stop{t}", self.container_id_for(version))
    }

    pub fn rename(&self, version: &str, new_version: &str) -> String {
        format!(
            "docker rename {} {}",
            self.container_name(version),
            self.container_name(new_version)
        )
    }

    /// Health of a role without the proxy: the Docker healthcheck status, else the container state.
    pub fn status(&self, version: &str) -> String {
        format!(
            "{} | xargs docker inspect --format '{{{{if .State.Health}}}}{{{{.State.Health.Status}}}}{{{{else}}}}{{{{.State.Status}}}}{{{{end}}}}'",
            self.container_id_for(version)
        )
    }

    pub fn logs(&self, version: &str) -> String {
        format!(
            "{} | xargs docker logs --timestamps 2>&1",
            self.container_id_for(version)
        )
    }

    pub fn health_json(&self, version: &str) -> String {
        format!(
            "{} | xargs docker inspect --format '{{{{json .State.Health}}}}'",
            self.container_id_for(version)
        )
    }

    pub fn tag_latest(&self, version: &str) -> String {
        let repo = self.config.repository();
        format!(
            "docker tag {repo}:{version} {repo}:{}",
            self.config.latest_tag()
        )
    }

    /// `docker exec kamal-proxy kamal-proxy deploy S-R[-D] ...` with the flags of reference §4.7.
    pub fn proxy_deploy(&self, container_id: &str, version: &str) -> String {
        let mut args = vec![format!(
            "docker exec kamal-proxy kamal-proxy deploy {}",
            self.container_prefix()
        )];
        args.extend(self.proxy_deploy_args(container_id, version));
        args.join(" ")
    }

    pub fn proxy_deploy_args(&self, container_id: &str, version: &str) -> Vec<String> {
        let p = self.proxy_config();
        let get = |path: &[&str]| -> Option<Value> {
            let mut v = Value::map(p.clone());
            for key in path {
                v = v.as_map()?.get(key)?.clone();
            }
            (!v.is_nil()).then_some(v)
        };
        let quoted = |flag: &str, value: String| format!("--{flag}={}", escape_shell_value(&value));
        let secs =
            |flag: &str, v: Option<Value>| v.map(|v| quoted(flag, format!("{}s", v.to_ruby_s())));
        let boolean = |flag: &str, v: Option<Value>, default: Option<bool>| -> Option<String> {
            match v.or_else(|| default.map(Value::Bool)) {
                Some(Value::Bool(true)) => Some(format!("--{flag}")),
                Some(Value::Bool(false)) => Some(quoted(flag, "false".into())),
                Some(other) if other.truthy() => Some(format!("--{flag}")),
                _ => None,
            }
        };
        let sd = self.config.service_and_destination();
        let mut a: Vec<String> = Vec::new();
        let port = get(&["app_port"])
            .map(|v| v.to_ruby_s())
            .unwrap_or_else(|| "80".into());
        a.push(quoted("target", format!("{container_id}:{port}")));
        for host in crate::config::proxy_hosts(&p) {
            a.push(quoted("host", host));
        }
        let ssl = get(&["ssl"]);
        if ssl.as_ref().is_some_and(Value::truthy) {
            a.push("--tls".into());
        }
        if ssl
            .as_ref()
            .and_then(Value::as_map)
            .is_some_and(|s| s.get("certificate_pem").is_some_and(Value::is_present))
        {
            let dir = format!("/home/kamal-proxy/.apps-config/{sd}/tls/{}", self.role.name);
            a.push(quoted("tls-certificate-path", format!("{dir}/cert.pem")));
            a.push(quoted("tls-private-key-path", format!("{dir}/key.pem")));
        }
        let timeout = |key: &str| {
            self.config
                .get(key)
                .map(Value::to_ruby_s)
                .unwrap_or_else(|| "30".into())
        };
        a.push(quoted(
            "deploy-timeout",
            format!("{}s", timeout("deploy_timeout")),
        ));
        a.push(quoted(
            "drain-timeout",
            format!("{}s", timeout("drain_timeout")),
        ));
        a.extend(secs(
            "health-check-interval",
            get(&["healthcheck", "interval"]),
        ));
        a.extend(secs(
            "health-check-timeout",
            get(&["healthcheck", "timeout"]),
        ));
        if let Some(path) = get(&["healthcheck", "path"]) {
            a.push(quoted("health-check-path", path.to_ruby_s()));
        }
        a.extend(secs("target-timeout", get(&["response_timeout"])));
        a.extend(boolean(
            "buffer-requests",
            get(&["buffering", "requests"]),
            Some(true),
        ));
        a.extend(boolean(
            "buffer-responses",
            get(&["buffering", "responses"]),
            Some(true),
        ));
        for (flag, key) in [
            ("buffer-memory", "memory"),
            ("max-request-body", "max_request_body"),
            ("max-response-body", "max_response_body"),
        ] {
            if let Some(v) = get(&["buffering", key]) {
                a.push(quoted(flag, v.to_ruby_s()));
            }
        }
        let prefixes: Vec<String> = match get(&["path_prefixes"]) {
            Some(Value::Seq(items)) => items.iter().map(Value::to_ruby_s).collect(),
            _ => get(&["path_prefix"])
                .map(|v| v.to_ruby_s().split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        };
        for prefix in prefixes {
            a.push(quoted("path-prefix", prefix));
        }
        a.extend(boolean(
            "strip-path-prefix",
            get(&["strip_path_prefix"]),
            None,
        ));
        a.extend(boolean("forward-headers", get(&["forward_headers"]), None));
        a.extend(boolean("tls-redirect", get(&["ssl_redirect"]), None));
        let headers = |key: &str, default: &[&str]| -> Vec<String> {
            match get(&["logging", key]) {
                Some(Value::Seq(items)) => items.iter().map(Value::to_ruby_s).collect(),
                _ => default.iter().map(|s| s.to_string()).collect(),
            }
        };
        for h in headers(
            "request_headers",
            &["Cache-Control", "Last-Modified", "User-Agent"],
        ) {
            a.push(quoted("log-request-header", h));
        }
        for h in headers("response_headers", &[]) {
            a.push(quoted("log-response-header", h));
        }
        if self.config.get("error_pages_path").is_some() {
            a.push(quoted(
                "error-pages",
                format!("/home/kamal-proxy/.apps-config/{sd}/error_pages/{version}"),
            ));
        }
        a
    }

    /// The env file's contents for this host (secrets looked up now).
    pub fn env_file(&self, host: &str) -> Result<String> {
        Ok(crate::config::env::env_file(
            &self.env(host).secret_values(&self.config.secrets)?,
        ))
    }
}

/// `<host, at most 51 characters, one trailing "." removed>-<12 hex>`.
pub fn container_hostname(host: &str, random_hex: &str) -> String {
    let short: String = host.chars().take(51).collect();
    format!("{}-{random_hex}", short.strip_suffix('.').unwrap_or(&short))
}
