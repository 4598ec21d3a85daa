//! What a run tells besides the terminal: Kamal 2.12's `output:` loggers (a file, OpenTelemetry;
//! `lib/kamal/commander.rb#configure_output_with`), the events file (`--events`), the timeline picture
//! (`--timeline`) and, under GitHub Actions, the step summary, annotations and per-host groups.
//! Started with the run (Kamal's `modify` starts its loggers before the first step) and finished after
//! its last line, where Kamal prints `Logs written to ...` and `Logs sent to ...`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::github::{self, GithubActions, RunFacts};
use super::options::Command;
use super::report::DeployReport;
use super::run::Run;
use crate::config::OutputSetting;
use crate::output::events::{ErrorOut, EventsFile, RunEnd, RunStart};
use crate::output::file_log::FileLog;
use crate::output::otel::{self, Otel, Tags};
use crate::output::svg::{self, Heading};

pub struct Loggers {
    /// `output:`'s loggers, in the config's order (the order of their closing lines).
    output: Vec<OutputLogger>,
    events: Option<Arc<EventsFile>>,
    timeline: Option<PathBuf>,
    github: Option<Arc<GithubActions>>,
}

enum OutputLogger {
    File(Arc<FileLog>),
    Otel(Arc<Otel>),
}

/// Kamal's command and subcommand names for the run (`env push` for 1.x's).
fn command(run: &Run<'_>) -> (&'static str, Option<&'static str>) {
    match run.options.command {
        Command::EnvPush => ("env", Some("push")),
        c => (c.name(), None),
    }
}

impl Loggers {
    /// Every logger the config and options ask for, each a sink of the run's log from now on. A
    /// logger that cannot start says why and the run goes on without it, as Kamal's setup does.
    pub fn start(run: &Run<'_>) -> Loggers {
        if run.options.nested {
            // A run inside another (a revert) writes through the outer run's loggers.
            return Loggers {
                output: Vec::new(),
                events: None,
                timeline: None,
                github: None,
            };
        }
        let run_id = otel::run_id();
        let (cmd, sub) = command(run);
        let file_command = sub.map_or(cmd.to_string(), |s| format!("{cmd}_{s}"));
        let mut output = Vec::new();
        for setting in run.config.output_loggers() {
            match setting {
                OutputSetting::File { path } => match path {
                    Some(dir) => match FileLog::create(
                        Path::new(&dir),
                        run.config.destination.as_deref(),
                        &file_command,
                    ) {
                        Ok(log) => output.push(OutputLogger::File(Arc::new(log))),
                        Err(e) => run.io.output.stderr(&format!(
                            "Output logger setup failed: could not write to {dir}: {e}"
                        )),
                    },
                    None => run
                        .io
                        .output
                        .stderr("Output logger setup failed: ArgumentError: file path is required"),
                },
                OutputSetting::Otel { endpoint } => match endpoint {
                    Some(endpoint) => {
                        // A rollback without a version chooses one later.
                        let version = if run.version.is_empty() {
                            "unknown"
                        } else {
                            &run.version
                        };
                        let tags = Tags {
                            performer: run.performer.get(),
                            destination: run.config.destination.as_deref(),
                            version,
                            service: &run.config.service(),
                        };
                        let full = sub.map_or(cmd.to_string(), |s| format!("{cmd} {s}"));
                        let warn = run.io.output.stderr_writer();
                        let o = Otel::start(&endpoint, &tags, &full, run_id.clone(), warn);
                        output.push(OutputLogger::Otel(Arc::new(o)));
                    }
                    None => run.io.output.stderr(
                        "Output logger setup failed: ArgumentError: OTel endpoint is required",
                    ),
                },
            }
        }
        for logger in &output {
            match logger {
                OutputLogger::File(f) => run.io.output.add_sink(f.clone()),
                OutputLogger::Otel(o) => run.io.output.add_sink(o.clone()),
            }
        }
        let events =
            run.options
                .events_file()
                .and_then(|path| match EventsFile::create(Path::new(&path)) {
                    Ok(e) => Some(Arc::new(e)),
                    Err(e) => {
                        run.io
                            .output
                            .stderr(&format!("Could not write the events file {path}: {e}"));
                        None
                    }
                });
        if let Some(events) = &events {
            run.io.timeline.observe(events.clone());
            events.run_start(&RunStart {
                command: &file_command,
                version: &run.version,
                destination: run.config.destination.as_deref(),
                hosts: &run.sel.hosts,
                run_id: &run_id,
            });
        }
        let github = github::detected().then(|| Arc::new(GithubActions::default()));
        if let Some(g) = &github {
            run.io.output.add_sink(g.clone());
        }
        Loggers {
            output,
            events,
            timeline: run.options.timeline_file().map(PathBuf::from),
            github,
        }
    }

    /// After the run's last line: GitHub's summary and groups, the events file's last line, the
    /// picture, then each `output:` logger's closing line and what Kamal prints for it.
    pub fn finish(&self, run: &Run<'_>, report: &DeployReport) {
        let runtime = run.io.started.elapsed().as_secs_f64();
        let error = report
            .error
            .as_ref()
            .map(|e| (e.kind.kamal_class(), e.message.as_str()));
        let (cmd, sub) = command(run);
        let command = sub.map_or(cmd.to_string(), |s| format!("{cmd} {s}"));
        let spans = run.io.timeline.spans();
        let outcome = if error.is_some() {
            "failed"
        } else if !report.left_behind.is_empty() {
            // Within the failure budget, with hosts left behind (exit 3).
            "partial"
        } else {
            "succeeded"
        };
        if let Some(g) = &self.github {
            let facts = RunFacts {
                command: &command,
                runtime,
                spans: &spans,
            };
            run.io
                .output
                .console(g.workflow_commands(report, &facts).trim_end());
            if let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY") {
                let md = github::summary(report, &facts);
                let appended = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, md.as_bytes()));
                if let Err(e) = appended {
                    run.io
                        .output
                        .stderr(&format!("Could not write the step summary {path}: {e}"));
                }
            }
        }
        if let Some(events) = &self.events {
            events.run_end(&RunEnd {
                command: &command,
                version: &report.version,
                status: outcome,
                runtime: (runtime * 1000.0).round() / 1000.0,
                lock: report.lock.name(),
                error: error.map(|(class, message)| ErrorOut { class, message }),
                hosts: &report.hosts,
                left_behind: &report.left_behind,
                finish_command: report.finish_command.as_deref(),
                reverted: &report.reverted,
                revert_seconds: report.revert_seconds,
            });
        }
        if let Some(path) = &self.timeline {
            let heading = Heading {
                command: &command,
                version: &report.version,
                runtime,
                outcome,
            };
            let picture = svg::render(&run.sel.hosts, &spans, &heading);
            if let Err(e) = std::fs::write(path, picture) {
                run.io.output.stderr(&format!(
                    "Could not write the timeline {}: {e}",
                    path.display()
                ));
            }
        }
        let mut said = Vec::new();
        for logger in &self.output {
            match logger {
                OutputLogger::File(f) => said.extend(f.finish(runtime, error)),
                OutputLogger::Otel(o) => said.push(o.finish(runtime, error)),
            }
        }
        for line in said {
            run.io.output.console(&line);
        }
        for logger in &self.output {
            if let OutputLogger::Otel(o) = logger {
                if !o.shutdown(otel::SHUTDOWN_GRACE) {
                    run.io.output.stderr(&format!(
                        "OTel log shipping did not finish within {} s: the last records may be lost",
                        otel::SHUTDOWN_GRACE.as_secs()
                    ));
                }
            }
        }
    }
}
