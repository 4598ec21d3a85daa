//! `--timeline FILE.svg`: where the run's time went, as a picture. One row per host (in the run's
//! host order), one bar per step (the timeline's), a time axis in seconds, waits drawn pale and
//! striped, a failed step outlined in red and marked, a stopped one dashed. Each bar has a tooltip
//! with its host, role, step and times. Rows shrink with the fleet (28 px at 4 hosts, 4 px at
//! 1,000) so 128 hosts still fit a screen; host names are written while a row is tall enough.

use std::collections::BTreeSet;

use svg::node::element::{Definitions, Group, Line, Pattern, Rectangle, Text, Title};
use svg::node::Text as TextNode;
use svg::Document;

use super::timeline::{Phase, Span, Status};

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 56.0;
const LEGEND: f64 = 70.0;

/// What the picture says about the run in its title.
pub struct Heading<'a> {
    pub command: &'a str,
    pub version: &'a str,
    pub runtime: f64,
    pub outcome: &'a str,
}

fn colour(step: Phase) -> &'static str {
    match step {
        Phase::Connect => "#8e9aaf",
        Phase::Session => "#c5cbd6",
        Phase::Pull => "#4c78a8",
        Phase::Lock | Phase::LockWait => "#b279a2",
        Phase::Check => "#9d755d",
        Phase::Proxy => "#72b7b2",
        Phase::PullBarrier | Phase::Barrier | Phase::TagWait => "#bab0ac",
        Phase::Stale => "#eeca3b",
        Phase::Boot => "#f58518",
        Phase::Health => "#54a24b",
        Phase::Stop => "#ff9da6",
        Phase::Tag | Phase::Prune | Phase::Release => "#79706e",
        Phase::Env => "#9d755d",
        Phase::Other => "#dddddd",
    }
}

/// Height of one host's row.
fn row_height(hosts: usize) -> f64 {
    (560.0 / hosts.max(1) as f64).clamp(4.0, 28.0)
}

/// A tick step giving at most about ten ticks.
fn tick_step(total: f64) -> f64 {
    [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ]
    .into_iter()
    .find(|s| total / s <= 10.0)
    .unwrap_or(1200.0)
}

fn text(x: f64, y: f64, size: f64, content: &str) -> Text {
    Text::new("")
        .set("x", x)
        .set("y", y)
        .set("font-size", size)
        .set("font-family", "DejaVu Sans, Helvetica, Arial, sans-serif")
        .add(TextNode::new(content))
}

/// The picture, as SVG text.
pub fn render(hosts: &[String], spans: &[Span], heading: &Heading<'_>) -> String {
    let row = row_height(hosts.len());
    let plot = WIDTH - LEFT - RIGHT;
    let total = spans
        .iter()
        .map(|s| s.end)
        .fold(heading.runtime, f64::max)
        .max(0.1);
    let scale = plot / total;
    let body = row * hosts.len() as f64;
    let height = TOP + body + 28.0 + LEGEND;
    let mut doc = Document::new()
        .set("xmlns", "http://www.w3.org/2000/svg")
        .set("width", WIDTH)
        .set("height", height)
        .set("viewBox", (0.0, 0.0, WIDTH, height))
        .add(stripes())
        .add(
            Rectangle::new()
                .set("width", WIDTH)
                .set("height", height)
                .set("fill", "white"),
        )
        .add(
            text(
                LEFT,
                24.0,
                16.0,
                &format!(
                    "kamal-rs {} {}: {} hosts, {:.1} s, {}",
                    heading.command,
                    heading.version,
                    hosts.len(),
                    heading.runtime,
                    heading.outcome
                ),
            )
            .set("font-weight", "bold"),
        );
    doc = doc.add(axis(total, scale, body));
    let labels = row >= 9.0;
    for (i, host) in hosts.iter().enumerate() {
        let y = TOP + i as f64 * row;
        let mut g = Group::new()
            .set("class", "host-row")
            .set("data-host", host.as_str());
        if i % 2 == 1 {
            g = g.add(
                Rectangle::new()
                    .set("x", LEFT)
                    .set("y", y)
                    .set("width", plot)
                    .set("height", row)
                    .set("fill", "#f6f6f6"),
            );
        }
        if labels {
            g = g.add(
                text(
                    LEFT - 6.0,
                    y + row * 0.5 + row.min(13.0) * 0.35,
                    row.min(13.0),
                    host,
                )
                .set("text-anchor", "end"),
            );
        }
        for span in spans
            .iter()
            .filter(|s| &s.host == host && s.step != Phase::Other)
        {
            g = g.add(bar(span, y, row, scale));
        }
        doc = doc.add(g);
    }
    doc = doc.add(legend(spans, TOP + body + 34.0));
    doc.to_string()
}

