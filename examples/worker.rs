//! One function, one process: `Worker` (returns the function's result) and
//! `Process` (for a job whose exit status is enough), the counterparts of
//! aiomultiprocess's `Worker` and `Process`.
//!
//! It runs one-shot workers (awaited directly, and several at once), a named
//! process with an initializer, a process that panics, one that is stopped
//! with `terminate` after `join_timeout` gave up on it, and the cost of one
//! `Worker` under each start method.
//!
//! Run it with `cargo run --release --example worker`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aiomp::{Error, Process, StartMethod, Worker, remote};

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

/// A CPU-bound one-shot job: the n-th Fibonacci number, the slow way.
#[remote]
fn fib(n: u32) -> u64 {
    if n < 2 { u64::from(n) } else { fib(n - 1) + fib(n - 2) }
}

/// Set once in each child by its initializer.
static GREETING: OnceLock<String> = OnceLock::new();

/// Runs in the child before the target: the place for per-process set-up.
#[remote]
fn set_greeting(greeting: String) {
    let _ = GREETING.set(greeting);
}

#[remote]
async fn report(job: String) {
    let greeting = GREETING.get().map_or("no greeting", String::as_str);
    println!("  [child {}] {greeting}, running {job}", std::process::id());
}

#[remote]
async fn fail(reason: String) {
    panic!("{reason}");
}

#[remote]
async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[aiomp::main]
async fn main() -> aiomp::Result<()> {
    println!("parent {}", std::process::id());

    // A Worker is IntoFuture: awaiting it starts the process and returns the result.
    let v = Worker::with_args(double, (21,)).await?;
    println!("Worker::with_args(double, (21,)).await = {v}");

    // Several at once: start them all, then join each. `result()` keeps the
    // value of a completed join.
    let started = Instant::now();
    let mut workers: Vec<Worker<u64>> = (30..34).map(|n| Worker::with_args(fib, (n,))).collect();
    for worker in &mut workers {
        worker.start()?;
    }
    for (n, worker) in (30..).zip(&mut workers) {
        let pid = worker.pid();
        worker.join().await?;
        println!("  fib({n}) = {:>8} in process {pid:?}", worker.result()?);
    }
    println!("4 workers in parallel: {:.2?}", started.elapsed());

    // A Process: named, with an initializer, started explicitly.
    let mut process = Process::with_args(report, ("job-1".to_owned(),))
        .name("reporter")
        .initializer(set_greeting, ("hello from the initializer".to_owned(),));
    process.start()?;
    println!("process {:?} started as pid {:?}", process.get_name(), process.pid());
    process.join().await?;
    println!("  joined: exit code {:?}", process.exitcode());
    process.close()?;

    // A panic in the child comes back as Error::Remote, with where it happened.
    let mut failing = Process::with_args(fail, ("disk full".to_owned(),)).name("failing");
    match failing.join().await {
        Err(Error::Remote(remote)) => println!(
            "process {:?} failed: {:?} at {} in pid {}; exit code {:?}",
            failing.get_name(),
            remote.message,
            remote.location.as_deref().unwrap_or("?"),
            remote.pid,
            failing.exitcode()
        ),
        other => println!("unexpected: {other:?}"),
    }

    // join_timeout gives up waiting; the child keeps running until stopped.
    let mut sleeper = Process::with_args(sleep_ms, (60_000,)).name("sleeper").daemon(true);
    sleeper.start()?;
    let waited = sleeper.join_timeout(Duration::from_millis(100)).await;
    println!(
        "join_timeout(100 ms) on a 60 s sleep: {waited:?}; still alive: {}",
        sleeper.is_alive()
    );
    sleeper.terminate()?;
    sleeper.join().await?;
    println!(
        "  after terminate: alive {}, exit code {:?} (-15: SIGTERM)",
        sleeper.is_alive(),
        sleeper.exitcode()
    );

    // What a one-shot Worker costs under each start method.
    for method in [StartMethod::Spawn, StartMethod::Fork, StartMethod::Forkserver] {
        Worker::with_args(double, (1,)).start_method(method).await?; // warm-up
        let started = Instant::now();
        for x in 0..10 {
            let v = Worker::with_args(double, (x,)).start_method(method).await?;
            assert_eq!(v, x * 2);
        }
        println!(
            "one-shot Worker, {:>10}: {:.2?} each",
            method.to_string(),
            started.elapsed() / 10
        );
    }
    Ok(())
}
