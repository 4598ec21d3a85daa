//! A TEST STAND-IN for `docker` on a simulated lab host (`lab up N --sim`): no daemon, no containers,
//! only the state a host would have, kept in the host's own files (`$HOME/.sim-docker/state.json`),
//! and answers in the shape docker gives, after configurable latencies. It knows the commands Kamal
//! 2.12 and kamal_rs send in a deploy, redeploy and rollback: login, info, pull, tag, image rm/ls/
//! inspect/prune, run/create/start/stop/rm/rename, ps, inspect, logs, network create/ls, cp, and
//! `exec kamal-proxy kamal-proxy deploy|remove|stop|resume|list` (health-gated, recorded).
//!
//! Images come from a registry file (`$SIM_REGISTRY`: `{"<repo>:<tag>": {"id", "labels", "healthy"}}`);
//! latencies from `$SIM_LATENCY` (`{"pull": 1.0, "run": 0.4, ...}`, seconds). A container of a healthy
//! image answers its health check `health` seconds after it starts; an unhealthy one never does.

mod containers;
mod images;
mod proxy;
mod template;

use containers::*;
use images::*;
use proxy::*;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Serialize, Deserialize, Default)]
struct State {
    images: Vec<Image>,
    containers: Vec<Container>,
    networks: Vec<String>,
    proxy: Proxy,
    seq: u64,
}

#[derive(Serialize, Deserialize, Clone)]
struct Image {
    id: String,
    tags: Vec<String>,
    labels: BTreeMap<String, String>,
    healthy: bool,
}

#[derive(Serialize, Deserialize, Clone)]
struct Container {
    id: String,
    name: String,
    image: String,
    image_id: String,
    labels: BTreeMap<String, String>,
    env: Vec<String>,
    cmd: Vec<String>,
    status: String,
    created: u64,
    started_at: f64,
    networks: Vec<String>,
    restart: String,
    hostname: String,
    binds: Vec<String>,
    log_opts: Vec<String>,
    publish: Vec<String>,
    healthy: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct Proxy {
    /// Service → target (`<id>:<port>`).
    routes: BTreeMap<String, String>,
    /// Every command it was given, word by word.
    commands: Vec<Vec<String>>,
}

#[derive(Deserialize, Clone)]
struct RegistryImage {
    id: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default = "yes")]
    healthy: bool,
}

fn yes() -> bool {
    true
}

struct Sim {
    home: PathBuf,
    latency: BTreeMap<String, f64>,
}

/// What a command printed and its exit status.
struct Out {
    stdout: String,
    stderr: String,
    code: i32,
}

impl Out {
    fn ok(stdout: impl Into<String>) -> Out {
        Out {
            stdout: stdout.into(),
            stderr: String::new(),
            code: 0,
        }
    }
    fn err(stderr: impl Into<String>, code: i32) -> Out {
        Out {
            stdout: String::new(),
            stderr: stderr.into(),
            code,
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n / 2];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sim {
    fn new() -> Sim {
        let home = PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()));
        let latency = std::env::var("SIM_LATENCY")
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Sim { home, latency }
    }

