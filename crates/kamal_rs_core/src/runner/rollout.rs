//! How the boots are scheduled across hosts, and how one host's script is composed from the steps'
//! parts, each exit code handed to the step that owns it.
//!
//! Two schedules, with Kamal's safety waits in both (the lock before any change, the primary role's
//! health barrier, `latest` only after every boot):
//! - the per-host rollout (no `pre-deploy` or `pre-app-boot` hook, one boot group, no mirror to seed):
//!   the lock comes first (in the primary host's own script), then each host whose first role need not
//!   wait at the barrier runs its pull (rollback: the check that it has the version), kamal-proxy
//!   (deploy) and that boot as one script;
//! - boot groups (Kamal's `app:boot`, `lib/kamal/cli/app.rb`): every host pulled, the hook run,
//!   kamal-proxy booted everywhere, then each `boot.limit` group of hosts boots in turn.

use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::join_all;

use super::budget;
use super::canary;
use super::failure::HostError;
use super::interrupt;
use super::options::Command;
use super::plan;
use super::run::Run;
use super::script::{
    gate, guard, interruptible, lock_gate, no_stdin, uninterruptible, Exit, Mark, Script, Step,
};
use super::steps;
use super::steps::boot::{self, Boot};
use super::steps::boot_script::list_in_background;
use super::steps::{check, lock, proxy, pull, tag};
use crate::commands::app::App;
use crate::config::{KamalMajor, Role};
use crate::error::{ErrorKind, Result};
use crate::output::timeline::Phase;

/// The part of a host's first script that comes before its first boot.
pub struct First {
    pub script: Script,
    /// It takes the deploy lock.
    pub takes_lock: bool,
}

/// Each host: pull, then (once the lock is held) kamal-proxy (deploy) and its boot, on its own. A host
/// that fails before booting its primary-role container closes the barrier, as a failed boot would.
/// With `plan::tags_in_boot`, each host's last script then waits until every host's boots succeeded, and tags.
pub async fn per_host_rollout(run: &Run<'_>) -> Result<()> {
    run.io.touched.store(true, Ordering::SeqCst);
    let primary = run.sel.primary_host.as_str();
    let lock_in_script = run.lock.to_take()
        && !run.options.lock_wait
        && run.sel.hosts.iter().any(|h| h == primary)
        && plan::pulls_in_boot(run, primary);
    let hosts = run.io.on_hosts(&run.sel.hosts, |h| async move {
        let takes_lock = lock_in_script && h == primary;
        let go = async {
            run.shell().connection(h).await?;
            roll_out_host(run, h, takes_lock).await
        };
        let result = tokio::select! {
            r = go => r,
            e = interrupt::unresponsive_after_interrupt(run, h) => Err(e),
        };
        if takes_lock {
            // Whatever ended the primary's script, nobody waits for a lock that never came.
            lock_settled(run, false);
        }
        if let Err(e) = &result {
            if budget::leave_behind(run, h, e) {
                return Ok(());
            }
        }
        // A host that ended before saying its boots succeeded stops the tag everywhere; once every
        // host's had, this changes nothing.
        run.sync.halt_tags();
        if result.is_err() {
            // A host that fails before its boot stops the others before theirs (the pull barrier);
            // so does a canary that fails, whenever.
            run.sync.halt_boots();
            if let Some(wave) = &run.sync.canary {
                wave.halt();
            }
            if run.roles_on(h).iter().any(|r| plan::gatekeeper(run, r)) {
                run.sync.primary_result(false);
            }
        }
        result
    });
    let hosts = async {
        let result = hosts.await;
        // Every host has ended: nothing is left for the canary wave to wait for.
        if let Some(wave) = &run.sync.canary {
            wave.halt();
        }
        result
    };
    let (lock, hosts, wave) =
        tokio::join!(take_lock(run, lock_in_script), hosts, canary::watch(run));
    lock?;
    hosts?;
    wave
}

