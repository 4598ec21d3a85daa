//! The image pulled on the app hosts (`lib/kamal/cli/build.rb#pull`, Kamal 2.12.0): registry login, the
//! audit line, `docker pull`, the `service` label check; with a registry mirror to seed, one host per
//! mirror first.
//!
//! Kamal removes the tag first (`docker image rm --force`) to force a fresh pull; `docker pull`
//! re-resolves the tag against the registry anyway, so the image is the same, without downloading the
//! layers again.

use futures::future::join_all;

use crate::commands::{builder, registry};
use crate::error::Result;
use crate::output::timeline::Phase;
use crate::runner::failure::{combine, HostError};
use crate::runner::plan;
use crate::runner::run::Plan;
use crate::runner::run::Run;
use crate::runner::script::{ensure_run_directory, interruptible, waited, Mark, Script, Shown};
use crate::runner::shell::Shell;
use crate::runner::sync::RolloutSync;
use crate::ssh;

/// `docker login` unless the host's Docker already holds these credentials (same end state, fewer
/// registry round trips); shown as Kamal's `docker login`.
pub fn login(sh: &Shell<'_, '_>) -> std::result::Result<Script, HostError> {
    let (user, password) = sh.credentials()?;
    let server = sh.config.registry().server;
    let mut s = Script::new();
    s.run(
        Shown::info(Phase::Pull, registry::login_redacted(server.as_deref())),
        &registry::login_unless_logged_in(server.as_deref(), &user, &password),
    );
    Ok(s)
}

/// The audit line (`audit`, shown at debug level), `docker pull` and the label check, as 2.x and 1.x
/// share them.
pub fn image(sh: &Plan<'_>, audit: Script) -> Script {
    let image = format!("{}:{}", sh.config.repository(), sh.version);
    let service = sh.config.service();
    let mut s = Script::new();
    s.append(audit);
    let pull = builder::pull(&image);
    // In the background, waited for: Ctrl-C stops a pull that hangs instead of waiting for it.
    s.run(Shown::info(Phase::Pull, &pull), &waited(&pull));
    // Shown as Kamal's untyped `docker inspect`; the typed one asks Docker one question fewer.
    let label = s.marked(
        Shown::info(Phase::Pull, builder::validate_image(&image, &service)),
        &builder::validate_image_typed(&image, &service),
    );
    s.line(format!("{} && {label}", Mark::Label.echo()));
    s
}

/// An app host's pull as one line (each part only if the one before succeeded); `None` for a host
/// without the app.
pub fn script(sh: &Shell<'_, '_>, host: &str) -> std::result::Result<Option<Script>, HostError> {
    if !sh.is_app_host(host) {
        return Ok(None);
    }
    let mut s = Script::new();
    if !sh.config.registry().local() {
        s.append(login(sh)?);
    }
    let (auditor, now) = (sh.auditor(), sh.clock.now());
    let message = format!("Pulled image with version {}", sh.version);
    let mut audit_part = Script::new();
    audit_part.run(
        Shown::debug(Phase::Pull, auditor.record(&now, None, &message)),
        &auditor.record_in_script(&now, None, &message),
    );
    s.append(image(sh, audit_part));
    Ok(Some(s.chain()))
}

/// Pulls on one host (a host without the app gets `.kamal`).
pub async fn pull(
    sh: &Shell<'_, '_>,
    sync: &RolloutSync,
    host: &str,
) -> std::result::Result<(), HostError> {
    let Some(pull) = script(sh, host)? else {
        sh.exec(host, &ensure_run_directory(Phase::Pull), &mut |_| {})
            .await?;
        return Ok(());
    };
    let image = sh.config.absolute_image().unwrap_or_default();
    sh.io.output.progress(host, &format!("pulling {image}"));
    let out = exec_interruptible(sh, sync, host, pull).await?;
    if !out.success() {
        return Err(failed(sh, host, &out));
    }
    sh.io.output.progress(host, "pulled, waiting for the lock");
    Ok(())
}

/// Runs a script that Ctrl-C may stop (a pull): it reports its PID, and SIGTERM ends it at once.
pub async fn exec_interruptible(
    sh: &Shell<'_, '_>,
    sync: &RolloutSync,
    host: &str,
    body: Script,
) -> std::result::Result<ssh::Output, HostError> {
    let mut script = Script::new();
    script.line(interruptible());
    script.append(body);
    let mut on_line = |line: &str| {
        if let Some((Mark::Pid, pid)) = Mark::parse(line) {
            sync.before_boot(host, pid);
        }
    };
    let out = sh.exec(host, &script, &mut on_line).await;
    sync.reached_boot(host);
    let out = out?;
    if Mark::Interrupted.seen(&out.stdout) {
        return Err(HostError::new(
            crate::error::ErrorKind::Interrupted,
            format!("Interrupted on {host} during the pull"),
        ));
    }
    Ok(out)
}

/// The pull (or its label check) failed: SSHKit's text for the failing part.
pub fn failed(sh: &Shell<'_, '_>, host: &str, out: &ssh::Output) -> HostError {
    sh.io.output.progress_failed(host, "pull failed");
    HostError::command_failed(host, "docker", out)
}

