//! A steady stream of HTTP requests to the lab's web hosts, for the traffic check (bench/traffic.rb,
//! test/traffic_test.rb): what a deploy does to a user's requests.
//!
//! Usage: lab-traffic [--rate N] [--deadline-ms MS] [--max-seconds S] [--path P] OUT HOST...
//!
//! Each HOST (an address; port 80) gets N requests a second (default 100), each on a new connection
//! (`GET P HTTP/1.1`, `Connection: close`; P defaults to /version), sent on a fixed schedule whatever
//! came back before, so a slow answer never thins the stream. A request must be answered within MS
//! (default 2000) counted from when it was due, or it is a timeout. Every request becomes a line of OUT:
//!
//!   HOST DUE_MS LATENCY_MS OUTCOME BODY
//!
//! DUE_MS from the start, OUTCOME the HTTP status or `timeout`, `refused`, `reset`, `error:<kind>`,
//! BODY the response body's first line (the version that answered) or `-`. It stops when its stdin
//! closes (the caller ends it with the run), or after S seconds (default 900), whichever comes first;
//! requests still in flight finish first. Only for the lab's own hosts.

use std::io::{BufWriter, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Workers per host: one per request that can be in flight at once (RATE x deadline), and a few
/// more, so that requests waiting on a slow switch never hold back the schedule.
fn workers(rate: u32, deadline: Duration) -> usize {
    (rate as f64 * deadline.as_secs_f64()).ceil() as usize + 16
}

struct Options {
    rate: u32,
    deadline: Duration,
    max: Duration,
    path: String,
    out: String,
    hosts: Vec<IpAddr>,
}

fn main() {
    let options = parse(std::env::args().skip(1).collect()).unwrap_or_else(|e| {
        eprintln!("lab-traffic: {e}\nusage: lab-traffic [--rate N] [--deadline-ms MS] [--max-seconds S] [--path P] OUT HOST...");
        std::process::exit(2);
    });
    let out = std::fs::File::create(&options.out).expect("OUT can be written");
    let out = Arc::new(Mutex::new(BufWriter::new(out)));
    let stop = Arc::new(AtomicBool::new(false));
    // Stdin closing (or any line on it) is the caller's "the run is over".
    {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            let _ = std::io::stdin().read(&mut buf);
            stop.store(true, Ordering::SeqCst);
        });
    }
    let start = Instant::now();
    let senders: Vec<_> = options
        .hosts
        .iter()
        .map(|&ip| host_stream(ip, &options, start, stop.clone(), out.clone()))
        .collect();
    for s in senders {
        s.join().expect("host stream");
    }
    out.lock().unwrap().flush().expect("OUT written");
}

/// One host's schedule: a request due every 1/rate s, handed to the host's workers.
fn host_stream(
    ip: IpAddr,
    o: &Options,
    start: Instant,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<BufWriter<std::fs::File>>>,
) -> thread::JoinHandle<()> {
    let (rate, deadline, max, path) = (o.rate, o.deadline, o.max, o.path.clone());
    thread::spawn(move || {
        let (tx, rx) = mpsc::channel::<Instant>();
        let rx = Arc::new(Mutex::new(rx));
        let workers: Vec<_> = (0..workers(rate, deadline))
            .map(|_| {
                let (rx, out, path) = (rx.clone(), out.clone(), path.clone());
                thread::spawn(move || loop {
                    let due = match rx.lock().unwrap().recv() {
                        Ok(due) => due,
                        Err(_) => return,
                    };
                    let (outcome, body) = request(ip, &path, due + deadline);
                    let latency = due.elapsed().as_secs_f64() * 1000.0;
                    let at = (due - start).as_secs_f64() * 1000.0;
                    let line = format!("{ip} {at:.1} {latency:.1} {outcome} {body}\n");
                    out.lock()
                        .unwrap()
                        .write_all(line.as_bytes())
                        .expect("OUT written");
                })
            })
            .collect();
        let every = Duration::from_secs_f64(1.0 / rate as f64);
        let mut due = Instant::now();
        while !stop.load(Ordering::SeqCst) && start.elapsed() < max {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            tx.send(due).expect("workers are there");
            due += every;
        }
        drop(tx);
        for w in workers {
            w.join().expect("worker");
        }
    })
}