/// The lock, unless the primary host's script takes it (`in_script`); the hosts waiting for it are
/// told how it went.
async fn take_lock(run: &Run<'_>, in_script: bool) -> Result<()> {
    if in_script {
        // Its heading comes with the script's lock command; a rollback's comes first, as in Kamal's
        // log, since the other hosts' checks may start before the primary's lock.
        if run.options.command == Command::Rollback {
            run.shell().header(Phase::Lock);
        }
        return Ok(());
    }
    let result = if run.lock.to_take() {
        lock::acquire_on_primary(&run.shell(), &run.lock).await
    } else {
        Ok(())
    };
    lock_settled(run, result.is_ok());
    result
}

/// One host of the per-host rollout; `takes_lock`: its script takes the lock first.
async fn roll_out_host(
    run: &Run<'_>,
    host: &str,
    takes_lock: bool,
) -> std::result::Result<(), HostError> {
    if plan::pulls_in_boot(run, host) {
        // Its script starts at once and waits for the lock inside (`first_script`).
        let first = first_script(run, host, takes_lock)?;
        return boot_host(run, host, Some(first)).await;
    }
    let rollback = run.options.command == Command::Rollback;
    if !rollback {
        pull::pull(&run.shell(), &run.sync, host).await?;
    }
    if !run.sync.wait_for_lock().await || run.io.cancel.is_cancelled() {
        return Ok(());
    }
    // A rollback checks for the version where a deploy pulls, but under the lock, as Kamal does.
    if rollback && run.is_app_host(host) {
        check::check(&run.shell(), host).await?;
    }
    if run.options.boots_proxy() {
        proxy::boot(&run.shell(), host).await?;
    }
    if run.is_app_host(host) {
        run.sync.pulled(host);
        let mut gate = run.sync.boot_gate(host);
        if !gate
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|v| *v)
            .unwrap_or(false)
        {
            return Ok(());
        }
    }
    if run.io.cancel.is_cancelled() {
        return Ok(());
    }
    boot_host(run, host, None).await
}

/// What runs before a host's first boot in the per-host rollout: Ctrl-C's trap (until the boot, SIGTERM
/// ends the script after its current command; from the boot on it is ignored, so a boot always
/// finishes), the lock (primary host) or the wait for it (the other hosts: a deploy's after its pull,
/// as Kamal pulls before its `with_lock`; a rollback's after its check, which only reads), the role's containers listed in the background (under the lock) and (deploy) kamal-proxy.
/// Every host's script starts at once: the wait for the lock costs no new session once it is held.
/// None of them reads stdin, which carries the gates' lines and then the boot's env file.
fn first_script(
    run: &Run<'_>,
    host: &str,
    takes_lock: bool,
) -> std::result::Result<First, HostError> {
    let mut s = Script::new();
    s.line(interruptible());
    if takes_lock {
        s.append(lock::in_script(run));
    }
    let rollback = run.options.command == Command::Rollback;
    if rollback {
        // The version's image is there when its container is: nothing to pull. Kamal checks under
        // the lock; the check only reads, so a host other than the lock's runs it while the lock is
        // being taken, and waits for the lock after it: no host boots before both.
        s.append(check::in_script(run, host));
        if !takes_lock {
            s.append(lock_gate());
        }
    } else {
        if let Some(pull) = pull::script(&run.shell(), host)? {
            s.append(pull.map(|text| guard(&no_stdin(text), Exit::Pull)));
        }
        if !takes_lock {
            s.append(lock_gate());
        }
    }
    if run.options.boots_proxy() {
        s.append(proxy::in_script(&run.shell(), host)?);
    }
    // Under the lock, read while the host waits for the others at the pull barrier.
    let app = App::new(run.config, run.roles_on(host)[0]);
    let phase = if rollback { Phase::Check } else { Phase::Stale };
    s.append(list_in_background(&app, phase));
    if run.options.boot_barrier() {
        s.append(gate());
    }
    s.line(uninterruptible());
    Ok(First {
        script: s,
        takes_lock,
    })
}

