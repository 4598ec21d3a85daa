//! `deploy` / `redeploy` of a Kamal 1.x config, with Kamal 1.9's steps (reference §6): the same
//! scheduler, SSH layer and output as 2.x, Kamal 1.9's commands. `redeploy` skips the registry login,
//! the Traefik boot and the prune. Also `env push`, which 1.x deploys need once (they upload no env file).
//!
//! Kamal 1.9 sleeps to give Traefik time: 5 s after the new container is healthy, 5 s after the old
//! one turns unhealthy, and the readiness delay for containers without a health check. kamal_rs polls
//! health every 0.25 s instead of backing off 1, 2, 3... s (what is waited for is observable), and
//! overlaps the first 5 s with the old container's own way to `unhealthy` (see `stop_old`); the other
//! two waits are for Traefik or for an app without a health check, which nothing can observe, so they
//! stay on the clock.

use std::sync::atomic::Ordering;

use super::boot::MARK;
use super::{marker, Deploy, HostError};
use crate::commands::app::container_hostname;
use crate::commands::builder;
use crate::commands::v1::{self as cmd, AppV1, Traefik};
use crate::commands::{prune, registry};
use crate::config::{env, random_hex, Role};
use crate::error::{ErrorKind, Result};
use crate::ssh::Stdin;
use crate::value::Value;

/// Exit codes of the boot script (each names the step that failed).
const EXIT_RUN: i32 = 72;
const EXIT_NOT_READY: i32 = 75;
const EXIT_NOT_UNHEALTHY: i32 = 76;
const EXIT_MISSING_ENV: i32 = 79;
/// Poll period of the health waits, in seconds.
const POLL: f64 = 0.25;
/// Kamal 1.9's pause for Traefik after a health change.
const TRAEFIK_UPDATE_DELAY: u64 = 5;
/// The least time Docker takes to call a container unhealthy once its check starts failing (three
/// failed checks one second apart, Docker's default retries and Kamal 1.9's interval).
const UNHEALTHY_AFTER: u64 = 2;