/// One request on a new connection, answered by `by` or a timeout: (outcome, body's first line).
fn request(ip: IpAddr, path: &str, by: Instant) -> (String, String) {
    let left = |by: Instant| by.saturating_duration_since(Instant::now());
    let fail = |e: std::io::Error| (failure(&e), "-".to_string());
    if left(by).is_zero() {
        return ("timeout".into(), "-".into());
    }
    let mut stream = match TcpStream::connect_timeout(&SocketAddr::new(ip, 80), left(by)) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let ask = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let sent = stream
        .set_write_timeout(Some(left(by).max(Duration::from_millis(1))))
        .and_then(|_| stream.write_all(ask.as_bytes()));
    if let Err(e) = sent {
        return fail(e);
    }
    loop {
        if left(by).is_zero() {
            return ("timeout".into(), "-".into());
        }
        if let Err(e) = stream.set_read_timeout(Some(left(by))) {
            return fail(e);
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => return fail(e),
        }
    }
    parse_answer(&answer)
}

/// The status and the body's first line of an HTTP/1.1 answer read to its end.
fn parse_answer(answer: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(answer);
    let Some(status) = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
    else {
        return ("error:no-status".into(), "-".into());
    };
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.lines().next().unwrap_or("").trim().to_string())
        .filter(|b| !b.is_empty() && !b.contains(' '))
        .unwrap_or_else(|| "-".into());
    (status.to_string(), body)
}

fn failure(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        TimedOut | WouldBlock => "timeout".into(),
        ConnectionRefused => "refused".into(),
        ConnectionReset | ConnectionAborted | BrokenPipe => "reset".into(),
        kind => format!("error:{kind:?}").replace(' ', "_"),
    }
}

fn parse(args: Vec<String>) -> Result<Options, String> {
    let mut o = Options {
        rate: 100,
        deadline: Duration::from_millis(2000),
        max: Duration::from_secs(900),
        path: "/version".into(),
        out: String::new(),
        hosts: Vec::new(),
    };
    let mut args = args.into_iter();
    let mut positional = Vec::new();
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let number = |v: String, name: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        match a.as_str() {
            "--rate" => o.rate = number(value("--rate")?, "--rate")?.max(1) as u32,
            "--deadline-ms" => {
                o.deadline =
                    Duration::from_millis(number(value("--deadline-ms")?, "--deadline-ms")?)
            }
            "--max-seconds" => {
                o.max = Duration::from_secs(number(value("--max-seconds")?, "--max-seconds")?)
            }
            "--path" => o.path = value("--path")?,
            _ => positional.push(a),
        }
    }
    let mut positional = positional.into_iter();
    o.out = positional.next().ok_or("OUT is missing")?;
    o.hosts = positional
        .map(|h| h.parse().map_err(|_| format!("not an address: {h}")))
        .collect::<Result<_, _>>()?;
    if o.hosts.is_empty() {
        return Err("no HOST".into());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enough_workers_for_every_request_in_flight() {
        assert_eq!(workers(100, Duration::from_secs(10)), 1016);
        assert_eq!(workers(100, Duration::from_millis(2000)), 216);
    }

    #[test]
    fn an_answer_gives_its_status_and_version() {
        let a = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nv2\n";
        assert_eq!(parse_answer(a), ("200".into(), "v2".into()));
        let b = b"HTTP/1.1 502 Bad Gateway\r\n\r\n<html> bad gateway </html>";
        assert_eq!(parse_answer(b), ("502".into(), "-".into()));
        assert_eq!(
            parse_answer(b"garbage"),
            ("error:no-status".into(), "-".into())
        );
    }
}
