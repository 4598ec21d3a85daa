//! Directories on a server (Kamal's `Commands::Server`), and kamal_rs's own signal to a script.

/// `mkdir -p .kamal` (Kamal 2's run directory is always `.kamal`).
pub const ENSURE_RUN_DIRECTORY: &str = "mkdir -p .kamal";

/// `mkdir -p DIR`, for the directory that holds `path`.
pub fn ensure_parent_directory(path: &str) -> String {
    format!("mkdir -p {}", path.rsplit_once('/').map_or(".", |(d, _)| d))
}

/// Ends a kamal_rs script that is still before its boot (Ctrl-C): it traps TERM and stops after its
/// current command. Not one of Kamal's commands.
pub fn terminate(pid: &str) -> String {
    format!("kill -TERM {pid} 2>/dev/null; true")
}
