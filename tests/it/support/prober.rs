//! A prober for rollout tests: HTTP/1.0 `GET /health` requests sent continuously, each on a fresh
//! connection, from several connections per published port, recording every answer (the body: the
//! version that served it) and every failure (refused, reset, timeout, a non-200 status) with the time
//! the request started.
//!
//! What a zero-downtime claim is checked against: failures, the longest gap without a successful
//! answer, the versions served in order, and how many ports were failing at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The port probed.
    pub port: u16,
    /// When the request started, since the prober started.
    pub at: Duration,
    /// The body of a 200 answer, or what went wrong.
    pub answer: Result<String, String>,
}

/// A running prober.
pub struct Prober {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
    started: Instant,
}

/// Starts `per_port` connections' worth of requests on each port, each connection pausing `pause`
/// between requests.
pub fn start(ports: &[u16], per_port: usize, pause: Duration) -> Prober {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for &port in ports {
        for _ in 0..per_port {
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let at = started.elapsed();
                    let answer = request(port).await;
                    samples.push(Sample { port, at, answer });
                    tokio::time::sleep(pause).await;
                }
                samples
            }));
        }
    }
    Prober { stop, tasks, started }
}

async fn request(port: u16) -> Result<String, String> {
    let exchange = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| format!("connect: {}", e.kind()))?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: probe\r\n\r\n")
            .await
            .map_err(|e| format!("write: {}", e.kind()))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| format!("read: {}", e.kind()))?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text.split_whitespace().nth(1).unwrap_or("(no answer)").to_string();
        if status != "200" {
            return Err(format!("status {status}"));
        }
        match text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()) {
            Some(body) if !body.is_empty() => Ok(body),
            _ => Err("200 without a body (cut short)".into()),
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), exchange).await {
        Ok(r) => r,
        Err(_) => Err("timeout".into()),
    }
}

impl Prober {
    /// Stops and returns everything recorded, in order of start time.
    pub async fn finish(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut samples = Vec::new();
        for t in self.tasks {
            samples.extend(t.await.expect("prober task"));
        }
        samples.sort_by_key(|s| s.at);
        Report { samples, wall: self.started.elapsed() }
    }
}

/// What a prober saw.
#[derive(Debug)]
pub struct Report {
    /// Every request, by start time.
    pub samples: Vec<Sample>,
    /// How long it ran.
    pub wall: Duration,
}

impl Report {
    /// Requests per second over the run.
    pub fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64().max(0.001)
    }

    /// Requests per second to `port` over the run.
    pub fn rate_of(&self, port: u16) -> f64 {
        self.samples.iter().filter(|s| s.port == port).count() as f64 / self.wall.as_secs_f64().max(0.001)
    }

    /// The failed requests.
    pub fn failures(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.answer.is_err()).collect()
    }

    /// The versions `port` served, in order, each run of equal answers once.
    pub fn versions(&self, port: u16) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.samples.iter().filter(|s| s.port == port) {
            if let Ok(v) = &s.answer {
                if out.last() != Some(v) {
                    out.push(v.clone());
                }
            }
        }
        out
    }

    /// The longest time `port` went without a successful answer (between the starts of two successful
    /// requests, failures in between).
    pub fn longest_gap(&self, port: u16) -> Duration {
        let mut last_ok: Option<Duration> = None;
        let mut longest = Duration::ZERO;
        for s in self.samples.iter().filter(|s| s.port == port) {
            if s.answer.is_ok() {
                if let Some(prev) = last_ok {
                    longest = longest.max(s.at - prev);
                }
                last_ok = Some(s.at);
            }
        }
        longest
    }

    /// The most ports failing within one `window` of time.
    pub fn most_ports_down_at_once(&self, window: Duration) -> usize {
        use std::collections::{BTreeMap, BTreeSet};
        let mut down: BTreeMap<u128, BTreeSet<u16>> = BTreeMap::new();
        for s in self.failures() {
            down.entry(s.at.as_millis() / window.as_millis().max(1)).or_default().insert(s.port);
        }
        down.values().map(BTreeSet::len).max().unwrap_or(0)
    }

    /// One line: requests, rate, failures by kind.
    pub fn summary(&self) -> String {
        let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
        for s in self.failures() {
            *kinds.entry(s.answer.as_ref().unwrap_err().as_str()).or_default() += 1;
        }
        format!("{} requests ({:.0}/s), {} failed {kinds:?}", self.samples.len(), self.rate(), self.failures().len())
    }
}