    fn wait(&self, what: &str) {
        let defaults = [
            ("pull", 0.8),
            ("pull_cached", 0.1),
            ("run", 0.3),
            ("stop", 0.2),
            ("health", 0.3),
            ("exec", 0.05),
            ("query", 0.01),
            ("write", 0.02),
        ];
        let secs = self
            .latency
            .get(what)
            .copied()
            .or_else(|| defaults.iter().find(|(k, _)| *k == what).map(|(_, v)| *v))
            .unwrap_or(0.01);
        if secs > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(secs));
        }
    }

    /// The fault this host is set to show (`SimLab.fail`: `$HOME/.sim-docker/fault`): `pull` (every
    /// pull fails), `unhealthy` (no new container ever gets healthy), `lost` (the connection drops
    /// when the boot's `docker run` starts).
    fn fault(&self) -> Option<String> {
        std::fs::read_to_string(self.dir().join("fault"))
            .ok()
            .map(|f| f.trim().to_string())
    }

    fn latency_of(&self, what: &str, default: f64) -> f64 {
        self.latency.get(what).copied().unwrap_or(default)
    }

    fn dir(&self) -> PathBuf {
        self.home.join(".sim-docker")
    }

    /// The state under an exclusive lock for the time of `change`.
    fn with_state<R>(&self, change: impl FnOnce(&mut State) -> R) -> R {
        let dir = self.dir();
        let _ = std::fs::create_dir_all(&dir);
        let lock = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("lock"))
            .expect("lock file");
        // SAFETY: flock on an open descriptor; released when `lock` is closed.
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        let path = dir.join("state.json");
        let mut state: State = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if state.networks.is_empty() {
            state.networks = vec!["bridge".into(), "host".into(), "none".into()];
        }
        let r = change(&mut state);
        let tmp = dir.join(format!("state.json.{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_string_pretty(&state).unwrap()).expect("state");
        std::fs::rename(&tmp, &path).expect("state");
        r
    }

    fn registry(&self) -> BTreeMap<String, RegistryImage> {
        std::env::var("SIM_REGISTRY")
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }
}

/// `repo:tag`, with `:latest` when no tag is given.
fn reference(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

impl State {
    fn image(&self, name: &str) -> Option<&Image> {
        let r = reference(name);
        self.images.iter().find(|i| {
            i.tags.contains(&r)
                || i.id == name
                || i.id
                    .trim_start_matches("sha256:")
                    .starts_with(name.trim_start_matches("sha256:"))
                    && name.len() >= 12
        })
    }

    fn container_index(&self, key: &str) -> Option<usize> {
        let key = key.trim_start_matches('/');
        self.containers
            .iter()
            .position(|c| c.name == key)
            .or_else(|| {
                (key.len() >= 4)
                    .then(|| self.containers.iter().position(|c| c.id.starts_with(key)))
                    .flatten()
            })
    }

    /// Adds (or moves) a tag to the image of `id`.
    fn tag(&mut self, id: &str, tag: &str) {
        for i in &mut self.images {
            i.tags.retain(|t| t != tag);
        }
        if let Some(i) = self.images.iter_mut().find(|i| i.id == id) {
            i.tags.push(tag.to_string());
        }
    }

    fn in_use(&self, id: &str) -> bool {
        self.containers.iter().any(|c| c.image_id == id)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sim = Sim::new();
    let out = dispatch(&sim, &args);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    let _ = std::io::stdout().flush();
    std::process::exit(out.code);
}

fn dispatch(sim: &Sim, args: &[String]) -> Out {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["--version"] | ["version", ..] => {
            Out::ok("Docker version 28.2.2, build sim (kamal_rs test stand-in)\n")
        }
        ["container", "ls", rest @ ..] | ["container", "list", rest @ ..] | ["ps", rest @ ..] => {
            ps(sim, rest)
        }
        ["container", "start", rest @ ..] | ["start", rest @ ..] => start(sim, rest),
        ["container", "stop", rest @ ..] | ["stop", rest @ ..] => stop(sim, rest),
        ["container", "rm", rest @ ..] | ["rm", rest @ ..] => rm(sim, rest),
        ["container", "rename", rest @ ..] | ["rename", rest @ ..] => rename(sim, rest),
        ["container", "create", rest @ ..] | ["create", rest @ ..] => run(sim, rest, false),
        ["container", "cp", rest @ ..] | ["cp", rest @ ..] => cp(rest),
        ["container", "prune", rest @ ..] => container_prune(sim, rest),
        ["container", "inspect", rest @ ..] => inspect(sim, rest, Some("container")),
        ["run", rest @ ..] => run(sim, rest, true),
        ["image", "rm", rest @ ..] | ["rmi", rest @ ..] => rmi(sim, rest),
        ["image", "ls", rest @ ..] | ["image", "list", rest @ ..] | ["images", rest @ ..] => {
            images(sim, rest)
        }
        ["image", "inspect", rest @ ..] => inspect(sim, rest, Some("image")),
        ["image", "prune", rest @ ..] => image_prune(sim, rest),
        ["image", "tag", rest @ ..] | ["tag", rest @ ..] => tag(sim, rest),
        ["image", "pull", rest @ ..] | ["pull", rest @ ..] => pull(sim, rest),
        ["inspect", rest @ ..] => inspect(sim, rest, None),
        ["network", "create", rest @ ..] => network_create(sim, rest),
        ["network", "ls", ..] => Out::ok(sim.with_state(|s| {
            s.networks
                .iter()
                .map(|n| format!("{n}\n"))
                .collect::<String>()
        })),
        ["login", rest @ ..] => login(sim, rest),
        ["logout", ..] => Out::ok("Removing login credentials\n"),
        ["info", rest @ ..] => info(rest),
        ["logs", ..] | ["container", "logs", ..] => Out::ok(""),
        ["exec", rest @ ..] | ["container", "exec", rest @ ..] => exec(sim, rest),
        ["volume", ..] => Out::ok(""),
        _ => Out::err(
            format!(
                "docker: '{}' is not a docker command (kamal_rs sim stand-in).\n",
                a.join(" ")
            ),
            1,
        ),
    }
}

/// Flags (`--flag value`, `--flag=value`, `-f value`) before the first other word (docker's own
/// parsing: what follows an image is its command), and the other words, given which flags take no value.
fn split_flags<'a>(args: &[&'a str], booleans: &[&str]) -> (Vec<(String, String)>, Vec<&'a str>) {
    split(args, booleans, false)
}

