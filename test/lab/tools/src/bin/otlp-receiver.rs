//! A test OTLP/HTTP log receiver: `otlp-receiver ADDR DIR [--delay SECS]`. Accepts `POST /v1/logs`
//! with a JSON body, decodes it with OpenTelemetry's own message types (`opentelemetry-proto`), and
//! answers 200 with `{}` when it is a valid `ExportLogsServiceRequest` (the body is kept as
//! `DIR/<n>.json`), else 400 (the body kept as `DIR/<n>.invalid`). `--delay` waits before answering,
//! to stand for a slow collector. Several requests per connection, a thread per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, dir) = match (args.first(), args.get(1)) {
        (Some(a), Some(d)) => (a.clone(), PathBuf::from(d)),
        _ => {
            eprintln!("usage: otlp-receiver ADDR DIR [--delay SECS]");
            std::process::exit(2);
        }
    };
    let delay = args
        .iter()
        .position(|a| a == "--delay")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64);
    std::fs::create_dir_all(&dir).expect("dir");
    let listener = TcpListener::bind(&addr).expect("bind");
    let counter = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming().flatten() {
        let (dir, counter) = (dir.clone(), counter.clone());
        std::thread::spawn(move || serve(stream, &dir, &counter, delay));
    }
}

fn serve(stream: TcpStream, dir: &std::path::Path, counter: &AtomicUsize, delay: Option<Duration>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut start = String::new();
        if reader.read_line(&mut start).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let path_ok = start.split(' ').nth(1) == Some("/v1/logs") && start.starts_with("POST ");
        let decoded = std::str::from_utf8(&body)
            .ok()
            .and_then(|text| serde_json::from_str::<ExportLogsServiceRequest>(text).ok());
        let (status, ext) = match (path_ok, decoded) {
            (true, Some(_)) => ("200 OK", "json"),
            _ => ("400 Bad Request", "invalid"),
        };
        let _ = std::fs::write(dir.join(format!("{n:05}.{ext}")), &body);
        let reply = if status.starts_with("200") { "{}" } else { "" };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
