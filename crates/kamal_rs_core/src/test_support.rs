//! Helpers for unit tests: configs written as JSON literals, loaded as Ruby would hand them over.

use crate::config::{Configuration, LoadOptions};
use crate::value::{Map, Value};

pub fn value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::str(s.clone()),
        serde_json::Value::Array(items) => Value::seq(items.iter().map(value).collect()),
        serde_json::Value::Object(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                map.set(k, value(v));
            }
            Value::map(map)
        }
    }
}

/// A config from JSON files (base, then destination), at version `version`.
pub fn config(
    files: &[serde_json::Value],
    destination: Option<&str>,
    version: &str,
) -> Configuration {
    let files: Vec<Value> = files.iter().map(value).collect();
    Configuration::load(
        &files,
        LoadOptions {
            destination: destination.map(String::from),
            version: Some(version.into()),
            ..LoadOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("config: {e}"))
}
