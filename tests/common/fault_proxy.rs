//! A fault-injecting HTTP/1.1 proxy for registry tests. It sits in front of
//! a real registry and, per request, either forwards it (one request per
//! connection, `Connection: close`) or injects a fault the real registry
//! cannot produce: a reset in the middle of a request body, a 5xx answer, a
//! 413 for bodies over a limit, or a slow response. Counters say how often
//! each fault fired.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One kind of fault, applied to matching requests.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Forward `after` body bytes of a matching request, then cut both
    /// connections. Fires at most `times` times.
    ResetMidBody {
        /// Method to match, e.g. `PATCH`.
        method: &'static str,
        /// Body bytes forwarded before the cut.
        after: u64,
        /// How many times to fire.
        times: usize,
    },
    /// Answer `status` without forwarding, after letting `skip` matching
    /// requests through. Fires at most `times` times.
    Status {
        /// Method to match.
        method: &'static str,
        /// Status to answer, e.g. 502.
        status: u16,
        /// Matching requests forwarded before the fault starts.
        skip: usize,
        /// How many times to fire.
        times: usize,
    },
    /// Answer 413 to every request whose body is larger than `max` bytes.
    BodyLimit {
        /// Largest accepted body.
        max: u64,
    },
    /// Cut the connection (no answer, body not read) for every request
    /// whose body is larger than `max` bytes, like a proxy that drops
    /// oversized uploads.
    BodyLimitAbrupt {
        /// Largest accepted body.
        max: u64,
    },
    /// Delay every response by this long before forwarding it.
    Slow {
        /// The delay.
        delay: Duration,
    },
}

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Content-Length (0 if none).
    pub length: u64,
    /// Index of the fault applied, if any.
    pub fault: Option<usize>,
}

