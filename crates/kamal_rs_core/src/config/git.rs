//! The app version from git, as Kamal computes it when neither `--version` nor `VERSION` is given.

use std::process::{Command, Stdio};

use crate::error::{Error, Result};

fn git(args: &[&str]) -> Option<std::process::Output> {
    Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
}

/// `git rev-parse HEAD`, plus `_uncommitted_<16 hex>` when the tree is dirty and the build uses the
/// working tree rather than a clean clone.
pub fn version(uses_git_clone: bool) -> Result<String> {
    let in_repo = git(&["rev-parse"]).is_some_and(|o| o.status.success());
    if !in_repo {
        let pwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        return Err(Error::runtime(format!(
            "Can't use commit hash as version, no git repository found in {pwd}"
        )));
    }
    let head = git(&["rev-parse", "HEAD"])
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let dirty = git(&["status", "--porcelain"])
        .is_some_and(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty());
    if dirty && !uses_git_clone {
        Ok(format!("{head}_uncommitted_{}", random_hex(8)))
    } else {
        Ok(head)
    }
}

/// `SecureRandom.hex(n)`: 2n lowercase hex digits.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