impl<'a> Deploy<'a> {
    fn v1_app(&self, role: &'a Role) -> AppV1<'_> {
        AppV1::new(self.config, role, &self.run_id)
    }

    fn audit_v1(&self, role: Option<&str>, message: &str) -> String {
        let line = self.auditor().line(&crate::time::now(), role, message);
        cmd::audit(&self.service_and_destination, &line)
    }

    /// Traefik runs on a host when one of its roles runs it.
    fn runs_traefik(&self, host: &str) -> bool {
        self.sel
            .roles_on(self.config, host)
            .iter()
            .any(|r| self.v1_app(r).running_traefik())
    }

    fn traefik_hosts(&self) -> Vec<String> {
        self.sel
            .hosts
            .iter()
            .filter(|h| self.runs_traefik(h))
            .cloned()
            .collect()
    }

    /// The steps of reference §6.1.
    pub(super) async fn steps_v1(&self) -> Result<()> {
        let deploy = !self.options.redeploy;
        self.run_hook("pre-connect", &self.sel.hosts, &[], true)
            .await?;
        if deploy {
            // Locally (unless -P), then on every host with the pull.
            self.output.say("Log into image registry...");
            if !self.options.skip_push {
                self.login_locally().await?;
            }
        }
        if self.options.skip_push {
            self.connect_all().await?;
            self.output.say("Pull app image...");
        } else {
            self.output.say("Build and push app image...");
            let (built, connected) = tokio::join!(self.build_push(), self.connect_all());
            built?;
            connected?;
        }
        self.touched.store(true, Ordering::SeqCst);
        self.pull_all().await?;
        self.checkpoint()?;
        self.acquire_lock().await?;
        self.run_hook("pre-deploy", &self.sel.hosts, &[], true)
            .await?;
        if deploy {
            self.output.say("Ensure Traefik is running...");
            let hosts = self.traefik_hosts();
            self.on_hosts(&hosts, |h| self.boot_traefik(h)).await?;
        }
        self.output.say("Detect stale containers...");
        self.output.say(&format!(
            "Start container with version {} using a {}s readiness delay (or reboot if already running)...",
            self.version,
            self.readiness_delay()
        ));
        self.boot_groups().await?;
        self.checkpoint()?;
        if deploy {
            self.output.say("Prune old containers and images...");
        }
        self.on_hosts(&self.sel.hosts, |h| self.tag_and_prune_v1(h))
            .await?;
        self.output.say("Releasing the deploy lock...");
        self.release_lock().await
    }

    fn readiness_delay(&self) -> i64 {
        self.config
            .get("readiness_delay")
            .and_then(Value::as_int)
            .unwrap_or(7)
    }

    /// `.kamal` exists, every env file the run needs is there (else the host is named and `env push`
    /// suggested, before the lock), then the pull; with `deploy`, the registry login first.
    pub(super) async fn pull_v1(&self, host: &str) -> std::result::Result<(), HostError> {
        let c = self.config;
        let image = format!("{}:{}", c.repository(), self.version);
        let mut shown = Vec::new();
        let mut script = Vec::new();
        if !self.options.redeploy {
            let (user, password) = self
                .registry_credentials()
                .map_err(|e| HostError::new(e.kind, e.message))?;
            let server = c.registry_server();
            shown.push((registry::login_redacted(server.as_deref()), false));
            script.push(format!(
                "echo {MARK}login && {{ {}; }}",
                registry::login_unless_logged_in(server.as_deref(), &user, &password)
            ));
        }
        let mut files: Vec<String> = self
            .sel
            .roles_on(c, host)
            .iter()
            .map(|r| self.v1_app(r).env_file_path())
            .collect();
        if !self.options.redeploy && self.runs_traefik(host) {
            files.push(Traefik::env_file_path().into());
        }
        for f in &files {
            script.push(format!(
                "{{ [ -f {f} ] || {{ echo {MARK}missing_env {f}; exit {EXIT_MISSING_ENV}; }}; }}"
            ));
        }
        let audit = self.audit_v1(None, &format!("Pulled image with version {}", self.version));

        shown.push((audit.clone(), true));
        shown.push((format!("docker pull {image}"), false));
        shown.push((builder::validate_image(&image, &c.service()), false));
        shown.push(("mkdir -p .kamal".into(), false));
        script.push(format!("echo {MARK}audit && mkdir -p .kamal && {audit}"));
        // As 2.x: no `image rm` first; `docker pull` re-resolves the tag against the registry anyway.
        script.push(format!("echo {MARK}pull && docker pull {image}"));
        script.push(format!(
            "echo {MARK}label && {{ {}; }}",
            builder::validate_image_typed(&image, &c.service())
        ));
        self.output.progress(host, &format!("pulling {image}"));
        let out = self
            .exec(host, &shown, &script.join(" && "), Stdin::None, &mut |_| {})
            .await?;
        if let Some(file) = marker(&out.stdout, "missing_env") {
            return Err(HostError::new(
                ErrorKind::Configuration,
                format!(
                    "{host}: {} is missing. Kamal 1.x deploys do not upload env files: run `kamal-rs env push` (or `kamal env push`) first",
                    file.trim()
                ),
            ));
        }
        if !out.success() {
            return Err(self.failed(host, "docker", &out));
        }
        self.output.progress(host, "pulled, waiting for the lock");
        Ok(())
    }

    async fn boot_traefik(&self, host: &str) -> std::result::Result<(), HostError> {
        let c = self.config;
        let (user, password) = self
            .registry_credentials()
            .map_err(|e| HostError::new(e.kind, e.message))?;
        let server = c.registry_server();
        let start = Traefik { config: c }.start_or_run();
        let shown = vec![
            (registry::login_redacted(server.as_deref()), false),
            (start.clone(), false),
        ];
        let script = format!(
            "{{ {}; }} && {start}",
            registry::login_unless_logged_in(server.as_deref(), &user, &password)
        );
        let out = self
            .exec(host, &shown, &script, Stdin::None, &mut |_| {})
            .await?;
        if !out.success() {
            return Err(self.failed(host, "docker", &out));
        }
        Ok(())
    }

    /// One (host, role) boot in one script: stale containers, a clashing name, the old version, the
    /// new container with its cord, its health, then the old one cut loose and stopped.
    pub(super) async fn boot_role_v1(
        &self,
        host: &str,
        role: &'a Role,
    ) -> std::result::Result<(), HostError> {
        let app = self.v1_app(role);
        let v = &self.version;
        let gatekeeper = role.name == self.sel.primary_role;
        let polls = (1..=app.max_attempts()).sum::<i64>() as f64 / POLL;
        let replaced = format!("{v}_replaced_{}", random_hex(8));
        let hostname = container_hostname(host, &random_hex(6));
        let rename_audit = self.audit_v1(
            Some(&role.name),
            &format!("Renaming container {v} to {replaced}"),
        );
        let booted_audit = self.audit_v1(Some(&role.name), &format!("Booted app version {v}"));
        let run = app.run(host, v, &hostname);
        let polls = polls as i64;
        let mut s = vec![
            format!("current=$({})", app.current_running_version()),
            format!(
                "for stale in $({}); do [ \"$stale\" = \"$current\" ] && continue; echo \"{MARK}stale $stale\"; {} >/dev/null 2>&1; done",
                app.list_versions(),
                app.stop("$stale")
            ),
            format!(
                "if [ -n \"$({})\" ]; then echo \"{MARK}renamed {replaced}\"; {rename_audit} && {} || exit {EXIT_RUN}; fi",
                app.container_id_for(v),
                app.rename(v, &replaced)
            ),
            format!("old=$({}); echo \"{MARK}old $old\"", app.current_running_version()),
        ];
        if let Some(assets) = app.extract_and_sync_assets(v) {
            s.push(format!("{{ {assets}; }} >/dev/null || exit {EXIT_RUN}"));
        }
        s.push(format!("{booted_audit} || exit {EXIT_RUN}"));
        if app.uses_cord() {
            s.push(format!("{} || exit {EXIT_RUN}", app.tie_cord()));
        }
        s.push(format!(
            "echo {MARK}run; {run} >/dev/null || exit {EXIT_RUN}"
        ));
        // Healthy, or running without a health check (then the readiness delay, as 1.9).
        s.push(format!(
            "{}; echo {MARK}healthy",
            poll_loop(
                &app.status(v),
                "healthy",
                Some(self.readiness_delay()),
                polls,
                "ready",
                &format!("{} >/dev/null 2>&1", app.stop(v)),
                EXIT_NOT_READY
            )
        ));
        // The old container: its cord is cut so that its health check fails and Traefik drops it, then it
        // is stopped. Cutting comes TRAEFIK_UPDATE_DELAY - UNHEALTHY_AFTER seconds after the new one is
        // healthy, so Traefik still gets at least Kamal's 5 s to route to the new container before the
        // old one can be unhealthy; the 5 s after it is unhealthy stay as they are.
        let mut stop_old = vec![];
        if app.uses_cord() {
            stop_old.push(format!(
                "cord=$({}); if [ -n \"$cord\" ]; then sleep {}; {}; {}; sleep {TRAEFIK_UPDATE_DELAY}; fi",
                app.cord("$old"),
                TRAEFIK_UPDATE_DELAY - UNHEALTHY_AFTER,
                AppV1::cut_cord("\"$cord\""),
                poll_loop(&app.status("$old"), "unhealthy", None, polls, "unhealthy", "true", EXIT_NOT_UNHEALTHY)
            ));
        }
        stop_old.push(format!("{} >/dev/null 2>&1", app.stop("$old")));
        if let Some(cleanup) = app.clean_up_assets(v) {
            stop_old.push(cleanup);
        }
        s.push(format!(
            "if [ -n \"$old\" ]; then echo \"{MARK}stopping $old\"; {}; fi",
            stop_old.join("; ")
        ));
        s.push(format!("echo {MARK}done"));
        let script = s.join("\n");
        let shown = vec![
            (app.list_versions(), false),
            (app.current_running_version(), false),
            (app.container_id_for(v), false),
            (booted_audit.clone(), true),
            (run.clone(), false),
            (app.status(v), false),
        ];
        self.output
            .progress(host, &format!("booting {} {v}", role.name));
        let barrier = &self.barrier;
        let output = &self.output;
        let role_name = role.name.clone();
        let host_s = host.to_string();
        let max_attempts = app.max_attempts();
        let mut on_line = |line: &str| {
            if let Some(rest) = line.strip_prefix(MARK) {
                if rest == "healthy" {
                    output.info("Container is healthy!");
                    if gatekeeper {
                        if barrier.borrow().is_none() {
                            output.info(&format!(
                                "First {role_name} container is healthy on {host_s}, booting any other roles"
                            ));
                        }
                        let _ = barrier.send(Some(true));
                    }
                } else if let Some(retry) = rest.strip_prefix("retry_") {
                    // 1.9's poller messages, at the moments it would have checked again.
                    let mut parts = retry.split_whitespace();
                    let (kind, status, attempt) = (parts.next(), parts.next(), parts.next());
                    let what = if kind == Some("ready") {
                        "ready"
                    } else {
                        "unhealthy"
                    };
                    let attempt = attempt.unwrap_or("?");
                    output.info(&format!(
                        "container not {what} ({}), retrying in {attempt}s (attempt {attempt}/{max_attempts})...",
                        status.unwrap_or("")
                    ));
                } else if let Some(v) = rest.strip_prefix("stale ") {
                    output.info(&format!(
                        "Stopping stale container for role {role_name} with version {v}"
                    ));
                }
            }
        };
        let out = self
            .exec(host, &shown, &script, Stdin::None, &mut on_line)
            .await?;
        let old = marker(&out.stdout, "old")
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty());
        self.set_role(host, &role.name, |r| r.old_version = old.clone());
        if out.success() {
            self.set_role(host, &role.name, |r| r.state = super::RoleState::Live);
            return Ok(());
        }
        let healthy = out.stdout.lines().any(|l| l == format!("{MARK}healthy"));
        if gatekeeper && !healthy {
            let _ = self.barrier.send(Some(false));
        }
        let reason = marker(&out.stdout, "not_ready")
            .map(|st| format!("container not ready ({})", st.trim()))
            .or_else(|| {
                marker(&out.stdout, "not_unhealthy")
                    .map(|st| format!("container not unhealthy ({})", st.trim()))
            });
        let message = match reason {
            Some(r) => format!("Exception while executing on host {host}: {r}"),
            None => self.failed(host, "docker", &out).message,
        };
        if healthy {
            self.set_role(host, &role.name, |r| r.state = super::RoleState::Live);
        } else {
            self.set_role(host, &role.name, |r| {
                r.state = super::RoleState::Failed(message.clone())
            });
            self.output
                .info(&format!("Failed to boot {} on {host}", role.name));
        }
        Err(HostError::new(
            if healthy {
                ErrorKind::CommandFailed
            } else {
                ErrorKind::Healthcheck
            },
            message,
        ))
    }

