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

mod template;

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

fn ps(sim: &Sim, args: &[&str]) -> Out {
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

fn ps_row(c: &Container) -> Value {
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({"ID": &c.id[..12], "Names": c.name, "Image": c.image, "State": c.status,
           "Status": if c.status == "running" { "Up" } else { "Exited (0)" },
           "Labels": labels.join(","), "Command": c.cmd.join(" ")})
}

fn container_matches(s: &State, c: &Container, filters: &[&str]) -> bool {
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
fn name_matches(name: &str, pattern: &str) -> bool {
    match (pattern.strip_prefix('^'), pattern.ends_with('$')) {
        (Some(p), true) => name == p.trim_end_matches('$'),
        (Some(p), false) => name.starts_with(p),
        (None, true) => name.ends_with(pattern.trim_end_matches('$')),
        (None, false) => name.contains(pattern),
    }
}

fn images(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("query");
    let (flags, _) = split_flags(args, &["-a", "--all", "-q", "--quiet", "--no-trunc"]);
    let filters = values(&flags, &["--filter", "-f"]);
    let format = values(&flags, &["--format"]).first().copied();
    sim.with_state(|s| {
        let mut rows = Vec::new();
        for i in &s.images {
            let labelled = filters.iter().all(|f| match f.strip_prefix("label=") {
                Some(l) => match l.split_once('=') {
                    Some((k, v)) => i.labels.get(k).map(String::as_str) == Some(v),
                    None => i.labels.contains_key(l),
                },
                None => true,
            });
            let references: Vec<&str> = filters
                .iter()
                .filter_map(|f| f.strip_prefix("reference="))
                .collect();
            let short = i.id.trim_start_matches("sha256:")[..12].to_string();
            let tags: Vec<(String, String)> = if i.tags.is_empty() {
                vec![("<none>".into(), "<none>".into())]
            } else {
                i.tags
                    .iter()
                    .map(|t| match t.rsplit_once(':') {
                        Some((r, tag)) if !tag.contains('/') => (r.to_string(), tag.to_string()),
                        _ => (t.clone(), "latest".into()),
                    })
                    .collect()
            };
            for (repo, tag) in tags {
                let full = format!("{repo}:{tag}");
                if labelled && (references.is_empty() || references.contains(&full.as_str())) {
                    rows.push(json!({"ID": short, "Repository": repo, "Tag": tag}));
                }
            }
        }
        if has(&flags, &["-q", "--quiet"]) {
            return Out::ok(
                rows.iter()
                    .map(|r| format!("{}\n", r["ID"].as_str().unwrap_or("")))
                    .collect::<String>(),
            );
        }
        format_rows(&rows, format, |r| {
            format!(
                "{}:{} {}",
                r["Repository"].as_str().unwrap_or(""),
                r["Tag"].as_str().unwrap_or(""),
                r["ID"].as_str().unwrap_or("")
            )
        })
    })
}

fn container_json(c: &Container) -> Value {
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

fn image_json(i: &Image) -> Value {
    let labels: serde_json::Map<String, Value> = i
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({"Id": i.id, "RepoTags": i.tags, "Config": {"Labels": labels}})
}

fn inspect(sim: &Sim, args: &[&str], only: Option<&str>) -> Out {
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

fn pull(sim: &Sim, args: &[&str]) -> Out {
    let Some(name) = args.iter().find(|a| !a.starts_with('-')) else {
        return Out::err("\"docker pull\" requires exactly 1 argument.\n", 1);
    };
    let r = reference(name);
    if sim.fault().as_deref() == Some("pull") {
        sim.wait("query");
        return Out::err(format!("Error response from daemon: Get \"https://{r}/v2/\": net/http: request canceled (simulated pull failure)\n"), 1);
    }
    let Some(found) = sim.registry().get(&r).cloned() else {
        sim.wait("query");
        return Out::err(format!("Error response from daemon: manifest for {r} not found: manifest unknown: manifest unknown\n"), 1);
    };
    let cached = sim.with_state(|s| s.images.iter().any(|i| i.id == found.id));
    sim.wait(if cached { "pull_cached" } else { "pull" });
    let tag = r.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let fresh = sim.with_state(|s| {
        let had_tag = s.image(&r).is_some_and(|i| i.id == found.id);
        if !s.images.iter().any(|i| i.id == found.id) {
            s.images.push(Image {
                id: found.id.clone(),
                tags: Vec::new(),
                labels: found.labels.clone(),
                healthy: found.healthy,
            });
        }
        s.tag(&found.id, &r);
        !had_tag
    });
    let status = if fresh {
        format!("Downloaded newer image for {r}")
    } else {
        format!("Image is up to date for {r}")
    };
    Out::ok(format!(
        "{tag}: Pulling from {}\nDigest: sha256:{}\nStatus: {status}\n{r}\n",
        r.rsplit_once(':').map(|(n, _)| n).unwrap_or(&r),
        found.id.trim_start_matches("sha256:")
    ))
}

fn tag(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let [source, target] = args else {
        return Out::err("\"docker tag\" requires exactly 2 arguments.\n", 1);
    };
    sim.with_state(|s| match s.image(source).map(|i| i.id.clone()) {
        Some(id) => {
            s.tag(&id, &reference(target));
            Out::ok("")
        }
        None => Out::err(
            format!("Error response from daemon: No such image: {source}\n"),
            1,
        ),
    })
}

fn rmi(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let (flags, names) = split_flags(args, &["-f", "--force", "--no-prune"]);
    let force = has(&flags, &["-f", "--force"]);
    sim.with_state(|s| {
        let mut out = Out::ok("");
        for name in names {
            let r = reference(name);
            let Some(index) = s
                .images
                .iter()
                .position(|i| i.tags.contains(&r) || i.id == name)
            else {
                out.stderr.push_str(&format!(
                    "Error response from daemon: No such image: {name}\n"
                ));
                if !force {
                    out.code = 1;
                }
                continue;
            };
            let image = &mut s.images[index];
            image.tags.retain(|t| *t != r);
            out.stdout.push_str(&format!("Untagged: {r}\n"));
            let id = image.id.clone();
            if s.images[index].tags.is_empty() && !s.in_use(&id) {
                s.images.remove(index);
                out.stdout.push_str(&format!("Deleted: {id}\n"));
            }
        }
        out
    })
}

fn image_prune(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("write");
    let (flags, _) = split_flags(args, &["-f", "--force", "-a", "--all"]);
    let all = has(&flags, &["-a", "--all"]);
    let labels: Vec<&str> = values(&flags, &["--filter"])
        .into_iter()
        .filter_map(|f| f.strip_prefix("label="))
        .collect();
    sim.with_state(|s| {
        let in_use: Vec<String> = s.containers.iter().map(|c| c.image_id.clone()).collect();
        s.images.retain(|i| {
            let labelled = labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => i.labels.get(k).map(String::as_str) == Some(v),
                None => i.labels.contains_key(*l),
            });
            !(labelled && (i.tags.is_empty() || all) && !in_use.contains(&i.id))
        });
        Out::ok("Total reclaimed space: 0B\n")
    })
}

fn container_prune(sim: &Sim, args: &[&str]) -> Out {
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
fn run(sim: &Sim, args: &[&str], start: bool) -> Out {
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
    let mut env: Vec<String> = values(&flags, &["--env", "-e"])
        .iter()
        .map(|e| e.to_string())
        .collect();
    for file in values(&flags, &["--env-file"]) {
        match std::fs::read_to_string(file) {
            Ok(text) => env.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            ),
            Err(_) => {
                return Out::err(
                    format!("docker: open {file}: no such file or directory.\n"),
                    125,
                )
            }
        }
    }
    let labels: BTreeMap<String, String> = values(&flags, &["--label", "-l"])
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect();
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

fn start(sim: &Sim, args: &[&str]) -> Out {
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

fn stop(sim: &Sim, args: &[&str]) -> Out {
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

fn rm(sim: &Sim, args: &[&str]) -> Out {
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

fn rename(sim: &Sim, args: &[&str]) -> Out {
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
fn cp(args: &[&str]) -> Out {
    if let Some(dest) = args.iter().rev().find(|a| !a.starts_with('-')) {
        let _ = std::fs::create_dir_all(dest);
    }
    Out::ok("")
}

fn network_create(sim: &Sim, args: &[&str]) -> Out {
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

fn login(sim: &Sim, args: &[&str]) -> Out {
    sim.wait("query");
    // docker's CLI reads login's flags after the server too (`docker login SERVER -u U -p P`, as
    // Kamal writes it).
    let (flags, rest) = split_interspersed(args, &["--password-stdin"]);
    let server = rest
        .first()
        .copied()
        .unwrap_or("https://index.docker.io/v1/");
    let user = values(&flags, &["-u", "--username"])
        .first()
        .copied()
        .unwrap_or("");
    let password = values(&flags, &["-p", "--password"])
        .first()
        .copied()
        .unwrap_or("");
    let auth = base64(&format!("{user}:{password}"));
    // As docker writes it: the skip-login check of kamal_rs reads this shape.
    let config = format!(
        "{{\n\t\"auths\": {{\n\t\t\"{server}\": {{\n\t\t\t\"auth\": \"{auth}\"\n\t\t}}\n\t}}\n}}"
    );
    let dir = sim.home.join(".docker");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("config.json"), config);
    Out::ok("Login Succeeded\n")
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

fn info(args: &[&str]) -> Out {
    let (flags, _) = split_flags(args, &[]);
    let data = json!({"RegistryConfig": {"Mirrors": []}, "ServerVersion": "sim"});
    match values(&flags, &["--format", "-f"]).first() {
        Some(f) => match template::render(f, &data) {
            Ok(s) => Out::ok(format!("{s}\n")),
            Err(e) => Out::err(format!("{e}\n"), 1),
        },
        None => Out::ok("Server Version: sim\n"),
    }
}

/// `docker exec CONTAINER CMD...`: kamal-proxy's commands are simulated; anything else does nothing.
fn exec(sim: &Sim, args: &[&str]) -> Out {
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
fn proxy_deploy(sim: &Sim, words: &[String]) -> Out {
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
