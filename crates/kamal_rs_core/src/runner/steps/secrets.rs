//! Every secret a run will look up, looked up before any host is touched. Kamal looks each one up when
//! a step first needs it (`docker login`, a build's secrets, a role's env file, a TLS certificate) and
//! stops there with `Secret 'X' not found in ...`, possibly after other hosts changed; kamal-rs stops
//! with the same error before the first of them.

use super::boot::tls_certificates;
use crate::commands::app::App;
use crate::config::KamalMajor;
use crate::error::Result;
use crate::runner::options::Command;
use crate::runner::run::Run;

pub fn check(run: &Run<'_>) -> Result<()> {
    // The registry's first: Kamal's first lookup is its `docker login`.
    run.credentials()?;
    if run.config.major != KamalMajor::V2 {
        return Ok(());
    }
    if !run.options.skip_push && run.options.command != Command::Rollback {
        for name in run.config.builder().secrets() {
            run.config.secrets.get(&name)?;
        }
    }
    for host in &run.sel.app_hosts {
        for role in run.roles_on(host) {
            let app = App::new(run.config, role);
            app.env(host).secret_values(&run.config.secrets)?;
            tls_certificates(run, &app)?;
        }
    }
    Ok(())
}
