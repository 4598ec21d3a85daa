//! Every secret a run will look up, looked up before any host is touched. Kamal looks each one up when
//! a step first needs it (`docker login`, a build's secrets, a role's env file, a TLS certificate) and
//! stops there with `Secret 'X' not found in ...`, possibly after other hosts changed; kamal-rs stops
//! with the same error before the first of them.

use super::boot::tls_certificates;
use crate::commands::app::App;
use crate::config::KamalMajor;
use crate::error::Result;
use crate::runner::options::Command;
use crate::runner::shell::Shell;

pub fn check(sh: &Shell<'_, '_>) -> Result<()> {
    // The registry's first: Kamal's first lookup is its `docker login`.
    sh.credentials()?;
    if sh.config.major != KamalMajor::V2 {
        return Ok(());
    }
    if !sh.options.skip_push && sh.options.command != Command::Rollback {
        for name in sh.config.builder().secrets() {
            sh.config.secrets.get(&name)?;
        }
    }
    for host in &sh.sel.app_hosts {
        for role in sh.roles_on(host) {
            let app = App::new(sh.config, role);
            app.env(host).secret_values(&sh.config.secrets)?;
            tls_certificates(sh, &app)?;
        }
    }
    Ok(())
}
