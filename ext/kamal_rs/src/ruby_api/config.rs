//! `KamalRs::Native::Configuration`: the resolved, validated config (Ruby's `KamalRs::Configuration`
//! wraps it; see `lib/kamal_rs/configuration.rb`).

use kamal_rs_core::{Configuration as Core, LoadOptions};
use magnus::{function, method, prelude::*, Error, RArray, RModule, Ruby, Value};

use super::convert::{FromRuby, ToRuby};
use super::errors;

#[magnus::wrap(class = "KamalRs::Native::Configuration", free_immediately, size)]
pub struct Configuration {
    inner: Core,
}

impl Configuration {
    /// `files`: each config file's parsed YAML, base first. `foreign` collects objects the model keeps opaque.
    fn load(
        ruby: &Ruby,
        files: RArray,
        destination: Option<String>,
        version: Option<String>,
        env_version: Option<String>,
        foreign: RArray,
    ) -> Result<Self, Error> {
        let mut from = FromRuby::new(ruby, foreign);
        let mut trees = Vec::with_capacity(files.len());
        for i in 0..files.len() {
            trees.push(from.convert(files.entry::<Value>(i as isize)?)?);
        }
        let options = LoadOptions {
            destination,
            version,
            env_version,
            locked: kamal_rs_core::config::lockfile::for_app(),
            // Ruby reads `.kamal/secrets*` (lib/kamal_rs/secrets.rb) and hands the values over.
            secrets: kamal_rs_core::secrets::SecretsSource::Provided,
        };
        Core::load(&trees, options)
            .map(|inner| Configuration { inner })
            .map_err(|e| errors::to_ruby(ruby, e))
    }

    fn to_h(ruby: &Ruby, rb_self: &Self, foreign: RArray) -> Result<Value, Error> {
        let tree = rb_self.inner.to_h().map_err(|e| errors::to_ruby(ruby, e))?;
        ToRuby::new(ruby, foreign).convert(&tree)
    }

    fn version(ruby: &Ruby, rb_self: &Self) -> Result<String, Error> {
        rb_self
            .inner
            .version()
            .map_err(|e| errors::to_ruby(ruby, e))
    }

    fn kamal_major(&self) -> u8 {
        match self.inner.major {
            kamal_rs_core::KamalMajor::V1 => 1,
            kamal_rs_core::KamalMajor::V2 => 2,
        }
    }

    fn service(&self) -> String {
        self.inner.service()
    }

    fn destination(&self) -> Option<String> {
        self.inner.destination.clone()
    }

    fn all_hosts(&self) -> Vec<String> {
        self.inner.all_hosts()
    }

    /// What Kamal warns about on stderr when it reads the config.
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }

    fn role_names(&self) -> Vec<String> {
        self.inner.roles.iter().map(|r| r.name.clone()).collect()
    }

    fn deploy(ruby: &Ruby, rb_self: &Self, options: magnus::RHash) -> Result<Value, Error> {
        super::deploy::deploy(ruby, &rb_self.inner, options)
    }

    /// `[secrets_path, destination]` for a 2.x config (its secrets files), else nil (1.x: ENV's).
    fn secrets_to_read(&self) -> Option<(String, Option<String>)> {
        let secrets = &self.inner.secrets;
        secrets.from_files().then(|| {
            let path = self
                .inner
                .raw
                .get("secrets_path")
                .map(|v| v.to_ruby_s())
                .unwrap_or_else(|| ".kamal/secrets".into());
            (path, self.inner.destination.clone())
        })
    }

    /// Whether reading the config itself looks up secrets (Kamal's `ssh.key_data` check).
    fn secrets_read_with_config(&self) -> bool {
        self.inner
            .get("ssh")
            .and_then(|v| v.as_map())
            .is_some_and(|m| m.get("key_data").is_some())
    }

    fn provide_secrets(&self, pairs: Vec<(String, String)>) {
        self.inner.secrets.provide(pairs);
    }

    fn primary_host(&self) -> Option<String> {
        self.inner.primary_host().map(str::to_string)
    }
}

pub fn init(ruby: &Ruby, native: &RModule) -> Result<(), Error> {
    let class = native.define_class("Configuration", ruby.class_object())?;
    class.define_singleton_method("load", function!(Configuration::load, 5))?;
    class.define_method("to_h", method!(Configuration::to_h, 1))?;
    class.define_method("version", method!(Configuration::version, 0))?;
    class.define_method("kamal_major", method!(Configuration::kamal_major, 0))?;
    class.define_method("service", method!(Configuration::service, 0))?;
    class.define_method("destination", method!(Configuration::destination, 0))?;
    class.define_method("all_hosts", method!(Configuration::all_hosts, 0))?;
    class.define_method("role_names", method!(Configuration::role_names, 0))?;
    class.define_method("warnings", method!(Configuration::warnings, 0))?;
    class.define_method("primary_host", method!(Configuration::primary_host, 0))?;
    class.define_method(
        "secrets_to_read",
        method!(Configuration::secrets_to_read, 0),
    )?;
    class.define_method(
        "secrets_read_with_config",
        method!(Configuration::secrets_read_with_config, 0),
    )?;
    class.define_method(
        "provide_secrets",
        method!(Configuration::provide_secrets, 1),
    )?;
    class.define_method("deploy", method!(Configuration::deploy, 1))?;
    Ok(())
}
