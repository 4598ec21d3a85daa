//! What a run is asked to do: one contract for the command line, the Ruby API and the Rake tasks.
//!
//! `OPTIONS` declares every option once, with its name, letter, help and default (Kamal's class
//! options and `deploy`'s own, `lib/kamal/cli/base.rb` and `lib/kamal/cli/main.rb`, Kamal 2.12.0).
//! Ruby reads the table (`KamalRs::Native.options`) to build `kamal-rs`'s parser, check
//! `KamalRs.deploy`'s keywords and map the Rake tasks' environment variables; it hands the chosen
//! values back as a Hash, which becomes `DeployOptions` through serde.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::output::Verbosity;

/// `--lock-wait-timeout`'s default, in seconds.
pub const LOCK_WAIT_TIMEOUT: f64 = 900.0;
/// `--lock-wait-interval`'s default, in seconds.
pub const LOCK_WAIT_INTERVAL: f64 = 15.0;
/// A remote command that takes longer than this (seconds) fails its host.
pub const COMMAND_TIMEOUT: f64 = 600.0;
/// `--config-file`'s default.
pub const CONFIG_FILE: &str = "config/deploy.yml";

/// Which of Kamal's commands the run is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    #[default]
    Deploy,
    /// No kamal-proxy boot, no prune.
    Redeploy,
    /// Kamal 1.x's `env push`.
    EnvPush,
    /// Back to a version that still has its containers: no pull, no kamal-proxy boot, no prune.
    Rollback,
}

impl Command {
    /// Hooks' `KAMAL_COMMAND`.
    pub fn name(self) -> &'static str {
        match self {
            Command::Deploy => "deploy",
            Command::Redeploy => "redeploy",
            Command::EnvPush => "env",
            Command::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployOptions {
    pub command: Command,
    pub skip_push: bool,
    pub no_cache: bool,
    /// No host boots before every host has pulled (Kamal's order); off, each host boots once its own
    /// pull is done.
    pub pull_barrier: bool,
    pub hosts: Option<String>,
    pub roles: Option<String>,
    pub primary: bool,
    pub skip_hooks: bool,
    pub verbose: bool,
    pub quiet: bool,
    /// stdout is a terminal: colours and the live per-host view.
    pub terminal: bool,
    pub lock_wait: bool,
    pub lock_wait_timeout: f64,
    pub lock_wait_interval: f64,
    /// Seconds.
    pub command_timeout: f64,
    /// Where to write the run's events as JSON lines (else `KAMAL_RS_EVENTS`).
    pub events: Option<String>,
    /// Where to draw the run's timeline as SVG (else `KAMAL_RS_TIMELINE`).
    pub timeline: Option<String>,
    /// How many hosts may be left behind (`N` or `P%`, else `KAMAL_RS_MAX_FAIL`; none: 0).
    pub max_fail: Option<String>,
    /// `-c` as given (the config is read by the caller): the finishing command names it.
    pub config_file: Option<String>,
    /// A failed run puts every host that switched back on the version it ran before (else
    /// `KAMAL_RS_REVERT_ON_FAILURE=1`).
    pub revert_on_failure: bool,
    /// Canary hosts (`N` or `P%`): they boot first, are watched for `canary_wait` seconds, and only
    /// then do the others boot.
    pub canary: Option<String>,
    pub canary_wait: f64,
    /// The run's caller holds the deploy lock (a revert inside the run that took it).
    #[serde(skip)]
    pub lock_held: bool,
    /// A run inside another (a revert): no events, timeline, summary or output logs of its own.
    #[serde(skip)]
    pub nested: bool,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            command: Command::Deploy,
            skip_push: false,
            no_cache: false,
            pull_barrier: true,
            hosts: None,
            roles: None,
            primary: false,
            skip_hooks: false,
            verbose: false,
            quiet: false,
            terminal: false,
            lock_wait: false,
            lock_wait_timeout: LOCK_WAIT_TIMEOUT,
            lock_wait_interval: LOCK_WAIT_INTERVAL,
            command_timeout: COMMAND_TIMEOUT,
            events: None,
            timeline: None,
            max_fail: None,
            config_file: None,
            revert_on_failure: false,
            canary: None,
            canary_wait: 0.0,
            lock_held: false,
            nested: false,
        }
    }
}

