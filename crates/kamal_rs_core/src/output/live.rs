//! The live view's state: the per-host bars, or for a large fleet a few lines of counts redrawn on
//! each host's update and each second (`Output` draws through it).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::fleet;

/// The live view: a line per host, or for a large fleet (`fleet::PER_HOST_UP_TO`) a few lines of counts.
pub(super) struct Live {
    pub(super) multi: MultiProgress,
    pub(super) bars: Vec<(String, ProgressBar)>,
    pub(super) fleet: Option<Arc<Fleet>>,
}

pub(super) struct Fleet {
    pub(super) hosts: Mutex<Vec<fleet::HostLine>>,
    pub(super) lines: Vec<ProgressBar>,
}

/// How often a host's spinner turns.
const SPINNER_TICK: Duration = Duration::from_millis(120);

impl Live {
    /// A line per host, or the fleet's lines past `fleet::PER_HOST_UP_TO` hosts.
    pub(super) fn new(multi: MultiProgress, hosts: &[String]) -> Live {
        if hosts.len() > fleet::PER_HOST_UP_TO {
            return Live::fleet(multi, hosts);
        }
        let width = hosts.iter().map(String::len).max().unwrap_or(0);
        let style = ProgressStyle::with_template(&format!(
            "  {{spinner}} {{prefix:{width}}}  {{wide_msg}}"
        ))
        .expect("valid template");
        let bars = hosts
            .iter()
            .map(|h| {
                let bar = multi.add(
                    ProgressBar::new_spinner()
                        .with_style(style.clone())
                        .with_prefix(h.clone()),
                );
                bar.set_message("waiting");
                bar.enable_steady_tick(SPINNER_TICK);
                (h.clone(), bar)
            })
            .collect();
        Live {
            multi,
            bars,
            fleet: None,
        }
    }

    /// A host's line: in progress, or at an end (its spinner stopped).
    pub(super) fn set_host(&self, host: &str, text: String, outcome: fleet::Outcome) {
        let Some((_, bar)) = self.bars.iter().find(|(h, _)| h == host) else {
            return;
        };
        match outcome {
            // A host that got to an end moves again (a revert's boot, the lock's release): its line is
            // in progress again, so that `finish_hosts` knows it stopped there.
            fleet::Outcome::Running if bar.is_finished() => {
                bar.reset();
                bar.enable_steady_tick(SPINNER_TICK);
                bar.set_message(text);
            }
            fleet::Outcome::Running => bar.set_message(text),
            _ => bar.finish_with_message(text),
        }
    }

    /// The run is over: a host's line at an end stays; one still in progress is cleared (the summary
    /// printed next says where that host stopped).
    pub(super) fn finish_hosts(&self) {
        for (_, bar) in &self.bars {
            if !bar.is_finished() {
                bar.finish_and_clear();
            }
        }
    }

    pub(super) fn fleet(multi: MultiProgress, hosts: &[String]) -> Live {
        let first = ProgressStyle::with_template("  {spinner} {wide_msg}").expect("valid template");
        let rest = ProgressStyle::with_template("    {wide_msg}").expect("valid template");
        let lines: Vec<ProgressBar> = (0..fleet::LINES)
            .map(|i| {
                let style = if i == 0 { first.clone() } else { rest.clone() };
                multi.add(ProgressBar::new_spinner().with_style(style))
            })
            .collect();
        lines[0].enable_steady_tick(SPINNER_TICK);
        let now = std::time::Instant::now();
        let fleet = Fleet {
            hosts: Mutex::new(hosts.iter().map(|h| fleet::HostLine::new(h, now)).collect()),
            lines,
        };
        fleet.draw(&fleet.hosts.lock().unwrap_or_else(|e| e.into_inner()));
        let fleet = Arc::new(fleet);
        redraw_every_second(Arc::downgrade(&fleet));
        Live {
            multi,
            bars: Vec::new(),
            fleet: Some(fleet),
        }
    }
}

/// The view is drawn on each host's update; a lagging host is named by how long its step has lasted,
/// which grows while no host moves (all waiting on the last one), so the view is drawn each second too.
/// Stops with the view (finished, or the output gone).
fn redraw_every_second(fleet: std::sync::Weak<Fleet>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(fleet) = fleet.upgrade() else {
            return;
        };
        if fleet.lines[0].is_finished() {
            return;
        }
        fleet.draw(&fleet.hosts.lock().unwrap_or_else(|e| e.into_inner()));
    });
}

impl Fleet {
    pub(super) fn set(&self, host: &str, text: &str, outcome: fleet::Outcome) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hosts.iter_mut().find(|h| h.host == host) {
            h.set(text, outcome, std::time::Instant::now());
        }
        self.draw(&hosts);
    }

    pub(super) fn draw(&self, hosts: &[fleet::HostLine]) {
        let lines = fleet::lines(hosts, std::time::Instant::now());
        for (i, bar) in self.lines.iter().enumerate() {
            bar.set_message(lines.get(i).cloned().unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Output, Verbosity};
    use indicatif::{InMemoryTerm, ProgressDrawTarget};

    /// The live view's last screen, on an in-memory terminal.
    fn last_screen(steps: impl FnOnce(&Output)) -> String {
        let term = InMemoryTerm::new(24, 100);
        let hosts = ["10.0.0.1".to_string(), "10.0.0.2".to_string()];
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let out = Output::drawn_on(Verbosity::Normal, true, &hosts, target);
        steps(&out);
        out.finish();
        out.console("  Finished all in 1.0 seconds");
        term.contents()
    }

    #[test]
    fn a_host_that_moved_again_after_its_end_is_not_left_in_a_step_that_is_over() {
        // A failed run: 10.0.0.1 went live, then released the lock; 10.0.0.2 failed.
        let screen = last_screen(|out| {
            out.progress_done("10.0.0.1", "v2 live");
            out.progress("10.0.0.1", "releasing the deploy lock");
            out.progress_failed("10.0.0.2", "failed: boom");
        });
        assert!(!screen.contains("releasing the deploy lock"), "{screen}");
        assert!(screen.contains("10.0.0.2  failed: boom"), "{screen}");
        assert!(screen.contains("Finished all in 1.0 seconds"), "{screen}");
    }

    #[test]
    fn a_host_at_its_end_keeps_its_line() {
        let screen = last_screen(|out| {
            out.progress("10.0.0.1", "booting web v2");
            out.progress_done("10.0.0.1", "v2 live");
            out.progress_done("10.0.0.2", "v2 live");
        });
        assert!(screen.contains("10.0.0.1  v2 live"), "{screen}");
        assert!(screen.contains("10.0.0.2  v2 live"), "{screen}");
        assert!(!screen.contains("booting"), "{screen}");
    }
}
