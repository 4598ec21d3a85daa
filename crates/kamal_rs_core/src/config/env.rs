//! `env:` resolved for one (role, host): clear values for `--env`, secret keys for the env file.
//! Root env, then the role's, then each of the host's tags' (tags not defined in `env.tags` are ignored).

use crate::error::Result;
use crate::secrets::Secrets;
use crate::value::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct Env {
    /// Clear values in merge order (later wins, first position kept, as Ruby's `Hash#merge`).
    pub clear: Vec<(String, Value)>,
    /// Secret keys, each `NAME` or `NAME:SECRET_KEY`, unioned in order.
    pub secret_keys: Vec<String>,
}

impl Env {
    /// One `env:` hash in either form: flat (all clear) or `clear:` / `secret:` / `tags:`.
    pub fn from_config(config: &Value) -> Env {
        let Some(map) = config.as_map() else {
            return Env::default();
        };
        let complex =
            map.contains_key("clear") || map.contains_key("secret") || map.contains_key("tags");
        let clear = match map.get("clear") {
            Some(Value::Map(c)) => pairs(c),
            Some(_) => Vec::new(),
            None if complex => Vec::new(),
            None => pairs(map),
        };
        let secret_keys = map
            .get("secret")
            .and_then(Value::as_seq)
            .map(|s| s.iter().map(Value::to_ruby_s).collect())
            .unwrap_or_default();
        Env { clear, secret_keys }
    }

    /// The clear values as a hash, for `argumentize("--env", ...)`.
    pub fn clear_map(&self) -> Value {
        Value::map(
            self.clear
                .iter()
                .map(|(k, v)| (Value::str(k), v.clone()))
                .collect(),
        )
    }

    pub fn merge(&self, other: &Env) -> Env {
        let mut clear = self.clear.clone();
        for (k, v) in &other.clear {
            match clear.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => clear.push((k.clone(), v.clone())),
            }
        }
        let mut secret_keys = self.secret_keys.clone();
        for key in &other.secret_keys {
            if !secret_keys.contains(key) {
                secret_keys.push(key.clone());
            }
        }
        Env { clear, secret_keys }
    }

    /// `NAME=value` pairs for the env file, looking each secret up (`NAME:KEY` reads KEY).
    pub fn secret_values(&self, secrets: &Secrets) -> Result<Vec<(String, String)>> {
        self.secret_keys
            .iter()
            .map(|key| {
                let (name, lookup) = key.split_once(':').unwrap_or((key, key));
                Ok((name.to_string(), secrets.get(lookup)?))
            })
            .collect()
    }
}

fn pairs(map: &Map) -> Vec<(String, Value)> {
    map.iter()
        .map(|(k, v)| (k.to_ruby_s(), v.clone()))
        .collect()
}

/// Docker env-file syntax (Kamal's `EnvFile`): ASCII runs are `dump`ed without the surrounding quotes,
/// then `\"` and `\#` are unescaped; non-ASCII stays raw. An empty file is a single newline.
pub fn env_file(values: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in values {
        out.push_str(k);
        out.push('=');
        out.push_str(&escape_env_file_value(v));
        out.push('\n');
    }
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// Kamal 1.9's `EnvFile`: the same, except that `\#` stays escaped.
pub fn env_file_v1(values: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in values {
        out.push_str(k);
        out.push('=');
        out.push_str(&crate::shell::map_ascii_runs(
            v,
            |run| {
                let dumped = crate::shell::ruby_dump(run);
                dumped[1..dumped.len() - 1].replace("\\\"", "\"")
            },
            false,
        ));
        out.push('\n');
    }
    if out.is_empty() {
        out.push('\n');
    }
    out
}

fn escape_env_file_value(value: &str) -> String {
    crate::shell::map_ascii_runs(
        value,
        |run| {
            let dumped = crate::shell::ruby_dump(run);
            dumped[1..dumped.len() - 1]
                .replace("\\\"", "\"")
                .replace("\\#", "#")
        },
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_escaping() {
        let values = vec![
            ("A".to_string(), "plain".to_string()),
            (
                "B".to_string(),
                "multi\nline \"q\" #{x} back\\slash".to_string(),
            ),
            ("C".to_string(), "café".to_string()),
        ];
        assert_eq!(
            env_file(&values),
            "A=plain\nB=multi\\nline \"q\" #{x} back\\\\slash\nC=café\n"
        );
        assert_eq!(env_file(&[]), "\n");
    }
}
