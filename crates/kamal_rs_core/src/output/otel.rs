//! `output: { otel: { endpoint: URL } }` (Kamal 2.12's `lib/kamal/output/otel_logger.rb` and
//! `lib/kamal/otel_shipper.rb`): every line of the run's log, and the `kamal.start`, `kamal.complete`
//! and `kamal.failed` events, as OTLP/HTTP JSON log records posted to `URL/v1/logs`, in the shape Kamal
//! sends them: its resource attributes (`service.name` kamal, `service.version`, `kamal.run_id`, the
//! performer, destination, version and service), its scope, severities, and per-line
//! `server.address` / `log.iostream` attributes.
//!
//! The records are sent in the background, 100 at a time or every 5 s, by a thread of their own with
//! a 2 s connect and a 5 s overall timeout per request. An endpoint that is down or slow costs the
//! run at most `SHUTDOWN_GRACE` at its end, and one warning line; it never fails the run.
//!
//! The JSON is written with serde from the few types below rather than with the `opentelemetry-proto`
//! crate, whose serde form writes every field, defaults included (`traceId: ""`, `flags: 0`,
//! `eventName: ""`): not what Kamal sends. The tests decode what is sent with that crate's types.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{Level, LogLine, Sink};

/// Records per request, and the longest a record waits, as Kamal's shipper.
const BATCH_SIZE: usize = 100;
const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
const OPEN_TIMEOUT: Duration = Duration::from_secs(2);
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the end of a run waits for the last records to be sent.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The Kamal release whose records these are (its `service.version` and scope version).
const KAMAL_VERSION: &str = "2.12.0";

#[derive(Clone, Debug, Serialize, PartialEq)]
pub enum AnyValue {
    #[serde(rename = "stringValue")]
    String(String),
    #[serde(rename = "intValue")]
    Int(i64),
    #[serde(rename = "doubleValue")]
    Double(f64),
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct KeyValue {
    pub key: String,
    pub value: AnyValue,
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value,
    }
}

fn text(value: &str) -> AnyValue {
    AnyValue::String(value.to_string())
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    time_unix_nano: String,
    observed_time_unix_nano: String,
    severity_number: u8,
    severity_text: &'static str,
    body: AnyValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<KeyValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    resource_logs: [ResourceLogs<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceLogs<'a> {
    resource: Resource<'a>,
    scope_logs: [ScopeLogs<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: &'a [KeyValue],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScopeLogs<'a> {
    scope: Scope,
    log_records: &'a [LogRecord],
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

/// Kamal's severities: (number, text).
fn severity(level: Option<Level>) -> (u8, &'static str) {
    match level {
        Some(Level::Debug) => (5, "DEBUG"),
        None | Some(Level::Info) => (9, "INFO"),
        Some(Level::Warn) => (13, "WARN"),
        Some(Level::Error) => (17, "ERROR"),
    }
}

fn now_nanos() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .to_string()
}

fn record(
    body: &str,
    level: Option<Level>,
    event: Option<&str>,
    attributes: Vec<KeyValue>,
) -> LogRecord {
    let now = now_nanos();
    let (severity_number, severity_text) = severity(level);
    LogRecord {
        time_unix_nano: now.clone(),
        observed_time_unix_nano: now,
        severity_number,
        severity_text,
        body: text(body),
        event_name: event.map(str::to_string),
        attributes,
    }
}

/// What the records say about the run (Kamal's tags, less `recorded_at` and `service_version`).
pub struct Tags<'a> {
    pub performer: &'a str,
    pub destination: Option<&'a str>,
    pub version: &'a str,
    pub service: &'a str,
}

enum Message {
    Record(LogRecord),
    Shutdown,
}

/// The OTLP logger of one run.
pub struct Otel {
    /// As configured: `Logs sent to <endpoint>`.
    pub endpoint: String,
    run_id: String,
    /// `deploy app`: Kamal's `deployment.name`.
    deployment_name: String,
    command: String,
    sender: Mutex<Option<Sender<Message>>>,
    done: Mutex<Option<Receiver<()>>>,
    /// Why shipping failed, once (printed by the thread; kept for the tests).
    pub failure: Arc<Mutex<Option<String>>>,
}

impl Otel {
    /// Starts the shipper and sends `kamal.start`. `warn` prints the one warning line.
    pub fn start(
        endpoint: &str,
        tags: &Tags<'_>,
        command: &str,
        run_id: String,
        warn: Box<dyn Fn(&str) + Send>,
    ) -> Otel {
        let url = format!("{}/v1/logs", endpoint.trim_end_matches('/'));
        let mut resource = vec![
            kv("service.name", text("kamal")),
            kv("service.version", text(KAMAL_VERSION)),
            kv("kamal.run_id", text(&run_id)),
            kv("kamal.performer", text(tags.performer)),
        ];
        if let Some(d) = tags.destination {
            resource.push(kv("deployment.environment.name", text(d)));
        }
        resource.push(kv("kamal.deploy_version", text(tags.version)));
        resource.push(kv("service.namespace", text(tags.service)));
        let (sender, receiver) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let failure = Arc::new(Mutex::new(None));
        let shipper = Shipper {
            url,
            resource,
            failure: failure.clone(),
            warn,
        };
        std::thread::spawn(move || {
            shipper.run(receiver);
            let _ = done_tx.send(());
        });
        let otel = Otel {
            endpoint: endpoint.to_string(),
            deployment_name: format!("{command} {}", tags.service),
            command: command.to_string(),
            run_id,
            sender: Mutex::new(Some(sender)),
            done: Mutex::new(Some(done_rx)),
            failure,
        };
        let attrs = otel.deployment(None);
        otel.event("kamal.start", None, attrs);
        otel
    }

    fn send(&self, record: LogRecord) {
        if let Some(s) = self
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = s.send(Message::Record(record));
        }
    }

    fn event(&self, name: &str, level: Option<Level>, mut attributes: Vec<KeyValue>) {
        attributes.insert(0, kv("kamal.command", text(&self.command)));
        self.send(record(name, level, Some(name), attributes));
    }

    /// Kamal's `deployment.*` attributes of a deploy, redeploy or rollback.
    fn deployment(&self, status: Option<&str>) -> Vec<KeyValue> {
        let mut attrs = vec![
            kv("deployment.id", text(&self.run_id)),
            kv("deployment.name", text(&self.deployment_name)),
        ];
        if let Some(s) = status {
            attrs.push(kv("deployment.status", text(s)));
        }
        attrs
    }

    /// `kamal.complete` or `kamal.failed` (`error`: Kamal's class and message); returns what to print:
    /// `Logs sent to <endpoint>`. The records still queued are sent by `shutdown`.
    pub fn finish(&self, runtime: f64, error: Option<(&str, &str)>) -> String {
        let runtime = AnyValue::Double(super::file_log::round1(runtime));
        match error {
            None => {
                let mut attrs = vec![kv("kamal.runtime", runtime)];
                attrs.extend(self.deployment(Some("succeeded")));
                self.event("kamal.complete", None, attrs);
            }
            Some((class, message)) => {
                let mut attrs = vec![
                    kv("kamal.runtime", runtime),
                    kv("exception.type", text(class)),
                    kv("exception.message", text(message)),
                ];
                attrs.extend(self.deployment(Some("failed")));
                self.event("kamal.failed", Some(Level::Error), attrs);
            }
        }
        format!("Logs sent to {}", self.endpoint)
    }

    /// Sends what is queued and stops the shipper, waiting at most `grace`. Returns whether it got
    /// everything out in time.
    pub fn shutdown(&self, grace: Duration) -> bool {
        let Some(sender) = self.sender.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return true;
        };
        let _ = sender.send(Message::Shutdown);
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner()).take();
        done.is_some_and(|d| d.recv_timeout(grace).is_ok())
    }
}

