//! RubyGems' version ordering (`Gem::Version#<=>`), for `minimum_version`.

use std::cmp::Ordering;

use regex::Regex;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Num(u64),
    Pre(String),
}

#[derive(Debug, Clone)]
pub struct GemVersion {
    segments: Vec<Segment>,
}

impl GemVersion {
    pub fn parse(text: &str) -> Result<Self> {
        let pattern = Regex::new(
            r"\A\s*([0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?\s*\z",
        )
        .unwrap();
        if !pattern.is_match(text) {
            return Err(Error::argument(format!(
                "Malformed version number string {text}"
            )));
        }
        let normalized = text.trim().replace('-', ".pre.");
        let segments = Regex::new(r"[0-9]+|[a-zA-Z]+")
            .unwrap()
            .find_iter(&normalized)
            .map(|m| match m.as_str().parse::<u64>() {
                Ok(n) => Segment::Num(n),
                Err(_) => Segment::Pre(m.as_str().to_string()),
            })
            .collect();
        Ok(GemVersion { segments })
    }

    /// Trailing zeros dropped from the release part and from the prerelease part.
    fn canonical(&self) -> Vec<Segment> {
        let split = self
            .segments
            .iter()
            .position(|s| matches!(s, Segment::Pre(_)))
            .unwrap_or(self.segments.len());
        let trim = |part: &[Segment]| {
            let mut v = part.to_vec();
            while v.last() == Some(&Segment::Num(0)) {
                v.pop();
            }
            v
        };
        let mut out = trim(&self.segments[..split]);
        out.extend(trim(&self.segments[split..]));
        out
    }
}

impl PartialEq for GemVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_version(other) == Ordering::Equal
    }
}

impl GemVersion {
    pub fn cmp_version(&self, other: &Self) -> Ordering {
        let (l, r) = (self.canonical(), other.canonical());
        for i in 0..l.len().max(r.len()) {
            let a = l.get(i).cloned().unwrap_or(Segment::Num(0));
            let b = r.get(i).cloned().unwrap_or(Segment::Num(0));
            let ord = match (&a, &b) {
                (Segment::Num(x), Segment::Num(y)) => x.cmp(y),
                (Segment::Pre(x), Segment::Pre(y)) => x.cmp(y),
                (Segment::Pre(_), Segment::Num(_)) => Ordering::Less,
                (Segment::Num(_), Segment::Pre(_)) => Ordering::Greater,
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> GemVersion {
        GemVersion::parse(s).unwrap()
    }

    #[test]
    fn orders_like_rubygems() {
        assert_eq!(v("2.12.0").cmp_version(&v("2.12")), Ordering::Equal);
        assert_eq!(v("2.13").cmp_version(&v("2.12.0")), Ordering::Greater);
        assert_eq!(v("2.12.0.rc1").cmp_version(&v("2.12.0")), Ordering::Less);
        assert_eq!(v("1.3.0").cmp_version(&v("2.12.0")), Ordering::Less);
        assert_eq!(v("10.0").cmp_version(&v("9.9")), Ordering::Greater);
        assert!(GemVersion::parse("abc").is_err());
    }
}
