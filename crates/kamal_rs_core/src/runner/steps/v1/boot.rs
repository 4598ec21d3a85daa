//! One (host, role) boot of a Kamal 1.x config as one script, in Kamal 1.9's order
//! (`lib/kamal/cli/app/boot.rb`, `lib/kamal/cli/healthcheck/poller.rb`, tag v1.9.3): stale containers,
//! a clashing name, the old version, the new container with its health cord, its health, then the
//! old container cut loose and stopped. Also Traefik's boot (`lib/kamal/cli/traefik.rb`).

use super::{app, audit};
use crate::commands::app::container_hostname;
use crate::commands::registry;
use crate::commands::v1::{AppV1, Traefik};
use crate::config::Role;
use crate::error::ErrorKind;
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::plan;
use crate::runner::report::RoleState;
use crate::runner::run::Plan;
use crate::runner::script::{guard, Exit, Mark, Script, Shown};
use crate::runner::shell::Shell;
use crate::runner::steps::boot::{close_barrier, open_barrier, Barrier};

/// Poll period of the health waits, in seconds.
const POLL: f64 = 0.25;
/// Kamal 1.9's pause for Traefik after a health change.
const TRAEFIK_UPDATE_DELAY: u64 = 5;
/// The least time Docker takes to call a container unhealthy once its check starts failing (three
/// failed checks one second apart, Docker's default retries and Kamal 1.9's interval).
const UNHEALTHY_AFTER: u64 = 2;

/// A health wait: what is waited for, and its markers and exit.
struct Wait {
    target: &'static str,
    retry: Mark,
    timeout: Mark,
    exit: Exit,
    /// 1.9's words: `container not <what> (<status>)`.
    what: &'static str,
}

const READY: Wait = Wait {
    target: "healthy",
    retry: Mark::RetryReady,
    timeout: Mark::TimeoutReady,
    exit: Exit::NotReady,
    what: "ready",
};

const UNHEALTHY: Wait = Wait {
    target: "unhealthy",
    retry: Mark::RetryUnhealthy,
    timeout: Mark::TimeoutUnhealthy,
    exit: Exit::NotUnhealthy,
    what: "unhealthy",
};