    async fn tag_and_prune_v1(&self, host: &str) -> std::result::Result<(), HostError> {
        let c = self.config;
        let image = format!("{}:{}", c.repository(), self.version);
        let tag_audit = self.audit_v1(None, &format!("Tagging {image} as the latest image"));
        let tag = format!("docker tag {image} {}:{}", c.repository(), c.latest_tag());
        let mut shown = vec![(tag_audit.clone(), true), (tag.clone(), false)];
        let mut script = vec![tag_audit, tag];
        if !self.options.redeploy {
            let service = c.service();
            let containers = self.audit_v1(None, "Pruned containers");
            let images = self.audit_v1(None, "Pruned images");
            let steps = [
                (containers, true),
                (prune::containers(&service, c.retain_containers()), false),
                (
                    cmd::prune_healthcheck_containers(&self.service_and_destination),
                    false,
                ),
                (images, true),
                (prune::dangling_images(&service), false),
                (
                    prune::tagged_images(&service, &c.repository(), &c.latest_tag()),
                    false,
                ),
            ];
            for (step, debug) in steps {
                shown.push((step.clone(), debug));
                script.push(format!("{{ {step}; }}"));
            }
        }
        self.output.progress(host, "tagging latest");
        let out = self
            .exec(host, &shown, &script.join(" && "), Stdin::None, &mut |_| {})
            .await?;
        if !out.success() {
            return Err(self.failed(host, "docker", &out));
        }
        self.output
            .progress_done(host, &format!("{} live", self.version));
        Ok(())
    }

