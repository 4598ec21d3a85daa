//! The steps of a deploy, one module each, as Kamal's CLI has one class per concern: each builds its
//! part of a host's script (a `Script`) from the run's plan and reads its own outcome. A step gets
//! what it uses: `&Plan` to compose a script, a `Shell` to run one, and, as arguments of their own,
//! the shared parts it takes part in (the lock's state, the barrier, `RolloutSync`); only the
//! all-host `pull_all`s take the run (a host may be left behind, or stop answering Ctrl-C).

pub mod boot;
pub mod boot_script;
pub mod build;
pub mod check;
pub mod hooks;
pub mod lock;
pub mod poller;
pub mod proxy;
pub mod pull;
pub mod secrets;
pub mod tag;
pub mod v1;

#[cfg(test)]
pub(crate) mod tests {
    use crate::config::Configuration;
    use crate::test_support::config;
    use serde_json::json;

    /// Two web hosts behind kamal-proxy (the first with a tag), a workers host, an accessory-only
    /// host, a registry with credentials, the `staging` destination, version v2.
    pub fn golden_config() -> Configuration {
        golden_config_with(json!({}))
    }

    /// `golden_config` with `extra` merged over its root.
    pub fn golden_config_with(extra: serde_json::Value) -> Configuration {
        let mut base = json!({
            "service": "app",
            "image": "app",
            "servers": {
                "web": {"hosts": ["10.0.0.1", {"10.0.0.2": "canary"}]},
                "workers": {"hosts": ["10.0.0.3"], "cmd": "bin/jobs"}
            },
            "registry": {"server": "registry.example.com", "username": "user", "password": "pass"},
            "env": {"clear": {"RAILS_LOG_TO_STDOUT": "1"}, "tags": {"canary": {"FEATURE_X": "on"}}},
            "proxy": {"host": "app.example.com", "app_port": 3000},
            "builder": {"arch": "amd64"},
            "accessories": {"db": {"image": "mysql:8", "host": "10.0.0.9"}}
        });
        for (k, v) in extra.as_object().expect("an object") {
            base[k] = v.clone();
        }
        config(&[base], Some("staging"), "v2")
    }

    /// Compares a rendered script with `src/runner/golden/<name>` (`UPDATE_GOLDEN=1` rewrites it).
    pub fn golden(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/runner/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("{actual}\n")).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert_eq!(
            expected.trim_end_matches('\n'),
            actual,
            "{}",
            path.display()
        );
    }

    /// Runs `sh -n` on a rendered script: it must parse.
    pub fn sh_n(script: &str) {
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "sh -n rejects the script: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a script with `sh -c`: (exit status, stdout).
    pub fn run_sh(script: &str) -> (Option<i32>, String) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("sh");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }
}
