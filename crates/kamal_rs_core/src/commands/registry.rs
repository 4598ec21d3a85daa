//! `docker login` for the app's registry (none for a local `localhost:<port>` registry).

use crate::shell::escape_shell_value;

pub fn login(server: Option<&str>, username: &str, password: &str) -> String {
    let mut cmd = String::from("docker login");
    if let Some(server) = server {
        cmd.push(' ');
        cmd.push_str(server);
    }
    format!(
        "{cmd} -u {} -p {}",
        escape_shell_value(username),
        escape_shell_value(password)
    )
}

/// The same line as Kamal logs it.
pub fn login_redacted(server: Option<&str>) -> String {
    match server {
        Some(s) => format!("docker login {s} -u [REDACTED] -p [REDACTED]"),
        None => "docker login -u [REDACTED] -p [REDACTED]".into(),
    }
}
