//! Errors carry the class Kamal would raise, so the CLI prints `ERROR (<class>): <message>` as Kamal does,
//! with kamal_rs's own class names (`KamalRs::ConfigurationError` where Kamal has `Kamal::ConfigurationError`).

use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Kamal::ConfigurationError`: the config is invalid.
    Configuration,
    /// Kamal raises a plain `ArgumentError` (for example `You must specify a destination`).
    Argument,
    /// Kamal raises a plain `RuntimeError` (for example `Configuration file not found in ...`).
    Runtime,
}

impl ErrorKind {
    /// The Ruby class (under `KamalRs::`) the binding raises.
    pub fn ruby_class(self) -> &'static str {
        match self {
            ErrorKind::Configuration => "ConfigurationError",
            ErrorKind::Argument => "ArgumentError",
            ErrorKind::Runtime => "RuntimeError",
        }
    }
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn config(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Configuration,
            message: message.into(),
        }
    }

    pub fn argument(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Argument,
            message: message.into(),
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Runtime,
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
