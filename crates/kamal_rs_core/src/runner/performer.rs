//! Who deploys, and when: the performer of audit lines and hooks, the lock's holder, time stamps and
//! random names. Fixed in unit tests, so rendered scripts compare with golden strings.

use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::config::random_hex;

/// Kamal's performer (`git config user.email`, else the login name) and the lock's holder (`git config
/// user.name`), looked up on a thread of their own so that starting git does not delay the first SSH
/// connections.
pub struct Performer {
    names: OnceLock<(String, String)>,
    lookup: Mutex<Option<JoinHandle<(String, String)>>>,
}

impl Performer {
    pub fn spawn() -> Performer {
        Performer {
            names: OnceLock::new(),
            lookup: Mutex::new(Some(std::thread::spawn(|| {
                let email = git_config("user.email").or_else(login_name);
                (
                    email.unwrap_or_else(|| "unknown".into()),
                    git_config("user.name").unwrap_or_else(|| "Unknown".into()),
                )
            }))),
        }
    }

    #[cfg(test)]
    pub fn fixed(performer: &str, user_name: &str) -> Performer {
        let p = Performer {
            names: OnceLock::new(),
            lookup: Mutex::new(None),
        };
        let _ = p.names.set((performer.into(), user_name.into()));
        p
    }

    fn names(&self) -> &(String, String) {
        self.names.get_or_init(|| {
            self.lookup
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_else(|| ("unknown".into(), "Unknown".into()))
        })
    }

    /// Audit lines' performer and hooks' `KAMAL_PERFORMER`.
    pub fn get(&self) -> &str {
        &self.names().0
    }

    /// Who the lock says holds it.
    pub fn user_name(&self) -> &str {
        &self.names().1
    }
}

fn login_name() -> Option<String> {
    std::process::Command::new("whoami")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn git_config(key: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", key])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// Time stamps (`2024-05-01T12:00:00Z`) and random hex names (container hostnames, rename suffixes).
pub enum Clock {
    System,
    /// Unit tests: this time, and `0123456789abcdef...` as the random part.
    #[cfg(test)]
    Fixed(&'static str),
}

impl Clock {
    pub fn now(&self) -> String {
        match self {
            Clock::System => crate::time::now(),
            #[cfg(test)]
            Clock::Fixed(at) => at.to_string(),
        }
    }

    /// `bytes` random bytes as hex.
    pub fn hex(&self, bytes: usize) -> String {
        match self {
            Clock::System => random_hex(bytes),
            #[cfg(test)]
            Clock::Fixed(_) => "0123456789abcdef".repeat(bytes / 8 + 1)[..bytes * 2].to_string(),
        }
    }
}
