//! The git clone a build runs in (`lib/kamal/commands/builder/clone.rb`, Kamal 2.12.0).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::shell::shellescape;

/// Where a clone build happens (the app's directory inside a clean clone of its git repo).
pub struct Clone {
    /// The git repository's root (`git rev-parse --show-toplevel`).
    pub root: PathBuf,
    /// `Dir.tmpdir/kamal-clones/<service>-<13 hex of sha256(pwd)>`.
    pub clone_directory: PathBuf,
    pub build_directory: PathBuf,
    /// Kamal 1.9: the root is not shell-escaped, and the reset has no `gc`.
    pub v1: bool,
}

impl Clone {
    pub fn new(service: &str, pwd: &Path, root: &Path, tmpdir: &Path) -> Clone {
        let pwd_s = pwd.to_string_lossy();
        let sha = format!("{:x}", Sha256::digest(pwd_s.as_bytes()));
        let clone_directory = tmpdir
            .join("kamal-clones")
            .join(format!("{service}-{}", &sha[..13]));
        let relative = pwd_s
            .strip_prefix(root.to_string_lossy().as_ref())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let basename = root
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut build_directory = clone_directory.join(basename);
        if !relative.is_empty() {
            build_directory = build_directory.join(relative);
        }
        Clone {
            root: root.to_path_buf(),
            clone_directory,
            build_directory,
            v1: false,
        }
    }

    fn git(path: &Path, args: &str) -> String {
        format!("git -C {} {args}", path.display())
    }

    fn escaped_root(&self) -> String {
        if self.v1 {
            self.root.to_string_lossy().to_string()
        } else {
            shellescape(&self.root.to_string_lossy())
        }
    }

    pub fn clone_command(&self) -> String {
        Self::git(
            &self.clone_directory,
            &format!("clone {} --recurse-submodules", self.escaped_root()),
        )
    }

    pub fn reset_steps(&self, revision: &str) -> Vec<String> {
        let b = &self.build_directory;
        let mut steps = vec![
            Self::git(b, &format!("remote set-url origin {}", self.escaped_root())),
            Self::git(b, "fetch origin"),
            Self::git(b, &format!("reset --hard {revision}")),
            Self::git(b, "clean -fdx"),
            Self::git(b, "submodule update --init"),
        ];
        if !self.v1 {
            steps.push(Self::git(b, "gc --auto --quiet"));
        }
        steps
    }

    pub fn status(&self) -> String {
        Self::git(&self.build_directory, "status --porcelain")
    }

    pub fn revision(&self) -> String {
        Self::git(&self.build_directory, "rev-parse HEAD")
    }
}