/// The stripes that mark a wait.
fn stripes() -> Definitions {
    Definitions::new().add(
        Pattern::new()
            .set("id", "wait")
            .set("width", 6)
            .set("height", 6)
            .set("patternUnits", "userSpaceOnUse")
            .set("patternTransform", "rotate(45)")
            .add(
                Line::new()
                    .set("x1", 0)
                    .set("y1", 0)
                    .set("x2", 0)
                    .set("y2", 6)
                    .set("stroke", "#ffffff")
                    .set("stroke-width", 3),
            ),
    )
}

fn bar(span: &Span, y: f64, row: f64, scale: f64) -> Group {
    let x = LEFT + span.start * scale;
    let w = (span.duration() * scale).max(1.0);
    let inset = if row >= 8.0 { row * 0.15 } else { 0.5 };
    let h = (row - 2.0 * inset).max(1.0);
    let role = span
        .role
        .as_deref()
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let tip = format!(
        "{}{role} {}: {:.2}–{:.2} s ({:.2} s){}",
        span.host,
        span.step.name(),
        span.start,
        span.end,
        span.duration(),
        match span.status {
            Status::Ok => String::new(),
            Status::Failed => ", failed".into(),
            Status::Stopped => ", stopped".into(),
            Status::Unknown => ", connection lost".into(),
        }
    );
    let mut rect = Rectangle::new()
        .set("x", x)
        .set("y", y + inset)
        .set("width", w)
        .set("height", h)
        .set("fill", colour(span.step))
        .set("class", format!("step {}", span.step.name()));
    if span.step.is_wait() {
        rect = rect.set("fill-opacity", 0.55);
    }
    match span.status {
        Status::Failed => rect = rect.set("stroke", "#d62728").set("stroke-width", 2),
        Status::Stopped | Status::Unknown => {
            rect = rect
                .set("stroke", "#555555")
                .set("stroke-width", 1)
                .set("stroke-dasharray", "3,2")
        }
        Status::Ok => {}
    }
    let mut g = Group::new()
        .add(Title::new("").add(TextNode::new(tip)))
        .add(rect);
    if span.step.is_wait() {
        g = g.add(
            Rectangle::new()
                .set("x", x)
                .set("y", y + inset)
                .set("width", w)
                .set("height", h)
                .set("fill", "url(#wait)")
                .set("fill-opacity", 0.6),
        );
    }
    if span.status == Status::Failed {
        g = g.add(
            text(
                x + w + 2.0,
                y + row * 0.5 + row.min(13.0) * 0.35,
                row.clamp(7.0, 13.0),
                "✕ failed",
            )
            .set("fill", "#d62728")
            .set("class", "failed"),
        );
    }
    g
}

fn axis(total: f64, scale: f64, body: f64) -> Group {
    let step = tick_step(total);
    let mut g = Group::new().set("class", "axis");
    let mut t = 0.0;
    while t <= total + 1e-9 {
        let x = LEFT + t * scale;
        g = g
            .add(
                Line::new()
                    .set("x1", x)
                    .set("y1", TOP - 4.0)
                    .set("x2", x)
                    .set("y2", TOP + body)
                    .set("stroke", "#e0e0e0")
                    .set("stroke-width", 1),
            )
            .add(
                text(x, TOP - 8.0, 11.0, &format!("{}s", trim(t)))
                    .set("text-anchor", "middle")
                    .set("fill", "#555555"),
            );
        t += step;
    }
    g
}