/// A host's roles, one after the other (or at once with `boot.parallel_roles`); `first` runs at the
/// start of the first role's script.
pub async fn boot_host(
    run: &Run<'_>,
    host: &str,
    first: Option<First>,
) -> std::result::Result<(), HostError> {
    let roles = run.roles_on(host);
    let parallel = run.config.major == KamalMajor::V2 && run.config.boot().parallel_roles;
    let result = if parallel && first.is_none() {
        let results = join_all(roles.iter().map(|r| boot_role(run, host, r, None))).await;
        results.into_iter().find(|r| r.is_err()).unwrap_or(Ok(()))
    } else {
        let mut first = first;
        let mut result = Ok(());
        for role in &roles {
            result = boot_role(run, host, role, first.take()).await;
            if result.is_err() {
                break;
            }
        }
        result
    };
    match &result {
        // The boot's script said so, and went on to tag.
        Ok(()) if plan::tags_in_boot(run) => {}
        Ok(()) => {
            if let Some(wave) = &run.sync.canary {
                wave.booted(host);
            }
            waiting_for_others(run, host)
        }
        Err(e) => run.io.output.progress_failed(
            host,
            &format!("failed: {}", e.message.lines().next().unwrap_or("")),
        ),
    }
    result
}

/// The lock is held (or will not be): hosts waiting to boot go on (the steps' headings follow as
/// each step first begins).
fn lock_settled(run: &Run<'_>, held: bool) {
    if held {
        run.lock.taken();
        crate::runner::panics::fault_point("locked", &run.sel.primary_host);
    }
    // No lock, no boot anywhere.
    run.sync.settle_lock(held);
}

fn waiting_for_others(run: &Run<'_>, host: &str) {
    run.io.output.progress(
        host,
        &format!("{} booted, waiting for the other hosts", run.version),
    );
}

/// One (host, role) boot: `first` before it, and (`plan::tags_in_boot`, the host's last role) the tag after
/// it, in one script; each exit code goes to the step that owns it.
async fn boot_role(
    run: &Run<'_>,
    host: &str,
    role: &Role,
    first: Option<First>,
) -> std::result::Result<(), HostError> {
    if run.io.cancel.is_cancelled()
        || !boot::wait_at_barrier(&run.shell(), run.barrier(), host, role).await?
    {
        return Ok(());
    }
    if run.config.major == KamalMajor::V1 {
        return steps::v1::boot::boot(&run.shell(), run.barrier(), host, role).await;
    }
    if first.is_none() {
        run.io
            .output
            .progress(host, &format!("booting {} {}", role.name, run.version));
    }
    let boot = run.boot(host, role);
    let listed_in_background = first.is_some();
    let (script, tag) = role_script(run, &boot, first)?;
    // Past the boot's start (a script without a first part starts there).
    let booting = AtomicBool::new(!listed_in_background);
    let mut on_line = |line: &str| {
        if Mark::parse(line).is_some_and(|(m, _)| m == Mark::Boot) {
            booting.store(true, Ordering::SeqCst);
        }
        on_mark(run, &boot, line)
    };
    let out = match run.shell().exec(host, &script, &mut on_line).await {
        Ok(out) => out,
        Err(e) if e.kind == ErrorKind::Connection => {
            run.sync.reached_boot(host);
            return Err(boot.lost(e, booting.load(Ordering::SeqCst)));
        }
        Err(e) => return Err(boot.failed(e).await),
    };
    run.sync.reached_boot(host);
    match Exit::of(out.status).map(Exit::step) {
        Some(Step::Lock) => return Err(lock::refused(&run.shell(), host, &out).await),
        Some(Step::Pull) => return Err(pull::failed(&run.shell(), host, &out)),
        Some(Step::ProxyBoot) => return proxy::outcome(host, &out),
        // Another host failed (or Ctrl-C): this one stopped at the pull barrier, or after its boot
        // without tagging.
        Some(Step::Halt) => {
            if Mark::Booted.seen(&out.stdout) {
                run.io
                    .output
                    .progress_done(host, &format!("{} live, latest not tagged", run.version));
            }
            return Ok(());
        }
        Some(Step::Unavailable) => return Err(check::not_found(host)),
        Some(Step::Interrupt) if Mark::Interrupted.seen(&out.stdout) => {
            return Err(HostError::new(
                ErrorKind::Interrupted,
                format!("Interrupted on {host} before its boot"),
            ))
        }
        // The boot succeeded (the new version is live); tagging or pruning after it failed.
        Some(Step::Tag) => return Err(tag::failed(host, &out)),
        _ if !out.success() => return Err(boot.failed(boot.error(&out)).await),
        _ => {}
    }
    if let Some(released) = tag.filter(|_| Mark::Tagged.seen(&out.stdout)) {
        tag::done_in_boot(&run.shell(), &run.lock, host, released);
    }
    boot.finish().await
}

