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
/// docker writes the file indented, the `"auth"` line right after the registry's own: the file is
/// read line by line with the shell's `read`, so the check starts no process (a fleet pays each
/// process once per host).
pub fn login_unless_logged_in(server: Option<&str>, username: &str, password: &str) -> String {
    use base64::Engine;
    let Some(server) = server else {
        return login(None, username, password);
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!(
        "{{ kamal_rs_auth=; p=; [ ! -r ~/.docker/config.json ] || while IFS= read -r l; do case \"$p $l\" in *'\"{server}\": {{'*'\"auth\": \"{auth}\"'*) kamal_rs_auth=1; break;; esac; p=$l; done <~/.docker/config.json; [ -n \"$kamal_rs_auth\" ] || {}; }}",
        login(Some(server), username, password)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::StandInDocker;

    /// The check run by `sh` and by `bash`, `docker` a stand-in that says it was called.
    #[test]
    fn login_is_skipped_only_for_the_same_credentials_on_the_same_registry() {
        let docker = StandInDocker::new("login", "#!/bin/sh\necho \"docker $1 $2\"\n");
        std::fs::create_dir_all(docker.dir.join(".docker")).unwrap();
        // As docker writes it ("user:pass" is dXNlcjpwYXNz).
        let config = |server: &str, auth: &str| {
            format!("{{\n\t\"auths\": {{\n\t\t\"{server}\": {{\n\t\t\t\"auth\": \"{auth}\"\n\t\t}}\n\t}}\n}}")
        };
        let cases = [
            (None, true),
            (Some(config("registry.example.com", "dXNlcjpwYXNz")), false),
            (
                Some(config("registry.example.com", "b3RoZXI6cGFzcw==")),
                true,
            ),
            (Some(config("other.example.com", "dXNlcjpwYXNz")), true),
            (Some(String::new()), true),
        ];
        let check = login_unless_logged_in(Some("registry.example.com"), "user", "pass");
        for shell in ["sh", "bash"] {
            for (file, logs_in) in &cases {
                let path = docker.dir.join(".docker/config.json");
                match file {
                    Some(text) => std::fs::write(&path, text).unwrap(),
                    None => std::fs::remove_file(&path).unwrap_or(()),
                }
                let (_, stdout) = docker.run(shell, &format!("{check} && echo ok"), b"");
                let expected = if *logs_in {
                    "docker login registry.example.com\nok\n"
                } else {
                    "ok\n"
                };
                assert_eq!(stdout, expected, "{shell}, {file:?}");
            }
        }
    }
}