/// `1.5`, `2`: a tick label without trailing zeros.
fn trim(t: f64) -> String {
    let s = format!("{t:.1}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The steps that appear, in the order of a rollout.
fn legend(spans: &[Span], y: f64) -> Group {
    let present: BTreeSet<Phase> = spans
        .iter()
        .map(|s| s.step)
        .filter(|p| *p != Phase::Other)
        .collect();
    let mut g = Group::new().set("class", "legend");
    let (mut x, mut y) = (LEFT, y);
    for step in present {
        let label = step.name();
        let w = 16.0 + 7.0 * label.len() as f64 + 18.0;
        if x + w > WIDTH - RIGHT {
            x = LEFT;
            y += 20.0;
        }
        let mut swatch = Rectangle::new()
            .set("x", x)
            .set("y", y)
            .set("width", 12)
            .set("height", 12)
            .set("fill", colour(step));
        if step.is_wait() {
            swatch = swatch.set("fill-opacity", 0.55);
        }
        g = g.add(swatch).add(text(x + 16.0, y + 10.5, 12.0, label));
        x += w;
    }
    g.add(
        text(LEFT, y + 32.0, 11.0, "pale, striped: waiting for other hosts or the lock; red outline: failed; dashed: stopped")
            .set("fill", "#555555"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(host: &str, step: Phase, start: f64, end: f64, status: Status) -> Span {
        Span {
            host: host.into(),
            role: step.is_role_step().then(|| "web".to_string()),
            step,
            start,
            end,
            status,
        }
    }

    #[test]
    fn one_row_per_host_and_a_bar_per_step() {
        let hosts: Vec<String> = (1..=4).map(|i| format!("10.0.0.{i}")).collect();
        let mut spans = Vec::new();
        for (i, h) in hosts.iter().enumerate() {
            spans.push(span(h, Phase::Connect, 0.0, 0.6, Status::Ok));
            spans.push(span(h, Phase::Pull, 0.6, 1.5 + i as f64 * 0.1, Status::Ok));
            spans.push(span(
                h,
                Phase::PullBarrier,
                1.5 + i as f64 * 0.1,
                1.9,
                Status::Ok,
            ));
            let status = if i == 2 { Status::Failed } else { Status::Ok };
            spans.push(span(h, Phase::Boot, 1.9, 2.5, status));
        }
        let heading = Heading {
            command: "redeploy",
            version: "v2 <&>",
            runtime: 2.7,
            outcome: "failed",
        };
        let svg = render(&hosts, &spans, &heading);
        assert_eq!(svg.matches("class=\"host-row\"").count(), 4);
        assert_eq!(svg.matches("class=\"step boot\"").count(), 4);
        assert_eq!(svg.matches("class=\"failed\"").count(), 1);
        assert!(svg.contains("v2 &lt;&amp;&gt;"), "text is escaped");
        assert!(svg.contains("\n10.0.0.4\n"), "host names at 4 hosts");
        assert!(svg.contains("url(#wait)"));
    }

    #[test]
    fn a_large_fleet_still_fits() {
        let hosts: Vec<String> = (1..=128).map(|i| format!("h{i}")).collect();
        let spans: Vec<Span> = hosts
            .iter()
            .map(|h| span(h, Phase::Pull, 0.0, 3.0, Status::Ok))
            .collect();
        let heading = Heading {
            command: "deploy",
            version: "v1",
            runtime: 3.0,
            outcome: "succeeded",
        };
        let svg = render(&hosts, &spans, &heading);
        assert_eq!(svg.matches("class=\"host-row\"").count(), 128);
        assert!(row_height(128) >= 4.0 && row_height(128) * 128.0 <= 600.0);
        assert_eq!(tick_step(7.0), 1.0);
        assert_eq!(tick_step(95.0), 10.0);
        assert_eq!(trim(1.5), "1.5");
        assert_eq!(trim(2.0), "2");
    }
}