/// The boot's script.
pub fn script(sh: &Plan<'_>, host: &str, role: &Role) -> Script {
    let app = app(sh, role);
    let v = &sh.version;
    let polls = ((1..=app.max_attempts()).sum::<i64>() as f64 / POLL) as i64;
    let replaced = format!("{v}_replaced_{}", sh.clock.hex(8));
    let hostname = container_hostname(host, &sh.clock.hex(6));
    let rename_audit = audit(
        sh,
        Some(&role.name),
        &format!("Renaming container {v} to {replaced}"),
    );
    let booted_audit = audit(sh, Some(&role.name), &format!("Booted app version {v}"));
    let docker_run = app.run(host, v, &hostname);
    let mut s = Script::new();
    if sh.options.stops_stale() {
        let current = app.current_running_version();
        s.run(
            Shown::info(Phase::Stale, &current),
            &format!("current=$({current})"),
        );
        let list = app.list_versions();
        s.run(
            Shown::info(Phase::Stale, &list),
            &format!("versions=$({list})"),
        );
        let stop = s.marked(
            Shown::info(Phase::Stale, app.stop("${stale}")).with_var("${stale}"),
            &format!("{} >/dev/null 2>&1", app.stop("$stale")),
        );
        s.line(format!(
            "for stale in $versions; do [ \"$stale\" = \"$current\" ] && continue; {}; {stop}; done",
            Mark::Stale.echo_with("$stale"),
        ));
    }
    let find = app.container_id_for(v);
    let found = s.marked(Shown::info(Phase::Boot, &find), &format!("c=$({find})"));
    let rename_audit = s.marked(Shown::debug(Phase::Boot, &rename_audit), &rename_audit);
    let rename = app.rename(v, &replaced);
    let rename = s.marked(Shown::info(Phase::Boot, &rename), &rename);
    s.line(format!(
        "{found}; if [ -n \"$c\" ]; then {}; {}; fi",
        Mark::Renamed.echo_with(&replaced),
        guard(&format!("{rename_audit} && {rename}"), Exit::Rename)
    ));
    let current = app.current_running_version();
    let old = s.marked(
        Shown::info(Phase::Boot, &current),
        &format!("old=$({current})"),
    );
    s.line(format!("{old}; {}", Mark::Old.echo_with("$old")));
    if let Some(assets) = app.extract_and_sync_assets(v) {
        let assets = s.marked(
            Shown::info(Phase::Boot, &assets),
            &format!("{{ {assets}; }} >/dev/null"),
        );
        s.line(guard(&assets, Exit::Assets));
    }
    let booted_audit = s.marked(Shown::debug(Phase::Boot, &booted_audit), &booted_audit);
    s.line(guard(&booted_audit, Exit::Audit));
    if app.uses_cord() {
        let tie = s.marked(
            Shown::info(Phase::Boot, app.tie_cord()),
            &app.tie_cord_in_script(),
        );
        s.line(guard(&tie, Exit::Cord));
    }
    let docker_run = s.marked(
        Shown::info(Phase::Boot, &docker_run),
        &format!("{docker_run} >/dev/null"),
    );
    s.line(format!(
        "{}; {}",
        Mark::Run.echo(),
        guard(&docker_run, Exit::Run)
    ));
    // Healthy, or running without a health check (then the readiness delay, as 1.9). The wait is
    // logged as one command: its time is the whole wait.
    let delay = Some(sh.config.timeouts().readiness_delay);
    let stop_new = format!("{} >/dev/null 2>&1", app.stop(v));
    let wait = s.marked(
        Shown::info(Phase::Health, app.status(v)),
        &poll_loop(&app.status(v), &READY, delay, polls, &stop_new),
    );
    s.line(format!(
        "{wait} || {}; {}",
        READY.exit.exit(),
        Mark::Healthy.echo()
    ));
    let stop_old = stop_old(&mut s, &app, polls, v);
    s.line(stop_old);
    s.line(Mark::Done.echo());
    s
}

/// The old container: its cord is cut so that its health check fails and Traefik drops it, then it
/// is stopped. Cutting comes TRAEFIK_UPDATE_DELAY - UNHEALTHY_AFTER seconds after the new one is
/// healthy, so Traefik still gets at least Kamal's 5 s to route to the new container before the old
/// one can be unhealthy; the 5 s after it is unhealthy stay as they are.
fn stop_old(s: &mut Script, app: &AppV1<'_>, polls: i64, version: &str) -> String {
    let mut steps = vec![];
    if app.uses_cord() {
        let cord = app.cord("${old}");
        let cord = s.marked(
            Shown::info(Phase::Stop, &cord).with_var("${old}"),
            &format!("cord=$({cord})"),
        );
        let cut = AppV1::cut_cord("\"$cord\"");
        let cut = s.marked(
            Shown::info(Phase::Stop, AppV1::cut_cord("${cord}")).with_var("${cord}"),
            &cut,
        );
        let unhealthy = app.status("${old}");
        let wait = s.marked(
            Shown::info(Phase::Stop, &unhealthy).with_var("${old}"),
            &poll_loop(&app.status("$old"), &UNHEALTHY, None, polls, "true"),
        );
        steps.push(format!(
            "{cord}; if [ -n \"$cord\" ]; then sleep {}; {cut}; {wait} || {}; sleep {TRAEFIK_UPDATE_DELAY}; fi",
            TRAEFIK_UPDATE_DELAY - UNHEALTHY_AFTER,
            UNHEALTHY.exit.exit(),
        ));
    }
    let stop = s.marked(
        Shown::info(Phase::Stop, app.stop("${old}")).with_var("${old}"),
        &format!("{} >/dev/null 2>&1", app.stop("$old")),
    );
    steps.push(stop);
    if let Some(cleanup) = app.clean_up_assets(version) {
        steps.push(s.marked(Shown::info(Phase::Stop, &cleanup), &cleanup));
    }
    format!(
        "if [ -n \"$old\" ]; then {}; {}; fi",
        Mark::Stopping.echo_with("$old"),
        steps.join("; ")
    )
}