impl Sink for Otel {
    /// Each line of the message is a record, as Kamal's `each_line`.
    fn line(&self, line: &LogLine<'_>) {
        for text_line in line.text.lines() {
            let mut attrs = Vec::new();
            if let Some(host) = line.host {
                attrs.push(kv("server.address", text(host)));
            }
            if let Some(stream) = line.stream {
                attrs.push(kv("log.iostream", text(stream.name())));
            }
            self.send(record(text_line, line.level, None, attrs));
        }
    }
}

/// The shipper's thread: batches records and posts them.
struct Shipper {
    url: String,
    resource: Vec<KeyValue>,
    failure: Arc<Mutex<Option<String>>>,
    warn: Box<dyn Fn(&str) + Send>,
}

impl Shipper {
    fn run(&self, receiver: Receiver<Message>) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(OPEN_TIMEOUT))
            .timeout_global(Some(READ_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let mut batch: Vec<LogRecord> = Vec::new();
        let mut due = Instant::now() + FLUSH_INTERVAL;
        loop {
            let wait = due.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(wait) {
                Ok(Message::Record(r)) => {
                    batch.push(r);
                    if batch.len() >= BATCH_SIZE {
                        self.ship(&agent, &mut batch);
                    }
                }
                Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    self.ship(&agent, &mut batch);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.ship(&agent, &mut batch);
                    due = Instant::now() + FLUSH_INTERVAL;
                }
            }
        }
    }

    fn ship(&self, agent: &ureq::Agent, batch: &mut Vec<LogRecord>) {
        if batch.is_empty() {
            return;
        }
        let body = payload(&self.resource, batch);
        batch.clear();
        let result = agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes());
        let failed = match result {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!(
                "HTTP {} {}",
                response.status().as_u16(),
                response.status().canonical_reason().unwrap_or("")
            )),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
            if failure.is_none() {
                (self.warn)(&format!("OTel log shipping failed: {why}"));
                *failure = Some(why);
            }
        }
    }
}

