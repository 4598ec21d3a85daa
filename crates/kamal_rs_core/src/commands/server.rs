//! Directories on a server (Kamal's `Commands::Server`), and kamal_rs's own signal to a script.

/// `mkdir -p .kamal` (Kamal 2's run directory is always `.kamal`).
pub const ENSURE_RUN_DIRECTORY: &str = "mkdir -p .kamal";

/// Kamal's `mkdir -p DIR` as a kamal_rs script runs it: the directory tested first. It exists on every
/// deploy but the first, and `[` is a shell builtin where `mkdir` is a process on the host (a fleet
/// pays each once per host and command). Same effect and exit status; the log shows Kamal's command.
pub fn ensure_directory(dir: &str) -> String {
    format!("{{ [ -d {dir} ] || mkdir -p {dir}; }}")
}

/// The directory that holds `path`.
pub fn parent_directory(path: &str) -> &str {
    path.rsplit_once('/').map_or(".", |(d, _)| d)
}

/// Ends a kamal_rs script that is still before its boot (Ctrl-C): it traps TERM and stops after its
/// current command. Not one of Kamal's commands.
pub fn terminate(pid: &str) -> String {
    format!("kill -TERM {pid} 2>/dev/null; true")
}