    /// `kamal env push` (1.9): under the lock, each role's env file on each of its hosts (mode 400) and
    /// Traefik's on its hosts.
    pub(super) async fn env_push_steps(&self) -> Result<()> {
        self.run_hook("pre-connect", &self.sel.hosts, &[], true)
            .await?;
        self.connect_all().await?;
        self.touched.store(true, Ordering::SeqCst);
        self.on_hosts(&self.sel.hosts, |h| async move {
            self.exec_one(h, "mkdir -p .kamal", false).await.map(|_| ())
        })
        .await?;
        self.acquire_lock().await?;
        self.on_hosts(&self.sel.hosts, |h| {
            self.push_env_files(h, self.runs_traefik(h))
        })
        .await?;
        self.output.say("Releasing the deploy lock...");
        self.release_lock().await
    }

    async fn push_env_files(
        &self,
        host: &str,
        traefik: bool,
    ) -> std::result::Result<(), HostError> {
        let mut files: Vec<(String, String)> = Vec::new();
        for role in self.sel.roles_on(self.config, host) {
            let app = self.v1_app(role);
            let values = app
                .app
                .env(host)
                .secret_values(&self.config.secrets)
                .map_err(|e| HostError::new(e.kind, e.message))?;
            files.push((app.env_file_path(), env::env_file_v1(&values)));
        }
        if traefik {
            let values = Traefik {
                config: self.config,
            }
            .env()
            .secret_values(&self.config.secrets)
            .map_err(|e| HostError::new(e.kind, e.message))?;
            files.push((Traefik::env_file_path().into(), env::env_file_v1(&values)));
        }
        let mut shown = Vec::new();
        let mut script = Vec::new();
        let mut stdin = Vec::new();
        for (path, contents) in &files {
            let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
            shown.push((format!("mkdir -p {dir}"), false));
            shown.push((format!("Uploading {path}"), false));
            // Written through stdin (never on a command line), then mode 400 as Kamal's upload.
            script.push(format!(
                "mkdir -p {dir} && rm -f {path} && (umask 277 && head -c {} > {path}) && chmod 400 {path}",
                contents.len()
            ));
            stdin.extend_from_slice(contents.as_bytes());
        }
        let out = self
            .exec(
                host,
                &shown,
                &script.join(" && "),
                Stdin::Bytes(&stdin),
                &mut |_| {},
            )
            .await?;
        if !out.success() {
            return Err(self.failed(host, "mkdir", &out));
        }
        Ok(())
    }
}

