//! `deploy` / `redeploy` of a Kamal 1.x config with Kamal 1.9.3's steps (`lib/kamal/cli/main.rb`,
//! tag v1.9.3): registry login, build or pull, the lock, Traefik (deploy), stale containers, the boots
//! in groups, tag and prune (deploy), the lock released. `redeploy` skips the registry login, the
//! Traefik boot and the prune. The steps are in `steps/v1/`.

use std::sync::atomic::Ordering;

use super::groups;
use super::run::Run;
use super::steps::build::Build;
use super::steps::lock;
use super::steps::v1::{boot, pull, runs_traefik, say_start, say_why_v1, tag_all};
use crate::error::Result;
use crate::output::timeline::Phase;

/// The steps of Kamal 1.9's `deploy` (`redeploy`).
pub async fn deploy(run: &Run<'_>) -> Result<()> {
    let deploy = run.options.boots_proxy();
    say_why_v1(&run.shell());
    run.hook("pre-connect", &run.sel.hosts, &[], true).await?;
    if deploy {
        // Locally (unless -P), then on every host with the pull.
        run.io.output.say("Log into image registry...");
        if !run.options.skip_push {
            Build::new(run.hook_context()).login_locally().await?;
        }
    }
    if run.options.skip_push {
        run.connect_all().await?;
        run.shell().header(Phase::Pull);
    } else {
        run.shell()
            .say_step(Phase::Pull, "Build and push app image...");
        let build = Build::new(run.hook_context());
        let (built, connected) = tokio::join!(build.push(), run.connect_all());
        built?;
        connected?;
    }
    run.io.touched.store(true, Ordering::SeqCst);
    pull::pull_all(run).await?;
    run.io.checkpoint()?;
    lock::acquire_on_primary(&run.shell(), &run.lock).await?;
    run.hook("pre-deploy", &run.sel.hosts, &[], true).await?;
    if deploy {
        run.shell().header(Phase::Proxy);
        let hosts: Vec<String> = run
            .sel
            .hosts
            .iter()
            .filter(|h| runs_traefik(run, h))
            .cloned()
            .collect();
        let sh = run.shell();
        run.io
            .on_hosts(&hosts, |h| boot::boot_traefik(&sh, h))
            .await?;
    }
    run.shell().header(Phase::Stale);
    say_start(&run.shell());
    groups::in_groups(run).await?;
    run.io.checkpoint()?;
    if deploy {
        run.shell().header(Phase::Prune);
    }
    tag_all(&run.shell()).await?;
    lock::release(&run.shell(), &run.lock).await
}
