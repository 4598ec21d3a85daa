//! The remote commands of a Kamal 2 deploy, as exact strings (reference §3–§4): one small module per
//! concern, as Kamal's `commands/*.rb`. The runner may send several in one SSH round trip (joined with
//! `;` or `&&` as their own semantics allow), but never changes what each one does.

pub mod app;
pub mod auditor;
pub mod builder;
pub mod builder_v1;
pub mod lock;
pub mod proxy;
pub mod prune;
pub mod registry;
pub mod v1;

/// `'...'`-quoting for a value placed inside a single-quoted shell word.
pub fn single_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
