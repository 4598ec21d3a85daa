//! A test stand-in for Traefik v2 as Kamal 1.9 runs it (`traefik --providers.docker ...`, with the
//! Docker socket mounted): it listens on :80 and relays each connection to the newest app container on
//! this host that Traefik would route to: a container with a `traefik.http.routers.*.rule` label that
//! is running and healthy (or has no health check). Like Traefik's Docker provider, it drops a container
//! as soon as Docker calls it unhealthy. Not Traefik: no rules, no middlewares, no dashboard.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

fn main() {
    // `traefik version` and friends: answer and leave; anything else runs the relay.
    if std::env::args().nth(1).as_deref() == Some("version") {
        println!("Version:      2.11.0 (kamal_rs lab stand-in)");
        return;
    }
    unsafe {
        libc::signal(libc::SIGTERM, exit_now as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, exit_now as *const () as libc::sighandler_t);
    }
    let listener = TcpListener::bind("0.0.0.0:80").unwrap_or_else(|e| {
        eprintln!("cannot listen on :80: {e}");
        std::process::exit(1)
    });
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || relay(conn));
    }
}

extern "C" fn exit_now(_: libc::c_int) {
    unsafe { libc::_exit(0) };
}

fn relay(mut client: TcpStream) {
    let Some(target) = backend() else {
        let body = "no healthy backend\n";
        let _ = write!(
            client,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    };
    let Ok(mut upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        let _ = write!(
            client,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    };
    let (Ok(mut up_read), Ok(mut client_write)) = (upstream.try_clone(), client.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut client, &mut upstream);
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// The newest routable container's address (its port from a `loadbalancer.server.port` label, else 80).
fn backend() -> Option<SocketAddr> {
    let containers = docker_get("/containers/json")?;
    let mut best: Option<(i64, SocketAddr)> = None;
    for c in containers.as_array()? {
        let labels = c["Labels"].as_object()?;
        let routed = labels.keys().any(|k| {
            k.starts_with("traefik.http.routers.")
                && k.ends_with(".rule")
                && !k.contains(".catchall.")
        });
        let status = c["Status"].as_str().unwrap_or_default();
        let healthy = status.contains("(healthy)") || !status.contains("health");
        if !routed || c["State"] != "running" || !healthy {
            continue;
        }
        let port = labels
            .iter()
            .find(|(k, _)| k.ends_with(".loadbalancer.server.port"))
            .and_then(|(_, v)| v.as_str()?.parse().ok())
            .unwrap_or(80u16);
        let ip = c["NetworkSettings"]["Networks"]
            .as_object()?
            .values()
            .find_map(|n| {
                n["IPAddress"]
                    .as_str()
                    .filter(|ip| !ip.is_empty())
                    .map(String::from)
            })?;
        let created = c["Created"].as_i64().unwrap_or(0);
        let addr: SocketAddr = format!("{ip}:{port}").parse().ok()?;
        if best.as_ref().is_none_or(|(t, _)| created > *t) {
            best = Some((created, addr));
        }
    }
    best.map(|(_, a)| a)
}

/// A GET on the Docker API over its socket (HTTP/1.0: the body ends with the connection).
fn docker_get(path: &str) -> Option<serde_json::Value> {
    let mut s = UnixStream::connect(DOCKER_SOCKET).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    serde_json::from_slice(&raw[at + 4..]).ok()
}
