//! Kamal's `ssh:` settings (`lib/kamal/configuration/ssh.rb`, Kamal 2.12.0) as the `ssh_config` kamal_rs's
//! connections use, so OpenSSH itself applies them as `ssh` would.
//!
//! Every value is checked before it is written: one that could add a directive (a newline), change an
//! option (a host starting with `-`), expand to something else (`%` tokens, `${...}`) or is simply not
//! what the key means is refused, naming the key, before anything runs. Net::SSH takes these values as
//! data; in an `ssh_config` they would be syntax.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::value::Value;

#[derive(Debug, Clone)]
pub struct SshSettings {
    pub user: String,
    pub port: u16,
    pub keys: Vec<String>,
    pub keys_only: bool,
    /// `ssh.proxy`: a jump host (`[user@]host[:port]`).
    pub jump: Option<String>,
    /// `ssh.proxy_command`: a command, as Kamal runs it (Net::SSH's `Proxy::Command`).
    pub proxy_command: Option<String>,
    pub log_level: String,
    pub forward_agent: bool,
    /// Config files to read after kamal_rs's own settings (`ssh.config`; default: the user's and the system's).
    pub config_files: Vec<String>,
    /// How often a silent connection is probed, and how many probes may go unanswered.
    pub keepalive: (Duration, u32),
}

/// A host kamal_rs may connect to: `[user@]name` where the name is a host name, an IPv4 address or an
/// IPv6 address (bare or in brackets); nothing ssh could read as an option or a token.
pub fn valid_host(host: &str) -> bool {
    let (user, name) = match host.rsplit_once('@') {
        Some((u, n)) => (Some(u), n),
        None => (None, host),
    };
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        ipv6(inner)
    } else {
        (!name.is_empty()
            && !name.starts_with(['-', '.'])
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
            || ipv6(name)
    };
    name_ok && user.is_none_or(valid_user)
}

fn ipv6(s: &str) -> bool {
    s.contains(':')
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

/// A login name: letters, digits, `.`, `_`, `-` (not first), as POSIX portable names (and `\` for a
/// Windows domain user, which OpenSSH's server takes).
fn valid_user(user: &str) -> bool {
    !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-\\".contains(c))
}

/// `value` as Ruby's `inspect` shows it: newlines and quotes visible in the error.
fn inspect(value: &str) -> String {
    format!("{value:?}")
}

fn no_control_chars(key: &str, value: &str) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(Error::config(format!(
            "ssh/{key}: {} contains a control character (a newline would start another ssh_config directive)",
            inspect(value)
        )));
    }
    Ok(())
}

/// A path written into the ssh_config: quoted, with `%` kept literal; `"` and `${` cannot be.
fn valid_path(key: &str, path: &str) -> Result<String> {
    no_control_chars(key, path)?;
    if path.contains('"') || path.contains("${") {
        return Err(Error::config(format!(
            "ssh/{key}: {} is not a usable path (it contains `\"` or `${{`)",
            inspect(path)
        )));
    }
    Ok(path.replace('%', "%%"))
}

