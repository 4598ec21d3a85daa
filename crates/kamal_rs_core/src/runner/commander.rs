//! Which hosts and roles a run acts on (Kamal's `Commander` and its specifics, `lib/kamal/commander.rb`,
//! `lib/kamal/commander/specifics.rb`, Kamal 2.12.0): `-h`, `-r`, `-p`, the
//! primary host (where the lock lives), app hosts, proxy hosts, boot groups.

use crate::config::{Configuration, Role};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Selection {
    /// KAMAL.hosts: every host the run touches, hosts of the primary role first.
    pub hosts: Vec<String>,
    /// Hosts that run app roles, primary-role hosts first.
    pub app_hosts: Vec<String>,
    /// Roles with at least one selected host, the primary role first.
    pub roles: Vec<String>,
    /// The role whose first healthy container opens the barrier for the others.
    pub primary_role: String,
    /// Where the lock lives.
    pub primary_host: String,
    pub proxy_hosts: Vec<String>,
    pub specific_roles: Option<Vec<String>>,
}

impl Selection {
    pub fn new(
        config: &Configuration,
        hosts: Option<&str>,
        roles: Option<&str>,
        primary: bool,
    ) -> Result<Selection> {
        let all_hosts = config.all_hosts();
        let specific_roles = specific_roles(config, roles)?;
        let configured_primary = config.primary_role_name();
        let primary_role = match &specific_roles {
            Some(rs) if !rs.iter().any(|r| r.name == configured_primary) => rs[0].name.clone(),
            _ => configured_primary,
        };
        let mut specific_hosts = match hosts {
            Some(list) => Some(matching(list, &all_hosts, "hosts")?),
            None => None,
        };
        let primary_host = match (&specific_hosts, &specific_roles) {
            (Some(h), _) => h[0].clone(),
            (None, Some(rs)) => rs[0].hosts.first().cloned().unwrap_or_default(),
            (None, None) => config.primary_host().unwrap_or_default().to_string(),
        };
        if primary {
            specific_hosts = Some(vec![primary_host.clone()]);
        }
        let role_list: Vec<&Role> = specific_roles
            .clone()
            .unwrap_or_else(|| config.roles.iter().collect());
        let selected = |h: &String| specific_hosts.as_ref().is_none_or(|s| s.contains(h));
        let in_roles = |h: &String| {
            specific_roles
                .as_ref()
                .is_none_or(|rs| rs.iter().any(|r| r.hosts.contains(h)))
        };
        let primary_hosts: Vec<String> = config
            .role(&primary_role)
            .map(|r| r.hosts.clone())
            .unwrap_or_default();
        let primary_first = |mut hosts: Vec<String>| {
            hosts.sort_by_key(|h| !primary_hosts.contains(h));
            hosts
        };

        let hosts = primary_first(
            all_hosts
                .iter()
                .filter(|h| selected(h) && in_roles(h))
                .cloned()
                .collect(),
        );
        let mut app_hosts = Vec::new();
        for role in &role_list {
            for h in &role.hosts {
                if selected(h) && !app_hosts.contains(h) {
                    app_hosts.push(h.clone());
                }
            }
        }
        let app_hosts = primary_first(app_hosts);
        let mut roles: Vec<String> = role_list
            .iter()
            .filter(|r| r.hosts.iter().any(&selected))
            .map(|r| r.name.clone())
            .collect();
        roles.sort_by_key(|r| *r != primary_role);
        let mut proxy_hosts = Vec::new();
        for role in role_list.iter().filter(|r| r.running_proxy()) {
            for h in role.hosts.iter().filter(|h| selected(h)) {
                if !proxy_hosts.contains(h) {
                    proxy_hosts.push(h.clone());
                }
            }
        }
        Ok(Selection {
            hosts,
            app_hosts,
            roles,
            primary_role,
            primary_host,
            proxy_hosts,
            specific_roles: specific_roles.map(|rs| rs.iter().map(|r| r.name.clone()).collect()),
        })
    }

    /// The roles to boot on a host, in run order (primary first).
    pub fn roles_on<'a>(&'a self, config: &'a Configuration, host: &str) -> Vec<&'a Role> {
        self.roles
            .iter()
            .filter_map(|name| config.role(name))
            .filter(|r| r.hosts.iter().any(|h| h == host))
            .collect()
    }

    /// App hosts in boot groups of `boot.limit` (a count, or `N%` of all hosts, accessories included).
    pub fn boot_groups(&self, config: &Configuration) -> Vec<Vec<String>> {
        let size = config
            .boot()
            .group_size(config.all_hosts().len(), self.app_hosts.len());
        self.app_hosts
            .chunks(size)
            .map(<[String]>::to_vec)
            .collect()
    }
}

/// `-r`: the roles matching the patterns, in config order.
fn specific_roles<'c>(
    config: &'c Configuration,
    roles: Option<&str>,
) -> Result<Option<Vec<&'c Role>>> {
    let Some(list) = roles else {
        return Ok(None);
    };
    let names: Vec<String> = config.roles.iter().map(|r| r.name.clone()).collect();
    let matched = matching(list, &names, "roles")?;
    Ok(Some(
        config
            .roles
            .iter()
            .filter(|r| matched.contains(&r.name))
            .collect(),
    ))
}

/// The items matching `-h`/`-r` patterns; none is Kamal's `No --<what> match for <list>`.
fn matching(list: &str, items: &[String], what: &str) -> Result<Vec<String>> {
    let matched = filter_specific(list, items);
    if matched.is_empty() {
        return Err(Error::argument(format!("No --{what} match for {list}")));
    }
    Ok(matched)
}

/// Comma-separated patterns with `*`, `?`, `[...]` and `{a,b}` (File.fnmatch with FNM_EXTGLOB).
pub fn filter_specific(patterns: &str, items: &[String]) -> Vec<String> {
    let pats: Vec<&str> = patterns
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    items
        .iter()
        .filter(|i| pats.iter().any(|p| fnmatch(p, i)))
        .cloned()
        .collect()
}

pub fn fnmatch(pattern: &str, text: &str) -> bool {
    if let (Some(open), Some(close)) = (pattern.find('{'), pattern.find('}')) {
        if open < close {
            let (head, rest) = pattern.split_at(open);
            let alternatives = &rest[1..close - open];
            let tail = &rest[close - open + 1..];
            return alternatives
                .split(',')
                .any(|alt| fnmatch(&format!("{head}{alt}{tail}"), text));
        }
    }
    glob(pattern.as_bytes(), text.as_bytes())
}

fn glob(p: &[u8], t: &[u8]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], t) || (!t.is_empty() && glob(p, &t[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &t[1..]),
        (Some(b'['), Some(&c)) => match p.iter().position(|&b| b == b']') {
            Some(end) => {
                let set = &p[1..end];
                let (negate, set) = if set.first() == Some(&b'!') || set.first() == Some(&b'^') {
                    (true, &set[1..])
                } else {
                    (false, set)
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != negate && glob(&p[end + 1..], &t[1..])
            }
            None => c == b'[' && glob(&p[1..], &t[1..]),
        },
        (Some(&a), Some(&b)) => a == b && glob(&p[1..], &t[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_with_extglob_braces() {
        assert!(fnmatch("10.0.0.*", "10.0.0.12"));
        assert!(fnmatch("web-{1,2}", "web-2"));
        assert!(!fnmatch("web-{1,2}", "web-3"));
        assert!(fnmatch("h?", "h1"));
        assert!(fnmatch("h[1-3]", "h2"));
        assert!(!fnmatch("h[!1-3]", "h2"));
    }
}
