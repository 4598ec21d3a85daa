//! Kamal 1.9's builders (`lib/kamal/commands/builder/*.rb`, tag v1.9.3): native (`docker build` then two `docker push`), native cached,
//! native remote, multiarch and multiarch remote (`docker buildx build --push`). 1.9's option order puts
//! the tags first and has no `--output` and no `2>&1`.

use super::builder::{redacted_build_args, Target};
use crate::config::Configuration;
use crate::error::Result;
use crate::shell::{argumentize_as, Escaping};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindV1 {
    Native,
    NativeCached,
    NativeRemote,
    Multiarch,
    MultiarchRemote,
}

pub struct BuilderV1 {
    pub kind: KindV1,
    t: Target,
}

impl BuilderV1 {
    pub fn new(config: &Configuration) -> Result<BuilderV1> {
        let t = Target::new(config)?;
        let settings = &t.settings;
        let multiarch = settings.multiarch();
        let cached = settings.has("cache");
        let remote = settings.has("remote");
        let local = settings.has("local");
        let kind = match (multiarch, cached, remote, local) {
            (false, false, _, _) => KindV1::Native,
            (false, true, _, _) => KindV1::NativeCached,
            (true, _, true, false) => KindV1::NativeRemote,
            (true, _, true, true) => KindV1::MultiarchRemote,
            (true, _, false, _) => KindV1::Multiarch,
        };
        Ok(BuilderV1 { kind, t })
    }

    fn arch_of(&self, key: &str) -> Option<String> {
        self.t.settings.arch_of(key)
    }

    fn host_of(&self, key: &str) -> String {
        self.t.settings.host_of(key)
    }

