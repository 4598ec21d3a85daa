//! The remote commands of a Kamal 2 deploy, as exact strings (`lib/kamal/commands/*.rb`, Kamal 2.12.0): one small module per
//! concern, as Kamal's `commands/*.rb`. The runner may send several in one SSH round trip (joined with
//! `;` or `&&` as their own semantics allow), but never changes what each one does.

pub mod app;
pub mod auditor;
pub mod builder;
pub mod builder_v1;
pub mod lock;
pub mod proxy;
mod proxy_deploy;
pub mod prune;
pub mod registry;
pub mod server;
pub mod v1;

/// `'...'`-quoting for a value placed inside a single-quoted shell word.
pub fn single_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
