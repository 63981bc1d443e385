//! Quickstart, and the README's main job: a pool of worker processes doing
//! real work.
//!
//! 1. I/O-bound: the example serves pages on loopback, and the pool fetches
//!    2,000 of them, many at a time in each worker.
//! 2. CPU-bound: a plain `fn` mapped over the pool, timed against the same
//!    calls run serially in this process.
//! 3. One `apply`, a `starmap`, and a one-shot `Worker`.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::collections::BTreeSet;
use std::time::Instant;

use aiomp::{Pool, Worker, remote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A page fetched by a worker: which worker, and how many bytes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Page {
    worker: u32,
    bytes: usize,
}

/// Fetches `url` (`host:port/path`) with a minimal HTTP/1.0 GET.
#[remote]
async fn fetch(url: String) -> Result<Page, String> {
    let (host, path) = url.split_once('/').ok_or("no path")?;
    let mut stream = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
    let request = format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.0 200") {
        return Err(format!("{url}: {}", text.lines().next().unwrap_or("no answer")));
    }
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, body)| body.len());
    Ok(Page {
        worker: std::process::id(),
        bytes: body,
    })
}

/// CPU-bound work: a plain `fn`, run on the worker's thread.
#[remote]
fn crunch(n: u64) -> u64 {
    (0..n).fold(0u64, |acc, i| acc.wrapping_mul(31).wrapping_add(i * i % 7))
}

#[remote]
async fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

/// Serves `/page/N` on loopback until the program ends.
async fn serve_pages() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0; 1024];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n]);
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let body = format!("<html><body><h1>{path}</h1>{}</body></html>", "lorem ipsum ".repeat(40));
                let response = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(address)
}

#[aiomp::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let processes = std::thread::available_parallelism().map_or(2, usize::from).max(2);
    let pool = Pool::builder()
        .processes(processes)
        .child_concurrency(32)
        .build()
        .await?;
    println!(
        "pool of {} worker processes {:?} (parent {})",
        pool.process_count(),
        pool.worker_pids(),
        std::process::id()
    );

    // 1. I/O-bound: a crawl of pages served on loopback.
    let server = serve_pages().await?;
    let urls: Vec<String> = (0..2000).map(|i| format!("{server}/page/{i}")).collect();
    let started = Instant::now();
    let pages: Vec<Result<Page, String>> = pool.map(fetch, urls).await?;
    let elapsed = started.elapsed();
    let fetched: Vec<&Page> = pages.iter().filter_map(|p| p.as_ref().ok()).collect();
    let workers: BTreeSet<u32> = fetched.iter().map(|p| p.worker).collect();
    let bytes: usize = fetched.iter().map(|p| p.bytes).sum();
    println!(
        "crawl: fetched {} of {} pages ({bytes} bytes) in {elapsed:.2?} across workers {workers:?}",
        fetched.len(),
        pages.len()
    );

    // 2. CPU-bound: the pool against the same calls serially here.
    let inputs = vec![8_000_000u64; 16];
    let started = Instant::now();
    let serial: Vec<u64> = inputs.iter().map(|&n| crunch(n)).collect();
    let serial_time = started.elapsed();
    let started = Instant::now();
    let parallel: Vec<u64> = pool.map(crunch, inputs).await?;
    let pool_time = started.elapsed();
    assert_eq!(serial, parallel);
    println!(
        "cpu: 16 calls serially in {serial_time:.2?}, on the pool in {pool_time:.2?}: {:.2}x speedup",
        serial_time.as_secs_f64() / pool_time.as_secs_f64()
    );

    // 3. The rest of the surface.
    let three: u64 = pool.apply(add, (1, 2)).await?;
    let sums: Vec<u64> = pool.starmap(add, vec![(1, 2), (3, 4), (5, 6)]).await?;
    println!("apply(add, (1, 2)) = {three}; starmap(add, ...) = {sums:?}");
    pool.close();
    pool.join().await?;

    let one: u64 = Worker::with_args(double, (21,)).await?;
    println!("Worker::with_args(double, (21,)) = {one}");
    Ok(())
}
