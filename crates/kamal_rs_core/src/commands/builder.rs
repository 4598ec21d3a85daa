//! The local build commands of `build push` (`lib/kamal/commands/builder/*.rb`, Kamal 2.12.0): the tool check, the builder (local,
//! remote, hybrid, cloud, pack) with its check/create/remove, the `docker buildx build` line, and the
//! git clone the build runs in. Kamal's `commands/builder/*.rb`; every string is compared in the tests.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Configuration;
use crate::error::Result;
use crate::shell::{argumentize, escape_shell_value, shellescape};
use crate::value::{Map, Value};

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
        let cfg = t.cfg.clone();
        let get = |k: &str| cfg.get(k).filter(|v| !v.is_nil());
        let driver = get("driver")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "docker-container".into());
        let arches: Vec<String> = match get("arch") {
            Some(Value::Seq(items)) => items.iter().map(Value::to_ruby_s).collect(),
            Some(v) => vec![v.to_ruby_s()],
            None if driver == "docker" => vec![],
            None => vec!["amd64".into(), "arm64".into()],
        };
        let remote = get("remote").map(Value::to_ruby_s);
        let local_disabled = matches!(get("local"), Some(Value::Bool(false)));
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
        } else if get("pack").is_some_and(Value::truthy) {
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

    fn get(&self, key: &str) -> Option<&Value> {
        self.t.get(key)
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
        let cache = self.get("cache")?.as_map()?.clone();
        let options = cache_options(&cache);
        match cache.get("type").map(Value::to_ruby_s).as_deref() {
            Some("registry") => {
                let reference = cache_reference(self.t.server.as_deref(), &cache, &self.t.image);
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
        self.get("args")
            .cloned()
            .unwrap_or_else(|| Value::map(Map::new()))
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
        for (flag, key) in [
            ("--target", "target"),
            ("--ssh", "ssh"),
            ("--provenance", "provenance"),
            ("--sbom", "sbom"),
        ] {
            let value = self.t.cfg.get(key);
            let present = match key {
                // `provenance` and `sbom` count when set at all (`false` included).
                "provenance" | "sbom" => value.is_some_and(|v| !v.is_nil()),
                _ => value.is_some_and(Value::is_present),
            };
            if present {
                tail.push(flag.into());
                tail.push(value.expect("checked").to_ruby_s());
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
        self.get("pack")
            .and_then(Value::as_map)
            .and_then(|p| p.get("builder"))
            .map(Value::to_ruby_s)
            .unwrap_or_default()
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
        let buildpacks = self
            .get("pack")
            .and_then(Value::as_map)
            .and_then(|p| p.get("buildpacks"))
            .and_then(Value::as_seq)
            .map(|b| b.iter().map(Value::to_ruby_s).collect::<Vec<_>>())
            .unwrap_or_default();
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

/// `builder.cache.options`, when set.
pub(crate) fn cache_options(cache: &Map) -> Option<String> {
    cache
        .get("options")
        .filter(|v| !v.is_nil())
        .map(Value::to_ruby_s)
}

/// A registry cache's image: `[<server>/](<cache.image> | <image>-build-cache)`.
pub(crate) fn cache_reference(server: Option<&str>, cache: &Map, image: &str) -> String {
    let cache_image = cache
        .get("image")
        .filter(|v| !v.is_nil())
        .map(Value::to_ruby_s)
        .unwrap_or_else(|| format!("{image}-build-cache"));
    match server {
        Some(server) => format!("{server}/{cache_image}"),
        None => cache_image,
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
    pub cfg: Map,
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
            cfg: config
                .builder_config()
                .as_map()
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// A `builder:` key, `nil` counting as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.cfg.get(key).filter(|v| !v.is_nil())
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
        self.get("dockerfile")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "Dockerfile".into())
    }

    pub fn context(&self) -> String {
        self.get("context")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| ".".into())
    }

    /// `builder.secrets`: the names of the secrets exported to the build's environment.
    pub fn secret_names(&self) -> Vec<String> {
        self.get("secrets")
            .and_then(Value::as_seq)
            .map(|s| s.iter().map(Value::to_ruby_s).collect())
            .unwrap_or_default()
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

/// Where a clone build happens (the app's directory inside a clean clone of its git repo).
pub struct Clone {
    /// The git repository's root (`git rev-parse --show-toplevel`).
    pub root: PathBuf,
    /// `Dir.tmpdir/kamal-clones/<service>-<13 hex of sha256(pwd)>`.
    pub clone_directory: PathBuf,
    pub build_directory: PathBuf,
    /// Kamal 1.9: the root is not shell-escaped, and the reset has no `gc`.
    pub v1: bool,
}

impl Clone {
    pub fn new(service: &str, pwd: &Path, root: &Path, tmpdir: &Path) -> Clone {
        let pwd_s = pwd.to_string_lossy();
        let sha = format!("{:x}", Sha256::digest(pwd_s.as_bytes()));
        let clone_directory = tmpdir
            .join("kamal-clones")
            .join(format!("{service}-{}", &sha[..13]));
        let relative = pwd_s
            .strip_prefix(root.to_string_lossy().as_ref())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let basename = root
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut build_directory = clone_directory.join(basename);
        if !relative.is_empty() {
            build_directory = build_directory.join(relative);
        }
        Clone {
            root: root.to_path_buf(),
            clone_directory,
            build_directory,
            v1: false,
        }
    }

    fn git(path: &Path, args: &str) -> String {
        format!("git -C {} {args}", path.display())
    }

    fn escaped_root(&self) -> String {
        if self.v1 {
            self.root.to_string_lossy().to_string()
        } else {
            shellescape(&self.root.to_string_lossy())
        }
    }

    pub fn clone_command(&self) -> String {
        Self::git(
            &self.clone_directory,
            &format!("clone {} --recurse-submodules", self.escaped_root()),
        )
    }

    pub fn reset_steps(&self, revision: &str) -> Vec<String> {
        let b = &self.build_directory;
        let mut steps = vec![
            Self::git(b, &format!("remote set-url origin {}", self.escaped_root())),
            Self::git(b, "fetch origin"),
            Self::git(b, &format!("reset --hard {revision}")),
            Self::git(b, "clean -fdx"),
            Self::git(b, "submodule update --init"),
        ];
        if !self.v1 {
            steps.push(Self::git(b, "gc --auto --quiet"));
        }
        steps
    }

    pub fn status(&self) -> String {
        Self::git(&self.build_directory, "status --porcelain")
    }

    pub fn revision(&self) -> String {
        Self::git(&self.build_directory, "rev-parse HEAD")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::config;
    use serde_json::json;

    #[test]
    fn validate_image_is_kamals_line_and_runs_typed() {
        assert_eq!(
            validate_image("ghcr.io/acme/myapp:V", "myapp"),
            "docker inspect -f '{{ .Config.Labels.service }}' ghcr.io/acme/myapp:V | grep -x myapp || (echo \"Image ghcr.io/acme/myapp:V is missing the 'service' label\" && exit 1)"
        );
        assert_eq!(
            validate_image_typed("ghcr.io/acme/myapp:V", "myapp"),
            "docker image inspect -f '{{ .Config.Labels.service }}' ghcr.io/acme/myapp:V | grep -x myapp || (echo \"Image ghcr.io/acme/myapp:V is missing the 'service' label\" && exit 1)"
        );
    }

    fn builder_with(builder: serde_json::Value, docker_arch: Option<&str>) -> Builder {
        let c = config(
            &[json!({
                "service": "app", "image": "acme/app", "servers": ["1.1.1.1"],
                "registry": { "server": "ghcr.io", "username": "u", "password": "p" },
                "builder": builder
            })],
            None,
            "abc123",
        );
        Builder::new(&c, docker_arch).unwrap()
    }

    fn builder(b: serde_json::Value) -> Builder {
        builder_with(b, Some("amd64"))
    }

    const TAGS: &str = "-t ghcr.io/acme/app:abc123 -t ghcr.io/acme/app:latest";

    #[test]
    fn local_docker_container_is_the_default_driver() {
        let b = builder(json!({ "arch": "amd64" }));
        assert_eq!(b.kind, Kind::Local);
        assert_eq!(
            b.push("registry", false).0,
            format!("docker buildx build --output=type=registry --platform linux/amd64 --builder kamal-local-docker-container {TAGS} --label service=\"app\" --file Dockerfile . 2>&1")
        );
        assert_eq!(
            b.create().unwrap(),
            "docker buildx create --name kamal-local-docker-container --driver=docker-container"
        );
        assert_eq!(
            b.inspect_builder().unwrap(),
            "docker buildx inspect kamal-local-docker-container"
        );
        assert_eq!(
            b.remove().unwrap(),
            "docker buildx rm kamal-local-docker-container"
        );
        assert!(b.login_to_registry_locally());
        assert!(b.push_env().is_empty());
    }

    #[test]
    fn docker_driver_has_no_builder_to_name_check_or_create() {
        let b = builder(json!({ "arch": "amd64", "driver": "docker" }));
        assert_eq!(
            b.push("registry", false).0,
            format!("docker buildx build --output=type=registry --platform linux/amd64 {TAGS} --label service=\"app\" --file Dockerfile . 2>&1")
        );
        assert_eq!(b.create(), None);
        assert_eq!(b.inspect_builder(), None);
        assert_eq!(b.remove(), None);
    }

    #[test]
    fn multiple_arches_build_one_multi_platform_image() {
        let b = builder(json!({ "arch": ["amd64", "arm64"] }));
        assert!(b
            .push("registry", false)
            .0
            .starts_with("docker buildx build --output=type=registry --platform linux/amd64,linux/arm64 --builder kamal-local-docker-container -t"));
    }

    #[test]
    fn remote_builder_over_ssh() {
        let b = builder(json!({ "arch": "arm64", "remote": "ssh://docker@builder.example" }));
        assert_eq!(b.kind, Kind::Remote);
        let name = "kamal-remote-ssh---docker-builder-example";
        assert_eq!(b.name(), name);
        assert_eq!(
            b.create().unwrap(),
            format!("docker context create {name}-context --description '{name} host' --docker 'host=ssh://docker@builder.example' ; docker buildx create --name {name} {name}-context")
        );
        assert_eq!(
            b.inspect_builder().unwrap(),
            format!("docker buildx inspect {name} | grep -q Endpoint:.*{name}-context && docker context inspect {name}-context --format '{{{{.Endpoints.docker.Host}}}}' | grep -xq ssh://docker@builder.example || (echo no compatible builder && exit 1)")
        );
        assert_eq!(
            b.remove().unwrap(),
            format!("docker context rm {name}-context ; docker buildx rm {name}")
        );
        assert_eq!(
            b.push("registry", false).0,
            format!("docker buildx build --output=type=registry --platform linux/arm64 --builder {name} {TAGS} --label service=\"app\" --file Dockerfile . 2>&1")
        );
        assert!(!b.login_to_registry_locally());
        assert_eq!(
            b.push_env(),
            vec![("BUILDKIT_NO_CLIENT_TOKEN".to_string(), "1".to_string())]
        );
    }

    #[test]
    fn remote_set_but_every_arch_local_builds_locally() {
        let b = builder(json!({ "arch": "amd64", "remote": "ssh://builder" }));
        assert_eq!(b.kind, Kind::Local);
        assert_eq!(b.name(), "kamal-local-docker-container");
    }

    #[test]
    fn hybrid_builds_the_local_arch_here_and_the_other_remotely() {
        let b = builder(json!({ "arch": ["amd64", "arm64"], "remote": "ssh://docker@builder" }));
        assert_eq!(b.kind, Kind::Hybrid);
        let name = "kamal-hybrid-docker-container-ssh---docker-builder";
        assert_eq!(b.name(), name);
        assert_eq!(
            b.create().unwrap(),
            format!("docker buildx create --platform linux/amd64 --name {name} --driver=docker-container && docker context create {name}-context --description '{name} host' --docker 'host=ssh://docker@builder' && docker buildx create --platform linux/arm64 --append --name {name} {name}-context")
        );
        assert!(b
            .push("registry", false)
            .0
            .contains("--platform linux/amd64,linux/arm64 --builder kamal-hybrid-"));
        // On an arm64 machine the same config builds amd64 remotely.
        let b = builder_with(
            json!({ "arch": ["amd64", "arm64"], "remote": "ssh://docker@builder" }),
            Some("arm64"),
        );
        assert!(b
            .create()
            .unwrap()
            .starts_with("docker buildx create --platform linux/arm64 --name"));
    }

    #[test]
    fn local_disabled_with_a_remote_builds_everything_remotely() {
        let b = builder(
            json!({ "arch": ["amd64", "arm64"], "remote": "ssh://builder", "local": false }),
        );
        assert_eq!(b.kind, Kind::Remote);
        assert!(b
            .push("registry", false)
            .0
            .contains("--platform linux/amd64,linux/arm64 --builder kamal-remote-ssh---builder "));
    }

    #[test]
    fn registry_cache_with_default_and_custom_image() {
        let b = builder(json!({ "arch": "amd64", "cache": { "type": "registry" } }));
        assert!(b.push("registry", false).0.contains(&format!("{TAGS} --cache-to type=registry,ref=ghcr.io/acme/app-build-cache --cache-from type=registry,ref=ghcr.io/acme/app-build-cache --label service=\"app\"")));
        let b = builder(
            json!({ "arch": "amd64", "cache": { "type": "registry", "image": "acme/cache", "options": "mode=max,image-manifest=true" } }),
        );
        assert!(b.push("registry", false).0.contains("--cache-to type=registry,ref=ghcr.io/acme/cache,mode=max,image-manifest=true --cache-from type=registry,ref=ghcr.io/acme/cache --label"));
    }

    #[test]
    fn gha_cache_reads_only_with_the_locating_options() {
        let b = builder(
            json!({ "arch": "amd64", "cache": { "type": "gha", "options": "mode=max,url=http://cache,scope=main" } }),
        );
        assert!(b.push("registry", false).0.contains("--cache-to type=gha,mode=max,url=http://cache,scope=main --cache-from type=gha,url=http://cache,scope=main --label"));
        let b = builder(json!({ "arch": "amd64", "cache": { "type": "gha" } }));
        assert!(b
            .push("registry", false)
            .0
            .contains("--cache-to type=gha --cache-from type=gha --label"));
    }

    #[test]
    fn build_args_are_escaped_and_logged_redacted_and_secrets_go_by_id() {
        let b = builder(json!({
            "arch": "amd64",
            "args": { "RUBY_VERSION": "3.3.0", "NOTE": "a \"b\" $c", "EMPTY": "" },
            "secrets": ["GITHUB_TOKEN", "RAILS_MASTER_KEY"]
        }));
        let (sent, shown) = b.push("registry", false);
        assert_eq!(
            sent,
            format!("docker buildx build --output=type=registry --platform linux/amd64 --builder kamal-local-docker-container {TAGS} --label service=\"app\" --build-arg RUBY_VERSION=\"3.3.0\" --build-arg NOTE=\"a \\\"b\\\" \\$c\" --build-arg EMPTY --secret id=\"GITHUB_TOKEN\" --secret id=\"RAILS_MASTER_KEY\" --file Dockerfile . 2>&1")
        );
        assert_eq!(
            shown,
            format!("docker buildx build --output=type=registry --platform linux/amd64 --builder kamal-local-docker-container {TAGS} --label service=\"app\" --build-arg RUBY_VERSION=[REDACTED] --build-arg NOTE=[REDACTED] --build-arg EMPTY --secret id=\"GITHUB_TOKEN\" --secret id=\"RAILS_MASTER_KEY\" --file Dockerfile . 2>&1")
        );
        assert_eq!(b.secret_names(), vec!["GITHUB_TOKEN", "RAILS_MASTER_KEY"]);
    }

    #[test]
    fn file_target_ssh_provenance_sbom_context_and_no_cache_in_order() {
        let b = builder(json!({
            "arch": "amd64", "dockerfile": "Dockerfile.prod", "target": "prod", "ssh": "default",
            "provenance": false, "sbom": true, "context": "../app"
        }));
        assert_eq!(
            b.push("registry", true).0,
            format!("docker buildx build --output=type=registry --platform linux/amd64 --builder kamal-local-docker-container {TAGS} --label service=\"app\" --file Dockerfile.prod --target prod --ssh default --provenance false --sbom true --no-cache ../app 2>&1")
        );
        assert_eq!(
            b.push("docker", false).0.split(' ').nth(3),
            Some("--output=type=docker")
        );
    }

    #[test]
    fn a_destination_tags_latest_with_its_name() {
        let c = config(
            &[
                json!({ "service": "app", "image": "acme/app", "servers": ["1.1.1.1"],
                        "registry": { "server": "ghcr.io", "username": "u", "password": "p" },
                        "builder": { "arch": "amd64" } }),
                json!({ "servers": ["2.2.2.2"] }),
            ],
            Some("staging"),
            "abc123",
        );
        let b = Builder::new(&c, None).unwrap();
        assert!(b
            .push("registry", false)
            .0
            .contains("-t ghcr.io/acme/app:abc123 -t ghcr.io/acme/app:latest-staging --label"));
    }

    #[test]
    fn cloud_driver_names_the_builder_after_the_driver() {
        let b = builder(json!({ "arch": "amd64", "driver": "cloud acme/builder" }));
        assert_eq!(b.kind, Kind::Cloud);
        assert_eq!(b.name(), "cloud-acme-builder");
        assert_eq!(
            b.create().unwrap(),
            "docker buildx create --driver cloud acme/builder"
        );
        assert_eq!(
            b.inspect_builder().unwrap(),
            "docker buildx inspect cloud-acme-builder"
        );
        assert!(b
            .push("registry", false)
            .0
            .contains("--builder cloud-acme-builder -t"));
    }

    #[test]
    fn local_registry_builder_uses_the_host_network() {
        let c = config(
            &[
                json!({ "service": "app", "servers": ["1.1.1.1"], "registry": { "server": "localhost:5555" }, "builder": { "arch": "amd64" } }),
            ],
            None,
            "abc123",
        );
        let b = Builder::new(&c, None).unwrap();
        assert_eq!(b.name(), "kamal-local-registry-docker-container");
        assert_eq!(
            b.create().unwrap(),
            "docker buildx create --name kamal-local-registry-docker-container --driver=docker-container --driver-opt network=host"
        );
        assert!(b
            .push("registry", false)
            .0
            .contains("-t localhost:5555/app:abc123 -t localhost:5555/app:latest --label"));
        assert_eq!(
            local_registry_setup("5555"),
            "docker start kamal-docker-registry || docker run --detach -p 127.0.0.1:5555:5000 --name kamal-docker-registry registry:3"
        );
    }

    #[test]
    fn pack_builds_with_buildpacks_then_pushes_both_tags() {
        let b = builder(json!({
            "arch": "amd64",
            "pack": { "builder": "heroku/builder:24", "buildpacks": ["heroku/ruby", "heroku/procfile"] },
            "args": { "BP_X": "1" }
        }));
        assert_eq!(b.kind, Kind::Pack);
        assert_eq!(
            b.push("registry", false).0,
            "pack build ghcr.io/acme/app --platform linux/amd64 --creation-time now --builder heroku/builder:24 --buildpack heroku/ruby --buildpack heroku/procfile --buildpack paketo-buildpacks/image-labels -t ghcr.io/acme/app:abc123 -t ghcr.io/acme/app:latest --env BP_IMAGE_LABELS=service=app --env BP_X=\"1\" --path . && docker push ghcr.io/acme/app:abc123 && docker push ghcr.io/acme/app:latest"
        );
        assert_eq!(
            b.inspect_builder().unwrap(),
            "pack builder inspect heroku/builder:24"
        );
    }

    #[test]
    fn clone_directories_and_commands() {
        let clone = Clone::new(
            "app",
            Path::new("/home/me/my repo/web"),
            Path::new("/home/me/my repo"),
            Path::new("/tmp"),
        );
        let sha = format!("{:x}", Sha256::digest(b"/home/me/my repo/web"));
        let dir = format!("/tmp/kamal-clones/app-{}", &sha[..13]);
        assert_eq!(clone.clone_directory, PathBuf::from(&dir));
        assert_eq!(
            clone.build_directory,
            PathBuf::from(format!("{dir}/my repo/web"))
        );
        assert_eq!(
            clone.clone_command(),
            format!("git -C {dir} clone /home/me/my\\ repo --recurse-submodules")
        );
        assert_eq!(
            clone.reset_steps("f00"),
            vec![
                format!("git -C {dir}/my repo/web remote set-url origin /home/me/my\\ repo"),
                format!("git -C {dir}/my repo/web fetch origin"),
                format!("git -C {dir}/my repo/web reset --hard f00"),
                format!("git -C {dir}/my repo/web clean -fdx"),
                format!("git -C {dir}/my repo/web submodule update --init"),
                format!("git -C {dir}/my repo/web gc --auto --quiet"),
            ]
        );
        assert_eq!(
            clone.status(),
            format!("git -C {dir}/my repo/web status --porcelain")
        );
        assert_eq!(docker_arch("x86_64\n"), "amd64");
        assert_eq!(docker_arch("aarch64"), "arm64");
    }
}
