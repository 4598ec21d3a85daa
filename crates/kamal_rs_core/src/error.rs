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
    /// A hook exited non-zero (`Kamal::Cli::HookError`).
    Hook,
    /// The deploy lock is held, or could not be waited for (`Kamal::Cli::LockError`).
    Lock,
    /// A container did not boot (`Kamal::Cli::BootError`).
    Boot,
    /// A container did not become healthy, or the barrier closed (`Kamal::Cli::Healthcheck::Error`).
    Healthcheck,
    /// A remote command failed (SSHKit's `SSHKit::Command::Failed`).
    CommandFailed,
    /// A host could not be reached over SSH.
    Connection,
    /// Stopped by Ctrl-C, `Thread#raise` or `Timeout`.
    Interrupted,
    /// Docker or its buildx plugin is missing locally (`Kamal::Cli::DependencyError`).
    Dependency,
    /// The image could not be built: no Dockerfile, a clone that cannot be prepared
    /// (`Kamal::Cli::Build::BuildError`, `Kamal::Commands::Builder::Base::BuilderError`).
    Build,
    /// A panic in kamal_rs itself (a bug): the run stopped as after any failure.
    Internal,
}

impl ErrorKind {
    /// The Ruby class (under `KamalRs::`) the binding raises.
    pub fn ruby_class(self) -> &'static str {
        match self {
            ErrorKind::Configuration => "ConfigurationError",
            ErrorKind::Argument => "ArgumentError",
            ErrorKind::Runtime => "RuntimeError",
            ErrorKind::Hook => "HookError",
            ErrorKind::Lock => "LockError",
            ErrorKind::Boot => "BootError",
            ErrorKind::Healthcheck => "HealthcheckError",
            ErrorKind::CommandFailed => "CommandFailed",
            ErrorKind::Connection => "ConnectionError",
            ErrorKind::Interrupted => "Interrupted",
            ErrorKind::Dependency => "DependencyError",
            ErrorKind::Build => "BuildError",
            ErrorKind::Internal => "InternalError",
        }
    }
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::Configuration,
        ErrorKind::Argument,
        ErrorKind::Runtime,
        ErrorKind::Hook,
        ErrorKind::Lock,
        ErrorKind::Boot,
        ErrorKind::Healthcheck,
        ErrorKind::CommandFailed,
        ErrorKind::Connection,
        ErrorKind::Interrupted,
        ErrorKind::Dependency,
        ErrorKind::Build,
        ErrorKind::Internal,
    ];

    /// The class Kamal raises for the same failure: what `kamal-rs` prints (`ERROR (<class>): ...`)
    /// and what the run's logs name (`# FAILED: <class>: ...`). Ruby's `KamalRs::*.kamal_name` says
    /// the same (checked by `test/cli_test.rb`).
    pub fn kamal_class(self) -> &'static str {
        match self {
            ErrorKind::Configuration => "Kamal::ConfigurationError",
            ErrorKind::Argument => "ArgumentError",
            ErrorKind::Runtime => "RuntimeError",
            ErrorKind::Hook => "Kamal::Cli::HookError",
            ErrorKind::Lock => "Kamal::Cli::LockError",
            ErrorKind::Boot => "Kamal::Cli::BootError",
            ErrorKind::Healthcheck => "Kamal::Cli::Healthcheck::Error",
            ErrorKind::CommandFailed => "SSHKit::Command::Failed",
            ErrorKind::Connection => "KamalRs::ConnectionError",
            ErrorKind::Interrupted => "Interrupt",
            ErrorKind::Dependency => "Kamal::Cli::DependencyError",
            ErrorKind::Build => "Kamal::Cli::Build::BuildError",
            ErrorKind::Internal => "KamalRs::InternalError",
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
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

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
