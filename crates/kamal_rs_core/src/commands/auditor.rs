//! The audit log: one appended line per recorded action, `.kamal/S[-D]-audit.log`.

use crate::shell::escape_shell_value;

pub struct Auditor<'a> {
    pub service_and_destination: &'a str,
    pub destination: Option<&'a str>,
    pub performer: &'a str,
}

impl Auditor<'_> {
    pub fn path(&self) -> String {
        format!(".kamal/{}-audit.log", self.service_and_destination)
    }

    /// `[time] [performer][ [destination]][ [role]] message`.
    pub fn line(&self, recorded_at: &str, role: Option<&str>, message: &str) -> String {
        let mut tags = format!("[{recorded_at}] [{}]", self.performer);
        if let Some(d) = self.destination {
            tags.push_str(&format!(" [{d}]"));
        }
        if let Some(r) = role {
            tags.push_str(&format!(" [{r}]"));
        }
        format!("{tags} {message}")
    }

    pub fn record(&self, recorded_at: &str, role: Option<&str>, message: &str) -> String {
        format!(
            "mkdir -p .kamal && {}",
            self.append(recorded_at, role, message)
        )
    }

    /// `record` as a kamal_rs script runs it (`server::ensure_directory`): what the log shows is
    /// `record`'s.
    pub fn record_in_script(&self, recorded_at: &str, role: Option<&str>, message: &str) -> String {
        format!(
            "{} && {}",
            super::server::ensure_directory(".kamal"),
            self.append(recorded_at, role, message)
        )
    }

    fn append(&self, recorded_at: &str, role: Option<&str>, message: &str) -> String {
        format!(
            "echo {} >> {}",
            escape_shell_value(&self.line(recorded_at, role, message)),
            self.path()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_like_kamal() {
        let a = Auditor {
            service_and_destination: "myapp",
            destination: None,
            performer: "dev@acme.com",
        };
        assert_eq!(
            a.record(
                "2024-05-01T12:00:00Z",
                Some("web"),
                "Booted app version a1b2c3"
            ),
            r#"mkdir -p .kamal && echo "[2024-05-01T12:00:00Z] [dev@acme.com] [web] Booted app version a1b2c3" >> .kamal/myapp-audit.log"#
        );
        let d = Auditor {
            service_and_destination: "myapp-staging",
            destination: Some("staging"),
            performer: "me",
        };
        assert_eq!(
            d.record("T", None, "Pulled image with version v1"),
            r#"mkdir -p .kamal && echo "[T] [me] [staging] Pulled image with version v1" >> .kamal/myapp-staging-audit.log"#
        );
    }
}