/// Flags anywhere among the words, as kamal-proxy's command line (cobra) reads them.
fn split_interspersed<'a>(
    args: &[&'a str],
    booleans: &[&str],
) -> (Vec<(String, String)>, Vec<&'a str>) {
    split(args, booleans, true)
}

fn split<'a>(
    args: &[&'a str],
    booleans: &[&str],
    interspersed: bool,
) -> (Vec<(String, String)>, Vec<&'a str>) {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a.starts_with('-') && a.len() > 1 && (interspersed || rest.is_empty()) {
            if let Some((k, v)) = a.split_once('=') {
                flags.push((k.to_string(), v.to_string()));
            } else if booleans.contains(&a) {
                flags.push((a.to_string(), String::new()));
            } else {
                flags.push((a.to_string(), args.get(i + 1).unwrap_or(&"").to_string()));
                i += 1;
            }
        } else {
            rest.push(a);
        }
        i += 1;
    }
    (flags, rest)
}

fn values<'f>(flags: &'f [(String, String)], names: &[&str]) -> Vec<&'f str> {
    flags
        .iter()
        .filter(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn has(flags: &[(String, String)], names: &[&str]) -> bool {
    flags.iter().any(|(k, _)| names.contains(&k.as_str()))
}

fn format_rows(rows: &[Value], format: Option<&str>, default: impl Fn(&Value) -> String) -> Out {
    let mut out = String::new();
    for row in rows {
        match format {
            Some(f) => match template::render(f, row) {
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(e) => return Out::err(format!("{e}\n"), 1),
            },
            None => {
                out.push_str(&default(row));
                out.push('\n');
            }
        }
    }
    Out::ok(out)
}

/// Kills the sshd process serving this session's connection (the nearest ancestor whose name starts
/// with `sshd`): the client sees its connection lost.
fn drop_connection() {
    let mut pid = std::process::id();
    for _ in 0..16 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return;
        };
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let Some(parent) = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            return;
        };
        let comm = std::fs::read_to_string(format!("/proc/{parent}/comm")).unwrap_or_default();
        if comm.starts_with("sshd") {
            // SAFETY: a plain kill(2) of a process id read from /proc.
            unsafe { libc::kill(parent as i32, libc::SIGKILL) };
            std::thread::sleep(Duration::from_secs(1));
            return;
        }
        pid = parent;
    }
}

fn base64(text: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