impl SshSettings {
    /// From the `ssh:` section, every value checked.
    pub fn from_config(ssh: Option<&Value>) -> Result<SshSettings> {
        let cfg = ssh.and_then(Value::as_map).cloned().unwrap_or_default();
        let get = |k: &str| cfg.get(k).filter(|v| !v.is_nil());
        let strings = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::Seq(items)) => items.iter().map(Value::to_ruby_s).collect(),
                Some(v) if !v.is_nil() => vec![v.to_ruby_s()],
                _ => Vec::new(),
            }
        };
        let home = std::env::var("HOME").unwrap_or_default();
        let user = get("user")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "root".into());
        if !valid_user(&user) {
            return Err(Error::config(format!(
                "ssh/user: {} is not a user name (letters, digits, '.', '_' and '-')",
                inspect(&user)
            )));
        }
        let port = get("port")
            .map(Value::to_ruby_s)
            .unwrap_or_else(|| "22".into());
        let port: u16 = port.trim().parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            Error::config(format!("ssh/port: {} is not a port number", inspect(&port)))
        })?;
        let keys = strings(get("keys"))
            .into_iter()
            .map(|k| valid_path("keys", &expand_home(&k, &home)))
            .collect::<Result<Vec<_>>>()?;
        let jump = get("proxy")
            .map(Value::to_ruby_s)
            .map(jump_host)
            .transpose()?;
        let proxy_command = get("proxy_command").map(Value::to_ruby_s);
        if let Some(command) = &proxy_command {
            // A command by design (Kamal runs it too); it still may not add directives.
            no_control_chars("proxy_command", command)?;
        }
        let config_files = match get("config") {
            None | Some(Value::Bool(true)) => {
                vec![format!("{home}/.ssh/config"), "/etc/ssh/ssh_config".into()]
            }
            Some(Value::Bool(false)) => Vec::new(),
            other => strings(other),
        }
        .into_iter()
        .map(|f| valid_path("config", &expand_home(&f, &home)))
        .collect::<Result<Vec<_>>>()?;
        Ok(SshSettings {
            user,
            port,
            keys,
            keys_only: get("keys_only").is_some_and(Value::truthy),
            jump,
            proxy_command,
            log_level: get("log_level")
                .map(Value::to_ruby_s)
                .unwrap_or_else(|| "fatal".into()),
            forward_agent: get("forward_agent").is_some_and(Value::truthy),
            config_files,
            keepalive: (Duration::from_secs(5), 3),
        })
    }

    /// The `ssh_config` text. First values win in ssh_config, so Kamal's own settings come before the
    /// user's files, as Net::SSH lets explicit options win.
    pub fn ssh_config(&self) -> String {
        let mut c = String::new();
        if let Some(jump) = &self.jump {
            // The jump host itself is reached directly: `Host *` below would send its connection
            // through itself (Net::SSH's Proxy::Jump applies to the target alone).
            c.push_str(&format!("Host {}\n  ProxyJump none\n", jump_hostname(jump)));
        }
        c.push_str("Host *\n");
        c.push_str(&format!("  User {}\n  Port {}\n", self.user, self.port));
        for key in &self.keys {
            c.push_str(&format!("  IdentityFile \"{key}\"\n"));
        }
        if self.keys_only {
            c.push_str("  IdentitiesOnly yes\n");
        }
        if let Some(jump) = &self.jump {
            c.push_str(&format!("  ProxyJump {jump}\n"));
        }
        if let Some(cmd) = &self.proxy_command {
            c.push_str(&format!("  ProxyCommand {cmd}\n"));
        }
        // ERROR (not Kamal's `fatal`): the master's own message is the reason a connection failed.
        let level = match self.log_level.to_ascii_lowercase().as_str() {
            "debug" => "DEBUG",
            "info" => "INFO",
            _ => "ERROR",
        };
        c.push_str(&format!("  LogLevel {level}\n"));
        if self.forward_agent {
            c.push_str("  ForwardAgent yes\n");
        }
        // A host that stops answering is noticed within a few probes, not TCP's minutes.
        let (interval, count) = self.keepalive;
        c.push_str(&format!(
            "  ServerAliveInterval {}\n  ServerAliveCountMax {count}\n  BatchMode yes\n",
            interval.as_secs()
        ));
        for file in &self.config_files {
            if Path::new(&file.replace("%%", "%")).exists() {
                c.push_str(&format!("  Include \"{file}\"\n"));
            }
        }
        c
    }
}

