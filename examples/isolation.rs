//! Isolation: what a worker process contains.
//!
//! 1. A task that aborts the process (a `panic = "abort"` dependency, a
//!    segfault in native code, the OOM killer) takes down its worker. The
//!    tasks that worker had in flight fail with `Error::WorkerDied`, every
//!    other task completes, the worker is replaced, and the pool keeps going.
//! 2. A task that panics fails alone, with `Error::Remote`; its worker lives on.
//! 3. A task that leaks memory grows its worker; `max_tasks_per_child`
//!    replaces the worker every few tasks, which resets the leak. The worker
//!    pids and their resident memory show it.
//!
//! aiomp's tracing events (worker died, recycled, replaced) are printed to
//! stderr with `tracing-subscriber`.
//!
//! Run it with `cargo run --release --example isolation`.

use std::fmt::Write;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use aiomp::{Error, Pool, remote};
use futures_util::StreamExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Aborts the whole worker process on input 13; otherwise sleeps a little
/// (so that the worker has several tasks in flight) and returns its input.
#[remote]
async fn risky(n: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if n == 13 {
        std::process::abort();
    }
    n
}

/// Panics on input 7.
#[remote]
async fn fragile(n: u64) -> u64 {
    assert!(n != 7, "bad input {n}");
    n
}

/// A cache that is never evicted: the leak.
static CACHE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Leaks `mib` MiB (touched, so resident) and returns the worker's pid and
/// its resident memory in MiB.
#[remote]
fn leaky(mib: usize) -> (u32, u64) {
    CACHE.lock().unwrap().push(vec![1; mib << 20]);
    (std::process::id(), resident_mib())
}

/// This process's resident set size (`VmRSS`), in MiB.
fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// Runs `leaky` `calls` times, one at a time, and prints each worker's pid
/// with the resident memory after each call.
async fn leak_run(pool: &Pool, label: &str, calls: usize) -> aiomp::Result<()> {
    let readings: Vec<(u32, u64)> = pool.map(leaky, vec![16; calls]).await?;
    let mut line = String::new();
    let mut last_pid = None;
    for (pid, mib) in readings {
        if last_pid != Some(pid) {
            let separator = if last_pid.is_some() { " | " } else { "" };
            let _ = write!(line, "{separator}pid {pid}:");
            last_pid = Some(pid);
        }
        let _ = write!(line, " {mib}");
    }
    println!("{label:<32} {line} MiB");
    Ok(())
}

#[aiomp::main]
async fn main() -> aiomp::Result<()> {
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .without_time()
                .with_target(false)
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        )
        .with(Targets::new().with_target("aiomp_runtime", LevelFilter::DEBUG))
        .init();

    // 1. An abort: the worker dies with 4 tasks in flight.
    let pool = Pool::builder().processes(2).child_concurrency(4).build().await?;
    println!(
        "1. abort: 40 tasks on workers {:?}, input 13 aborts",
        pool.worker_pids()
    );
    let results: Vec<aiomp::Result<u64>> = pool.map(risky, 0..40).collect().await;
    let mut lost = Vec::new();
    let mut dead = None;
    for (input, result) in results.iter().enumerate() {
        match result {
            Ok(_) => {}
            Err(Error::WorkerDied { pid, status }) => {
                lost.push(input);
                dead = Some(format!("worker {pid}, {status}"));
            }
            Err(other) => println!("   input {input}: unexpected {other}"),
        }
    }
    println!(
        "   {} completed; lost with the dead worker ({}): inputs {lost:?}",
        results.iter().filter(|r| r.is_ok()).count(),
        dead.unwrap_or_default()
    );
    let after: Vec<u64> = pool.map(risky, 100..110).await?;
    let stats = pool.stats();
    println!(
        "   then 10 more completed ({}..={}); restarts: {}, workers now {:?}",
        after[0],
        after[9],
        stats.restarts,
        pool.worker_pids()
    );

    // 2. A panic: only that task fails, and no worker is replaced.
    let workers = pool.worker_pids();
    let results: Vec<aiomp::Result<u64>> = pool.map(fragile, 0..20).collect().await;
    for error in results.iter().filter_map(|r| r.as_ref().err()) {
        match error.as_remote() {
            Some(panic) => println!(
                "2. panic: `{}` panicked in worker {}: {:?} at {}",
                panic.function,
                panic.pid,
                panic.message,
                panic.location.as_deref().unwrap_or("?")
            ),
            None => println!("2. unexpected: {error}"),
        }
    }
    println!(
        "   {} of 20 completed; same workers: {}",
        results.iter().filter(|r| r.is_ok()).count(),
        pool.worker_pids() == workers
    );
    pool.close();
    pool.join().await?;

    // 3. A leak of 16 MiB per task, with and without recycling.
    println!("3. leak: 16 MiB per task, the worker's pid and resident memory after each task");
    let pool = Pool::builder().processes(1).child_concurrency(1).build().await?;
    leak_run(&pool, "   no recycling:", 9).await?;
    drop(pool); // stops and reaps the worker, and its 144 MiB with it

    let pool = Pool::builder()
        .processes(1)
        .child_concurrency(1)
        .max_tasks_per_child(3)
        .build()
        .await?;
    leak_run(&pool, "   max_tasks_per_child(3):", 9).await?;
    println!("   recycles: {}", pool.stats().recycles);
    pool.close();
    pool.join().await?;
    Ok(())
}
