//! The readiness wait of a role without kamal-proxy (`lib/kamal/cli/healthcheck/poller.rb`, Kamal
//! 2.12.0): its container's health (or state) polled until `deploy_timeout`, with the
//! `readiness_delay` for a container that has no health check.

use std::time::{Duration, Instant};

use crate::commands::app::App;
use crate::error::ErrorKind;
use crate::output::timeline::{Phase, Status};
use crate::runner::failure::HostError;
use crate::runner::script::{Script, Shown};
use crate::runner::shell::Shell;

pub async fn wait_until_ready(
    sh: &Shell<'_, '_>,
    host: &str,
    app: &App<'_>,
) -> std::result::Result<(), HostError> {
    let timeouts = sh.config.timeouts();
    let (timeout, delay) = (
        timeouts.deploy_timeout.max(0) as u64,
        timeouts.readiness_delay.max(0) as u64,
    );
    let since = Instant::now();
    let result = poll(
        sh,
        host,
        app,
        since + Duration::from_secs(timeout),
        timeout,
        delay,
    )
    .await;
    let status = if result.is_ok() {
        Status::Ok
    } else {
        Status::Failed
    };
    let role = Some(app.role.name.as_str());
    sh.io
        .timeline
        .record(host, role, Phase::Health, since, Instant::now(), status);
    result
}

/// Polls until ready, or `deadline`.
async fn poll(
    sh: &Shell<'_, '_>,
    host: &str,
    app: &App<'_>,
    deadline: Instant,
    timeout: u64,
    delay: u64,
) -> std::result::Result<(), HostError> {
    // Each check is logged; the step is the whole wait (recorded by the caller).
    let status_cmd = Script::command(Shown::info(Phase::Other, app.status(&sh.version)));
    let status = || async {
        let out = sh.exec(host, &status_cmd, &mut |_| {}).await?;
        Ok::<String, HostError>(out.stdout.trim().to_string())
    };
    let interrupted = || HostError::new(ErrorKind::Interrupted, "Interrupted");
    let mut attempt = 0u64;
    loop {
        let s = status().await?;
        if s == "healthy" {
            break;
        }
        if s == "running" && delay > 0 {
            sh.io.output.info(&format!(
                "Container is running, waiting for readiness delay of {delay} seconds"
            ));
            sh.io.output.progress(
                host,
                &format!("waiting {delay} s for {} to be ready", app.role.name),
            );
            if !sh.io.cancel.sleep(Duration::from_secs(delay)).await {
                return Err(interrupted());
            }
            let s = status().await?;
            if s == "running" || s == "healthy" {
                break;
            }
        } else if s == "running" {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HostError::on_host(
                ErrorKind::Healthcheck,
                host,
                format!("container not ready after {timeout} seconds ({s})"),
            ));
        }
        attempt += 1;
        if !sh
            .io
            .cancel
            .sleep(left.min(Duration::from_secs(attempt)))
            .await
        {
            return Err(interrupted());
        }
    }
    sh.io.output.info("Container is healthy!");
    Ok(())
}