/// A shell loop that checks `status` every POLL seconds until it prints the wait's target (or, with a
/// readiness delay, `running`: a container without a health check, then the delay), for at most
/// `polls` checks (1.9's total budget). At the moments 1.9's poller would have checked again (after
/// 1, 1+2, 1+2+3... seconds) it prints the wait's retry marker (`<status> <attempt>`), so the log keeps
/// 1.9's messages; when the budget is spent, its timeout marker (`<status>`), then `on_timeout`, then
/// the wait's exit.
fn poll_loop(
    status: &str,
    wait: &Wait,
    readiness_delay: Option<i64>,
    polls: i64,
    on_timeout: &str,
) -> String {
    let per_second = (1.0 / POLL) as i64;
    let running = readiness_delay
        .map(|d| format!(" [ \"$st\" = running ] && {{ sleep {d}; break; }};"))
        .unwrap_or_default();
    format!(
        "i=0; k=1; next={per_second}; timed_out=; while :; do st=$({status}); [ \"$st\" = {target} ] && break;{running} i=$((i+1)); \
         [ $i -ge {polls} ] && {{ {timeout}; {on_timeout}; timed_out=1; break; }}; \
         [ $i -eq $next ] && {{ {retry}; k=$((k+1)); next=$((next+{per_second}*k)); }}; sleep {POLL}; done; [ -z \"$timed_out\" ]",
        target = wait.target,
        timeout = wait.timeout.echo_with("$st"),
        retry = wait.retry.echo_with("$st $k"),
    )
}

/// Boots one role on one host (past the barrier) and reads its outcome.
pub async fn boot(
    sh: &Shell<'_, '_>,
    barrier: Barrier<'_>,
    host: &str,
    role: &Role,
) -> std::result::Result<(), HostError> {
    let v1_app = app(sh, role);
    let max_attempts = v1_app.max_attempts();
    sh.io
        .output
        .progress(host, &format!("booting {} {}", role.name, sh.version));
    let gatekeeper = plan::gatekeeper(sh, role);
    let mut on_line = |line: &str| {
        let Some((mark, arg)) = Mark::parse(line) else {
            return;
        };
        let retry = |what: &str| {
            // 1.9's poller messages, at the moments it would have checked again.
            let (status, attempt) = arg.split_once(' ').unwrap_or((arg, "?"));
            sh.io.output.info(&format!(
                "container not {what} ({status}), retrying in {attempt}s (attempt {attempt}/{max_attempts})..."
            ));
        };
        match mark {
            Mark::Healthy => {
                sh.io.output.info("Container is healthy!");
                sh.io.reports.set_state(host, &role.name, RoleState::Live);
                if gatekeeper {
                    open_barrier(sh, barrier, host);
                }
            }
            Mark::RetryReady => retry(READY.what),
            Mark::RetryUnhealthy => retry(UNHEALTHY.what),
            Mark::Stale => sh.io.output.info(&format!(
                "Stopping stale container for role {} with version {arg}",
                role.name
            )),
            Mark::Old => sh
                .io
                .reports
                .set_old_version(host, &role.name, Some(arg.into())),
            _ => {}
        }
    };
    let out = sh
        .exec(
            host,
            &script(sh, host, role).for_role(&role.name),
            &mut on_line,
        )
        .await?;
    if out.success() {
        return Ok(());
    }
    let healthy = Mark::Healthy.seen(&out.stdout);
    let error = failure(host, &out);
    if !healthy {
        if gatekeeper {
            close_barrier(sh, barrier, host, &error.message);
        }
        sh.io
            .reports
            .set_state(host, &role.name, RoleState::Failed(error.message.clone()));
        sh.io
            .output
            .info(&format!("Failed to boot {} on {host}", role.name));
    }
    Err(error)
}

