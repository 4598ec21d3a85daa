//! The local build commands of `build push` (`lib/kamal/commands/builder/*.rb`, Kamal 2.12.0): the tool check, the builder (local,
//! remote, hybrid, cloud, pack) with its check/create/remove, the `docker buildx build` line, and the
//! git clone the build runs in. Kamal's `commands/builder/*.rb`; every string is compared in the tests.

use crate::config::builder::BuilderSettings;
use crate::config::Configuration;
use crate::error::Result;
use crate::shell::{argumentize, escape_shell_value};
use crate::value::Value;

/// How the image gets built (Kamal's `Kamal::Commands::Builder#target`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    Remote,
    Hybrid,
    Cloud,
    Pack,
}

pub const ENSURE_LOCAL_TOOLS: &str = "docker --version && docker buildx version";

pub struct Builder {
    pub kind: Kind,
    driver: String,
    arches: Vec<String>,
    local_arches: Vec<String>,
    remote_arches: Vec<String>,
    remote: Option<String>,
    local_registry: bool,
    t: Target,
}

impl Builder {
    /// `docker_arch`: the local Docker's architecture (`amd64`, `arm64`), needed only with `remote`.
    pub fn new(config: &Configuration, docker_arch: Option<&str>) -> Result<Builder> {
        let t = Target::new(config)?;
        let settings = &t.settings;
        let driver = settings.driver();
        let arches = settings.arches();
        let remote = settings.remote();
        let local_disabled = settings.local_disabled();
        let local_arches: Vec<String> = if local_disabled {
            vec![]
        } else if remote.is_some() {
            arches
                .iter()
                .filter(|a| Some(a.as_str()) == docker_arch)
                .cloned()
                .collect()
        } else {
            arches.clone()
        };
        let remote_arches: Vec<String> = if remote.is_some() {
            arches
                .iter()
                .filter(|a| !local_arches.contains(a))
                .cloned()
                .collect()
        } else {
            vec![]
        };
        let is_remote = !remote_arches.is_empty();
        let is_local = !local_disabled && (arches.is_empty() || !local_arches.is_empty());
        let kind = if is_remote && is_local {
            Kind::Hybrid
        } else if is_remote {
            Kind::Remote
        } else if settings.pack() {
            Kind::Pack
        } else if driver.starts_with("cloud") {
            Kind::Cloud
        } else {
            Kind::Local
        };
        Ok(Builder {
            kind,
            driver,
            arches,
            local_arches,
            remote_arches,
            remote,
            local_registry: config.registry().local(),
            t,
        })
    }

    fn docker_driver(&self) -> bool {
        self.driver == "docker"
    }

    /// Remote and hybrid builders build on another machine: no local `docker login` (its registry
    /// credentials would be the wrong machine's), and `BUILDKIT_NO_CLIENT_TOKEN=1`.
    pub fn builds_remotely(&self) -> bool {
        matches!(self.kind, Kind::Remote | Kind::Hybrid)
    }

    pub fn login_to_registry_locally(&self) -> bool {
        !self.builds_remotely()
    }

    pub fn push_env(&self) -> Vec<(String, String)> {
        if self.builds_remotely() {
            vec![("BUILDKIT_NO_CLIENT_TOKEN".into(), "1".into())]
        } else {
            vec![]
        }
    }

    pub fn name(&self) -> String {
        let registry = if self.local_registry {
            "-local-registry"
        } else {
            ""
        };
        let remote = self.sanitized_remote();
        match self.kind {
            Kind::Local if self.local_registry => format!("kamal-local-registry-{}", self.driver),
            Kind::Local => format!("kamal-local-{}", self.driver),
            Kind::Remote => format!("kamal-remote-{remote}{registry}"),
            Kind::Hybrid => format!("kamal-hybrid-{}-{remote}{registry}", self.driver),
            Kind::Cloud => self.driver.replace([' ', '/'], "-"),
            Kind::Pack => self.pack_builder(),
        }
    }

    fn sanitized_remote(&self) -> String {
        self.remote
            .as_deref()
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    }