/// One OTLP/HTTP JSON request body.
fn payload(resource: &[KeyValue], records: &[LogRecord]) -> String {
    let payload = Payload {
        resource_logs: [ResourceLogs {
            resource: Resource {
                attributes: resource,
            },
            scope_logs: [ScopeLogs {
                scope: Scope {
                    name: "kamal",
                    version: KAMAL_VERSION,
                },
                log_records: records,
            }],
        }],
    };
    serde_json::to_string(&payload).unwrap_or_default()
}

/// A run id as Kamal's `SecureRandom.uuid`: a random (version 4) UUID.
pub fn run_id() -> String {
    let h = crate::config::random_hex(16);
    let (a, rest) = h.split_at(8);
    let (b, rest) = rest.split_at(4);
    let (_, rest) = rest.split_at(1);
    let (c, rest) = rest.split_at(3);
    let (d0, rest) = rest.split_at(1);
    let (d, e) = rest.split_at(3);
    let variant = ["8", "9", "a", "b"][usize::from_str_radix(d0, 16).unwrap_or(0) & 3];
    format!("{a}-{b}-4{c}-{variant}{d}-{e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Stream;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A one-thread OTLP/HTTP receiver: each request's body, decoded with OpenTelemetry's own types.
    fn receiver() -> (
        String,
        std::sync::mpsc::Receiver<(String, ExportLogsServiceRequest)>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut start = String::new();
                reader.read_line(&mut start).unwrap();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let body = String::from_utf8(body).unwrap();
                let request: ExportLogsServiceRequest = serde_json::from_str(&body).unwrap();
                let path = start.split(' ').nth(1).unwrap_or("").to_string();
                (&stream)
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
                tx.send((path, request)).unwrap();
            }
        });
        (url, rx)
    }

    fn tags() -> Tags<'static> {
        Tags {
            performer: "deployer@example.com",
            destination: Some("staging"),
            version: "v2",
            service: "app",
        }
    }

    #[test]
    fn ships_kamals_records_to_a_receiver() {
        let (url, requests) = receiver();
        let otel = Otel::start(
            &format!("{url}/"),
            &tags(),
            "deploy",
            run_id(),
            Box::new(|_| {}),
        );
        otel.line(&LogLine {
            level: None,
            text: "Pull app image...",
            host: None,
            stream: None,
        });
        otel.line(&LogLine {
            level: Some(Level::Debug),
            text: " DEBUG [abcd1234] \tLogin Succeeded",
            host: Some("10.0.0.1"),
            stream: Some(Stream::Stdout),
        });
        assert_eq!(otel.finish(1.25, None), format!("Logs sent to {url}/"));
        assert!(otel.shutdown(SHUTDOWN_GRACE));
        let (path, request) = requests.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(path, "/v1/logs");
        let resource = request.resource_logs[0].resource.as_ref().unwrap();
        let keys: Vec<&str> = resource.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "service.name",
                "service.version",
                "kamal.run_id",
                "kamal.performer",
                "deployment.environment.name",
                "kamal.deploy_version",
                "service.namespace"
            ]
        );
        let scope = &request.resource_logs[0].scope_logs[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "kamal");
        let records = &scope.log_records;
        let events: Vec<&str> = records.iter().map(|r| r.event_name.as_str()).collect();
        assert_eq!(events, ["kamal.start", "", "", "kamal.complete"]);
        assert_eq!(
            (
                records[2].severity_number,
                records[2].severity_text.as_str()
            ),
            (5, "DEBUG")
        );
        let attrs: Vec<&str> = records[2]
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        assert_eq!(attrs, ["server.address", "log.iostream"]);
        let complete: Vec<&str> = records[3]
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        assert_eq!(
            complete,
            [
                "kamal.command",
                "kamal.runtime",
                "deployment.id",
                "deployment.name",
                "deployment.status"
            ]
        );
    }

    #[test]
    fn the_json_is_kamals_shape() {
        let r = record(
            "  INFO [ab] Running x on h",
            Some(Level::Info),
            None,
            vec![kv("server.address", text("h"))],
        );
        let json = serde_json::to_value(&r).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "timeUnixNano",
                "observedTimeUnixNano",
                "severityNumber",
                "severityText",
                "body",
                "attributes"
            ]
        );
        assert_eq!(
            json["body"],
            serde_json::json!({"stringValue": "  INFO [ab] Running x on h"})
        );
        let id = run_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    /// A closed port: one warning, and the end of the run does not wait.
    #[test]
    fn an_endpoint_that_is_down_costs_one_warning() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let w = warnings.clone();
        let warn = Box::new(move |s: &str| w.lock().unwrap().push(s.to_string()));
        let started = Instant::now();
        let otel = Otel::start(
            &format!("http://127.0.0.1:{port}"),
            &tags(),
            "deploy",
            run_id(),
            warn,
        );
        otel.finish(0.1, Some(("RuntimeError", "boom")));
        otel.shutdown(SHUTDOWN_GRACE);
        assert!(started.elapsed() < SHUTDOWN_GRACE);
        let warnings = warnings.lock().unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("OTel log shipping failed: "),
            "{warnings:?}"
        );
    }
}