/// Every host pulls; with a registry mirror, one host per mirror pulls first so the others pull from
/// a warm mirror. It takes the run: a host may be left behind (`--max-fail`) or stop answering Ctrl-C.
pub async fn pull_all(run: &Run<'_>) -> Result<()> {
    let sh = &run.shell();
    for (say, hosts) in pull_order(sh).await? {
        if let Some(say) = say {
            sh.io.output.say(&say);
        }
        crate::runner::budget::on_hosts(run, &hosts, |h| async move {
            tokio::select! {
                r = pull(sh, &run.sync, h) => r,
                e = crate::runner::interrupt::unresponsive_after_interrupt(run, h) => Err(e),
            }
        })
        .await?;
    }
    Ok(())
}

/// The groups of hosts that pull one after the other (the mirrors' seeds first, when there are any),
/// each with the line Kamal prints before it.
pub async fn pull_order(sh: &Shell<'_, '_>) -> Result<Vec<(Option<String>, Vec<String>)>> {
    let seeds = mirror_seeds(sh).await?;
    if seeds.is_empty() {
        return Ok(vec![(None, sh.sel.hosts.clone())]);
    }
    let rest: Vec<String> = sh
        .sel
        .hosts
        .iter()
        .filter(|h| !seeds.contains(h))
        .cloned()
        .collect();
    let seeding = format!(
        "Pulling image on {} to seed the {}...",
        seeds.join(", "),
        if seeds.len() == 1 {
            "mirror"
        } else {
            "mirrors"
        }
    );
    Ok(vec![
        (Some(seeding), seeds),
        (Some("Pulling image on remaining hosts...".into()), rest),
    ])
}

/// The first app host for each distinct first registry mirror.
async fn mirror_seeds(sh: &Shell<'_, '_>) -> Result<Vec<String>> {
    if !plan::may_seed_mirrors(sh) {
        return Ok(Vec::new());
    }
    let answers = join_all(sh.sel.app_hosts.iter().map(|h| async move {
        let out = sh
            .exec_one(h, Phase::Pull, builder::FIRST_MIRROR, false)
            .await?;
        let text = format!("{}{}", out.stdout, out.stderr);
        if out.success() {
            let mirror = out.stdout.trim().to_string();
            Ok((h.clone(), Some(mirror).filter(|m| !m.is_empty())))
        } else if text.contains("error calling index: reflect: slice index out of range") {
            Ok((h.clone(), None))
        } else {
            Err(HostError::command_failed(h, "docker", &out))
        }
    }))
    .await;
    let mut seeds: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    for answer in answers {
        match answer {
            Ok((host, Some(mirror))) if !seeds.iter().any(|(m, _)| *m == mirror) => {
                seeds.push((mirror, host))
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    combine(errors)?;
    Ok(seeds.into_iter().map(|(_, h)| h).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::DeployOptions;
    use crate::runner::script::unmarked;
    use crate::runner::steps::tests::{golden_config, sh_n};

    #[test]
    fn an_app_hosts_pull_is_one_line() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let s = script(&run.shell(), "10.0.0.1").unwrap().unwrap();
        assert_eq!(
            unmarked(&s.text()),
            "{ kamal_rs_auth=; p=; [ ! -r ~/.docker/config.json ] || while IFS= read -r l; do case \"$p $l\" in *'\"registry.example.com\": {'*'\"auth\": \"dXNlcjpwYXNz\"'*) kamal_rs_auth=1; break;; esac; p=$l; done <~/.docker/config.json; [ -n \"$kamal_rs_auth\" ] || docker login registry.example.com -u \"user\" -p \"pass\"; } && mkdir -p .kamal && echo \"[2026-12-01T10:00:00Z] [deployer@example.com] [staging] Pulled image with version v2\" >> .kamal/app-staging-audit.log && { docker pull registry.example.com/app:v2 </dev/null & bg=$!; wait $bg; } && echo \"kamal-rs:label\" && docker image inspect -f '{{ .Config.Labels.service }}' registry.example.com/app:v2 | grep -x app || (echo \"Image registry.example.com/app:v2 is missing the 'service' label\" && exit 1)"
        );
        assert!(s.text().contains("{ echo \"kamal-rs:start 2\"; { docker pull registry.example.com/app:v2 </dev/null & bg=$!; wait $bg; }; kamal_rs_end 2 $?; }"), "{}", s.text());
        assert!(s.shown.iter().all(|s| s.phase == Phase::Pull));
        let shown: Vec<&str> = s.shown.iter().map(|s| s.command.as_str()).collect();
        assert_eq!(
            shown,
            [
                "docker login registry.example.com -u [REDACTED] -p [REDACTED]",
                "mkdir -p .kamal && echo \"[2026-12-01T10:00:00Z] [deployer@example.com] [staging] Pulled image with version v2\" >> .kamal/app-staging-audit.log",
                "docker pull registry.example.com/app:v2",
                "docker inspect -f '{{ .Config.Labels.service }}' registry.example.com/app:v2 | grep -x app || (echo \"Image registry.example.com/app:v2 is missing the 'service' label\" && exit 1)",
            ]
        );
        assert!(s.stdin().is_empty());
        sh_n(&s.text());
        assert_eq!(run.io.output.redact("-p pass"), "-p [REDACTED]");
        assert!(
            script(&run.shell(), "10.0.0.9").unwrap().is_none(),
            "accessory-only host"
        );
        assert!(!plan::may_seed_mirrors(&run), "not Docker Hub");
    }
}
