//! Canary waves (`--canary N|P%`, `--canary-wait SECONDS`): every host pulls first (the pull barrier
//! stays), then the canary hosts (the primary role's first, in the config's order) boot completely;
//! the run waits, checks that each canary's new container is still running and healthy and that
//! kamal-proxy still routes to it, and only then do the other hosts boot. A canary that fails stops
//! the run before any other host boots (with `--revert-on-failure`, the canaries go back).

use std::time::Duration;

use super::budget::MaxFail;
use super::run::Run;
use super::script::Script;
use super::sync::RolloutSync;
use super::sync::{HostsBarrier, Latch};
use crate::commands::app::App;
use crate::error::{Error, ErrorKind, Result};

pub struct CanaryWave {
    hosts: Vec<String>,
    wait: Duration,
    /// Every canary's boots are done.
    booted: HostsBarrier,
    /// The other hosts may boot (`true`), or will not (`false`).
    pub(super) gate: Latch<bool>,
}

impl CanaryWave {
    /// The first `count` (N, or P% rounded up, at least one) of `hosts` (the primary role's first).
    pub fn new(spec: Option<&str>, wait: f64, hosts: &[String]) -> Result<Option<CanaryWave>> {
        let Some(spec) = spec else {
            return Ok(None);
        };
        let count = match MaxFail::parse(spec).map_err(|_| {
            Error::argument(format!(
                "--canary takes a number of hosts or a percentage of them (1, 5%), not {spec:?}"
            ))
        })? {
            MaxFail::Hosts(n) => n,
            MaxFail::Percent(p) => {
                ((hosts.len() as f64) * p / 100.0 - 1e-9).ceil().max(1.0) as usize
            }
        };
        if count == 0 {
            return Ok(None);
        }
        let hosts: Vec<String> = hosts.iter().take(count).cloned().collect();
        Ok(Some(CanaryWave {
            booted: HostsBarrier::new(hosts.len()),
            hosts,
            wait: Duration::from_secs_f64(wait.max(0.0)),
            gate: Latch::default(),
        }))
    }

    pub fn is_canary(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }

    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// A canary's boots are done.
    pub fn booted(&self, host: &str) {
        if self.is_canary(host) {
            self.booted.ready(host);
        }
    }

    /// A canary left behind (`--max-fail`): the wave no longer waits for it.
    pub fn left_behind(&self, host: &str) {
        if self.is_canary(host) {
            self.booted.leave(host);
        }
    }

    /// A canary failed, or the run stops: the other hosts will not boot.
    pub fn halt(&self) {
        self.booted.halt();
        self.gate.set(false);
    }
}

/// The wave: once every canary booted, the wait, the check, then the gate opens for the others (or
/// closes, and the run fails naming the canary).
pub async fn watch(run: &Run<'_>) -> Result<()> {
    let Some(wave) = &run.sync.canary else {
        return Ok(());
    };
    if !wave.booted.wait().await {
        wave.gate.set(false);
        return Ok(());
    }
    let names = wave.hosts.join(", ");
    run.io.output.say(&format!(
        "Canary wave: {} on {names}; waiting {:.0} s before booting the other hosts...",
        run.version,
        wave.wait.as_secs_f64()
    ));
    for h in &wave.hosts {
        run.io
            .output
            .progress(h, &format!("canary: {} live, watched", run.version));
    }
    if !run.io.cancel.sleep(wave.wait).await {
        wave.gate.set(false);
        return Ok(());
    }
    for host in &wave.hosts {
        if let Err(why) = check(run, host).await {
            wave.gate.set(false);
            run.io
                .output
                .progress_failed(host, &format!("canary failed: {why}"));
            return Err(Error::new(
                ErrorKind::Healthcheck,
                format!(
                    "Canary {host} failed after {:.0} s: {why}",
                    wave.wait.as_secs_f64()
                ),
            ));
        }
    }
    run.io.output.info(&format!(
        "Canaries healthy ({names}), booting the other hosts"
    ));
    wave.gate.set(true);
    Ok(())
}

/// One canary: each role's new container running (and healthy, where it has a health check), and for
/// a role behind kamal-proxy, kamal-proxy's list naming the container as its target.
async fn check(run: &Run<'_>, host: &str) -> std::result::Result<(), String> {
    let mut script = Script::new();
    for role in run.roles_on(host) {
        let app = App::new(run.config, role);
        script.line(check_command(
            &app.container_name(&run.version),
            app.running_proxy(),
        ));
    }
    match run.shell().exec(host, &script, &mut |_| {}).await {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => Err(out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .last()
            .unwrap_or("check failed")
            .to_string()),
        Err(e) => Err(super::budget::reason(&e.message)),
    }
}

fn check_command(container: &str, behind_proxy: bool) -> String {
    let mut s = format!(
        "id=$(docker container ls --all --filter 'name=^{container}$' --quiet) && [ -n \"$id\" ] || {{ echo \"{container}: no container\"; exit 1; }}; \
         state=$(docker inspect --format '{{{{.State.Status}}}} {{{{if .State.Health}}}}{{{{.State.Health.Status}}}}{{{{else}}}}none{{{{end}}}}' \"$id\"); \
         case \"$state\" in 'running healthy'|'running none') ;; *) echo \"{container}: $state\"; exit 1;; esac"
    );
    if behind_proxy {
        s.push_str(&format!(
            "; docker exec kamal-proxy kamal-proxy list | grep -q \"$id\" || {{ echo \"{container}: kamal-proxy does not route to it\"; exit 1; }}"
        ));
    }
    s
}

/// The live view's words for a host waiting at the pull barrier: the others wait for the canaries.
pub fn waiting_text(sync: &RolloutSync, host: &str) -> Option<String> {
    let wave = sync.canary.as_ref()?;
    (!wave.is_canary(host)).then(|| "pulled, waiting for the canary wave".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    #[test]
    fn the_wave_is_the_first_hosts() {
        let w = CanaryWave::new(Some("2"), 3.0, &hosts(6)).unwrap().unwrap();
        assert_eq!(w.hosts(), ["h1", "h2"]);
        let w = CanaryWave::new(Some("10%"), 0.0, &hosts(6))
            .unwrap()
            .unwrap();
        assert_eq!(w.hosts(), ["h1"], "a share rounds up, to one host at least");
        assert!(CanaryWave::new(None, 0.0, &hosts(6)).unwrap().is_none());
        assert!(CanaryWave::new(Some("0"), 0.0, &hosts(6))
            .unwrap()
            .is_none());
        let e = CanaryWave::new(Some("x"), 0.0, &hosts(6)).err().unwrap();
        assert!(e.message.starts_with("--canary takes"));
    }

    #[test]
    fn the_check_is_sh() {
        let text = check_command("app-web-v2", true);
        assert!(text.contains("--filter 'name=^app-web-v2$'"), "{text}");
        assert!(text.contains("{{.State.Status}}"), "{text}");
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&text)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
