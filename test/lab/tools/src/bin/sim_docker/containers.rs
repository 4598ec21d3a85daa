//! Containers: run/create, start, stop, rm, rename, ps, inspect, prune, cp; networks.

use super::*;

pub(crate) fn ps(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("query");
    let (flags, _) = split_flags(
        args,
        &[
            "-a",
            "--all",
            "-q",
            "--quiet",
            "-l",
            "--latest",
            "--no-trunc",
        ],
    );
    let all = has(&flags, &["-a", "--all"]);
    let filters = values(&flags, &["--filter", "-f"]);
    let format = values(&flags, &["--format"]).first().copied();
    sim.with_state(|s| {
        let mut found: Vec<&Container> = s
            .containers
            .iter()
            .filter(|c| all || c.status == "running")
            .filter(|c| container_matches(s, c, &filters))
            .collect();
        found.sort_by(|a, b| b.created.cmp(&a.created));
        if has(&flags, &["-l", "--latest"]) {
            found.truncate(1);
        }
        if has(&flags, &["-q", "--quiet"]) {
            return Out::ok(
                found
                    .iter()
                    .map(|c| format!("{}\n", &c.id[..12]))
                    .collect::<String>(),
            );
        }
        let rows: Vec<Value> = found.iter().map(|c| ps_row(c)).collect();
        format_rows(&rows, format, |r| {
            format!(
                "{}   {}",
                r["ID"].as_str().unwrap_or(""),
                r["Names"].as_str().unwrap_or("")
            )
        })
    })
}

pub(crate) fn ps_row(c: &Container) -> Value {
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({"ID": &c.id[..12], "Names": c.name, "Image": c.image, "State": c.status,
           "Status": if c.status == "running" { "Up" } else { "Exited (0)" },
           "Labels": labels.join(","), "Command": c.cmd.join(" ")})
}

pub(crate) fn container_matches(s: &State, c: &Container, filters: &[&str]) -> bool {
    let statuses: Vec<&str> = filters
        .iter()
        .filter_map(|f| f.strip_prefix("status="))
        .collect();
    if !statuses.is_empty() && !statuses.contains(&c.status.as_str()) {
        return false;
    }
    filters.iter().all(|f| {
        if let Some(label) = f.strip_prefix("label=") {
            match label.split_once('=') {
                Some((k, v)) => c.labels.get(k).map(String::as_str) == Some(v),
                None => c.labels.contains_key(label),
            }
        } else if let Some(name) = f.strip_prefix("name=") {
            name_matches(&c.name, name)
        } else if let Some(image) = f.strip_prefix("ancestor=") {
            s.image(image).is_some_and(|i| i.id == c.image_id) || c.image == image
        } else {
            true
        }
    })
}

/// docker's name filter: a regular expression; here `^exact$` or a substring.
pub(crate) fn name_matches(name: &str, pattern: &str) -> bool {
    match (pattern.strip_prefix('^'), pattern.ends_with('$')) {
        (Some(p), true) => name == p.trim_end_matches('$'),
        (Some(p), false) => name.starts_with(p),
        (None, true) => name.ends_with(pattern.trim_end_matches('$')),
        (None, false) => name.contains(pattern),
    }
}

pub(crate) fn container_json(c: &Container) -> Value {
    let networks: serde_json::Map<String, Value> =
        c.networks.iter().map(|n| (n.clone(), json!({}))).collect();
    let labels: serde_json::Map<String, Value> = c
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({"Id": c.id, "Name": format!("/{}", c.name), "Image": c.image_id,
           "Config": {"Image": c.image, "Labels": labels, "Env": c.env, "Cmd": c.cmd, "Hostname": c.hostname},
           "State": {"Status": c.status, "Running": c.status == "running"},
           "NetworkSettings": {"Networks": networks},
           "HostConfig": {"Binds": c.binds, "RestartPolicy": {"Name": c.restart}, "LogConfig": {"Config": c.log_opts}, "PortBindings": c.publish},
           "Mounts": []})
}