/// `ssh.proxy`: `[user@]host[:port]`, `root@` added when no user is given (as Kamal does).
fn jump_host(proxy: String) -> Result<String> {
    let bad = || {
        Error::config(format!(
            "ssh/proxy: {} is not a jump host ([user@]host[:port])",
            inspect(&proxy)
        ))
    };
    let with_user = if proxy.contains('@') {
        proxy.clone()
    } else {
        format!("root@{proxy}")
    };
    let (host, port) = match with_user.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (with_user.as_str(), None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid_host(host) || !port_ok {
        return Err(bad());
    }
    Ok(with_user)
}

/// The host name of a jump host `[user@]host[:port]` (`[addr]:port` for IPv6), as ssh_config's
/// `Host` matches it.
fn jump_hostname(jump: &str) -> &str {
    let host = jump.rsplit_once('@').map_or(jump, |(_, h)| h);
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.matches(':').count() {
        1 => host.split(':').next().unwrap_or(host),
        _ => host,
    }
}

fn expand_home(path: &str, home: &str) -> String {
    match path.strip_prefix("~/") {
        Some(rest) => format!("{home}/{rest}"),
        None => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::value;
    use serde_json::json;

    fn settings(ssh: serde_json::Value) -> Result<SshSettings> {
        SshSettings::from_config(Some(&value(&ssh)))
    }

    #[test]
    fn injected_directives_are_refused_naming_the_key() {
        let e = settings(json!({"user": "root\n  ProxyCommand sh -c 'id > /tmp/x'"})).unwrap_err();
        assert_eq!(
            e.message,
            "ssh/user: \"root\\n  ProxyCommand sh -c 'id > /tmp/x'\" is not a user name (letters, digits, '.', '_' and '-')"
        );
        for (ssh, key) in [
            (json!({"user": "-oProxyCommand=id"}), "ssh/user"),
            (json!({"user": "a b"}), "ssh/user"),
            (json!({"port": "22\n  ProxyCommand id"}), "ssh/port"),
            (json!({"port": 0}), "ssh/port"),
            (
                json!({"keys": ["~/.ssh/id\"\n  ProxyCommand id"]}),
                "ssh/keys",
            ),
            (json!({"keys": ["${HOME}/.ssh/id"]}), "ssh/keys"),
            (json!({"proxy": "bastion\n  LocalCommand id"}), "ssh/proxy"),
            (json!({"proxy": "-oProxyCommand=id"}), "ssh/proxy"),
            (json!({"proxy": "bastion %h"}), "ssh/proxy"),
            (
                json!({"proxy_command": "nc %h %p\n  LocalCommand id"}),
                "ssh/proxy_command",
            ),
            (json!({"config": "/tmp/x\"\nProxyCommand id"}), "ssh/config"),
        ] {
            let e = settings(ssh.clone()).unwrap_err();
            assert!(
                e.message.starts_with(&format!("{key}: ")),
                "{ssh}: {}",
                e.message
            );
        }
    }

    #[test]
    fn usual_values_pass_and_are_written_literally() {
        let s = settings(json!({"user": "deploy", "port": 2222, "keys": ["/keys/100%.pem"],
                                 "proxy": "bastion.example.com:2200", "proxy_command": "ssh -W %h:%p jump",
                                 "config": false}))
        .unwrap();
        let text = s.ssh_config();
        assert!(text.contains("  User deploy\n  Port 2222\n"));
        assert!(text.contains("  IdentityFile \"/keys/100%%.pem\"\n"));
        assert!(text.contains("  ProxyJump root@bastion.example.com:2200\n"));
        assert!(
            text.starts_with("Host bastion.example.com\n  ProxyJump none\nHost *\n"),
            "the jump host is reached directly: {text}"
        );
        assert_eq!(jump_hostname("root@[2001:db8::1]:22"), "2001:db8::1");
        assert_eq!(jump_hostname("deploy@10.0.0.9"), "10.0.0.9");
        assert_eq!(jump_hostname("root@2001:db8::1"), "2001:db8::1");
        assert!(text.contains("  ProxyCommand ssh -W %h:%p jump\n"));
        assert!(text.contains("  LogLevel ERROR\n"));
        assert!(text.contains("  ServerAliveInterval 5\n  ServerAliveCountMax 3\n"));
        assert!(settings(json!({"proxy": "app@[2001:db8::1]:22"})).is_ok());
    }

    #[test]
    fn hosts() {
        for ok in [
            "10.0.0.1",
            "web-1.example.com",
            "deploy@10.0.0.1",
            "2001:db8::1",
            "[2001:db8::1]",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "-oProxyCommand=id",
            "a b",
            "host\nProxyCommand id",
            "%h",
            "",
            "x@",
            "@x",
            "a;b",
            ".x",
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }
}
