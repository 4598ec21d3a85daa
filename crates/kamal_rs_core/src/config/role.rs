//! A role: a named group of hosts running the same container (`servers:` in `deploy.yml`).

use crate::value::{Map, Value};

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    /// Hosts in config order, each once.
    pub hosts: Vec<String>,
    /// The tags of each host (`- 10.0.0.1: [experiment]`), used to pick `env.tags.<tag>`.
    pub host_tags: Vec<(String, Vec<String>)>,
    /// The role's own settings when it is given as a hash (`cmd`, `options`, `env`, `proxy`, ...).
    pub specializations: Map,
    pub primary: bool,
}

impl Role {
    /// `entry` is the role's value under `servers` (or the whole `servers` array for the implicit `web`).
    pub fn new(name: &str, entry: &Value, primary: bool) -> Role {
        let (list, specializations) = match entry {
            Value::Seq(_) => (entry.clone(), Map::new()),
            Value::Map(map) => (
                map.get("hosts").cloned().unwrap_or(Value::Nil),
                (**map).clone(),
            ),
            _ => (Value::Nil, Map::new()),
        };
        let mut role = Role {
            name: name.to_string(),
            hosts: Vec::new(),
            host_tags: Vec::new(),
            specializations,
            primary,
        };
        for item in list.as_seq().unwrap_or_default() {
            let (host, tags) = match item {
                Value::Map(m) => match m.iter().next() {
                    Some((host, tags)) => (host.to_ruby_s(), tag_list(tags)),
                    None => continue,
                },
                other => (other.to_ruby_s(), Vec::new()),
            };
            match role.host_tags.iter_mut().find(|(h, _)| *h == host) {
                Some((_, existing)) => existing.extend(tags),
                None => {
                    role.hosts.push(host.clone());
                    role.host_tags.push((host, tags));
                }
            }
        }
        role
    }

    pub fn primary_host(&self) -> Option<&str> {
        self.hosts.first().map(String::as_str)
    }

    pub fn tags_of(&self, host: &str) -> &[String] {
        self.host_tags
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, t)| t.as_slice())
            .unwrap_or(&[])
    }

    /// The primary role runs the proxy unless `proxy: false`; other roles only with `proxy: true` or a hash.
    pub fn running_proxy(&self) -> bool {
        match self.specializations.get("proxy") {
            Some(Value::Bool(false)) => false,
            Some(v) if v.truthy() => true,
            _ => self.primary,
        }
    }

    /// The role's proxy settings: the root `proxy:` with the role's own hash merged over it.
    pub fn proxy_config(&self, root_proxy: Option<&Value>) -> Option<Value> {
        if !self.running_proxy() {
            return None;
        }
        let root = root_proxy
            .filter(|v| matches!(v, Value::Map(_)))
            .cloned()
            .unwrap_or_else(|| Value::map(Map::new()));
        Some(match self.specializations.get("proxy") {
            Some(own @ Value::Map(_)) => root.deep_merge(own),
            _ => root,
        })
    }
}

fn tag_list(tags: &Value) -> Vec<String> {
    match tags {
        Value::Seq(items) => items.iter().map(Value::to_ruby_s).collect(),
        Value::Nil => Vec::new(),
        other => vec![other.to_ruby_s()],
    }
}
