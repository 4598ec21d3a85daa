//! Kamal 2's secrets: `<secrets_path>-common`, then `<secrets_path>` (or `<secrets_path>.<destination>`),
//! each parsed on its own, later files winning (`lib/kamal/secrets.rb`, Kamal 2.12.0).
//!
//! Who reads them is the `SecretsSource`: the Ruby gem reads them before a run (with the app's own
//! Kamal where it can be loaded, see `lib/kamal_rs/secrets.rb`) and hands the values over; the core
//! alone reads them itself on first lookup, as Kamal does, because loading can run commands that prompt.

pub mod dotenv;

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
pub use dotenv::{CommandSubstitution, ShellCommand};

/// Where a config's 2.x secrets come from.
#[derive(Clone)]
pub enum SecretsSource {
    /// Read the files here, running `$(...)` with this.
    Read(Arc<dyn CommandSubstitution + Send + Sync>),
    /// Handed over by the caller (`Secrets::provide`) before any lookup.
    Provided,
}

pub struct Secrets {
    /// Kamal 1.x: secrets are environment variables (its `.env` files were loaded into ENV), and these
    /// are the names the config refers to.
    env_keys: Option<Vec<String>>,
    filenames: Vec<String>,
    source: SecretsSource,
    loaded: Mutex<Option<Vec<(String, String)>>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print values.
        f.debug_struct("Secrets")
            .field("filenames", &self.filenames)
            .finish()
    }
}

impl Secrets {
    pub fn new(secrets_path: &str, destination: Option<&str>, source: SecretsSource) -> Self {
        let main = match destination {
            Some(d) => format!("{secrets_path}.{d}"),
            None => secrets_path.to_string(),
        };
        Secrets {
            env_keys: None,
            filenames: vec![format!("{secrets_path}-common"), main],
            source,
            loaded: Mutex::new(None),
        }
    }

    /// Kamal 1.x's: `ENV.fetch(key)` for the `keys` its config names.
    pub fn from_env(keys: Vec<String>) -> Self {
        Secrets {
            env_keys: Some(keys),
            filenames: Vec::new(),
            source: SecretsSource::Provided,
            loaded: Mutex::new(None),
        }
    }

    /// The secrets files that exist, in load order.
    pub fn files(&self) -> Vec<String> {
        self.filenames
            .iter()
            .filter(|f| Path::new(f).exists())
            .cloned()
            .collect()
    }

    /// The values, read by the caller (`SecretsSource::Provided`), in load order.
    pub fn provide(&self, pairs: Vec<(String, String)>) {
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(pairs);
    }

    /// Whether the values come from secrets files (2.x), not from the environment (1.x).
    pub fn from_files(&self) -> bool {
        self.env_keys.is_none()
    }

    fn with_loaded<T>(&self, f: impl FnOnce(&[(String, String)]) -> T) -> Result<T> {
        let mut guard = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let (None, Some(keys)) = (guard.as_ref(), &self.env_keys) {
            *guard = Some(
                keys.iter()
                    .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
                    .collect(),
            );
        }
        if guard.is_none() {
            let commands = match &self.source {
                SecretsSource::Read(commands) => commands.clone(),
                SecretsSource::Provided => {
                    return Err(Error::runtime(
                        "internal error: the secrets were looked up before they were read",
                    ))
                }
            };
            let env = |name: &str| std::env::var(name).ok();
            let mut all: Vec<(String, String)> = Vec::new();
            for file in self.files() {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| Error::runtime(format!("Could not read {file}: {e}")))?;
                for (k, v) in dotenv::parse(&text, &env, commands.as_ref())? {
                    if let Some(slot) = all.iter_mut().find(|(key, _)| *key == k) {
                        slot.1 = v;
                    } else {
                        all.push((k, v));
                    }
                }
            }
            *guard = Some(all);
        }
        Ok(f(guard.as_deref().expect("loaded above")))
    }

    pub fn contains(&self, key: &str) -> Result<bool> {
        self.with_loaded(|all| all.iter().any(|(k, _)| k == key))
    }

    /// The value of a secret, or Kamal's "not found" error naming the files.
    pub fn get(&self, key: &str) -> Result<String> {
        if let Some(value) =
            self.with_loaded(|all| all.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))?
        {
            return Ok(value);
        }
        if self.env_keys.is_some() {
            return std::env::var(key)
                .map_err(|_| Error::config(format!("key not found: \"{key}\"")));
        }
        let files = self.files();
        Err(Error::config(if files.is_empty() {
            format!(
                "Secret '{key}' not found, no secret files ({}) provided",
                self.filenames.join(", ")
            )
        } else {
            format!("Secret '{key}' not found in {}", files.join(", "))
        }))
    }

    /// Every secret (name, value), in load order: the environment of the hooks that get secrets.
    pub fn pairs(&self) -> Result<Vec<(String, String)>> {
        self.with_loaded(|all| all.to_vec())
    }

    /// Every secret value, so output can be scrubbed of them.
    pub fn values(&self) -> Result<Vec<String>> {
        self.with_loaded(|all| {
            all.iter()
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
                .collect()
        })
    }
}