pub(crate) fn inspect(sim: &Sim, args: &[&str], only: Option<&str>) -> Out {
    sim.wait("query");
    let (flags, names) = split_flags(args, &["-s", "--size"]);
    let format = values(&flags, &["--format", "-f"]).first().copied();
    sim.with_state(|s| {
        let mut objects = Vec::new();
        for name in &names {
            let container = (only != Some("image"))
                .then(|| s.container_index(name))
                .flatten();
            let object = match container {
                Some(i) => Some(container_json(&s.containers[i])),
                None if only != Some("container") => s.image(name).map(image_json),
                None => None,
            };
            match object {
                Some(o) => objects.push(o),
                None => return Out::err(format!("Error: No such object: {name}\n"), 1),
            }
        }
        match format {
            Some(_) => format_rows(&objects, format, |_| String::new()),
            None => Out::ok(format!(
                "{}\n",
                serde_json::to_string_pretty(&objects).unwrap()
            )),
        }
    })
}

pub(crate) fn container_prune(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let (flags, _) = split_flags(args, &["-f", "--force"]);
    let filters = values(&flags, &["--filter"]);
    sim.with_state(|s| {
        let keep: Vec<Container> = s
            .containers
            .iter()
            .filter(|c| c.status == "running" || !container_matches(s, c, &filters))
            .cloned()
            .collect();
        s.containers = keep;
        Out::ok("Total reclaimed space: 0B\n")
    })
}

