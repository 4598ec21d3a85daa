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
use crate::runner::run::{Plan, Run};
use crate::runner::script::{ensure_run_directory, interruptible, waited, Mark, Script, Shown};
use crate::ssh;

/// `docker login` unless the host's Docker already holds these credentials (same end state, fewer
/// registry round trips); shown as Kamal's `docker login`.
pub fn login(run: &Run<'_>) -> std::result::Result<Script, HostError> {
    let (user, password) = run.credentials()?;
    let server = run.config.registry().server;
    let mut s = Script::new();
    s.run(
        Shown::info(Phase::Pull, registry::login_redacted(server.as_deref())),
        &registry::login_unless_logged_in(server.as_deref(), &user, &password),
    );
    Ok(s)
}

/// The audit line (`audit`, shown at debug level), `docker pull` and the label check, as 2.x and 1.x
/// share them.
pub fn image(run: &Plan<'_>, audit: Script) -> Script {
    let image = format!("{}:{}", run.config.repository(), run.version);
    let service = run.config.service();
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
pub fn script(run: &Run<'_>, host: &str) -> std::result::Result<Option<Script>, HostError> {
    if !run.is_app_host(host) {
        return Ok(None);
    }
    let mut s = Script::new();
    if !run.config.registry().local() {
        s.append(login(run)?);
    }
    let (auditor, now) = (run.auditor(), run.clock.now());
    let message = format!("Pulled image with version {}", run.version);
    let mut audit_part = Script::new();
    audit_part.run(
        Shown::debug(Phase::Pull, auditor.record(&now, None, &message)),
        &auditor.record_in_script(&now, None, &message),
    );
    s.append(image(run, audit_part));
    Ok(Some(s.chain()))
}

/// Pulls on one host (a host without the app gets `.kamal`).
pub async fn pull(run: &Run<'_>, host: &str) -> std::result::Result<(), HostError> {
    let Some(pull) = script(run, host)? else {
        run.exec(host, &ensure_run_directory(Phase::Pull), &mut |_| {})
            .await?;
        return Ok(());
    };
    let image = run.config.absolute_image().unwrap_or_default();
    run.output.progress(host, &format!("pulling {image}"));
    let out = exec_interruptible(run, host, pull).await?;
    if !out.success() {
        return Err(failed(run, host, &out));
    }
    run.output.progress(host, "pulled, waiting for the lock");
    Ok(())
}

/// Runs a script that Ctrl-C may stop (a pull): it reports its PID, and SIGTERM ends it at once.
pub async fn exec_interruptible(
    run: &Run<'_>,
    host: &str,
    body: Script,
) -> std::result::Result<ssh::Output, HostError> {
    let mut script = Script::new();
    script.line(interruptible());
    script.append(body);
    let mut on_line = |line: &str| {
        if let Some((Mark::Pid, pid)) = Mark::parse(line) {
            run.sync.before_boot(host, pid);
        }
    };
    let out = run.exec(host, &script, &mut on_line).await;
    run.sync.reached_boot(host);
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
pub fn failed(run: &Run<'_>, host: &str, out: &ssh::Output) -> HostError {
    run.output.progress_failed(host, "pull failed");
    HostError::command_failed(host, "docker", out)
}

/// Every host pulls; with a registry mirror, one host per mirror pulls first so the others pull from
/// a warm mirror.
pub async fn pull_all(run: &Run<'_>) -> Result<()> {
    for (say, hosts) in pull_order(run).await? {
        if let Some(say) = say {
            run.output.say(&say);
        }
        crate::runner::budget::on_hosts(run, &hosts, |h| async move {
            tokio::select! {
                r = pull(run, h) => r,
                e = crate::runner::interrupt::unresponsive_after_interrupt(run, h) => Err(e),
            }
        })
        .await?;
    }
    Ok(())
}

/// The groups of hosts that pull one after the other (the mirrors' seeds first, when there are any),
/// each with the line Kamal prints before it.
pub async fn pull_order(run: &Run<'_>) -> Result<Vec<(Option<String>, Vec<String>)>> {
    let seeds = mirror_seeds(run).await?;
    if seeds.is_empty() {
        return Ok(vec![(None, run.sel.hosts.clone())]);
    }
    let rest: Vec<String> = run
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
async fn mirror_seeds(run: &Run<'_>) -> Result<Vec<String>> {
    if !plan::may_seed_mirrors(run) {
        return Ok(Vec::new());
    }
    let answers = join_all(run.sel.app_hosts.iter().map(|h| async move {
        let out = run
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
        let s = script(&run, "10.0.0.1").unwrap().unwrap();
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
        assert_eq!(run.output.redact("-p pass"), "-p [REDACTED]");
        assert!(
            script(&run, "10.0.0.9").unwrap().is_none(),
            "accessory-only host"
        );
        assert!(!plan::may_seed_mirrors(&run), "not Docker Hub");
    }
}
