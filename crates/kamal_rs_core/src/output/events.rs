//! `--events FILE` (`KAMAL_RS_EVENTS`): the run as JSON lines for CI and dashboards, written as it
//! happens: `run_start`, then `step_start` / `step_end` for each host's steps (the timeline's), then
//! `run_end` with each host's outcome. The schema is `lib/kamal_rs/events.schema.json`.

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use super::timeline::{Observer, Phase, Span, Status};
use crate::time::utc_rfc3339_millis;

pub struct EventsFile {
    file: Mutex<LineWriter<File>>,
}

#[derive(Serialize)]
struct StepEvent<'a> {
    event: &'static str,
    time: String,
    elapsed: f64,
    host: &'a str,
    role: Option<&'a str>,
    step: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
}

/// `run_start`: what the run is.
#[derive(Serialize)]
pub struct RunStart<'a> {
    pub command: &'a str,
    pub version: &'a str,
    pub destination: Option<&'a str>,
    pub hosts: &'a [String],
    pub run_id: &'a str,
}

/// `run_end`: how it ended (`hosts`: the report's hosts, as `KamalRs::Result#hosts`).
#[derive(Serialize)]
pub struct RunEnd<'a, H: Serialize, L: Serialize, L2: Serialize> {
    pub command: &'a str,
    pub version: &'a str,
    pub status: &'a str,
    pub runtime: f64,
    pub lock: &'a str,
    pub error: Option<ErrorOut<'a>>,
    pub hosts: H,
    /// Hosts left behind within the failure budget (`--max-fail`) and the command that finishes the job.
    pub left_behind: L,
    pub finish_command: Option<&'a str>,
    /// `--revert-on-failure`: the hosts that went back, by version, and the revert's seconds.
    pub reverted: L2,
    pub revert_seconds: Option<f64>,
}

#[derive(Serialize)]
pub struct ErrorOut<'a> {
    pub class: &'a str,
    pub message: &'a str,
}

#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    event: &'static str,
    time: String,
    #[serde(flatten)]
    body: &'a T,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl EventsFile {
    pub fn create(path: &Path) -> std::io::Result<EventsFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::create(path)?;
        Ok(EventsFile {
            file: Mutex::new(LineWriter::new(file)),
        })
    }

    fn write(&self, value: &impl Serialize) {
        if let Ok(line) = serde_json::to_string(value) {
            let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "{line}");
        }
    }

    pub fn run_start(&self, start: &RunStart<'_>) {
        self.tagged("run_start", start);
    }

    pub fn run_end<H: Serialize, L: Serialize, L2: Serialize>(&self, end: &RunEnd<'_, H, L, L2>) {
        self.tagged("run_end", end);
        let _ = self.file.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }

    fn tagged<T: Serialize>(&self, event: &'static str, body: &T) {
        self.write(&Tagged {
            event,
            time: utc_rfc3339_millis(SystemTime::now()),
            body,
        });
    }

    fn step(&self, span: &Span, at: SystemTime, end: bool) {
        self.write(&StepEvent {
            event: if end { "step_end" } else { "step_start" },
            time: utc_rfc3339_millis(at),
            elapsed: round3(if end { span.end } else { span.start }),
            host: &span.host,
            role: span.role.as_deref(),
            step: span.step,
            duration: end.then(|| round3(span.duration())),
            status: end.then_some(span.status),
        });
    }
}

impl Observer for EventsFile {
    fn step_started(&self, span: &Span, at: SystemTime) {
        self.step(span, at, false);
    }

    fn step_ended(&self, span: &Span, at: SystemTime) {
        self.step(span, at, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::timeline::Timeline;
    use std::time::{Duration, Instant};

    #[test]
    fn one_json_line_per_step_start_and_end() {
        let path =
            std::env::temp_dir().join(format!("kamal-rs-events-{}.jsonl", std::process::id()));
        let events = std::sync::Arc::new(EventsFile::create(&path).unwrap());
        let t0 = Instant::now();
        let timeline = Timeline::new(t0);
        timeline.observe(events.clone());
        events.run_start(&RunStart {
            command: "deploy",
            version: "v2",
            destination: None,
            hosts: &["h1".to_string()],
            run_id: "id",
        });
        timeline.record(
            "h1",
            Some("web"),
            Phase::Boot,
            t0 + Duration::from_millis(100),
            t0 + Duration::from_millis(350),
            Status::Failed,
        );
        events.run_end(&RunEnd {
            command: "deploy",
            version: "v2",
            status: "failed",
            runtime: 0.5,
            lock: "released",
            error: Some(ErrorOut {
                class: "Kamal::Cli::BootError",
                message: "boom",
            }),
            hosts: Vec::<String>::new(),
            left_behind: Vec::<String>::new(),
            finish_command: None,
            reverted: Vec::<String>::new(),
            revert_seconds: None,
        });
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).ok();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["run_start", "step_start", "step_end", "run_end"]);
        assert_eq!(lines[2]["step"], "boot");
        assert_eq!(lines[2]["role"], "web");
        assert_eq!(lines[2]["status"], "failed");
        assert_eq!(lines[2]["duration"], 0.25);
        assert!(lines[1].get("duration").is_none());
        assert_eq!(lines[3]["error"]["class"], "Kamal::Cli::BootError");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }
}