/// A (host, role) boot's script: `first` before the boot, and (`plan::tags_in_boot`, the host's last role)
/// the tag after it; with it, whether the tag releases the lock.
fn role_script(
    run: &Run<'_>,
    boot: &Boot<'_, '_>,
    first: Option<First>,
) -> std::result::Result<(Script, Option<bool>), HostError> {
    let host = boot.host;
    let takes_lock = first.as_ref().is_some_and(|f| f.takes_lock);
    let mut script = Script::new().for_role(&boot.role.name);
    let listed_in_background = first.is_some();
    if let Some(first) = first {
        script.append(first.script);
    }
    let release = tag::releases_lock(run, &run.lock, host) || takes_lock;
    let last_role = run.roles_on(host).last().map(|r| &r.name) == Some(&boot.role.name);
    let tag = (last_role && plan::tags_in_boot(run))
        .then(|| tag::script(run, host, release))
        .flatten();
    let tags = tag.is_some();
    // The wait for the other hosts' boots overlaps this host's stop of its old container.
    let announces = tags && run.sel.hosts.len() > 1 && boot.app.running_proxy();
    script.append(boot.script(listed_in_background, announces)?);
    if let Some(tag) = tag {
        script.append(tag::after_boot(run, tag, announces));
    }
    Ok((script, tags.then_some(release)))
}

