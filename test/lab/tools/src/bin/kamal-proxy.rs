//! A TEST STAND-IN for kamal-proxy (the real image cannot be built here). It honours the command line
//! Kamal 2 uses (`lib/kamal/commands/proxy.rb`, `lib/kamal/commands/app/proxy.rb`, Kamal 2.12.0): `run` serves :80 and relays each request to the live target of
//! the matching service; `deploy SERVICE --target=ID:PORT [flags]` health-checks the target and switches
//! to it only once it answers 2xx (exit 1 after --deploy-timeout otherwise); `remove`, `stop`,
//! `resume`, `list`, `--version`. State lives in the kamal-proxy-config volume, so it survives restarts.
//! Flags may be `--flag=value` or `--flag value`; unknown flags are accepted and ignored. Every
//! command it is given is appended, word by word, to `commands.log` in its state directory (`docker
//! exec kamal-proxy cat ...`): the tests compare what Kamal and kamal_rs asked of it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const VERSION: &str = "v0.9.2";
const STATE_DIR: &str = "/home/kamal-proxy/.config/kamal-proxy";
const BOOLEAN_FLAGS: &[&str] = &[
    "tls",
    "buffer-requests",
    "buffer-responses",
    "strip-path-prefix",
    "forward-headers",
    "tls-redirect",
    "debug",
    "help",
    "version",
];

struct Args {
    positional: Vec<String>,
    flags: BTreeMap<String, Vec<String>>,
}

fn parse_args(raw: &[String]) -> Args {
    let mut args = Args {
        positional: Vec::new(),
        flags: BTreeMap::new(),
    };
    let mut i = 0;
    while i < raw.len() {
        let a = &raw[i];
        if let Some(flag) = a.strip_prefix("--") {
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None if BOOLEAN_FLAGS.contains(&flag) => (flag.to_string(), "true".to_string()),
                None if i + 1 < raw.len() && !raw[i + 1].starts_with("--") => {
                    i += 1;
                    (flag.to_string(), raw[i].clone())
                }
                None => (flag.to_string(), "true".to_string()),
            };
            args.flags.entry(name).or_default().push(value);
        } else {
            args.positional.push(a.clone());
        }
        i += 1;
    }
    args
}

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        self.flags
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.flags.get(name).cloned().unwrap_or_default()
    }
}

/// One deployed service: where its traffic goes.
#[derive(Clone, Debug)]
struct Service {
    name: String,
    target: String,
    hosts: Vec<String>,
    path_prefixes: Vec<String>,
    state: String,
}

fn state_file() -> String {
    format!("{STATE_DIR}/kamal-proxy.state")
}

fn load_state() -> Vec<Service> {
    let text = std::fs::read_to_string(state_file()).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let list = |s: &str| {
                s.split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            (f.len() == 5).then(|| Service {
                name: f[0].into(),
                target: f[1].into(),
                hosts: list(f[2]),
                path_prefixes: list(f[3]),
                state: f[4].into(),
            })
        })
        .collect()
}

/// Written to a temporary file and renamed, so a reader never sees half a state.
fn save_state(services: &[Service]) {
    std::fs::create_dir_all(STATE_DIR).expect("state dir");
    let text: String = services
        .iter()
        .map(|s| {
            format!(
                "{}\t{}\t{}\t{}\t{}\n",
                s.name,
                s.target,
                s.hosts.join(","),
                s.path_prefixes.join(","),
                s.state
            )
        })
        .collect();
    let tmp = format!("{}.{}", state_file(), std::process::id());
    std::fs::write(&tmp, text).expect("write state");
    std::fs::rename(&tmp, state_file()).expect("rename state");
}

/// One line per command: its words, tab-separated.
fn record(raw: &[String]) {
    let _ = std::fs::create_dir_all(STATE_DIR);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{STATE_DIR}/commands.log"))
    {
        let _ = writeln!(f, "{}", raw.join("\t"));
    }
}

