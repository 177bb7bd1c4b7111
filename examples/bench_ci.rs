//! CI template serving benchmark driver, used by `scripts/bench-ci.sh`.
//!
//! `miss --base URL --token ADMIN --catalog FILE --path P --n N` applies a new catalog revision (the
//! file plus a comment) before each timed GET of `P`, so every GET renders; `cached --url URL --n N` times
//! sequential GETs of one URL; `rps --url URL --concurrency C --seconds S` counts answered GETs per
//! second. Each prints one line: label, p50/p99 (or requests/s).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> String {
    let at = args.iter().position(|a| a == name).unwrap_or_else(|| panic!("missing {name}"));
    args[at + 1].clone()
}

fn percentiles(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{label:<28} n={:<6} p50 {:>7.3} ms   p99 {:>7.3} ms", times.len(), ms(at(0.50)), ms(at(0.99)));
}

async fn get_ok(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let res = http.get(url).send().await?;
    anyhow::ensure!(res.status().is_success(), "GET {url}: {}", res.status());
    res.bytes().await?;
    Ok(())
}

async fn miss(args: &[String]) -> anyhow::Result<()> {
    let (base, token, path) = (arg(args, "--base"), arg(args, "--token"), arg(args, "--path"));
    let catalog = std::fs::read_to_string(arg(args, "--catalog"))?;
    let n: usize = arg(args, "--n").parse()?;
    let http = reqwest::Client::new();
    let url = format!("{base}{path}");
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let yaml = format!("{catalog}\n# bench revision {i} {}\n", rand::random::<u64>());
        let res = http.post(format!("{base}/api/v1/catalog")).bearer_auth(&token).body(yaml).send().await?;
        anyhow::ensure!(res.status().is_success(), "applying the catalog: {}", res.status());
        let start = Instant::now();
        get_ok(&http, &url).await?;
        times.push(start.elapsed());
    }
    percentiles("tao, cache miss", times);
    Ok(())
}

async fn cached(args: &[String]) -> anyhow::Result<()> {
    let (url, label) = (arg(args, "--url"), arg(args, "--label"));
    let n: usize = arg(args, "--n").parse()?;
    let http = reqwest::Client::new();
    get_ok(&http, &url).await?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        get_ok(&http, &url).await?;
        times.push(start.elapsed());
    }
    percentiles(&label, times);
    Ok(())
}

async fn rps(args: &[String]) -> anyhow::Result<()> {
    let (url, label) = (arg(args, "--url"), arg(args, "--label"));
    let concurrency: usize = arg(args, "--concurrency").parse()?;
    let seconds: u64 = arg(args, "--seconds").parse()?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let (done, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, url, done, stop) = (http.clone(), url.clone(), done.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                get_ok(&http, &url).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let count = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for w in workers {
        w.await??;
    }
    println!("{label:<28} c={concurrency:<4} {:>9.0} requests/s", count as f64 / elapsed);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("miss") => miss(&args).await,
        Some("cached") => cached(&args).await,
        Some("rps") => rps(&args).await,
        _ => anyhow::bail!("usage: bench_ci miss|cached|rps …"),
    }
}
