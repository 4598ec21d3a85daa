//! Adds latency to the lab's network without `tc netem` (absent on this kernel): iptables sends packets
//! to NFQUEUE 0, and this daemon hands each one back after a fixed delay, in arrival order.
//!
//! Usage: lab-netem DELAY_MS NETNS_PATH...   (a path is /proc/PID/ns/net or /run/netns/NAME;
//! "self" means the daemon's own namespace). One thread per namespace, each bound to queue 0 there
//! (`LAB_NETEM_QUEUE=N`: queue N, so that the simulated fleet's daemon and the lab's can run together).
//! Packets are delayed where they arrive, never in the sender's OUTPUT chain: a packet held there still
//! counts against its socket's TCP small-queue budget and bulk transfers crawl.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nfq::{Queue, Verdict};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((delay, namespaces)) = args.split_first() else {
        eprintln!("usage: lab-netem DELAY_MS NETNS_PATH...");
        std::process::exit(2);
    };
    let delay = Duration::from_millis(delay.parse().expect("DELAY_MS is a number"));
    // Queues are opened one after the other on this thread (a socket belongs to the namespace its
    // creator is in), then each is served by its own thread.
    let home = std::fs::File::open("/proc/self/ns/net").expect("own netns");
    let mut queues = Vec::new();
    for ns in namespaces {
        if ns != "self" {
            enter_netns(ns);
        }
        queues.push((
            ns.clone(),
            open_queue().unwrap_or_else(|e| panic!("queue in {ns}: {e}")),
        ));
        unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) };
    }
    // Until a queue is bound, --queue-bypass lets packets through undelayed: say when all are bound.
    println!("ready");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let threads: Vec<_> = queues
        .into_iter()
        .map(|(ns, (queue, fd))| {
            std::thread::spawn(move || {
                if let Err(e) = serve(queue, fd, delay) {
                    eprintln!("lab-netem {ns}: {e}");
                    std::process::exit(1);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn enter_netns(path: &str) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // setns changes only the calling thread's namespace; sockets opened afterwards belong to it.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        panic!("setns {path}: {}", std::io::Error::last_os_error());
    }
}

/// Opens and binds queue 0 (or `LAB_NETEM_QUEUE`). `nfq` does not expose its socket, so its number is found beforehand: the
/// socket takes the lowest free descriptor, which `dup` reveals (this runs before any other thread).
fn open_queue() -> std::io::Result<(Queue, i32)> {
    let number: u16 = std::env::var("LAB_NETEM_QUEUE")
        .ok()
        .and_then(|q| q.parse().ok())
        .unwrap_or(0);
    let fd = unsafe { libc::dup(0) };
    unsafe { libc::close(fd) };
    let mut queue = Queue::open()?;
    queue.bind(number)?;
    queue.set_copy_range(number, 0)?;
    queue.set_queue_max_len(number, 65536)?;
    queue.set_fail_open(number, true)?;
    queue.set_nonblocking(true);
    Ok((queue, fd))
}

fn serve(mut queue: Queue, fd: i32, delay: Duration) -> std::io::Result<()> {
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            let (_, mut msg) = held.pop_front().expect("checked");
            msg.set_verdict(Verdict::Accept);
            queue.verdict(msg)?;
        }
        let timeout_ms = held
            .front()
            .map(|(due, _)| {
                due.saturating_duration_since(Instant::now())
                    .as_micros()
                    .div_ceil(1000) as i32
            })
            .unwrap_or(1000);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        loop {
            match queue.recv() {
                Ok(msg) => held.push_back((Instant::now() + delay, msg)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
}
