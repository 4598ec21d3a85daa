//! `kamal env push` (`lib/kamal/cli/env.rb`, tag v1.9.3): under the lock, each role's env file on each of
//! its hosts and Traefik's on its hosts, mode 400. Written through stdin (never on a command line).

use std::sync::atomic::Ordering;

use super::steps::v1::{app, runs_traefik, say_why_v1};
use crate::commands::server;
use crate::commands::v1::Traefik;
use crate::config::env;
use crate::error::Result;
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::run::Run;
use crate::runner::script::{ensure_run_directory, Script, Shown};
use crate::runner::steps::lock;

pub async fn run(run: &Run<'_>) -> Result<()> {
    say_why_v1(&run.shell());
    run.hook("pre-connect", &run.sel.hosts, &[], true).await?;
    run.connect_all().await?;
    run.io.touched.store(true, Ordering::SeqCst);
    run.io
        .on_hosts(&run.sel.hosts, |h| async move {
            run.shell()
                .exec(h, &ensure_run_directory(Phase::Env), &mut |_| {})
                .await
                .map(|_| ())
        })
        .await?;
    lock::acquire_on_primary(&run.shell(), &run.lock).await?;
    run.io.on_hosts(&run.sel.hosts, |h| push(run, h)).await?;
    lock::release(&run.shell(), &run.lock).await
}

/// The env files of one host: (path, contents).
fn files(run: &Run<'_>, host: &str) -> std::result::Result<Vec<(String, String)>, HostError> {
    let mut files = Vec::new();
    for role in run.roles_on(host) {
        let app = app(run, role);
        let values = app.app.env(host).secret_values(&run.config.secrets)?;
        files.push((app.env_file_path(), env::env_file_v1(&values)));
    }
    if runs_traefik(run, host) {
        let traefik = Traefik { config: run.config };
        let values = traefik.env().secret_values(&run.config.secrets)?;
        files.push((Traefik::env_file_path().into(), env::env_file_v1(&values)));
    }
    Ok(files)
}

fn script(files: &[(String, String)]) -> Script {
    let mut s = Script::new();
    for (path, contents) in files {
        let dir = server::parent_directory(path);
        s.run(
            Shown::info(Phase::Env, format!("mkdir -p {dir}")),
            &server::ensure_directory(dir),
        );
        // Mode 400, as Kamal's upload.
        s.run(
            Shown::upload(Phase::Env, path),
            &format!(
                "rm -f {path} && (umask 277 && head -c {} > {path}) && chmod 400 {path}",
                contents.len()
            ),
        );
        s.feed(contents.as_bytes());
    }
    s.chain()
}

async fn push(run: &Run<'_>, host: &str) -> std::result::Result<(), HostError> {
    let out = run
        .shell()
        .exec(host, &script(&files(run, host)?), &mut |_| {})
        .await?;
    if !out.success() {
        return Err(HostError::command_failed(host, "mkdir", &out));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::steps::tests::sh_n;

    #[test]
    fn env_files_go_through_stdin() {
        let s = script(&[
            (".kamal/env/roles/app-web.env".into(), "SECRET=x\n".into()),
            (".kamal/env/traefik/traefik.env".into(), "\n".into()),
        ]);
        assert_eq!(
            crate::runner::script::unmarked(&s.text()),
            "mkdir -p .kamal/env/roles && rm -f .kamal/env/roles/app-web.env && (umask 277 && head -c 9 > .kamal/env/roles/app-web.env) && chmod 400 .kamal/env/roles/app-web.env && mkdir -p .kamal/env/traefik && rm -f .kamal/env/traefik/traefik.env && (umask 277 && head -c 1 > .kamal/env/traefik/traefik.env) && chmod 400 .kamal/env/traefik/traefik.env"
        );
        assert_eq!(s.stdin(), b"SECRET=x\n\n");
        assert!(
            !s.text().contains("SECRET=x"),
            "secrets never on a command line"
        );
        sh_n(&s.text());
    }
}
