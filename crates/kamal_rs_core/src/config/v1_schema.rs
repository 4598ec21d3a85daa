//! The shape of every section of a Kamal 1.x `deploy.yml` as Kamal 1.9.3 checks it: the types of the
//! example values in `lib/kamal/configuration/docs/*.yml` (tag v1.9.3). See `schema.rs` for 2.12's.

use super::schema::{Ex::*, Fields};

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
    ("require_destination", Bool),
    ("primary_role", Str),
    ("allow_empty_roles", Bool),
    ("stop_wait_time", Int),
    ("retain_containers", Int),
    ("minimum_version", Str),
    ("readiness_delay", Int),
    ("run_directory", Str),
    ("ssh", Section),
    ("builder", Section),
    ("accessories", Section),
    ("traefik", Section),
    ("sshkit", Section),
    ("boot", Section),
    ("healthcheck", Section),
    ("logging", Section),
];

pub const ROLE: Fields = &[
    ("hosts", Arr(&Str)),
    ("traefik", Bool),
    ("cmd", Str),
    ("options", Hash(&[("memory", Str), ("cpus", Int)])),
    ("healthcheck", Section),
    ("logging", Section),
    ("labels", Hash(&[("my-label", Str)])),
    ("env", Section),
    ("asset_path", Str),
];

pub const ACCESSORY: Fields = &[
    ("service", Str),
    ("image", Str),
    ("host", Str),
    ("hosts", Arr(&Str)),
    ("roles", Arr(&Str)),
    ("cmd", Str),
    ("port", Str),
    ("labels", Hash(&[("app", Str)])),
    ("options", Hash(&[("restart", Str), ("cpus", Int)])),
    ("env", Section),
    ("files", Arr(&Str)),
    ("directories", Arr(&Str)),
    ("volumes", Arr(&Str)),
];

pub const BOOT: Fields = &[("limit", Str), ("wait", Int)];

pub const BUILDER: Fields = &[
    ("multiarch", Bool),
    ("local", Hash(&[("arch", Str), ("host", Str)])),
    ("remote", Hash(&[("arch", Str), ("host", Str)])),
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
];

pub const HEALTHCHECK: Fields = &[
    ("cmd", Str),
    ("interval", Str),
    ("max_attempts", Int),
    ("port", Str),
    ("path", Str),
    ("cord", Str),
    ("log_lines", Int),
];

pub const SSH: Fields = &[
    ("user", Str),
    ("port", Str),
    ("proxy", Str),
    ("proxy_command", Str),
    ("log_level", Str),
    ("keys_only", Bool),
    ("keys", Arr(&Str)),
    ("key_data", Arr(&Str)),
    // Not in 1.9.3 (it came with 2.0): kamal_rs accepts it for 1.x configs too, so that a 1.x deploy
    // can use an ssh_config of its own.
    ("config", Arr(&Str)),
];

pub const SSHKIT: Fields = &[("max_concurrent_starts", Int), ("pool_idle_timeout", Int)];

pub const TRAEFIK: Fields = &[
    ("image", Str),
    ("host_port", Str),
    ("publish", Bool),
    (
        "labels",
        Hash(&[("traefik.http.routers.catchall.entryPoints", Str)]),
    ),
    ("args", Hash(&[("accesslog", Bool)])),
    ("options", Hash(&[("cpus", Int)])),
    ("env", Section),
];
