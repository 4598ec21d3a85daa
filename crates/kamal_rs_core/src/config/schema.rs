//! The shape of every section of `deploy.yml` as Kamal 2.12 checks it.
//!
//! Kamal validates "against an example": each section's documented example YAML is the schema, and a
//! value is checked against the *type* of the example value under the same key. These tables hold
//! those example types (`lib/kamal/configuration/docs/*.yml`, Kamal 2.12.0), not the documentation text. A few keys have rules of their own
//! whatever the example says (`hosts`, `arch`, `ssl`, `options`, `labels`, ...): `validator.rs` handles
//! them by name, as Kamal does.

/// The type of an example value.
#[derive(Debug)]
pub enum Ex {
    Str,
    Int,
    Bool,
    /// An array whose elements must have this type.
    Arr(&'static Ex),
    /// A nested hash with these keys.
    Hash(&'static [(&'static str, Ex)]),
    /// `...` in Kamal's docs: a section validated by its own class. Here it only has to be a hash
    /// (`servers` may be an array, `proxy` a boolean).
    Section,
}

use Ex::*;

pub type Fields = &'static [(&'static str, Ex)];

pub const ROOT: Fields = &[
    ("service", Str),
    ("image", Str),
    ("labels", Hash(&[("my-label", Str)])),
    ("volumes", Arr(&Str)),
    ("registry", Section),
    ("servers", Section),
    ("env", Section),
    ("asset_path", Str),
    ("hooks_path", Str),
    ("hooks_output", Section),
    ("secrets_path", Str),
    ("error_pages_path", Str),
    ("require_destination", Bool),
    ("primary_role", Str),
    ("allow_empty_roles", Bool),
    ("retain_containers", Int),
    ("minimum_version", Str),
    ("readiness_delay", Int),
    ("deploy_timeout", Int),
    ("drain_timeout", Int),
    ("stop_timeout", Int),
    ("run_directory", Str),
    ("ssh", Section),
    ("builder", Section),
    ("accessories", Section),
    ("proxy", Section),
    ("sshkit", Section),
    ("boot", Section),
    ("logging", Section),
    ("output", Section),
    ("aliases", Section),
];

/// A role given as a hash (`servers: { workers: { hosts: [...], cmd: ... } }`).
pub const ROLE: Fields = &[
    ("hosts", Arr(&Str)),
    ("cmd", Str),
    ("stop_timeout", Int),
    ("options", Hash(&[("memory", Str), ("cpus", Int)])),
    ("logging", Section),
    ("proxy", Section),
    ("labels", Hash(&[("my-label", Str)])),
    ("env", Section),
    ("asset_path", Str),
];

/// `registry` (username and password have their own rule: a string, or a one-element array).
pub const REGISTRY: Fields = &[("server", Str), ("username", Str), ("password", Str)];

pub const SSH: Fields = &[
    ("user", Str),
    ("port", Str),
    ("proxy", Str),
    ("proxy_command", Str),
    ("log_level", Str),
    ("keys_only", Bool),
    ("keys", Arr(&Str)),
    ("key_data", Arr(&Str)),
    ("config", Arr(&Str)),
    ("forward_agent", Bool),
];

pub const SSHKIT: Fields = &[
    ("max_concurrent_starts", Int),
    ("pool_idle_timeout", Int),
    ("dns_retries", Int),
];

pub const BUILDER: Fields = &[
    ("driver", Str),
    ("arch", Arr(&Str)),
    ("remote", Str),
    ("local", Bool),
    ("pack", Hash(&[("builder", Str), ("buildpacks", Arr(&Str))])),
    (
        "cache",
        Hash(&[("type", Str), ("options", Str), ("image", Str)]),
    ),
    ("context", Str),
    ("dockerfile", Str),
    ("target", Str),
    ("args", Hash(&[("ENVIRONMENT", Str)])),
    ("secrets", Arr(&Str)),
    ("ssh", Str),
    ("provenance", Str),
    ("sbom", Str),
];

pub const PROXY: Fields = &[
    ("host", Str),
    ("hosts", Arr(&Str)),
    ("app_port", Int),
    ("ssl", Bool),
    ("ssl_redirect", Bool),
    ("forward_headers", Bool),
    ("response_timeout", Int),
    ("path_prefix", Str),
    ("path_prefixes", Arr(&Str)),
    ("strip_path_prefix", Bool),
    (
        "healthcheck",
        Hash(&[("interval", Int), ("path", Str), ("timeout", Int)]),
    ),
    (
        "buffering",
        Hash(&[
            ("requests", Bool),
            ("responses", Bool),
            ("max_request_body", Int),
            ("max_response_body", Int),
            ("memory", Int),
        ]),
    ),
    (
        "logging",
        Hash(&[
            ("request_headers", Arr(&Str)),
            ("response_headers", Arr(&Str)),
        ]),
    ),
    (
        "run",
        Hash(&[
            ("http_port", Int),
            ("https_port", Int),
            ("metrics_port", Int),
            ("debug", Bool),
            ("log_max_size", Str),
            ("publish", Bool),
            ("bind_ips", Arr(&Str)),
            ("registry", Str),
            ("repository", Str),
            ("version", Str),
            ("options", Hash(&[("memory", Str)])),
        ]),
    ),
];

/// The keys of `proxy.ssl` when it is a hash (custom certificates).
pub const SSL: Fields = &[("certificate_pem", Str), ("private_key_pem", Str)];

pub const BOOT: Fields = &[("limit", Str), ("wait", Int), ("parallel_roles", Bool)];

pub const LOGGING: Fields = &[("driver", Str), ("options", Hash(&[("max-size", Str)]))];

pub const OUTPUT: Fields = &[
    ("otel", Hash(&[("endpoint", Str)])),
    ("file", Hash(&[("path", Str)])),
];

pub const ACCESSORY: Fields = &[
    ("service", Str),
    ("image", Str),
    ("registry", Section),
    ("host", Str),
    ("hosts", Arr(&Str)),
    ("role", Str),
    ("roles", Arr(&Str)),
    ("tag", Str),
    ("tags", Arr(&Str)),
    ("cmd", Str),
    ("port", Str),
    ("labels", Hash(&[("app", Str)])),
    ("options", Hash(&[("restart", Str), ("cpus", Int)])),
    ("env", Section),
    ("files", Arr(&Str)),
    ("directories", Arr(&Str)),
    ("volumes", Arr(&Str)),
    ("network", Str),
    ("proxy", Section),
];

/// The commands of `kamal` itself: an alias may not take one of these names.
pub const BUILT_IN_COMMANDS: &[&str] = &[
    "accessory",
    "app",
    "audit",
    "build",
    "config",
    "deploy",
    "details",
    "docs",
    "help",
    "init",
    "lock",
    "proxy",
    "prune",
    "redeploy",
    "registry",
    "remove",
    "rollback",
    "secrets",
    "server",
    "setup",
    "upgrade",
    "version",
];