/// 1.9's message for a failed boot script: a health wait that ran out (`container not ready
/// (unhealthy)`), or the failing command's own text.
fn failure(host: &str, out: &crate::ssh::Output) -> HostError {
    for wait in [&READY, &UNHEALTHY] {
        if let Some(status) = wait.timeout.find(&out.stdout) {
            return HostError::on_host(
                ErrorKind::Healthcheck,
                host,
                format!("container not {} ({status})", wait.what),
            );
        }
    }
    let first_word = match Exit::of(out.status) {
        Some(Exit::Audit | Exit::Cord) => "mkdir",
        _ => "docker",
    };
    HostError::command_failed(host, first_word, out)
}

/// Traefik started (or run) on a host, after the registry login.
pub async fn boot_traefik(sh: &Shell<'_, '_>, host: &str) -> std::result::Result<(), HostError> {
    let (user, password) = sh.credentials()?;
    let server = sh.config.registry().server;
    let start = Traefik { config: sh.config }.start_or_run();
    let mut s = Script::new();
    s.run(
        Shown::info(Phase::Proxy, registry::login_redacted(server.as_deref())),
        &registry::login_unless_logged_in(server.as_deref(), &user, &password),
    )
    .run(Shown::info(Phase::Proxy, &start), &start);
    let s = s.chain();
    let out = sh.exec(host, &s, &mut |_| {}).await?;
    if !out.success() {
        return Err(HostError::command_failed(host, "docker", &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::DeployOptions;
    use crate::runner::run::Run;
    use crate::runner::script::unmarked;
    use crate::runner::steps::tests::{golden, run_sh, sh_n};
    use crate::runner::steps::v1::tests::v1_config;
    use crate::ssh::Output;

    #[test]
    fn a_1_9_boot_script() {
        let c = v1_config();
        let run = Run::for_test(&c, DeployOptions::default());
        let web = c.role("web").unwrap();
        let s = script(&run, "10.0.0.1", web);
        let text = s.text();
        golden("v1_web_boot.sh", &text);
        sh_n(&text);
        assert!(unmarked(&text).contains("mkdir -p .kamal/cords/app-web-0123456789abcdef0123456789abcdef ; touch .kamal/cords/app-web-0123456789abcdef0123456789abcdef/cord"));
        assert!(
            text.contains("echo \"kamal-rs:timeout-ready $st\""),
            "{text}"
        );
        assert!(text.contains("echo \"kamal-rs:timeout-unhealthy $st\""));
        // 3 attempts: (1+2+3) s of 1.9's backoff, polled every 0.25 s.
        assert!(text.contains("[ $i -ge 24 ]"));
        let workers = c.role("workers").unwrap();
        let w = script(&run, "10.0.0.3", workers).text();
        assert!(!w.contains("cord"), "a role without Traefik has no cord");
        sh_n(&w);
    }

    /// An unhealthy container: the poll loop runs out, and the error says what 1.9 says.
    #[test]
    fn an_unhealthy_version_fails_with_1_9s_message() {
        let status = "echo unhealthy";
        let wait = format!(
            "{} || {}",
            poll_loop(status, &READY, Some(7), 6, "true"),
            READY.exit.exit()
        );
        let (code, stdout) = run_sh(&wait);
        assert_eq!(code, Some(Exit::NotReady.code()));
        assert!(
            stdout.contains("kamal-rs:retry-ready unhealthy 1\n"),
            "{stdout}"
        );
        let out = Output {
            status: code,
            stdout,
            stderr: String::new(),
        };
        let e = failure("10.0.0.1", &out);
        assert_eq!(e.kind, ErrorKind::Healthcheck);
        assert_eq!(
            e.message,
            "Exception while executing on host 10.0.0.1: container not ready (unhealthy)"
        );
    }

    #[test]
    fn the_barrier_is_set_once() {
        let c = v1_config();
        let run = Run::for_test(&c, DeployOptions::default());
        open_barrier(&run.shell(), run.barrier(), "10.0.0.1");
        assert!(
            !close_barrier(&run.shell(), run.barrier(), "10.0.0.2", "unhealthy"),
            "a later result changes nothing"
        );
        assert_eq!(run.sync.primary(), Some(true));
    }
}
