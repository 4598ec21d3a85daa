//! `kamal proxy boot` as a deploy runs it (`lib/kamal/cli/proxy.rb#boot`, Kamal 2.12.0): the `kamal`
//! network on every host, then on the hosts of proxy roles the registry login, the version check and
//! kamal-proxy started (or run, when it does not exist). An existing kamal-proxy is never recreated.

use crate::commands::{proxy, registry, server};
use crate::config::proxy::ProxySettings;
use crate::error::ErrorKind;
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::run::Plan;
use crate::runner::script::{guard, Exit, Mark, Script, Shown};
use crate::runner::shell::Shell;
use crate::ssh;
use crate::value::Map;

/// One host's proxy boot as one script, run in a subshell of its own: its `exit`s end only it. One
/// `docker inspect` reads whether kamal-proxy runs on the `kamal` network and its version; on a host
/// where it does (every deploy after the first) the network create and the start, which would change
/// nothing there, are not run, and a login with the credentials already stored is skipped.
pub fn script(sh: &Shell<'_, '_>, host: &str) -> std::result::Result<Script, HostError> {
    let network_body = format!(
        "out=$({} 2>&1) || case \"$out\" in *\"already exists\"*) ;; *) echo \"$out\" >&2; exit 1 ;; esac",
        proxy::NETWORK_CREATE
    );
    let mut s = Script::new();
    if !sh.sel.proxy_hosts.iter().any(|h| h == host) {
        s.run(
            Shown::info(Phase::Proxy, proxy::NETWORK_CREATE),
            &network_body,
        );
        return Ok(s);
    }
    let state = s.marked(
        Shown::info(Phase::Proxy, proxy::STATE),
        &format!("p=$({} 2>/dev/null)", proxy::STATE),
    );
    s.line(format!(
        "{state}; up=${{p%% *}}; v=${{p#* }}; v=${{v##*:}}; {}",
        Mark::ProxyVersion.echo_with("$v")
    ));
    let network = s.marked(
        Shown::info(Phase::Proxy, proxy::NETWORK_CREATE),
        &network_body,
    );
    s.line(format!("[ \"$up\" = {} ] || {network}", proxy::RUNNING));
    let server = sh.config.registry().server;
    if !sh.config.registry().local() {
        let (user, password) = sh.credentials()?;
        let login = s.marked(
            Shown::info(Phase::Proxy, registry::login_redacted(server.as_deref())),
            &format!(
                "{} >/dev/null",
                registry::login_unless_logged_in(server.as_deref(), &user, &password)
            ),
        );
        s.line(format!("{login} || exit 1"));
    }
    s.line(format!(
        "if [ -n \"$v\" ] && [ \"$(printf '%s\\n' \"${{v#v}}\" {min} | sort -V | head -n1)\" != {min} ]; then {}; fi",
        Exit::ProxyTooOld.exit(),
        min = proxy::MINIMUM_VERSION.trim_start_matches('v')
    ));
    let start = match run_config(sh, host) {
        Some(run_config) => proxy::start_or_run(&run_config),
        None => proxy::start_or_run_from_boot_config(),
    };
    let mkdir = s.marked(
        Shown::info(Phase::Proxy, proxy::MKDIR_APPS_CONFIG),
        &server::ensure_directory(proxy::APPS_CONFIG),
    );
    let start = s.marked(Shown::info(Phase::Proxy, &start), &start);
    s.line(format!(
        "{mkdir} && {{ [ \"$up\" = {} ] || {start}; }}",
        proxy::RUNNING
    ));
    Ok(s)
}

/// The proxy boot inside a host's first script: a failure ends the script with `Exit::ProxyBoot`.
pub fn in_script(sh: &Shell<'_, '_>, host: &str) -> std::result::Result<Script, HostError> {
    let inner = script(sh, host)?;
    let proxy = inner.map(|text| {
        format!(
            "{}; {}",
            Mark::ProxyBoot.echo(),
            guard(&format!("( {text}\n) </dev/null"), Exit::ProxyBoot)
        )
    });
    Ok(proxy)
}

/// Boots kamal-proxy on one host, as its own command.
pub async fn boot(sh: &Shell<'_, '_>, host: &str) -> std::result::Result<(), HostError> {
    if sh.io.cancel.is_cancelled() {
        return Ok(());
    }
    sh.io
        .output
        .progress(host, "ensuring kamal-proxy is running");
    let s = script(sh, host)?.map(|text| format!("( {text}\n)"));
    let out = sh.exec(host, &s, &mut |_| {}).await?;
    outcome(host, &out)
}

/// What the proxy boot's exit says: too old a kamal-proxy, another failure, or done.
pub fn outcome(host: &str, out: &ssh::Output) -> std::result::Result<(), HostError> {
    let status = Mark::Failed
        .find(&out.stdout)
        .and_then(|rc| rc.parse().ok())
        .or(out.status);
    if Exit::of(status) == Some(Exit::ProxyTooOld) {
        let v = Mark::ProxyVersion.find(&out.stdout).unwrap_or_default();
        return Err(HostError::new(
            ErrorKind::Runtime,
            format!("kamal-proxy version {v} is too old, run `kamal proxy reboot` in order to update to at least {}", proxy::MINIMUM_VERSION),
        ));
    }
    if !out.success() {
        return Err(HostError::command_failed(host, "docker", out));
    }
    Ok(())
}

/// The `proxy.run` settings of the proxy roles on this host (validation made them identical).
fn run_config(sh: &Plan<'_>, host: &str) -> Option<Map> {
    sh.roles_on(host)
        .into_iter()
        .filter(|r| r.running_proxy())
        .find_map(|r| ProxySettings::of(sh.config, r))
        .and_then(|p| p.run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::DeployOptions;
    use crate::runner::run::Run;
    use crate::runner::steps::tests::{golden, golden_config, run_sh, sh_n};

    #[test]
    fn a_proxy_hosts_boot() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let s = in_script(&run.shell(), "10.0.0.1").unwrap();
        let shown: Vec<&str> = s.shown.iter().map(|s| s.command.as_str()).collect();
        assert_eq!(
            shown,
            [
                proxy::STATE,
                "docker network create kamal",
                "docker login registry.example.com -u [REDACTED] -p [REDACTED]",
                "mkdir -p .kamal/proxy/apps-config",
                &proxy::start_or_run_from_boot_config(),
            ]
        );
        assert!(s.shown.iter().all(|s| s.phase == Phase::Proxy));
        golden("proxy_boot.sh", &s.text());
        sh_n(&s.text());
        // A host of a role without the proxy only gets the network.
        let worker = script(&run.shell(), "10.0.0.3").unwrap();
        assert_eq!(worker.shown.len(), 1);
    }

    #[test]
    fn too_old_a_proxy_is_named() {
        // The version check itself, run here against a stand-in `docker` that reports v0.8.4.
        let check = "v=v0.8.4; if [ -n \"$v\" ] && [ \"$(printf '%s\\n' \"${v#v}\" 0.9.2 | sort -V | head -n1)\" != 0.9.2 ]; then exit 90; fi";
        assert_eq!(run_sh(check).0, Some(90));
        let out = ssh::Output {
            status: Some(79),
            stdout: "kamal-rs:proxy-boot\nkamal-rs:proxy-version v0.8.4\nkamal-rs:failed 90\n"
                .into(),
            stderr: String::new(),
        };
        assert_eq!(
            outcome("h1", &out).unwrap_err().message,
            "kamal-proxy version v0.8.4 is too old, run `kamal proxy reboot` in order to update to at least v0.9.2"
        );
    }
}