    fn context_name(&self) -> String {
        format!("{}-context", self.name())
    }

    fn remote_host(&self) -> &str {
        self.remote.as_deref().unwrap_or_default()
    }

    fn create_context(&self) -> String {
        format!(
            "docker context create {ctx} --description '{name} host' --docker 'host={remote}'",
            ctx = self.context_name(),
            name = self.name(),
            remote = self.remote_host()
        )
    }

    fn network_host(&self) -> &'static str {
        if self.local_registry {
            " --driver-opt network=host"
        } else {
            ""
        }
    }

    /// `build create`; `None` where there is nothing to create (the `docker` driver, pack).
    pub fn create(&self) -> Option<String> {
        let name = self.name();
        match self.kind {
            Kind::Local if self.docker_driver() => None,
            Kind::Local => Some(format!(
                "docker buildx create --name {name} --driver={}{}",
                self.driver,
                self.network_host()
            )),
            Kind::Remote => Some(format!(
                "{} ; docker buildx create --name {name}{} {}",
                self.create_context(),
                self.network_host(),
                self.context_name()
            )),
            Kind::Hybrid => Some(format!(
                "docker buildx create --platform {} --name {name} --driver={} && {} && docker buildx create --platform {} --append --name {name} {}",
                platforms(&self.local_arches),
                self.driver,
                self.create_context(),
                platforms(&self.remote_arches),
                self.context_name()
            )),
            Kind::Cloud => Some(format!("docker buildx create --driver {}", self.driver)),
            Kind::Pack => None,
        }
    }

    /// `build remove`.
    pub fn remove(&self) -> Option<String> {
        let name = self.name();
        match self.kind {
            Kind::Local if self.docker_driver() => None,
            Kind::Local | Kind::Cloud => Some(format!("docker buildx rm {name}")),
            Kind::Remote | Kind::Hybrid => Some(format!(
                "docker context rm {} ; docker buildx rm {name}",
                self.context_name()
            )),
            Kind::Pack => None,
        }
    }

    /// The check before a build; its failure with a "missing builder" message leads to remove + create.
    pub fn inspect_builder(&self) -> Option<String> {
        let name = self.name();
        match self.kind {
            Kind::Local if self.docker_driver() => None,
            Kind::Local | Kind::Cloud => Some(format!("docker buildx inspect {name}")),
            Kind::Remote | Kind::Hybrid => Some(format!(
                "docker buildx inspect {name} | grep -q Endpoint:.*{ctx} && docker context inspect {ctx} --format '{{{{.Endpoints.docker.Host}}}}' | grep -xq {remote} || (echo no compatible builder && exit 1)",
                ctx = self.context_name(),
                remote = self.remote_host()
            )),
            Kind::Pack => Some(format!("pack builder inspect {name}")),
        }
    }

    fn cache(&self) -> Option<(String, String)> {
        let cache = self.t.settings.cache()?;
        let options = cache.options.clone();
        match cache.kind.as_deref() {
            Some("registry") => {
                let reference = cache.reference(self.t.server.as_deref(), &self.t.image);
                let from = format!("type=registry,ref={reference}");
                let to = match options {
                    Some(o) => format!("{from},{o}"),
                    None => from.clone(),
                };
                Some((to, from))
            }
            Some("gha") => {
                let to = match &options {
                    Some(o) => format!("type=gha,{o}"),
                    None => "type=gha".into(),
                };
                // Only the options that locate the cache make sense when reading it.
                let kept: Vec<&str> = options
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .filter(|o| {
                        let key = o.split('=').next().unwrap_or_default();
                        ["url", "url_v2", "token", "scope", "timeout"].contains(&key)
                    })
                    .collect();
                let from = std::iter::once("type=gha")
                    .chain(kept)
                    .collect::<Vec<_>>()
                    .join(",");
                Some((to, from))
            }
            _ => None,
        }
    }

    pub fn dockerfile(&self) -> String {
        self.t.dockerfile()
    }

    pub fn secret_names(&self) -> Vec<String> {
        self.t.secret_names()
    }

    fn args(&self) -> Value {
        self.t.settings.args()
    }

    /// `--build-arg K=V`... as sent, and as logged (`K=[REDACTED]`).
    fn build_args(&self) -> (Vec<String>, Vec<String>) {
        let sent = argumentize("--build-arg", &self.args());
        let shown = redacted_build_args(&sent);
        (sent, shown)
    }

    /// Everything between the tags and the context, in Kamal's order; `None` in `shown` where a value
    /// is sensitive.
    fn build_options(&self, no_cache: bool) -> (Vec<String>, Vec<String>) {
        let mut head = Vec::new();
        if let Some((to, from)) = self.cache() {
            head.extend(["--cache-to".into(), to, "--cache-from".into(), from]);
        }
        head.push("--label".into());
        head.push(format!("service={}", escape_shell_value(&self.t.service)));
        let (args, args_shown) = self.build_args();
        let mut tail = Vec::new();
        for name in self.secret_names() {
            tail.push("--secret".into());
            tail.push(format!("id={}", escape_shell_value(&name)));
        }
        tail.push("--file".into());
        tail.push(self.dockerfile());
        let settings = &self.t.settings;
        for (flag, value) in [
            ("--target", settings.target()),
            ("--ssh", settings.ssh()),
            ("--provenance", settings.provenance()),
            ("--sbom", settings.sbom()),
        ] {
            if let Some(value) = value {
                tail.push(flag.into());
                tail.push(value);
            }
        }
        if no_cache {
            tail.push("--no-cache".into());
        }
        let sent = [head.clone(), args, tail.clone()].concat();
        let shown = [head, args_shown, tail].concat();
        (sent, shown)
    }

    /// The build-and-push command (`export` is buildx's `--output=type=`, `registry` for a deploy):
    /// what is run, and what is logged.
    pub fn push(&self, export: &str, no_cache: bool) -> (String, String) {
        if self.kind == Kind::Pack {
            return self.pack_push(export, no_cache);
        }
        let mut head = vec![
            "docker".to_string(),
            "buildx".into(),
            "build".into(),
            format!("--output=type={export}"),
        ];
        if !self.arches.is_empty() {
            head.push("--platform".into());
            head.push(platforms(&self.arches));
        }
        if !self.docker_driver() {
            head.push("--builder".into());
            head.push(self.name());
        }
        head.extend(self.t.tags());
        let (sent, shown) = self.build_options(no_cache);
        let tail = vec![self.t.context(), "2>&1".into()];
        (
            [head.clone(), sent, tail.clone()].concat().join(" "),
            [head, shown, tail].concat().join(" "),
        )
    }

    fn pack_builder(&self) -> String {
        self.t.settings.pack_builder()
    }

    fn pack_push(&self, export: &str, no_cache: bool) -> (String, String) {
        let mut head = vec![
            "pack".to_string(),
            "build".into(),
            self.t.repository.clone(),
            "--platform".into(),
            format!(
                "linux/{}",
                self.local_arches.first().cloned().unwrap_or_default()
            ),
            "--creation-time".into(),
            "now".into(),
            "--builder".into(),
            self.pack_builder(),
        ];
        let buildpacks = self.t.settings.buildpacks();
        for bp in buildpacks
            .iter()
            .map(String::as_str)
            .chain(["paketo-buildpacks/image-labels"])
        {
            head.push("--buildpack".into());
            head.push(bp.into());
        }
        head.extend(self.t.tags());
        if no_cache {
            head.push("--clear-cache".into());
        }
        head.push("--env".into());
        head.push(format!("BP_IMAGE_LABELS=service={}", self.t.service));
        head.extend(argumentize("--env", &self.args()));
        // Secrets go in as `--env NAME` with the value taken from the build's environment.
        let mut secrets = Vec::new();
        for name in self.secret_names() {
            secrets.push("--env".to_string());
            secrets.push(name);
        }
        let tail = vec!["--path".to_string(), self.t.context()];
        let mut cmd = [head, secrets, tail].concat().join(" ");
        if export == "registry" {
            cmd.push_str(&self.t.push_both());
        }
        (cmd.clone(), cmd)
    }
}