    /// `docker` alone for the native builder, buildx too for the others.
    pub fn ensure_local_tools(&self) -> &'static str {
        if self.kind == KindV1::Native {
            "docker --version"
        } else {
            "docker --version && docker buildx version"
        }
    }

    pub fn name(&self) -> Option<String> {
        let s = &self.t.service;
        match self.kind {
            KindV1::Native => None,
            KindV1::NativeCached => Some(format!("kamal-{s}-native-cached")),
            KindV1::NativeRemote => Some(format!("kamal-{s}-native-remote")),
            KindV1::Multiarch => Some(format!("kamal-{s}-multiarch")),
            KindV1::MultiarchRemote => Some(format!("kamal-{s}-multiarch-remote")),
        }
    }

    fn context(&self, name: &str, arch: &str, host: &str) -> String {
        format!(
            "docker context create {name}-{arch} --description '{name} {arch} native host' --docker 'host={host}'"
        )
    }

    /// The check before a build (`None`: nothing to check).
    pub fn inspect_builder(&self) -> Option<String> {
        self.name()
            .map(|n| format!("docker buildx inspect {n} > /dev/null"))
    }

    pub fn create(&self) -> Option<String> {
        let name = self.name()?;
        let local = self.arch_of("local").unwrap_or_default();
        let remote = self.arch_of("remote").unwrap_or_default();
        Some(match self.kind {
            KindV1::Native => unreachable!("no builder"),
            KindV1::NativeCached => {
                format!("docker buildx create --name {name} --use --driver=docker-container")
            }
            KindV1::Multiarch => format!("docker buildx create --use --name {name}"),
            KindV1::NativeRemote => format!(
                "{} ; docker buildx create --name {name} {name}-{remote} --platform linux/{remote}",
                self.context(&name, &remote, &self.host_of("remote"))
            ),
            KindV1::MultiarchRemote => format!(
                "{} && {} && docker buildx create --name {name} {name}-{local} --platform linux/{local} && docker buildx create --append --name {name} {name}-{remote} --platform linux/{remote}",
                self.context(&name, &local, &self.host_of("local")),
                self.context(&name, &remote, &self.host_of("remote"))
            ),
        })
    }

    fn cache(&self) -> Vec<String> {
        let Some(cache) = self.t.settings.cache() else {
            return Vec::new();
        };
        let options = cache.options.clone();
        let (to, from) = match cache.kind.as_deref() {
            Some("registry") => {
                let reference = cache.reference(self.t.server.as_deref(), &self.t.image);
                let to = [
                    Some("type=registry".to_string()),
                    options,
                    Some(format!("ref={reference}")),
                ];
                (
                    to.into_iter().flatten().collect::<Vec<_>>().join(","),
                    format!("type=registry,ref={reference}"),
                )
            }
            Some("gha") => (
                [Some("type=gha".to_string()), options]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(","),
                "type=gha".into(),
            ),
            _ => return Vec::new(),
        };
        vec!["--cache-to".into(), to, "--cache-from".into(), from]
    }

    pub fn secret_names(&self) -> Vec<String> {
        self.t.secret_names()
    }

    pub fn dockerfile(&self) -> String {
        self.t.dockerfile()
    }

    /// Tags, cache, label, build args, secrets, file, target, ssh: what is sent and what is logged.
    fn build_options(&self) -> (Vec<String>, Vec<String>) {
        let mut head = self.t.tags();
        head.extend(self.cache());
        head.push("--label".into());
        head.push(format!("service={}", Escaping::V1.escape(&self.t.service)));
        let args = argumentize_as("--build-arg", &self.t.settings.args(), Escaping::V1);
        let shown_args = redacted_build_args(&args);
        let mut tail = Vec::new();
        for name in self.secret_names() {
            tail.push("--secret".into());
            tail.push(format!("id={}", Escaping::V1.escape(&name)));
        }
        tail.push("--file".into());
        tail.push(self.dockerfile());
        for (flag, value) in [
            ("--target", self.t.settings.target()),
            ("--ssh", self.t.settings.ssh()),
        ] {
            if let Some(value) = value {
                tail.push(flag.into());
                tail.push(value);
            }
        }
        (
            [head.clone(), args, tail.clone()].concat(),
            [head, shown_args, tail].concat(),
        )
    }

    /// The build-and-push command: what is run, and what is logged. Kamal 1.9 has no `--no-cache`;
    /// kamal_rs passes it to the build as Kamal 2 does.
    pub fn push(&self, no_cache: bool) -> (String, String) {
        let (mut opts, mut shown) = self.build_options();
        if no_cache {
            opts.push("--no-cache".into());
            shown.push("--no-cache".into());
        }
        let ctx = self.t.context();
        let head: Vec<String> = match self.kind {
            KindV1::Native => vec!["docker".into(), "build".into()],
            KindV1::NativeCached => vec!["docker buildx build --push".into()],
            KindV1::NativeRemote => vec![format!(
                "docker buildx build --push --platform linux/{} --builder {}",
                self.arch_of("remote").unwrap_or_default(),
                self.name().unwrap_or_default()
            )],
            KindV1::Multiarch | KindV1::MultiarchRemote => {
                let platform = match (self.kind, self.arch_of("local")) {
                    (KindV1::Multiarch, Some(arch)) => format!("linux/{arch}"),
                    _ => "linux/amd64,linux/arm64".into(),
                };
                vec![format!(
                    "docker buildx build --push --platform {platform} --builder {}",
                    self.name().unwrap_or_default()
                )]
            }
        };
        let tail = if self.kind == KindV1::Native {
            self.t.push_both()
        } else {
            String::new()
        };
        let build = |o: &[String]| format!("{} {} {ctx}{tail}", head.join(" "), o.join(" "));
        (build(&opts), build(&shown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::config;
    use serde_json::json;

    fn builder(b: serde_json::Value) -> BuilderV1 {
        let c = config(
            &[json!({
                "service": "app", "image": "acme/app", "servers": ["1.1.1.1"],
                "registry": { "server": "ghcr.io", "username": "u", "password": "p" },
                "traefik": {}, "builder": b
            })],
            None,
            "abc",
        );
        BuilderV1::new(&c).unwrap()
    }

    #[test]
    fn native_builds_then_pushes_both_tags() {
        let b =
            builder(json!({ "multiarch": false, "args": { "RUBY": "3.3" }, "secrets": ["TOKEN"] }));
        assert_eq!(b.kind, KindV1::Native);
        let (sent, shown) = b.push(false);
        assert_eq!(
            sent,
            r#"docker build -t ghcr.io/acme/app:abc -t ghcr.io/acme/app:latest --label service="app" --build-arg RUBY="3.3" --secret id="TOKEN" --file Dockerfile . && docker push ghcr.io/acme/app:abc && docker push ghcr.io/acme/app:latest"#
        );
        assert!(shown.contains("--build-arg RUBY=[REDACTED] --secret"));
        assert_eq!(b.ensure_local_tools(), "docker --version");
        assert_eq!(b.inspect_builder(), None);
    }

    #[test]
    fn multiarch_is_the_default() {
        let b = builder(json!({ "target": "prod", "ssh": "default" }));
        assert_eq!(b.kind, KindV1::Multiarch);
        assert_eq!(
            b.push(false).0,
            r#"docker buildx build --push --platform linux/amd64,linux/arm64 --builder kamal-app-multiarch -t ghcr.io/acme/app:abc -t ghcr.io/acme/app:latest --label service="app" --file Dockerfile --target prod --ssh default ."#
        );
        assert_eq!(
            b.create().unwrap(),
            "docker buildx create --use --name kamal-app-multiarch"
        );
        assert_eq!(
            b.inspect_builder().unwrap(),
            "docker buildx inspect kamal-app-multiarch > /dev/null"
        );
        let b = builder(json!({ "local": { "arch": "arm64" } }));
        assert!(b.push(false).0.starts_with(
            "docker buildx build --push --platform linux/arm64 --builder kamal-app-multiarch "
        ));
    }

    #[test]
    fn cached_and_remote_builders() {
        let b = builder(
            json!({ "multiarch": false, "cache": { "type": "registry", "options": "mode=max" } }),
        );
        assert_eq!(b.kind, KindV1::NativeCached);
        assert_eq!(
            b.push(false).0,
            r#"docker buildx build --push -t ghcr.io/acme/app:abc -t ghcr.io/acme/app:latest --cache-to type=registry,mode=max,ref=ghcr.io/acme/app-build-cache --cache-from type=registry,ref=ghcr.io/acme/app-build-cache --label service="app" --file Dockerfile ."#
        );
        let b = builder(json!({ "remote": { "arch": "amd64", "host": "ssh://root@builder" } }));
        assert_eq!(b.kind, KindV1::NativeRemote);
        assert_eq!(
            b.create().unwrap(),
            "docker context create kamal-app-native-remote-amd64 --description 'kamal-app-native-remote amd64 native host' --docker 'host=ssh://root@builder' ; docker buildx create --name kamal-app-native-remote kamal-app-native-remote-amd64 --platform linux/amd64"
        );
        assert!(b.push(false).0.starts_with("docker buildx build --push --platform linux/amd64 --builder kamal-app-native-remote -t"));
        let b = builder(
            json!({ "local": { "arch": "arm64", "host": "unix:///var/run/docker.sock" }, "remote": { "arch": "amd64", "host": "ssh://root@b" } }),
        );
        assert_eq!(b.kind, KindV1::MultiarchRemote);
        assert!(b.push(false).0.starts_with("docker buildx build --push --platform linux/amd64,linux/arm64 --builder kamal-app-multiarch-remote -t"));
    }
}