struct Shared {
    upstream: String,
    faults: Vec<Fault>,
    fired: Vec<AtomicUsize>,
    matched: Vec<AtomicUsize>,
    seen: Mutex<Vec<SeenRequest>>,
    stop: AtomicBool,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running proxy; dropping it stops accepting connections.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` to use instead of the registry's host.
    pub host: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`127.0.0.1:PORT`) with these faults.
    pub fn start(upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            fired: faults.iter().map(|_| AtomicUsize::new(0)).collect(),
            matched: faults.iter().map(|_| AtomicUsize::new(0)).collect(),
            faults,
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || {
                    let _ = handle(stream, &shared);
                });
            }
        });
        FaultProxy { host, shared }
    }

    /// How many times fault number `index` fired.
    pub fn fired(&self, index: usize) -> usize {
        self.shared.fired[index].load(Ordering::SeqCst)
    }

    /// The most requests that were being handled at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.host);
    }
}

struct Head {
    method: String,
    path: String,
    raw_lines: Vec<String>,
    length: u64,
}

fn read_head(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Head>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut request_line = lines.first().map(|l| l.split(' ')).into_iter().flatten();
    let method = request_line.next().unwrap_or("").to_string();
    let path = request_line.next().unwrap_or("").to_string();
    let length = lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(Some(Head {
        method,
        path,
        raw_lines: lines,
        length,
    }))
}

/// Picks the fault for a request and counts it as fired.
fn choose_fault(shared: &Shared, head: &Head) -> Option<usize> {
    for (index, fault) in shared.faults.iter().enumerate() {
        let fire = match fault {
            Fault::ResetMidBody {
                method,
                after,
                times,
            } => head.method == *method && head.length > *after && try_fire(shared, index, *times),
            Fault::Status {
                method,
                skip,
                times,
                ..
            } => {
                head.method == *method
                    && shared.matched[index].fetch_add(1, Ordering::SeqCst) >= *skip
                    && try_fire(shared, index, *times)
            }
            Fault::BodyLimit { max } | Fault::BodyLimitAbrupt { max } => {
                head.length > *max && try_fire(shared, index, usize::MAX)
            }
            Fault::Slow { .. } => false,
        };
        if fire {
            return Some(index);
        }
    }
    None
}

fn try_fire(shared: &Shared, index: usize, times: usize) -> bool {
    shared.fired[index]
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < times).then_some(n + 1)
        })
        .is_ok()
}

/// Handles one connection, tracking how many requests are handled at once
/// (from the end of the request head to the end of the response).
fn handle(client: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let in_flight = InFlight {
        shared,
        done: AtomicBool::new(false),
    };
    respond(&mut reader, &mut writer, &head, &in_flight)
}

/// Marks a request as handled when its answer starts (before the client can
/// see it and send its next request), or when dropped.
struct InFlight<'a> {
    shared: &'a Shared,
    done: AtomicBool,
}

impl InFlight<'_> {
    fn finish(&self) {
        if !self.done.swap(true, Ordering::SeqCst) {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

fn respond(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    head: &Head,
    in_flight: &InFlight,
) -> std::io::Result<()> {
    let shared = in_flight.shared;
    let fault = choose_fault(shared, head);
    shared.seen.lock().unwrap().push(SeenRequest {
        method: head.method.clone(),
        path: head.path.clone(),
        length: head.length,
        fault,
    });
    match fault.map(|i| &shared.faults[i]) {
        Some(Fault::Status { status, .. }) => {
            answer_after_draining(reader, writer, head, in_flight, *status)
        }
        Some(Fault::BodyLimit { .. }) => {
            answer_after_draining(reader, writer, head, in_flight, 413)
        }
        Some(Fault::BodyLimitAbrupt { .. }) => {
            let _ = writer.shutdown(Shutdown::Both);
            Ok(())
        }
        Some(Fault::ResetMidBody { after, .. }) => {
            let mut upstream = TcpStream::connect(&shared.upstream)?;
            write_head(&mut upstream, head)?;
            std::io::copy(&mut reader.take(*after), &mut upstream)?;
            std::thread::sleep(Duration::from_millis(50));
            let _ = upstream.shutdown(Shutdown::Both);
            let _ = writer.shutdown(Shutdown::Both);
            Ok(())
        }
        _ => forward(reader, writer, head, in_flight),
    }
}

fn write_head(out: &mut TcpStream, head: &Head) -> std::io::Result<()> {
    let mut text = String::new();
    for line in &head.raw_lines {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("connection") {
            continue;
        }
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("Connection: close\r\n\r\n");
    out.write_all(text.as_bytes())
}

fn answer_after_draining(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    head: &Head,
    in_flight: &InFlight,
    status: u16,
) -> std::io::Result<()> {
    std::io::copy(&mut reader.take(head.length), &mut std::io::sink())?;
    in_flight.finish();
    let body = format!(
        "{{\"errors\":[{{\"code\":\"INJECTED\",\"message\":\"fault proxy answered {status}\"}}]}}"
    );
    write!(
        writer,
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    writer.flush()
}

fn forward(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    head: &Head,
    in_flight: &InFlight,
) -> std::io::Result<()> {
    let shared = in_flight.shared;
    let mut upstream = TcpStream::connect(&shared.upstream)?;
    write_head(&mut upstream, head)?;
    std::io::copy(&mut reader.take(head.length), &mut upstream)?;
    for fault in &shared.faults {
        if let Fault::Slow { delay } = fault {
            std::thread::sleep(*delay);
        }
    }
    let mut upstream_reader = BufReader::new(upstream);
    let mut response_head = Vec::new();
    loop {
        let mut line = String::new();
        if upstream_reader.read_line(&mut line)? == 0 {
            break;
        }
        let done = line == "\r\n";
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name != "connection" && !done {
            response_head.push(line);
        }
        if done {
            break;
        }
    }
    let mut text = response_head.concat();
    text.push_str("Connection: close\r\n\r\n");
    in_flight.finish();
    writer.write_all(text.as_bytes())?;
    if head.method != "HEAD" {
        std::io::copy(&mut upstream_reader, writer)?;
    }
    writer.flush()?;
    let _ = writer.shutdown(Shutdown::Both);
    Ok(())
}