/// `docker run` (`start`: false for `docker create`).
/// `docker run`'s environment: each `--env`, then each `--env-file`'s lines.
pub(crate) fn run_env(flags: &[(String, String)]) -> Result<Vec<String>, Out> {
    let mut env: Vec<String> = values(flags, &["--env", "-e"])
        .iter()
        .map(|e| e.to_string())
        .collect();
    for file in values(flags, &["--env-file"]) {
        let Ok(text) = std::fs::read_to_string(file) else {
            return Err(Out::err(
                format!("docker: open {file}: no such file or directory.\n"),
                125,
            ));
        };
        env.extend(
            text.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(env)
}

/// `docker run`'s `--label K=V` (a bare `K` is an empty label).
pub(crate) fn run_labels(flags: &[(String, String)]) -> BTreeMap<String, String> {
    values(flags, &["--label", "-l"])
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

pub(crate) fn run(sim: &Sim, args: &[&str], start: bool) -> Out {
    if start && sim.fault().as_deref() == Some("lost") {
        drop_connection();
    }
    const BOOLEANS: [&str; 10] = [
        "-d",
        "--detach",
        "--rm",
        "--init",
        "--privileged",
        "-i",
        "-t",
        "--interactive",
        "--tty",
        "-it",
    ];
    let (flags, rest) = split_flags(args, &BOOLEANS);
    let Some((image_name, cmd)) = rest.split_first() else {
        return Out::err("\"docker run\" requires at least 1 argument.\n", 1);
    };
    let name = values(&flags, &["--name"]).first().map(|s| s.to_string());
    let env = match run_env(&flags) {
        Ok(env) => env,
        Err(out) => return out,
    };
    let labels = run_labels(&flags);
    // The image, pulled first when it is not here (as docker run does).
    let r = reference(image_name);
    let have = sim.with_state(|s| s.image(&r).is_some());
    let mut out = Out::ok("");
    if !have {
        let pulled = pull(sim, &[image_name]);
        if pulled.code != 0 {
            return Out::err(
                format!("Unable to find image '{r}' locally\n{}", pulled.stderr),
                125,
            );
        }
        out.stderr
            .push_str(&format!("Unable to find image '{r}' locally\n"));
    }
    sim.wait(if start { "run" } else { "write" });
    let id = random_hex(64);
    let created = sim.with_state(|s| {
        let name = name.clone().unwrap_or_else(|| format!("sim_{}", &id[..8]));
        if s.containers.iter().any(|c| c.name == name) {
            return Err(format!("docker: Error response from daemon: Conflict. The container name \"/{name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.\n", s.containers.iter().find(|c| c.name == name).map(|c| c.id.clone()).unwrap_or_default()));
        }
        let image = s.image(&r).cloned().ok_or_else(|| format!("docker: No such image: {r}\n"))?;
        let mut all_labels = image.labels.clone();
        all_labels.extend(labels.clone());
        let network = values(&flags, &["--network", "--net"]).first().map(|n| n.to_string()).unwrap_or_else(|| "bridge".into());
        if !s.networks.contains(&network) {
            return Err(format!("docker: Error response from daemon: network {network} not found.\n"));
        }
        s.seq += 1;
        s.containers.push(Container {
            id: id.clone(),
            name,
            image: image_name.to_string(),
            image_id: image.id.clone(),
            labels: all_labels,
            env: env.clone(),
            cmd: cmd.iter().map(|c| c.to_string()).collect(),
            status: if start { "running".into() } else { "created".into() },
            created: s.seq,
            started_at: now(),
            networks: vec![network],
            restart: values(&flags, &["--restart"]).first().unwrap_or(&"no").to_string(),
            hostname: values(&flags, &["--hostname", "-h"]).first().unwrap_or(&&id[..12]).to_string(),
            binds: values(&flags, &["--volume", "-v"]).iter().map(|v| v.to_string()).collect(),
            log_opts: values(&flags, &["--log-opt"]).iter().map(|v| v.to_string()).collect(),
            publish: values(&flags, &["--publish", "-p"]).iter().map(|v| v.to_string()).collect(),
            healthy: image.healthy,
        });
        Ok(())
    });
    match created {
        Ok(()) => {
            out.stdout = format!("{id}\n");
            out
        }
        Err(e) => Out::err(e, 125),
    }
}

pub(crate) fn start(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("run");
    sim.with_state(|s| {
        let mut out = Out::ok("");
        for name in args.iter().filter(|a| !a.starts_with('-')) {
            match s.container_index(name) {
                Some(i) => {
                    if s.containers[i].status != "running" {
                        s.containers[i].status = "running".into();
                        s.containers[i].started_at = now();
                    }
                    out.stdout.push_str(&format!("{name}\n"));
                }
                None => {
                    out.stderr.push_str(&format!("Error response from daemon: No such container: {name}\nError: failed to start containers: {name}\n"));
                    out.code = 1;
                }
            }
        }
        out
    })
}

pub(crate) fn stop(sim: &Sim, args: &[&str]) -> Out {
    let (_, names) = split_flags(args, &[]);
    if names.is_empty() {
        return Out::err("\"docker stop\" requires at least 1 argument.\n", 1);
    }
    sim.wait("stop");
    sim.with_state(|s| {
        let mut out = Out::ok("");
        for name in names {
            match s.container_index(name) {
                Some(i) => {
                    s.containers[i].status = "exited".into();
                    out.stdout.push_str(&format!("{name}\n"));
                }
                None => {
                    out.stderr.push_str(&format!(
                        "Error response from daemon: No such container: {name}\n"
                    ));
                    out.code = 1;
                }
            }
        }
        out
    })
}

pub(crate) fn rm(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let (flags, names) = split_flags(args, &["-f", "--force", "-v", "--volumes"]);
    let force = has(&flags, &["-f", "--force"]);
    sim.with_state(|s| {
        let mut out = Out::ok("");
        for name in names {
            match s.container_index(name) {
                Some(i) if s.containers[i].status == "running" && !force => {
                    out.stderr.push_str(&format!("Error response from daemon: cannot remove container \"/{}\": container is running: stop the container before removing or force remove\n", s.containers[i].name));
                    out.code = 1;
                }
                Some(i) => {
                    s.containers.remove(i);
                    out.stdout.push_str(&format!("{name}\n"));
                }
                None => {
                    out.stderr.push_str(&format!("Error response from daemon: No such container: {name}\n"));
                    out.code = 1;
                }
            }
        }
        out
    })
}

pub(crate) fn rename(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let [old, new] = args else {
        return Out::err("\"docker rename\" requires exactly 2 arguments.\n", 1);
    };
    sim.with_state(|s| match s.container_index(old) {
        Some(i) => {
            s.containers[i].name = new.to_string();
            Out::ok("")
        }
        None => Out::err(
            format!("Error response from daemon: No such container: {old}\n"),
            1,
        ),
    })
}

/// `docker container cp` out of an image's container: the directory is made (assets are not
/// simulated file by file).
pub(crate) fn cp(args: &[&str]) -> Out {
    if let Some(dest) = args.iter().rev().find(|a| !a.starts_with('-')) {
        let _ = std::fs::create_dir_all(dest);
    }
    Out::ok("")
}

pub(crate) fn network_create(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let Some(name) = args.iter().rev().find(|a| !a.starts_with('-')) else {
        return Out::err(
            "\"docker network create\" requires exactly 1 argument.\n",
            1,
        );
    };
    sim.with_state(|s| {
        if s.networks.iter().any(|n| n == name) {
            Out::err(
                format!("Error response from daemon: network with name {name} already exists\n"),
                1,
            )
        } else {
            s.networks.push(name.to_string());
            Out::ok(format!("{}\n", random_hex(64)))
        }
    })
}
