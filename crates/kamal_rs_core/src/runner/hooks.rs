//! Local hooks (`.kamal/hooks/<name>`), run as Kamal 2 runs them: only if the file exists, not with
//! `-H`, with the `KAMAL_*` environment (and the secrets, for pre-connect / pre-deploy / post-deploy).

use std::path::Path;

use crate::error::{Error, ErrorKind, Result};
use crate::output::{Output, Verbosity};

/// `hooks_output` for a hook: `Some("verbose")`, `Some("quiet")` or `None` (follow -q/-v).
pub type Visibility = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub struct Hooks {
    pub path: String,
    pub skip: bool,
    /// `hooks_output`: `Some("verbose")`/`Some("quiet")` globally or per hook.
    pub visibility: Visibility,
}

impl Hooks {
    pub fn exists(&self, name: &str) -> bool {
        !self.skip && Path::new(&self.path).join(name).is_file()
    }

    /// Runs the hook; a cancellation kills it (as Ctrl-C in a terminal would) and fails the step.
    pub async fn run(
        &self,
        name: &str,
        env: &[(String, String)],
        out: &Output,
        cancel: &super::Cancel,
    ) -> Result<()> {
        if !self.exists(name) {
            return Ok(());
        }
        let file = format!("{}/{name}", self.path);
        let child = tokio::process::Command::new(&file)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::select! {
            r = child => r.map_err(|e| Error::new(ErrorKind::Hook, format!("Hook `{name}` failed:\n{file}: {e}")))?,
            _ = cancel.cancelled() => {
                return Err(Error::new(ErrorKind::Interrupted, format!("Interrupted while running the {name} hook")))
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let show = match out.verbosity() {
            Verbosity::Verbose => true,
            Verbosity::Quiet => false,
            Verbosity::Normal => (self.visibility)(name).as_deref() == Some("verbose"),
        };
        if show {
            for line in stdout.lines().chain(stderr.lines()) {
                out.plain(&format!("  {line}"));
            }
        }
        if output.status.success() {
            return Ok(());
        }
        let written = |s: &str| {
            if s.trim().is_empty() {
                "Nothing written".to_string()
            } else {
                s.trim().to_string()
            }
        };
        Err(Error::new(
            ErrorKind::Hook,
            format!(
                "Hook `{name}` failed:\n{file} exit status: {}\n{file} stdout: {}\n{file} stderr: {}",
                output.status.code().unwrap_or(1),
                written(&stdout),
                written(&stderr)
            ),
        ))
    }
}
