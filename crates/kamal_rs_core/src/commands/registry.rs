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

/// `docker login`, skipped when the host's `~/.docker/config.json` already holds these exact
/// credentials for this registry (the end state is the same; it saves the registry round trips).
pub fn login_unless_logged_in(server: Option<&str>, username: &str, password: &str) -> String {
    use base64::Engine;
    let Some(server) = server else {
        return login(None, username, password);
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!(
        "grep -A1 -F '\"{server}\": {{' ~/.docker/config.json 2>/dev/null | grep -qF '\"auth\": \"{auth}\"' || {}",
        login(Some(server), username, password)
    )
}