fn seconds(value: Option<&str>, default: u64) -> Duration {
    let v = value.unwrap_or("").trim_end_matches('s');
    Duration::from_secs_f64(v.parse::<f64>().unwrap_or(default as f64))
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = parse_args(&raw);
    if !matches!(
        args.positional.first().map(String::as_str),
        Some("run") | Some("list") | None
    ) {
        record(&raw);
    }
    if args.get("version").is_some()
        || args.positional.first().map(String::as_str) == Some("version")
    {
        println!("{VERSION}");
        return;
    }
    let code = match args.positional.first().map(String::as_str) {
        Some("run") => run(),
        Some("deploy") => deploy(&args),
        Some("remove") => update(&args, |services, name| services.retain(|s| s.name != name)),
        Some("stop") => update(&args, |services, name| set_state(services, name, "stopped")),
        Some("resume") => update(&args, |services, name| set_state(services, name, "running")),
        Some("list") => {
            println!("Service\tHost\tPath\tTarget\tState\tTLS");
            for s in load_state() {
                let hosts = if s.hosts.is_empty() {
                    "*".to_string()
                } else {
                    s.hosts.join(",")
                };
                let paths = if s.path_prefixes.is_empty() {
                    "/".to_string()
                } else {
                    s.path_prefixes.join(",")
                };
                println!(
                    "{}\t{hosts}\t{paths}\t{}\t{}\tno",
                    s.name, s.target, s.state
                );
            }
            0
        }
        other => {
            eprintln!("Error: unknown command {other:?} (kamal-proxy test stand-in)");
            1
        }
    };
    std::process::exit(code);
}

fn set_state(services: &mut [Service], name: &str, state: &str) {
    for s in services.iter_mut().filter(|s| s.name == name) {
        s.state = state.into();
    }
}

fn update(args: &Args, change: impl FnOnce(&mut Vec<Service>, &str)) -> i32 {
    let Some(name) = args.positional.get(1) else {
        eprintln!("Error: a service name is required");
        return 1;
    };
    let mut services = load_state();
    if !services.iter().any(|s| &s.name == name) {
        eprintln!("Error: service not found");
        return 1;
    }
    change(&mut services, name);
    save_state(&services);
    0
}

/// Switches SERVICE to the new target once the target's health check answers 2xx.
fn deploy(args: &Args) -> i32 {
    let (Some(name), Some(target)) = (args.positional.get(1), args.get("target")) else {
        eprintln!("Error: deploy needs a service name and --target");
        return 1;
    };
    let timeout = seconds(args.get("deploy-timeout"), 30);
    let interval = seconds(args.get("health-check-interval"), 1);
    let check_timeout = seconds(args.get("health-check-timeout"), 5);
    let path = args.get("health-check-path").unwrap_or("/up").to_string();
    let deadline = Instant::now() + timeout;
    loop {
        if health_check(target, &path, check_timeout) {
            break;
        }
        if Instant::now() + interval > deadline {
            eprintln!(
                "Error: target failed to become healthy within configured timeout ({}s)",
                timeout.as_secs()
            );
            return 1;
        }
        std::thread::sleep(interval);
    }
    let mut services = load_state();
    services.retain(|s| &s.name != name);
    let split = |values: Vec<String>| -> Vec<String> {
        values
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    };
    services.push(Service {
        name: name.clone(),
        target: target.to_string(),
        hosts: split(args.all("host")),
        path_prefixes: split(args.all("path-prefix")),
        state: "running".into(),
    });
    save_state(&services);
    0
}

fn health_check(target: &str, path: &str, timeout: Duration) -> bool {
    let Some(addr) = resolve_target(target) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: kamal-proxy\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status = String::new();
    let _ = BufReader::new(stream).read_line(&mut status);
    status
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'))
}

/// `ID:PORT` where ID is a container ID or name on the `kamal` network, resolved through Docker's DNS.
fn resolve_target(target: &str) -> Option<SocketAddr> {
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip = host.parse::<Ipv4Addr>().ok().or_else(|| resolve(host))?;
    Some(SocketAddr::from((ip, port)))
}

