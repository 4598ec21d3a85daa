//! The deploy lock: a directory on the primary host, created atomically with `mkdir`.

use base64::Engine;

pub fn dir(service_and_destination: &str) -> String {
    format!(".kamal/lock-{service_and_destination}")
}

/// The three-line details text Kamal writes (its `Message:` must stay `Automatic deploy lock`, or Ruby
/// Kamal's `--lock-wait` refuses to wait for it).
pub fn details(locked_by: &str, at: &str, version: &str, message: &str) -> String {
    format!("Locked by: {locked_by} at {at}\nVersion: {version}\nMessage: {message}")
}

/// Ruby's `Base64.encode64`: a newline after every 60 characters and at the end.
pub fn encode64(text: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text);
    let mut out = String::with_capacity(b64.len() + b64.len() / 60 + 1);
    for chunk in b64.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

pub fn acquire(service_and_destination: &str, details_text: &str) -> String {
    acquire_at(&dir(service_and_destination), details_text)
}

pub fn release(service_and_destination: &str) -> String {
    release_at(&dir(service_and_destination))
}

/// The lock commands for a lock directory (Kamal 1.x keeps it elsewhere: `commands::v1::lock_dir`).
pub fn acquire_at(dir: &str, details_text: &str) -> String {
    format!(
        "mkdir {dir} && echo \"{}\" > {dir}/details",
        encode64(details_text)
    )
}

pub fn release_at(dir: &str) -> String {
    format!("rm {dir}/details && rm -r {dir}")
}

pub fn status_at(dir: &str) -> String {
    format!("stat {dir} > /dev/null && cat {dir}/details | base64 -d")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_matches_the_recorded_run() {
        let text = details(
            "Seed b7d13cc8 maintainers",
            "2026-11-26T06:53:15Z",
            "v1",
            "Automatic deploy lock",
        );
        assert_eq!(
            acquire("app", &text),
            "mkdir .kamal/lock-app && echo \"TG9ja2VkIGJ5OiBTZWVkIGI3ZDEzY2M4IG1haW50YWluZXJzIGF0IDIwMjYt\nMTEtMjZUMDY6NTM6MTVaClZlcnNpb246IHYxCk1lc3NhZ2U6IEF1dG9tYXRp\nYyBkZXBsb3kgbG9jaw==\n\" > .kamal/lock-app/details"
        );
        assert_eq!(
            release("app"),
            "rm .kamal/lock-app/details && rm -r .kamal/lock-app"
        );
    }
}