/// `--build-arg K=V` tokens as logged: `K=[REDACTED]` (Kamal marks build args sensitive).
pub(crate) fn redacted_build_args(tokens: &[String]) -> Vec<String> {
    tokens
        .iter()
        .map(|t| match t.split_once('=') {
            Some((k, _)) if t != "--build-arg" => format!("{k}=[REDACTED]"),
            _ => t.clone(),
        })
        .collect()
}

/// What every builder (2.x and 1.9) builds: the image's names, and the `builder:` settings.
pub struct Target {
    pub service: String,
    pub repository: String,
    pub server: Option<String>,
    pub image: String,
    pub version: String,
    pub latest_tag: String,
    pub settings: BuilderSettings,
}

impl Target {
    pub fn new(config: &Configuration) -> Result<Target> {
        Ok(Target {
            service: config.service(),
            repository: config.repository(),
            server: config.registry().server,
            image: config.image().unwrap_or_default(),
            version: config.version()?,
            latest_tag: config.latest_tag(),
            settings: config.builder(),
        })
    }

    /// `-t IMG:V -t IMG:latest[-D]`.
    pub fn tags(&self) -> Vec<String> {
        vec![
            "-t".into(),
            format!("{}:{}", self.repository, self.version),
            "-t".into(),
            format!("{}:{}", self.repository, self.latest_tag),
        ]
    }

