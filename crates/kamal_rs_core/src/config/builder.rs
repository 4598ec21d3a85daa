//! `builder:` as a run reads it, with Kamal's defaults written once (`lib/kamal/configuration/builder.rb`,
//! Kamal 2.12.0; 1.9.3's keys for 1.x configs). `nil` counts as absent everywhere, as in Kamal.

use super::Configuration;
use crate::value::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct BuilderSettings {
    section: Map,
}

/// `builder.cache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// `registry` or `gha` (anything else: no cache).
    pub kind: Option<String>,
    pub options: Option<String>,
    image: Option<String>,
}

impl Cache {
    /// A registry cache's image: `[<server>/](<cache.image> | <image>-build-cache)`.
    pub fn reference(&self, server: Option<&str>, image: &str) -> String {
        let cache_image = self
            .image
            .clone()
            .unwrap_or_else(|| format!("{image}-build-cache"));
        match server {
            Some(server) => format!("{server}/{cache_image}"),
            None => cache_image,
        }
    }
}

impl BuilderSettings {
    pub fn of(config: &Configuration) -> BuilderSettings {
        BuilderSettings {
            section: config
                .builder_config()
                .as_map()
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.section.get(key).filter(|v| !v.is_nil())
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(Value::to_ruby_s)
    }

    /// `driver` (`docker-container` by default).
    pub fn driver(&self) -> String {
        self.string("driver")
            .unwrap_or_else(|| "docker-container".into())
    }

    /// `arch`: one or several; by default both `amd64` and `arm64`, none with the `docker` driver.
    pub fn arches(&self) -> Vec<String> {
        match self.get("arch") {
            Some(Value::Seq(items)) => items.iter().map(Value::to_ruby_s).collect(),
            Some(v) => vec![v.to_ruby_s()],
            None if self.driver() == "docker" => vec![],
            None => vec!["amd64".into(), "arm64".into()],
        }
    }

    /// `remote`: the remote builder's host (`ssh://...`).
    pub fn remote(&self) -> Option<String> {
        self.string("remote")
    }

    /// `local: false`: nothing is built on this machine.
    pub fn local_disabled(&self) -> bool {
        matches!(self.get("local"), Some(Value::Bool(false)))
    }

    /// `pack`: built with buildpacks.
    pub fn pack(&self) -> bool {
        self.get("pack").is_some_and(Value::truthy)
    }

    fn pack_section(&self) -> Option<&Map> {
        self.get("pack").and_then(Value::as_map)
    }

    pub fn pack_builder(&self) -> String {
        self.pack_section()
            .and_then(|p| p.get("builder"))
            .map(Value::to_ruby_s)
            .unwrap_or_default()
    }

    pub fn buildpacks(&self) -> Vec<String> {
        self.pack_section()
            .and_then(|p| p.get("buildpacks"))
            .and_then(Value::as_seq)
            .map(|b| b.iter().map(Value::to_ruby_s).collect())
            .unwrap_or_default()
    }

    pub fn cache(&self) -> Option<Cache> {
        let cache = self.get("cache")?.as_map()?;
        let string = |k: &str| cache.get(k).filter(|v| !v.is_nil()).map(Value::to_ruby_s);
        Some(Cache {
            kind: string("type"),
            options: string("options"),
            image: string("image"),
        })
    }

    /// `args`: the build arguments, a map (empty when unset).
    pub fn args(&self) -> Value {
        self.get("args")
            .cloned()
            .unwrap_or_else(|| Value::map(Map::new()))
    }

    /// `secrets`: the names of the secrets exported to the build's environment.
    pub fn secrets(&self) -> Vec<String> {
        self.get("secrets")
            .and_then(Value::as_seq)
            .map(|s| s.iter().map(Value::to_ruby_s).collect())
            .unwrap_or_default()
    }

    pub fn dockerfile(&self) -> String {
        self.string("dockerfile")
            .unwrap_or_else(|| "Dockerfile".into())
    }

    /// `context` (`.` by default: the build clone's root).
    pub fn context(&self) -> String {
        self.string("context").unwrap_or_else(|| ".".into())
    }

    /// `context` set: the working tree is built, not a clone of HEAD.
    pub fn context_set(&self) -> bool {
        self.get("context").is_some()
    }

    /// `target` and `ssh` when present (a blank value counts as unset).
    pub fn target(&self) -> Option<String> {
        self.get("target")
            .filter(|v| v.is_present())
            .map(Value::to_ruby_s)
    }

    pub fn ssh(&self) -> Option<String> {
        self.get("ssh")
            .filter(|v| v.is_present())
            .map(Value::to_ruby_s)
    }

    /// `provenance` and `sbom` when set at all (`false` included).
    pub fn provenance(&self) -> Option<String> {
        self.string("provenance")
    }

    pub fn sbom(&self) -> Option<String> {
        self.string("sbom")
    }

    // ---- Kamal 1.x (`multiarch`, and `local`/`remote` as {arch, host}) -----------------------

    /// 1.x: `multiarch` (true unless `false`).
    pub fn multiarch(&self) -> bool {
        !matches!(self.get("multiarch"), Some(Value::Bool(false)))
    }

    /// 1.x: `cache`, `remote` or `local` set to something truthy.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some_and(Value::truthy)
    }

    /// 1.x: `local.arch` or `remote.arch`.
    pub fn arch_of(&self, section: &str) -> Option<String> {
        self.get(section)
            .and_then(Value::as_map)
            .and_then(|m| m.get("arch"))
            .filter(|v| !v.is_nil())
            .map(Value::to_ruby_s)
    }

    /// 1.x: `local.host` or `remote.host`.
    pub fn host_of(&self, section: &str) -> String {
        self.get(section)
            .and_then(Value::as_map)
            .and_then(|m| m.get("host"))
            .map(Value::to_ruby_s)
            .unwrap_or_default()
    }
}