/// A plain DNS A query to the resolver in /etc/resolv.conf (a static binary has no usable NSS).
fn resolve(name: &str) -> Option<Ipv4Addr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let server = conf
        .lines()
        .find_map(|l| l.strip_prefix("nameserver").map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "127.0.0.11".into());
    let mut query = vec![0x4b, 0x52, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket.send_to(&query, (server.as_str(), 53)).ok()?;
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).ok()?;
    let answers = u16::from_be_bytes([buf[6], buf[7]]);
    let mut pos = skip_name(&buf[..n], 12)? + 4;
    for _ in 0..answers {
        pos = skip_name(&buf[..n], pos)?;
        let rtype = u16::from_be_bytes([*buf.get(pos)?, *buf.get(pos + 1)?]);
        let len = u16::from_be_bytes([*buf.get(pos + 8)?, *buf.get(pos + 9)?]) as usize;
        pos += 10;
        if rtype == 1 && len == 4 {
            return Some(Ipv4Addr::new(
                buf[pos],
                buf[pos + 1],
                buf[pos + 2],
                buf[pos + 3],
            ));
        }
        pos += len;
    }
    None
}

fn skip_name(buf: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *buf.get(pos)?;
        if len & 0xc0 == 0xc0 {
            return Some(pos + 2);
        }
        if len == 0 {
            return Some(pos + 1);
        }
        pos += 1 + len as usize;
    }
}

/// Serves :80, relaying each connection to the live target of the service matching its Host and path.
fn run() -> i32 {
    std::fs::create_dir_all(STATE_DIR).ok();
    let listener = match TcpListener::bind("0.0.0.0:80") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("Error: cannot listen on :80: {e}");
            return 1;
        }
    };
    // A second listener on :443 keeps the published port answering (no TLS in the stand-in).
    if let Ok(tls) = TcpListener::bind("0.0.0.0:443") {
        std::thread::spawn(move || accept_loop(tls));
    }
    // PID 1 in the container: exit at once on TERM so `docker stop` is quick.
    unsafe {
        libc::signal(libc::SIGTERM, exit_now as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, exit_now as *const () as libc::sighandler_t);
    }
    accept_loop(listener);
    0
}

extern "C" fn exit_now(_: libc::c_int) {
    unsafe { libc::_exit(0) };
}

fn accept_loop(listener: TcpListener) {
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || relay(conn));
    }
}

fn relay(mut client: TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > 65536 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let host = text
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let host = host.split(':').next().unwrap_or("").to_string();
    let Some(service) = route(&load_state(), &host, &path) else {
        respond(
            &mut client,
            "404 Not Found",
            "No service matches this request\n",
        );
        return;
    };
    if service.state != "running" {
        respond(
            &mut client,
            "503 Service Unavailable",
            "Service is stopped\n",
        );
        return;
    }
    let upstream = resolve_target(&service.target)
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok());
    let Some(mut upstream) = upstream else {
        respond(&mut client, "502 Bad Gateway", "Target unreachable\n");
        return;
    };
    if upstream.write_all(&head).is_err() {
        return;
    }
    let (Ok(mut up_read), Ok(mut client_write)) = (upstream.try_clone(), client.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Write);
    });
    let _ = client.set_read_timeout(None);
    let _ = std::io::copy(&mut client, &mut upstream);
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// Services for this host name (or with no host), the longest matching path prefix first.
fn route(services: &[Service], host: &str, path: &str) -> Option<Service> {
    let for_host: Vec<&Service> = services
        .iter()
        .filter(|s| s.hosts.iter().any(|h| h == host))
        .collect();
    let candidates = if for_host.is_empty() {
        services.iter().filter(|s| s.hosts.is_empty()).collect()
    } else {
        for_host
    };
    candidates
        .into_iter()
        .filter_map(|s| {
            if s.path_prefixes.is_empty() {
                return Some((0, s));
            }
            s.path_prefixes
                .iter()
                .filter(|p| path.starts_with(p.as_str()))
                .map(|p| (p.len(), s))
                .max_by_key(|(l, _)| *l)
        })
        .max_by_key(|(l, _)| *l)
        .map(|(_, s)| s.clone())
}

fn respond(client: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