    /// ` && docker push IMG:V && docker push IMG:latest[-D]`, for builders that do not push themselves.
    pub fn push_both(&self) -> String {
        format!(
            " && docker push {repo}:{} && docker push {repo}:{}",
            self.version,
            self.latest_tag,
            repo = self.repository
        )
    }

    pub fn dockerfile(&self) -> String {
        self.settings.dockerfile()
    }

    pub fn context(&self) -> String {
        self.settings.context()
    }

    /// `builder.secrets`: the names of the secrets exported to the build's environment.
    pub fn secret_names(&self) -> Vec<String> {
        self.settings.secrets()
    }
}

fn platforms(arches: &[String]) -> String {
    arches
        .iter()
        .map(|a| format!("linux/{a}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The local Docker's architecture in Kamal's terms, from `docker info --format '{{.Architecture}}'`.
pub fn docker_arch(info_architecture: &str) -> String {
    match info_architecture.trim() {
        "x86_64" => "amd64".into(),
        "aarch64" | "arm64" => "arm64".into(),
        other => other.into(),
    }
}

/// `docker pull IMG:V` (Kamal's `Commands::Builder#pull`).
pub fn pull(image: &str) -> String {
    format!("docker pull {image}")
}

/// The first registry mirror of a host's Docker (Kamal's `first_mirror`): empty, or an error naming
/// an index out of range, when there is none.
pub const FIRST_MIRROR: &str = "docker info --format '{{index .RegistryConfig.Mirrors 0}}'";

/// Kamal's `validate_image` after a pull, as it logs it: the image must carry the `service` label.
pub fn validate_image(image: &str, service: &str) -> String {
    format!(
        "docker inspect -f '{{{{ .Config.Labels.service }}}}' {image} | grep -x {service} || (echo \"Image {image} is missing the 'service' label\" && exit 1)"
    )
}

/// The same check as it is run: `docker image inspect`. Kamal's untyped `docker inspect` first looks for
/// a container of that name, which a `repo:tag` can never be, and so costs the docker CLI one more
/// API round (about 13 ms of a host's CPU) for the same answer.
pub fn validate_image_typed(image: &str, service: &str) -> String {
    validate_image(image, service).replacen("docker inspect", "docker image inspect", 1)
}

/// `docker start kamal-docker-registry || docker run ...`: the local registry (`localhost:<port>`).
pub fn local_registry_setup(port: &str) -> String {
    format!(
        "docker start kamal-docker-registry || docker run --detach -p 127.0.0.1:{port}:5000 --name kamal-docker-registry registry:3"
    )
}

mod clone;
pub use clone::Clone;

#[cfg(test)]
mod tests;
