//! kamal_rs's core: Kamal's deploy model in Rust, with no Ruby in it, so it tests with plain `cargo test`.
//! The Ruby binding (`ext/kamal_rs`) hands it the parsed config files and drives it.

pub mod commands;
pub mod config;
pub mod error;
pub mod output;
pub mod runner;
pub mod secrets;
pub mod shell;
pub mod ssh;
pub mod time;
pub mod value;

pub use config::{Configuration, KamalMajor, LoadOptions};
pub use error::{Error, ErrorKind, Result};
pub use value::{Map, Value};

/// The Kamal release whose behaviour kamal_rs reproduces (also what `minimum_version` is checked against).
pub const KAMAL_VERSION: &str = "2.12.0";
#[cfg(test)]
pub mod test_support;
