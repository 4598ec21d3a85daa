//! Accessories (databases, caches...): not deployed by `deploy`, but their hosts count in `all_hosts`
//! (and so in the lock host set and in `boot.limit` percentages).

use super::role::Role;
use crate::error::{Error, Result};
use crate::value::{Map, Value};

#[derive(Debug, Clone)]
pub struct Accessory {
    pub name: String,
    pub config: Map,
    pub hosts: Vec<String>,
}

impl Accessory {
    pub fn new(name: &str, config: &Map, roles: &[Role]) -> Result<Accessory> {
        let strings = |v: &Value| -> Vec<String> {
            match v {
                Value::Seq(items) => items.iter().map(Value::to_ruby_s).collect(),
                other => vec![other.to_ruby_s()],
            }
        };
        let mut hosts: Vec<String> = Vec::new();
        if let Some(host) = config.get("host") {
            hosts.push(host.to_ruby_s());
        } else if let Some(list) = config.get("hosts") {
            for item in list.as_seq().unwrap_or_default() {
                hosts.push(match item {
                    Value::Map(m) => m
                        .iter()
                        .next()
                        .map(|(h, _)| h.to_ruby_s())
                        .unwrap_or_default(),
                    other => other.to_ruby_s(),
                });
            }
        } else if let Some(names) = config.get("role").or_else(|| config.get("roles")) {
            for role_name in strings(names) {
                let role = roles.iter().find(|r| r.name == role_name).ok_or_else(|| {
                    Error::config(format!("accessories/{name}: unknown role {role_name}"))
                })?;
                hosts.extend(role.hosts.iter().cloned());
            }
        } else if let Some(tags) = config.get("tag").or_else(|| config.get("tags")) {
            let tags = strings(tags);
            for role in roles {
                for host in &role.hosts {
                    if role.tags_of(host).iter().any(|t| tags.contains(t)) {
                        hosts.push(host.clone());
                    }
                }
            }
        }
        let mut unique = Vec::new();
        for h in hosts {
            if !unique.contains(&h) {
                unique.push(h);
            }
        }
        Ok(Accessory {
            name: name.to_string(),
            config: config.clone(),
            hosts: unique,
        })
    }

    pub fn running_proxy(&self) -> bool {
        self.config.get("proxy").is_some_and(Value::truthy)
    }
}
