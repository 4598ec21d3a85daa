//! `proxy:boot` (deploy only): the `kamal` network, then kamal-proxy started if it exists or run if not.
//! An existing proxy is never recreated or reconfigured by a deploy (Kamal's own behaviour).

use crate::shell::{escape_shell_value, optionize};
use crate::value::{Map, Value};

pub const MINIMUM_VERSION: &str = "v0.9.2";
pub const NETWORK_CREATE: &str = "docker network create kamal";
pub const VERSION: &str =
    "docker inspect kamal-proxy --format '{{.Config.Image}}' | awk -F: '{print $NF}'";
/// kamal-proxy's state in one `docker inspect`: `RUNNING <image>` when it runs attached to the
/// `kamal` network, nothing when it does not exist.
pub const STATE: &str = "docker inspect kamal-proxy --format '{{.State.Running}}/{{if index .NetworkSettings.Networks \"kamal\"}}kamal{{end}} {{.Config.Image}}'";
/// The first word `STATE` prints for a kamal-proxy that runs on the `kamal` network.
pub const RUNNING: &str = "true/kamal";
pub const MKDIR_APPS_CONFIG: &str = "mkdir -p .kamal/proxy/apps-config";
/// Where kamal-proxy's per-app files live on the host (mounted into its container).
pub const APPS_CONFIG: &str = ".kamal/proxy/apps-config";

const RUN_BASE: &str = "docker run --name kamal-proxy --network kamal --detach --restart unless-stopped --volume kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy --volume $PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config";

/// Without `proxy.run`: the options and image come from the (deprecated) boot_config files, else defaults.
pub fn start_or_run_from_boot_config() -> String {
    format!(
        "docker container start kamal-proxy || echo $(cat .kamal/proxy/options 2> /dev/null || echo \"--publish 80:80 --publish 443:443 --log-opt max-size=10m\") $(cat .kamal/proxy/image 2> /dev/null || echo \"basecamp/kamal-proxy\"):$(cat .kamal/proxy/image_version 2> /dev/null || echo \"{MINIMUM_VERSION}\") $(cat .kamal/proxy/run_command 2> /dev/null || echo \"\") | xargs {RUN_BASE}"
    )
}

/// With `proxy.run` (2.10+): every token spelled out.
pub fn start_or_run(run: &Map) -> String {
    let get = |k: &str| run.get(k).filter(|v| !v.is_nil());
    let mut t: Vec<String> = vec![format!("docker container start kamal-proxy || {RUN_BASE}")];
    if !matches!(get("publish"), Some(Value::Bool(false))) {
        let http = get("http_port")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "80".into());
        let https = get("https_port")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "443".into());
        let ips: Vec<String> = get("bind_ips")
            .and_then(Value::as_seq)
            .map(|s| s.iter().map(Value::to_ruby_s).collect())
            .unwrap_or_default();
        if ips.is_empty() {
            t.push(format!("--publish {http}:80 --publish {https}:443"));
        }
        for ip in ips {
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip
            };
            t.push(format!(
                "--publish {ip}:{http}:80 --publish {ip}:{https}:443"
            ));
        }
    }
    t.push(format!(
        "--log-opt max-size={}",
        get("log_max_size")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "10m".into())
    ));
    if let Some(port) = get("metrics_port") {
        t.push(format!("--expose={}", port.to_ruby_s()));
    }
    if let Some(Value::Map(options)) = get("options") {
        let pairs: Vec<(String, Value)> = options
            .iter()
            .map(|(k, v)| (k.to_ruby_s(), v.clone()))
            .collect();
        t.extend(optionize(&pairs, None));
    }
    let repository = get("repository")
        .map(Value::to_ruby_s)
        .unwrap_or_else(|| "basecamp/kamal-proxy".into());
    let image = match get("registry") {
        Some(r) => format!("{}/{repository}", r.to_ruby_s()),
        None => repository,
    };
    t.push(format!(
        "{image}:{}",
        get("version")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| MINIMUM_VERSION.into())
    ));
    let mut cmd = String::from("kamal-proxy run");
    if get("debug").is_some_and(Value::truthy) {
        cmd.push_str(" --debug");
    }
    if let Some(port) = get("metrics_port") {
        cmd.push_str(&format!(
            " --metrics-port {}",
            escape_shell_value(&port.to_ruby_s())
        ));
    }
    t.push(cmd);
    t.join(" ")
}

/// `v0.9.1` is older than the minimum; a blank version (no proxy yet) is fine.
pub fn too_old(version: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> {
        v.trim()
            .trim_start_matches('v')
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let v = version.trim();
    !v.is_empty() && parse(v) < parse(MINIMUM_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_config_tokens_in_order() {
        let mut run = Map::new();
        run.set("metrics_port", Value::Int(9090));
        run.set("debug", Value::Bool(true));
        let mut opts = Map::new();
        opts.set("cpus", Value::Float(1.5));
        run.set("options", Value::map(opts));
        run.set("registry", Value::str("registry:4443"));
        assert_eq!(
            start_or_run(&run),
            "docker container start kamal-proxy || docker run --name kamal-proxy --network kamal --detach --restart unless-stopped --volume kamal-proxy-config:/home/kamal-proxy/.config/kamal-proxy --volume $PWD/.kamal/proxy/apps-config:/home/kamal-proxy/.apps-config --publish 80:80 --publish 443:443 --log-opt max-size=10m --expose=9090 --cpus \"1.5\" registry:4443/basecamp/kamal-proxy:v0.9.2 kamal-proxy run --debug --metrics-port \"9090\""
        );
    }

    #[test]
    fn version_check() {
        assert!(too_old("v0.8.4"));
        assert!(!too_old("v0.9.2"));
        assert!(!too_old("v0.10.0"));
        assert!(!too_old(""));
    }
}