impl DeployOptions {
    pub fn redeploy(&self) -> bool {
        self.command == Command::Redeploy
    }

    /// `deploy` boots kamal-proxy (Traefik for 1.x) and logs in to the registry on the servers first;
    /// `redeploy` and `rollback` do neither.
    pub fn boots_proxy(&self) -> bool {
        self.command == Command::Deploy
    }

    /// No host boots before every app host is ready: pulled (`deploy`, `redeploy`, unless
    /// `--no-pull-barrier`), or found to have the version (`rollback`, always: Kamal checks every host
    /// before it boots any).
    pub fn boot_barrier(&self) -> bool {
        self.pull_barrier || self.command == Command::Rollback
    }

    /// `deploy` prunes old containers and images.
    pub fn prunes(&self) -> bool {
        self.command == Command::Deploy
    }

    /// Stale containers are stopped before each boot (`rollback` boots the version alone).
    pub fn stops_stale(&self) -> bool {
        matches!(self.command, Command::Deploy | Command::Redeploy)
    }

    pub fn verbosity(&self) -> Verbosity {
        if self.verbose {
            Verbosity::Verbose
        } else if self.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        }
    }

    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.command_timeout.max(0.001))
    }

    /// `-h`/`-r` as given; an empty list means none.
    pub fn hosts(&self) -> Option<&str> {
        self.hosts.as_deref().filter(|s| !s.is_empty())
    }

    pub fn roles(&self) -> Option<&str> {
        self.roles.as_deref().filter(|s| !s.is_empty())
    }

    /// `--events`, else `KAMAL_RS_EVENTS` (for Rake tasks and the Ruby API too).
    pub fn events_file(&self) -> Option<String> {
        given_or_env(&self.events, "KAMAL_RS_EVENTS")
    }

    /// `--timeline`, else `KAMAL_RS_TIMELINE`.
    pub fn timeline_file(&self) -> Option<String> {
        given_or_env(&self.timeline, "KAMAL_RS_TIMELINE")
    }

    /// `--revert-on-failure`, else `KAMAL_RS_REVERT_ON_FAILURE=1`.
    pub fn reverts_on_failure(&self) -> bool {
        self.revert_on_failure
            || std::env::var("KAMAL_RS_REVERT_ON_FAILURE")
                .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"))
    }

    /// `--max-fail`, else `KAMAL_RS_MAX_FAIL`.
    pub fn max_fail(&self) -> Option<String> {
        given_or_env(&self.max_fail, "KAMAL_RS_MAX_FAIL")
    }
}

fn given_or_env(given: &Option<String>, var: &str) -> Option<String> {
    given
        .clone()
        .or_else(|| std::env::var(var).ok())
        .filter(|s| !s.is_empty())
}

/// Where an option is offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every command (Kamal's class options).
    Global,
    /// `deploy` and `redeploy`.
    Deploy,
    /// `deploy`, `redeploy` and `rollback`.
    Rollout,
    /// The Ruby API and Rake tasks only.
    Api,
}

/// What an option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Flag,
    Text,
    Number,
}

