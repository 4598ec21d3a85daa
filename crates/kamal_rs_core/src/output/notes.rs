//! Lines Kamal says once per host (a container renamed "as already deployed", a stale container
//! stopped): on a fleet, a success must not print a line per host. The terminal shows the first
//! `SHOWN` of each kind, then one line for the rest when the step's next heading (or the end of the
//! run) comes; `-v` shows every one, and the log file and OTel get every one.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Lines of one kind shown before the rest are held: the run's summary names as many hosts.
pub const SHOWN: usize = 10;

#[derive(Default)]
pub struct HostNotes {
    /// Per kind: how many were said, how many of them are held, and the line that stands for those.
    kinds: Mutex<BTreeMap<&'static str, Kind>>,
}

struct Kind {
    said: usize,
    held: usize,
    rest: String,
}

impl HostNotes {
    /// One more line of `kind`; `rest` is the line for the held ones, `{n}` their count. Whether this
    /// one is shown.
    pub fn note(&self, kind: &'static str, rest: &str) -> bool {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        let k = kinds.entry(kind).or_insert(Kind {
            said: 0,
            held: 0,
            rest: String::new(),
        });
        k.said += 1;
        k.rest = rest.to_string();
        if k.said <= SHOWN {
            return true;
        }
        k.held += 1;
        false
    }

    /// The lines for what was held since the last call (`... on 246 more hosts`), in kind order.
    pub fn held(&self) -> Vec<String> {
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        kinds
            .values_mut()
            .filter(|k| k.held > 0)
            .map(|k| {
                let n = std::mem::take(&mut k.held);
                let hosts = if n == 1 { "host" } else { "hosts" };
                k.rest.replace("{n}", &format!("{n} more {hosts}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_a_kind_are_shown_then_the_rest_counted() {
        let notes = HostNotes::default();
        let rest = "Renamed v1 on {n} (-v lists them all)";
        let shown: Vec<bool> = (0..SHOWN + 3).map(|_| notes.note("rename", rest)).collect();
        assert!(shown[..SHOWN].iter().all(|s| *s));
        assert!(shown[SHOWN..].iter().all(|s| !*s));
        assert!(notes.note("stale", "Stale on {n}"), "kinds count apart");
        assert_eq!(
            notes.held(),
            ["Renamed v1 on 3 more hosts (-v lists them all)"]
        );
        assert!(notes.held().is_empty(), "said once");
        assert!(!notes.note("rename", rest), "still past the first ones");
        assert_eq!(
            notes.held(),
            ["Renamed v1 on 1 more host (-v lists them all)"]
        );
    }
}