/// A line of a boot's script as it arrives: the lock's and Ctrl-C's markers here, the rest the boot's.
fn on_mark(run: &Run<'_>, boot: &Boot<'_, '_>, line: &str) {
    let Some((mark, arg)) = Mark::parse(line) else {
        return;
    };
    match mark {
        Mark::Locked => lock_settled(run, true),
        Mark::Ready => run.sync.pulled(boot.host),
        Mark::Pid => run.sync.before_boot(boot.host, arg),
        Mark::Boot => run.sync.reached_boot(boot.host),
        Mark::Booted => {
            run.sync.booted(boot.host);
            if let Some(wave) = &run.sync.canary {
                wave.booted(boot.host);
            }
            waiting_for_others(run, boot.host);
        }
        _ => boot.on_mark(mark, arg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::DeployOptions;
    use crate::runner::script::{Gate, Input};
    use crate::runner::steps::tests::{golden, golden_config, sh_n};

    /// Each needle is in `text` (its markers left out), in this order.
    fn assert_in_order(text: &str, needles: &[&str]) {
        let text = &crate::runner::script::unmarked(text);
        let at: Vec<usize> = needles
            .iter()
            .map(|n| text.find(n).unwrap_or_else(|| panic!("{n} in {text}")))
            .collect();
        let mut sorted = at.clone();
        sorted.sort();
        assert_eq!(at, sorted, "{text}");
    }

    /// The primary host's first script: Ctrl-C's trap, the lock, the container list, the pull and
    /// kamal-proxy, each failure with its own exit, then the boot.
    #[test]
    fn the_primary_hosts_first_script_in_order() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let first = first_script(&run, "10.0.0.1", true).unwrap();
        assert!(first.takes_lock);
        let text = first.script.text();
        assert_in_order(
            &text,
            &[
                "trap 'if [ -n \"$hold\" ]; then held=1; else echo \"kamal-rs:interrupted\"; [ -z \"$bg\" ] || kill $bg 2>/dev/null; exit 130; fi' TERM; echo \"kamal-rs:pid $$\"",
                "hold=1; echo \"kamal-rs:lock\"; { mkdir -p .kamal && mkdir .kamal/lock-app-staging",
                "|| exit 77; echo \"kamal-rs:locked\"; hold=; [ -z \"$held\" ] || { echo \"kamal-rs:interrupted\"; exit 130; }",
                "docker pull registry.example.com/app:v2",
                "</dev/null; } || { rc=$?; echo \"kamal-rs:failed $rc\"; exit 78; }",
                "echo \"kamal-rs:proxy-boot\"",
                "exit 79; }",
                "trap '[ -z \"$ps_out\" ] || rm -f \"$ps_out\"' EXIT; ps_out=$(mktemp) || exit 78; docker ps -a --filter label=service=app --filter label=destination=staging --filter label=role=web",
                "echo \"kamal-rs:ready\"; echo \"kamal-rs:wait pull-barrier\"; read -r go || go=stop; [ \"$go\" = go ] || { echo \"kamal-rs:halted\"; exit 85; }",
                "trap '' TERM; echo \"kamal-rs:boot\"",
            ],
        );
        golden("first_primary.sh", &text);
        assert!(
            first.script.stdin().is_empty(),
            "the first part reads no stdin"
        );
        sh_n(&text);
        let other = first_script(&run, "10.0.0.2", false).unwrap().script.text();
        assert!(
            !other.contains("lock-app"),
            "only the primary takes the lock"
        );
    }

    /// Another host's first script pulls at once (as Kamal pulls before taking the lock), then waits
    /// for the lock before it lists the role's containers or touches kamal-proxy, then for the pull
    /// barrier. A rollback's waits for the lock first, then checks.
    #[test]
    fn another_hosts_first_script_pulls_then_waits_for_the_lock() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let first = first_script(&run, "10.0.0.2", false).unwrap().script;
        let text = first.text();
        assert_in_order(
            &text,
            &[
                "echo \"kamal-rs:pid $$\"",
                "docker pull registry.example.com/app:v2",
                "exit 78; }\necho \"kamal-rs:wait lock-wait\"; read -r go || go=stop; [ \"$go\" = go ] || { echo \"kamal-rs:halted\"; exit 85; }",
                "echo \"kamal-rs:proxy-boot\"",
                "ps_out=$(mktemp) || exit 78; docker ps -a",
                "echo \"kamal-rs:ready\"; echo \"kamal-rs:wait pull-barrier\"; read -r go",
                "trap '' TERM",
            ],
        );
        assert_eq!(first.gates(), [Gate::Lock, Gate::Pulled]);
        sh_n(&text);

        let rollback = DeployOptions {
            command: Command::Rollback,
            ..DeployOptions::default()
        };
        let run = Run::for_test(&c, rollback);
        let first = first_script(&run, "10.0.0.2", false).unwrap().script;
        assert_eq!(
            first.gates(),
            [Gate::Lock, Gate::Pulled],
            "{}",
            first.text()
        );
        // The check only reads: it runs while the primary takes the lock; the boot waits for both.
        assert_in_order(
            &first.text(),
            &[
                "docker container ls --all --filter 'name=^app-web-staging-v2$'",
                "echo \"kamal-rs:wait lock-wait\"; read -r go",
                "docker ps -a",
                "echo \"kamal-rs:wait pull-barrier\"; read -r go",
            ],
        );
    }

    /// A rollback's first script: the lock, then the check that the host has the version (its own exit
    /// code), then the gate even with `--no-pull-barrier`; no pull, no kamal-proxy boot.
    #[test]
    fn a_rollbacks_first_script_checks_the_version_where_a_deploy_pulls() {
        let c = golden_config();
        let options = DeployOptions {
            command: Command::Rollback,
            pull_barrier: false,
            ..DeployOptions::default()
        };
        let run = Run::for_test(&c, options);
        let text = first_script(&run, "10.0.0.1", true).unwrap().script.text();
        assert_in_order(
            &text,
            &[
                "mkdir .kamal/lock-app-staging",
                "c=$(docker container ls --all --filter 'name=^app-web-staging-v2$' --quiet); [ -n \"$c\" ] || { echo \"kamal-rs:missing web\"; exit 86; }",
                "read -r go",
                "trap '' TERM",
            ],
        );
        assert!(!text.contains("docker pull"), "{text}");
        assert!(!text.contains("proxy-boot"), "{text}");
        sh_n(&text);
        assert_eq!(Exit::of(Some(86)).map(Exit::step), Some(Step::Unavailable));
    }

    /// With only the web role (every host behind kamal-proxy), each host's one script ends with the
    /// tag: once kamal-proxy serves the new container it says so, stops the old one, and waits for
    /// every host's boots, then tags, prunes and (the primary host) releases the lock. It reads the lock's line, the pull barrier's, the env file,
    /// then the booted gate's.
    #[test]
    fn each_host_tags_at_the_end_of_its_boot_once_every_host_booted() {
        let c = golden_config();
        let web_only = DeployOptions {
            roles: Some("web".into()),
            ..DeployOptions::default()
        };
        let run = Run::for_test(&c, web_only);
        assert!(plan::tags_in_boot(&run));
        let web = c.role("web").unwrap();
        let first = first_script(&run, "10.0.0.1", true).unwrap();
        let (script, tag) = role_script(&run, &run.boot("10.0.0.1", web), Some(first)).unwrap();
        assert_eq!(tag, Some(true), "the primary host releases the lock");
        let text = script.text();
        assert_in_order(
            &text,
            &[
                "echo \"kamal-rs:locked\"",
                "docker pull registry.example.com/app:v2",
                "echo \"kamal-rs:ready\"; echo \"kamal-rs:wait pull-barrier\"; read -r go",
                "docker run --detach",
                "echo \"kamal-rs:healthy\"\necho \"kamal-rs:booted\"",
                "docker stop \"app-web-staging-${old}\"",
                "echo \"kamal-rs:wait tag-wait\"; read -r go || go=stop; [ \"$go\" = go ] || { echo \"kamal-rs:halted\"; exit 85; }",
                "docker tag registry.example.com/app:v2 registry.example.com/app:latest-staging",
                "docker image prune --force --filter label=service=app",
                "rm -r .kamal/lock-app-staging; } || exit 76",
                "echo \"kamal-rs:tagged\"",
            ],
        );
        sh_n(&text);
        let first = first_script(&run, "10.0.0.2", false).unwrap();
        let (script, tag) = role_script(&run, &run.boot("10.0.0.2", web), Some(first)).unwrap();
        assert_eq!(tag, Some(false));
        assert!(!script.text().contains("rm -r .kamal/lock-app"));
        assert_eq!(
            script.input(),
            [
                Input::Gate(Gate::Lock),
                Input::Gate(Gate::Pulled),
                Input::Bytes(b"\n".to_vec()),
                Input::Gate(Gate::Booted)
            ]
        );
        sh_n(&script.text());
    }

    /// With the workers role (no kamal-proxy: its boot is waited for after its script), every host
    /// tags in a command of its own once all have booted.
    #[test]
    fn a_role_without_kamal_proxy_keeps_the_tag_apart() {
        let c = golden_config();
        let run = Run::for_test(&c, DeployOptions::default());
        assert!(!plan::tags_in_boot(&run));
        for (host, role) in [
            ("10.0.0.1", "web"),
            ("10.0.0.2", "web"),
            ("10.0.0.3", "workers"),
        ] {
            let first = first_script(&run, host, host == "10.0.0.1").unwrap();
            let boot = run.boot(host, c.role(role).unwrap());
            let (script, tag) = role_script(&run, &boot, Some(first)).unwrap();
            assert_eq!(tag, None);
            assert!(!script.text().contains("docker tag"), "{host}");
            sh_n(&script.text());
        }
        assert!(
            !plan::pulls_in_boot(&run, "10.0.0.3"),
            "workers wait at the barrier"
        );
        assert!(plan::pulls_in_boot(&run, "10.0.0.1"));
        assert!(
            !plan::pulls_in_boot(&run, "10.0.0.9"),
            "an accessory-only host"
        );
    }
}