/// An option's default, as Ruby sees it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DefaultValue {
    Flag(bool),
    Number(f64),
    Text(&'static str),
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct OptionSpec {
    /// The Ruby keyword and `DeployOptions` field (`skip_push`); `--skip-push` on the command line,
    /// `SKIP_PUSH` for the Rake tasks.
    pub name: &'static str,
    pub short: Option<&'static str>,
    /// The value's name in help (`VERSION`); none for a flag.
    pub arg: Option<&'static str>,
    pub kind: Kind,
    pub scope: Scope,
    /// Shown in help; `None` where Kamal shows none.
    pub default: Option<DefaultValue>,
    pub description: &'static str,
    /// Read when the configuration is loaded, not by the run (`config_file`, `destination`, `version`).
    pub config: bool,
}

const fn spec(
    name: &'static str,
    short: Option<&'static str>,
    arg: Option<&'static str>,
    kind: Kind,
    scope: Scope,
    default: Option<DefaultValue>,
    description: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        short,
        arg,
        kind,
        scope,
        default,
        description,
        config: false,
    }
}

const fn config_spec(mut s: OptionSpec) -> OptionSpec {
    s.config = true;
    s
}

use Kind::{Flag, Number, Text};
use Scope::{Api, Deploy, Global, Rollout};

