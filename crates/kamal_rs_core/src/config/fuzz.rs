//! Config fuzzing: arbitrary trees, shaped like `deploy.yml` (its keys, nested at random, with values of
//! every type), through the loader and validator and then everything a run builds from a config. Each
//! must end in a config or an error, never a panic.

use proptest::prelude::*;

use crate::commands::app::App;
use crate::config::{Configuration, LoadOptions};
use crate::runner::commander::Selection;
use crate::ssh::SshSettings;
use crate::value::{Map, Value};

/// Keys of `deploy.yml` at every level, so that trees reach the validator's rules.
const KEYS: &[&str] = &[
    "service",
    "image",
    "servers",
    "registry",
    "server",
    "username",
    "password",
    "builder",
    "arch",
    "env",
    "clear",
    "secret",
    "tags",
    "proxy",
    "host",
    "hosts",
    "ssl",
    "app_port",
    "healthcheck",
    "path",
    "accessories",
    "roles",
    "role",
    "cmd",
    "options",
    "labels",
    "volumes",
    "boot",
    "limit",
    "wait",
    "ssh",
    "user",
    "port",
    "proxy_command",
    "keys",
    "logging",
    "driver",
    "web",
    "workers",
    "traefik",
    "primary_role",
    "asset_path",
    "retain_containers",
    "minimum_version",
    "run",
    "hooks_output",
    "aliases",
    "x-custom",
    "stop_timeout",
    "deploy_timeout",
    "require_destination",
    "restart",
    "publish",
    "bind_ips",
    "10.0.0.1",
    "",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (-1e6f64..1e6).prop_map(Value::Float),
        prop::sample::select(KEYS).prop_map(Value::str),
        "[ -~\\n]{0,12}".prop_map(Value::str),
        prop::sample::select(KEYS).prop_map(Value::sym),
        Just(Value::str("10%")),
        Just(Value::str("v1.2.3")),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::seq),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                let mut map = Map::new();
                for (k, v) in pairs {
                    map.set(k, v);
                }
                Value::map(map)
            }),
        ]
    })
}

/// A root map: the keys a config has, with arbitrary values (a valid base under it sometimes).
fn config_tree() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        prop::collection::vec((prop::sample::select(KEYS), tree()), 0..10),
    )
        .prop_map(|(based, pairs)| {
            let mut map = Map::new();
            if based {
                map.set("service", Value::str("app"));
                map.set("image", Value::str("app"));
                map.set("servers", Value::seq(vec![Value::str("10.0.0.1")]));
                let mut registry = Map::new();
                registry.set("username", Value::str("u"));
                registry.set("password", Value::str("p"));
                map.set("registry", Value::map(registry));
                let mut builder = Map::new();
                builder.set("arch", Value::str("amd64"));
                map.set("builder", Value::map(builder));
            }
            for (k, v) in pairs {
                map.set(k, v);
            }
            Value::map(map)
        })
}

/// Everything a run derives from a loaded config.
fn exercise(config: &Configuration) {
    let _ = config.to_h();
    let _ = config.version();
    let _ = SshSettings::from_config(config.get("ssh")).map(|s| s.ssh_config());
    let _ = config.boot();
    let _ = config.timeouts();
    let _ = config.registry().credentials(&config.secrets);
    if let Ok(sel) = Selection::new(config, None, None, false) {
        let _ = sel.boot_groups(config);
        for host in &sel.hosts {
            for role in sel.roles_on(config, host) {
                let app = App::new(config, role);
                let _ = app.run(host, "v1", "h-0123");
                let _ = app.proxy_deploy("abc", "v1");
                let _ = app.env_file(host);
                let _ = app.stop("v0");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_tree_is_a_config_or_an_error(root in config_tree(), dest in prop::option::of(tree())) {
        let mut files = vec![root];
        if let Some(d) = dest {
            files.push(d);
        }
        let options = LoadOptions {
            destination: Some("staging".into()),
            version: Some("v1".into()),
            ..LoadOptions::default()
        };
        if let Ok(config) = Configuration::load(&files, options) {
            exercise(&config);
        }
    }
}
