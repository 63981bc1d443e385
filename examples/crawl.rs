//! I/O-bound work: a breadth-first crawl of a small web site, thousands of
//! pages fetched through a pool of worker processes, many requests in flight
//! in each worker.
//!
//! The example serves the site itself, on loopback (no external network):
//! every page answers after 10 ms and links to eight more. Each level of the
//! crawl is one `map` over the pool, read with `unordered()` so that pages
//! are handled as they arrive. It prints the pages per second, the pool's
//! statistics, and how long the same crawl would take one request at a time.
//!
//! Run it with `cargo run --release --example crawl`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::time::{Duration, Instant};

use aiomp::{Pool, remote};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Pages on the site: `/page/0` to `/page/{PAGES - 1}`.
const PAGES: usize = 4000;
/// Links on each page.
const FAN_OUT: usize = 8;
/// How long the server takes to answer: the I/O the workers wait on.
const LATENCY: Duration = Duration::from_millis(10);

/// What a worker sends back for one page.
#[derive(Debug, Serialize, Deserialize)]
struct Page {
    url: String,
    links: Vec<String>,
    bytes: usize,
}

/// Fetches `url` (`host:port/path`) with a minimal HTTP/1.0 GET and returns
/// the links it finds. Errors are values here, so they come back typed.
#[remote]
async fn fetch(url: String) -> Result<Page, String> {
    let (host, path) = url.split_once('/').ok_or_else(|| format!("{url}: no path"))?;
    let mut stream = TcpStream::connect(host).await.map_err(|e| format!("{url}: {e}"))?;
    let request = format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.0 200") {
        return Err(format!("{url}: {}", text.lines().next().unwrap_or("no answer")));
    }
    let links = text
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"'))
        .map(|(link, _)| format!("{host}{link}"))
        .collect();
    Ok(Page {
        url,
        links,
        bytes: response.len(),
    })
}

/// Serves the site on loopback until the program ends; returns `host:port`.
async fn serve_site() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0; 1024];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let line = String::from_utf8_lossy(&request[..n]);
                let page: usize = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|path| path.strip_prefix("/page/"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(usize::MAX);
                tokio::time::sleep(LATENCY).await;
                let response = if page < PAGES {
                    let mut links = String::new();
                    for child in (1..=FAN_OUT).map(|i| page * FAN_OUT + i).filter(|&child| child < PAGES) {
                        let _ = write!(links, "<a href=\"/page/{child}\">page {child}</a> ");
                    }
                    let body = format!("<html><body><h1>page {page}</h1>{links}</body></html>");
                    format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                } else {
                    "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(address)
}

#[aiomp::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = serve_site().await?;
    let processes = std::thread::available_parallelism().map_or(2, usize::from).clamp(2, 4);
    // I/O-bound: each worker keeps many requests in flight. Total concurrency
    // is processes x child_concurrency.
    let pool = Pool::builder()
        .processes(processes)
        .child_concurrency(64)
        .build()
        .await?;
    println!(
        "crawling http://{server}/page/0 with {} workers x 64 requests in flight",
        pool.process_count()
    );

    let started = Instant::now();
    let mut seen: HashSet<String> = HashSet::new();
    let mut frontier = vec![format!("{server}/page/0")];
    seen.extend(frontier.iter().cloned());
    let (mut pages, mut bytes, mut failures) = (0u32, 0usize, 0u32);
    let mut level = 0;
    while !frontier.is_empty() {
        let level_started = Instant::now();
        let urls = std::mem::take(&mut frontier);
        let count = urls.len();
        // `map` pulls the URLs lazily; `unordered` yields each page as it
        // arrives, tagged with its index in `urls`.
        let mut results = pool.map(fetch, urls).unordered();
        while let Some((_index, result)) = results.next().await {
            match result? {
                Ok(page) => {
                    pages += 1;
                    bytes += page.bytes;
                    for link in page.links {
                        if seen.insert(link.clone()) {
                            frontier.push(link);
                        }
                    }
                }
                Err(message) => {
                    failures += 1;
                    eprintln!("fetch failed: {message}");
                }
            }
        }
        println!("  level {level}: {count:>5} pages in {:>8.2?}", level_started.elapsed());
        level += 1;
    }
    let elapsed = started.elapsed();

    let stats = pool.stats();
    let per_worker: BTreeMap<u32, u64> = stats.workers.iter().map(|w| (w.pid, w.completed)).collect();
    println!(
        "crawled {pages} pages ({bytes} bytes, {failures} failures) in {elapsed:.2?}: {:.0} pages/s",
        f64::from(pages) / elapsed.as_secs_f64()
    );
    println!("pages fetched by each worker: {per_worker:?}");
    println!(
        "one request at a time, the {pages} waits of {LATENCY:?} alone would take {:.1?}",
        LATENCY * pages
    );
    assert_eq!(pages as usize, PAGES, "every page is reachable from page 0");

    pool.close();
    pool.join().await?;
    Ok(())
}
