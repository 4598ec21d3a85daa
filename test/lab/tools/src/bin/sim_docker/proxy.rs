//! `docker exec kamal-proxy kamal-proxy ...`: the proxy's deploys, health-gated and recorded.

use super::*;

/// `docker exec CONTAINER CMD...`: kamal-proxy's commands are simulated; anything else does nothing.
pub(crate) fn exec(sim: &Sim, args: &[&str]) -> Out {
    let (_, rest) = split_flags(
        args,
        &[
            "-i",
            "-t",
            "-it",
            "-d",
            "--detach",
            "--interactive",
            "--tty",
        ],
    );
    let Some((container, cmd)) = rest.split_first() else {
        return Out::err("\"docker exec\" requires at least 2 arguments.\n", 1);
    };
    let running = sim.with_state(|s| {
        s.container_index(container)
            .map(|i| s.containers[i].status == "running")
    });
    match running {
        None => {
            return Out::err(
                format!("Error response from daemon: No such container: {container}\n"),
                1,
            )
        }
        Some(false) => {
            return Out::err(
                format!("Error response from daemon: container {container} is not running\n"),
                1,
            )
        }
        Some(true) => {}
    }
    sim.wait("exec");
    if *container != "kamal-proxy" || cmd.first() != Some(&"kamal-proxy") {
        return Out::ok("");
    }
    let words: Vec<String> = cmd[1..].iter().map(|w| w.to_string()).collect();
    sim.with_state(|s| s.proxy.commands.push(words.clone()));
    match words.first().map(String::as_str) {
        Some("deploy") => proxy_deploy(sim, &words),
        Some("remove") => {
            sim.with_state(|s| {
                s.proxy
                    .routes
                    .remove(words.get(1).map(String::as_str).unwrap_or(""))
            });
            Out::ok("")
        }
        Some("list") => Out::ok(sim.with_state(|s| {
            s.proxy
                .routes
                .iter()
                .map(|(k, v)| format!("{k}\t{v}\n"))
                .collect::<String>()
        })),
        Some("version") | Some("--version") => Out::ok("v0.9.2\n"),
        _ => Out::ok(""),
    }
}

/// Health-gated, as kamal-proxy: waits until the target container answers (`health` seconds after it
/// started, never for an unhealthy image), at most `--deploy-timeout`.
pub(crate) fn proxy_deploy(sim: &Sim, words: &[String]) -> Out {
    let (flags, rest) = split_interspersed(
        &words[1..].iter().map(String::as_str).collect::<Vec<_>>(),
        &[
            "--tls",
            "--buffer-requests",
            "--buffer-responses",
            "--forward-headers",
            "--strip-path-prefix",
            "--tls-redirect",
        ],
    );
    let service = rest.first().copied().unwrap_or("").to_string();
    let target = values(&flags, &["--target"])
        .first()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let timeout = values(&flags, &["--deploy-timeout"])
        .first()
        .map(|t| t.trim_end_matches('s').parse::<f64>().unwrap_or(30.0))
        .unwrap_or(30.0);
    let id = target.split(':').next().unwrap_or("").to_string();
    let found = sim.with_state(|s| {
        s.container_index(&id)
            .map(|i| (s.containers[i].healthy, s.containers[i].started_at))
    });
    let Some((healthy, started)) = found else {
        return Out::err(format!("Error: target {target} could not be resolved\n"), 1);
    };
    if !healthy || sim.fault().as_deref() == Some("unhealthy") {
        std::thread::sleep(Duration::from_secs_f64(timeout));
        return Out::err(
            format!(
                "Error: target failed to become healthy within configured timeout ({timeout}s)\n"
            ),
            1,
        );
    }
    let ready = started + sim.latency_of("health", 0.3);
    let wait = ready - now();
    if wait > timeout {
        std::thread::sleep(Duration::from_secs_f64(timeout));
        return Out::err(
            format!(
                "Error: target failed to become healthy within configured timeout ({timeout}s)\n"
            ),
            1,
        );
    }
    if wait > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
    sim.with_state(|s| s.proxy.routes.insert(service, target));
    Out::ok("")
}
