//! A rollback's check that a host still has the version it goes back to (Kamal 2.12's
//! `container_available?`, `lib/kamal/cli/main.rb`): each of its roles has a container of that version
//! (`docker container ls --all --filter 'name=^S-R[-D]-V$' --quiet`). In the host's first script
//! (`in_script`) or as a command of its own (`check`).

use crate::commands::app::App;
use crate::commands::v1::AppV1;
use crate::config::{KamalMajor, Role};
use crate::error::ErrorKind;
use crate::output::timeline::Phase;
use crate::runner::failure::HostError;
use crate::runner::run::Plan;
use crate::runner::script::{Exit, Mark, Script, Shown};
use crate::runner::shell::Shell;

/// What a host without the version says, as Kamal's `container_available?` raises it.
pub const NOT_FOUND: &str = "Container not found";

pub fn not_found(host: &str) -> HostError {
    HostError::on_host(ErrorKind::Runtime, host, NOT_FOUND)
}

/// One host's check, in a command of its own.
pub async fn check(sh: &Shell<'_, '_>, host: &str) -> std::result::Result<(), HostError> {
    let s = available_script(sh, host, false);
    let out = sh.exec(host, &s, &mut |_| {}).await?;
    if Mark::Missing.seen(&out.stdout) {
        return Err(not_found(host));
    }
    Ok(())
}

/// The check as a part of the host's first script: a role without the version ends it with
/// `Exit::Unavailable`, before anything changed on the host.
pub fn in_script(sh: &Plan<'_>, host: &str) -> Script {
    available_script(sh, host, true)
}

/// Each of the host's roles has a container of the version, or the script says which has none (and,
/// `stop`, exits there).
fn available_script(sh: &Plan<'_>, host: &str, stop: bool) -> Script {
    let mut s = Script::new();
    for role in sh.roles_on(host) {
        let find = container_id_for(sh, role, &sh.version);
        let missing = Mark::Missing.echo_with(&role.name);
        let found = s.marked(Shown::info(Phase::Check, &find), &format!("c=$({find})"));
        let on_missing = if stop {
            format!("{{ {missing}; {}; }}", Exit::Unavailable.exit())
        } else {
            missing
        };
        s.line(format!("{found}; [ -n \"$c\" ] || {on_missing}"));
    }
    s
}

/// `container_id_for_version`, with 1.9's unquoted filter for 1.x configs.
fn container_id_for(sh: &Plan<'_>, role: &Role, version: &str) -> String {
    match sh.config.major {
        KamalMajor::V1 => AppV1::new(sh.config, role, &sh.run_id).container_id_for(version),
        KamalMajor::V2 => App::new(sh.config, role).container_id_for(version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::options::{Command, DeployOptions};
    use crate::runner::run::Run;
    use crate::runner::steps::tests::{golden_config, sh_n};
    use crate::runner::steps::v1::tests::v1_config;

    fn rollback() -> DeployOptions {
        DeployOptions {
            command: Command::Rollback,
            ..DeployOptions::default()
        }
    }

    #[test]
    fn availability_is_kamals_container_id_for_each_role() {
        let c = golden_config();
        let run = Run::for_test(&c, rollback());
        let s = available_script(&run, "10.0.0.1", false);
        assert_eq!(
            s.shown[0].command,
            "docker container ls --all --filter 'name=^app-web-staging-v2$' --quiet"
        );
        assert!(s.text().contains(&Mark::Missing.echo_with("web")));
        sh_n(&s.text());
        let c = v1_config();
        let run = Run::for_test(&c, rollback());
        let s = available_script(&run, "10.0.0.3", false);
        assert_eq!(
            s.shown[0].command,
            "docker container ls --all --filter name=^app-workers-v2$ --quiet"
        );
    }
}