/// Every option, in Kamal's help order.
pub const OPTIONS: &[OptionSpec] = &[
    spec(
        "verbose",
        Some("-v"),
        None,
        Flag,
        Global,
        None,
        "Detailed logging",
    ),
    spec(
        "quiet",
        Some("-q"),
        None,
        Flag,
        Global,
        None,
        "Minimal logging",
    ),
    config_spec(spec(
        "version",
        None,
        Some("VERSION"),
        Text,
        Global,
        None,
        "Run commands against a specific app version",
    )),
    spec(
        "primary",
        Some("-p"),
        None,
        Flag,
        Global,
        None,
        "Run commands only on primary host instead of all",
    ),
    spec(
        "hosts",
        Some("-h"),
        Some("HOSTS"),
        Text,
        Global,
        None,
        "Run commands on these hosts instead of all (separate by comma, supports wildcards with *)",
    ),
    spec(
        "roles",
        Some("-r"),
        Some("ROLES"),
        Text,
        Global,
        None,
        "Run commands on these roles instead of all (separate by comma, supports wildcards with *)",
    ),
    config_spec(spec(
        "config_file",
        Some("-c"),
        Some("CONFIG_FILE"),
        Text,
        Global,
        Some(DefaultValue::Text(CONFIG_FILE)),
        "Path to config file",
    )),
    config_spec(spec(
        "destination",
        Some("-d"),
        Some("DESTINATION"),
        Text,
        Global,
        None,
        "Specify destination to be used for config file (staging -> deploy.staging.yml)",
    )),
    spec(
        "skip_hooks",
        Some("-H"),
        None,
        Flag,
        Global,
        Some(DefaultValue::Flag(false)),
        "Don't run hooks",
    ),
    spec(
        "lock_wait",
        None,
        None,
        Flag,
        Global,
        Some(DefaultValue::Flag(false)),
        "Wait for the deploy lock instead of failing",
    ),
    spec(
        "lock_wait_timeout",
        None,
        Some("N"),
        Number,
        Global,
        Some(DefaultValue::Number(LOCK_WAIT_TIMEOUT)),
        "Seconds to wait for the deploy lock",
    ),
    spec(
        "lock_wait_interval",
        None,
        Some("N"),
        Number,
        Global,
        Some(DefaultValue::Number(LOCK_WAIT_INTERVAL)),
        "Seconds between checks of the deploy lock",
    ),
    spec(
        "skip_push",
        Some("-P"),
        None,
        Flag,
        Deploy,
        Some(DefaultValue::Flag(false)),
        "Skip image build and push",
    ),
    spec(
        "no_cache",
        None,
        None,
        Flag,
        Deploy,
        Some(DefaultValue::Flag(false)),
        "Build without using Docker's build cache",
    ),
    spec(
        "pull_barrier",
        None,
        None,
        Flag,
        Deploy,
        Some(DefaultValue::Flag(true)),
        "Boot no host before every host has pulled the image, as Kamal (--no-pull-barrier: each host boots once its own pull is done)",
    ),
    spec(
        "max_fail",
        None,
        Some("N|P%"),
        Text,
        Rollout,
        None,
        "Leave behind up to N hosts (or P% of them) that cannot be reached, pull or boot, and go on with the rest; exit 3 when any were (or KAMAL_RS_MAX_FAIL)",
    ),
    spec(
        "revert_on_failure",
        None,
        None,
        Flag,
        Rollout,
        Some(DefaultValue::Flag(false)),
        "When the run fails, put every host that switched back on the version it ran before, under the lock (or KAMAL_RS_REVERT_ON_FAILURE=1)",
    ),
    spec(
        "canary",
        None,
        Some("N|P%"),
        Text,
        Rollout,
        None,
        "Boot these first hosts (the primary role's first) before the others, which boot only once they are still healthy after --canary-wait",
    ),
    spec(
        "canary_wait",
        None,
        Some("SECONDS"),
        Number,
        Rollout,
        Some(DefaultValue::Number(0.0)),
        "Seconds to watch the canaries before booting the other hosts",
    ),
    spec(
        "events",
        None,
        Some("FILE"),
        Text,
        Global,
        None,
        "Write the run's events (each host's steps, the outcome) to FILE as JSON lines (or KAMAL_RS_EVENTS)",
    ),
    spec(
        "timeline",
        None,
        Some("FILE.svg"),
        Text,
        Global,
        None,
        "Draw where the run's time went, host by host, to FILE.svg (or KAMAL_RS_TIMELINE)",
    ),
    spec(
        "command_timeout",
        None,
        Some("SECONDS"),
        Number,
        Api,
        Some(DefaultValue::Number(COMMAND_TIMEOUT)),
        "A remote command that takes longer fails its host",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults a run uses are the ones the table shows.
    #[test]
    fn defaults_match_the_table() {
        let d = DeployOptions::default();
        let field = |name: &str| -> Option<DefaultValue> {
            Some(match name {
                "skip_hooks" => DefaultValue::Flag(d.skip_hooks),
                "lock_wait" => DefaultValue::Flag(d.lock_wait),
                "lock_wait_timeout" => DefaultValue::Number(d.lock_wait_timeout),
                "lock_wait_interval" => DefaultValue::Number(d.lock_wait_interval),
                "skip_push" => DefaultValue::Flag(d.skip_push),
                "no_cache" => DefaultValue::Flag(d.no_cache),
                "pull_barrier" => DefaultValue::Flag(d.pull_barrier),
                "revert_on_failure" => DefaultValue::Flag(d.revert_on_failure),
                "canary_wait" => DefaultValue::Number(d.canary_wait),
                "command_timeout" => DefaultValue::Number(d.command_timeout),
                "config_file" => DefaultValue::Text(CONFIG_FILE),
                _ => return None,
            })
        };
        for s in OPTIONS {
            if let Some(default) = s.default {
                assert_eq!(Some(default), field(s.name), "{}", s.name);
            }
        }
    }

    /// Every run option in the table is a `DeployOptions` field, and the other way round.
    #[test]
    fn the_table_names_every_field() {
        let mut map = serde_json::Map::new();
        for s in OPTIONS.iter().filter(|s| !s.config) {
            let value = match s.kind {
                Kind::Flag => serde_json::json!(true),
                Kind::Text => serde_json::json!("x"),
                Kind::Number => serde_json::json!(1.5),
            };
            map.insert(s.name.to_string(), value);
        }
        map.insert("command".into(), serde_json::json!("redeploy"));
        map.insert("terminal".into(), serde_json::json!(true));
        let o: DeployOptions = serde_json::from_value(serde_json::Value::Object(map)).unwrap();
        assert!(o.redeploy() && o.no_cache && o.skip_push && o.terminal);
        assert_eq!(o.lock_wait_timeout, 1.5);
        assert!(serde_json::from_value::<DeployOptions>(serde_json::json!({"nope": 1})).is_err());
    }
}