/// A shell loop that checks `status` every POLL seconds until it prints `target` (or, with a readiness
/// delay, `running`: a container without a health check, then the delay), for at most `polls` checks
/// (1.9's total budget). At the moments 1.9's poller would have checked again (after 1, 1+2, 1+2+3...
/// seconds) it prints a `retry_<what> <status> <attempt>` marker, so the log keeps 1.9's messages; when
/// the budget is spent, `timeout_<what> <status>`, then `on_timeout`, then exit `code`.
fn poll_loop(
    status: &str,
    target: &str,
    readiness_delay: Option<i64>,
    polls: i64,
    what: &str,
    on_timeout: &str,
    code: i32,
) -> String {
    let per_second = (1.0 / POLL) as i64;
    let running = readiness_delay
        .map(|d| format!(" [ \"$st\" = running ] && {{ sleep {d}; break; }};"))
        .unwrap_or_default();
    format!(
        "i=0; k=1; next={per_second}; while :; do st=$({status}); [ \"$st\" = {target} ] && break;{running} i=$((i+1)); \
         [ $i -ge {polls} ] && {{ echo \"{MARK}timeout_{what} $st\"; {on_timeout}; exit {code}; }}; \
         [ $i -eq $next ] && {{ echo \"{MARK}retry_{what} $st $k\"; k=$((k+1)); next=$((next+{per_second}*k)); }}; sleep {POLL}; done"
    )
}
