//! The app container of one role: `docker run` with Kamal's exact tokens, version detection, stop,
//! rename, readiness, tag (Kamal's `Commands::App`).

use super::single_quote;
use crate::config::env::Env;
use crate::config::proxy::ProxySettings;
use crate::config::role_settings::RoleSettings;
use crate::config::{logging_args, Configuration, Role};
use crate::error::Result;
use crate::shell::{argumentize, escape_shell_value, optionize};
use crate::value::Value;

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

    /// `mkdir -p .kamal/apps/S[-D]/env/roles`.
    pub fn ensure_env_directory(&self) -> String {
        format!("mkdir -p {}", self.env_directory())
    }

    pub fn env_file_path(&self) -> String {
        format!("{}/{}.env", self.env_directory(), self.role.name)
    }

    /// Root env, the role's, then the host's tags'.
    pub fn env(&self, host: &str) -> Env {
        self.settings().env(host)
    }

    /// The role's settings over the root's.
    pub fn settings(&self) -> RoleSettings<'a> {
        RoleSettings::new(self.config, self.role)
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

    /// The role's proxy settings (root `proxy:` with the role's own merged over it; none set for a
    /// role that is not behind kamal-proxy).
    pub fn proxy(&self) -> ProxySettings {
        self.settings().proxy().unwrap_or_default()
    }

    /// `asset_path` (role's, else root's), only for roles running the proxy.
    pub fn asset_path(&self) -> Option<String> {
        self.settings().asset_path()
    }

    /// `docker run`, in the token order of `Kamal::Commands::App#run` (lib/kamal/commands/app.rb, Kamal 2.12.0).
    pub fn run(&self, host: &str, version: &str, hostname: &str) -> String {
        let cfg = self.config;
        let settings = self.settings();
        let restart = settings.restart();
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
        for labels in settings.labels() {
            t.extend(argumentize("--label", labels));
        }
        let other_options: Vec<(String, Value)> = settings
            .options()
            .into_iter()
            .filter(|(k, _)| k != "restart")
            .collect();
        t.extend(optionize(&other_options, None));
        t.push(format!("{}:{version}", cfg.repository()));
        if let Some(cmd) = settings.cmd() {
            t.push(cmd);
        }
        t.join(" ")
    }

    /// Role logging deep-merged over the root logging.
    pub fn logging_args(&self) -> Vec<String> {
        logging_args(&self.settings().logging())
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

    /// The running version, as `current_version_into_old` finds it, on its own line; exits non-zero
    /// when docker does not answer, so that "none" and "could not check" stay apart.
    pub fn running_version(&self) -> String {
        let f = format!(
            "--format '{{{{.Names}}}}' {} --filter status=running --filter status=restarting",
            self.filters()
        );
        let reference = format!("{}:{}", self.config.repository(), self.config.latest_tag());
        format!(
            "v=$(docker ps --latest {f} --filter ancestor={reference}) || exit 1; [ -n \"$v\" ] || v=$(docker ps --latest {f}) || exit 1; echo \"${{v#{}-}}\"",
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
        self.settings()
            .stop_timeout()
            .or_else(|| (!self.running_proxy()).then_some(self.config.timeouts().drain_timeout))
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

    /// `docker exec kamal-proxy kamal-proxy deploy S-R[-D] ...` with Kamal's flags (`proxy_deploy.rs`).
    pub fn proxy_deploy(&self, container_id: &str, version: &str) -> String {
        let mut args = vec![format!(
            "docker exec kamal-proxy kamal-proxy deploy {}",
            self.container_prefix()
        )];
        args.extend(self.proxy_deploy_args(container_id, version));
        args.join(" ")
    }

    pub fn proxy_deploy_args(&self, container_id: &str, version: &str) -> Vec<String> {
        super::proxy_deploy::args(self.config, self.role, &self.proxy(), container_id, version)
    }

    /// The env file's contents for this host (secrets looked up now).
    pub fn env_file(&self, host: &str) -> Result<String> {
        Ok(crate::config::env::env_file(
            &self.env(host).secret_values(&self.config.secrets)?,
        ))
    }
}

/// `docker tag IMG:V IMG:latest[-D]` (Kamal's `tag_latest_image`): per host, not per role.
pub fn tag_latest(config: &Configuration, version: &str) -> String {
    let repo = config.repository();
    format!("docker tag {repo}:{version} {repo}:{}", config.latest_tag())
}

/// `<host, at most 51 characters, one trailing "." removed>-<12 hex>`.
pub fn container_hostname(host: &str, random_hex: &str) -> String {
    let short: String = host.chars().take(51).collect();
    format!("{}-{random_hex}", short.strip_suffix('.').unwrap_or(&short))
}
