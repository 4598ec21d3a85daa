//! `output: { file: { path: DIR } }` (Kamal 2.12's `lib/kamal/output/file_logger.rb`): one file per
//! run in DIR, named `<local time>[_<destination>]_<command>.log`, holding every line of the run's log
//! (`-v`'s lines too, whatever `-q`/`-v` say, as Kamal's formatter hands its loggers every message),
//! and a last line `# Completed in Xs` or `# FAILED: <class>: <message> (Xs)`. Written without colours,
//! each line as it comes.

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{LogLine, Sink};

pub struct FileLog {
    /// The file's path as the log names it (under the configured path, relative when it is).
    pub path: PathBuf,
    file: Mutex<Option<LineWriter<File>>>,
}

impl FileLog {
    /// Creates DIR and the run's file; `command`: `deploy`, `redeploy`, `rollback`...
    pub fn create(
        dir: &Path,
        destination: Option<&str>,
        command: &str,
    ) -> std::io::Result<FileLog> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file_name(&local_time_stamp(), destination, command));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(FileLog {
            path,
            file: Mutex::new(Some(LineWriter::new(file))),
        })
    }

    /// The closing line (`error`: Kamal's class and message), and the file closed. Returns what to
    /// print: `Logs written to <path>`.
    pub fn finish(&self, runtime: f64, error: Option<(&str, &str)>) -> Option<String> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = file.take()?;
        let last = closing_line(runtime, error);
        let _ = writeln!(f, "{last}");
        let _ = f.flush();
        Some(format!("Logs written to {}", self.path.display()))
    }
}

impl Sink for FileLog {
    fn line(&self, line: &LogLine<'_>) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = file.as_mut() {
            let _ = writeln!(f, "{}", line.text);
        }
    }
}

/// `<stamp>[_<destination>]_<command>.log`, as Kamal's `filename_for`.
pub fn file_name(stamp: &str, destination: Option<&str>, command: &str) -> String {
    let mut parts = vec![stamp];
    parts.extend(destination);
    parts.push(command);
    format!("{}.log", parts.join("_"))
}

/// `# Completed in 8.9s` or `# FAILED: Class: message (8.9s)`: Kamal rounds the runtime to 0.1 s.
pub fn closing_line(runtime: f64, error: Option<(&str, &str)>) -> String {
    let runtime = round1(runtime);
    match error {
        Some((class, message)) => format!("# FAILED: {class}: {message} ({runtime:.1}s)"),
        None => format!("# Completed in {runtime:.1}s"),
    }
}

/// Ruby's `Float#round(1)`: halves away from zero.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Now in local time, as Ruby's `Time.now.strftime("%Y-%m-%dT%H-%M-%S")`.
fn local_time_stamp() -> String {
    // SAFETY: `time` writes into `now`; `localtime_r` fills `tm` from it, reentrant.
    let tm = unsafe {
        let mut now: libc::time_t = 0;
        libc::time(&mut now);
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return crate::time::now()
                .replace(':', "-")
                .trim_end_matches('Z')
                .into();
        }
        tm
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_closes_as_kamal() {
        assert_eq!(
            file_name("2026-12-04T17-24-17", None, "redeploy"),
            "2026-12-04T17-24-17_redeploy.log"
        );
        assert_eq!(
            file_name("2026-12-04T17-24-17", Some("staging"), "deploy"),
            "2026-12-04T17-24-17_staging_deploy.log"
        );
        assert_eq!(closing_line(8.94, None), "# Completed in 8.9s");
        assert_eq!(
            closing_line(12.0, Some(("Kamal::Cli::LockError", "Deploy lock found"))),
            "# FAILED: Kamal::Cli::LockError: Deploy lock found (12.0s)"
        );
        let stamp = local_time_stamp();
        assert_eq!(stamp.len(), 19, "{stamp}");
        assert!(!stamp.contains(':'));
    }

    #[test]
    fn writes_every_line_then_the_closing_one() {
        let dir = std::env::temp_dir().join(format!("kamal-rs-file-log-{}", std::process::id()));
        let log = FileLog::create(&dir.join("log/kamal"), Some("staging"), "deploy").unwrap();
        for text in ["Pull app image...", " DEBUG [abcd1234] \tLogin Succeeded"] {
            log.line(&LogLine {
                level: None,
                text,
                host: None,
                stream: None,
            });
        }
        let said = log.finish(3.25, None).unwrap();
        assert!(said.starts_with("Logs written to "));
        assert!(log.finish(1.0, None).is_none(), "closed once");
        let text = std::fs::read_to_string(&log.path).unwrap();
        assert_eq!(
            text,
            "Pull app image...\n DEBUG [abcd1234] \tLogin Succeeded\n# Completed in 3.3s\n"
        );
        assert!(log.path.to_string_lossy().ends_with("_staging_deploy.log"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
