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

impl Live {
    pub(super) fn fleet(multi: MultiProgress, hosts: &[String]) -> Live {
        let first = ProgressStyle::with_template("  {spinner} {wide_msg}").expect("valid template");
        let rest = ProgressStyle::with_template("    {wide_msg}").expect("valid template");
        let lines: Vec<ProgressBar> = (0..fleet::LINES)
            .map(|i| {
                let style = if i == 0 { first.clone() } else { rest.clone() };
                multi.add(ProgressBar::new_spinner().with_style(style))
            })
            .collect();
        lines[0].enable_steady_tick(Duration::from_millis(120));
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
