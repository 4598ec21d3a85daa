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

/// A temporary directory whose `bin/docker` is the shell script `docker` (a stand-in that answers
/// and logs as a test needs), to run a host script's own shell code by `sh` and `bash`. Removed when
/// dropped.
pub struct StandInDocker {
    pub dir: std::path::PathBuf,
}

impl StandInDocker {
    pub fn new(name: &str, docker: &str) -> StandInDocker {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("kamal-rs-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let path = dir.join("bin/docker");
        std::fs::write(&path, docker).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        StandInDocker { dir }
    }

    /// `shell -c script` in the directory, which is also `HOME`, the stand-in first on `PATH`,
    /// `stdin` written: (success, stdout).
    pub fn run(&self, shell: &str, script: &str, stdin: &[u8]) -> (bool, String) {
        use std::io::Write;
        let mut child = std::process::Command::new(shell)
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.join("bin").display()),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for StandInDocker {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}
