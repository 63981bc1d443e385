//! Builds a pool of two workers with the start method named in its first
//! argument, prints `pids <worker> <worker> [<fork server> <spare>]` on one
//! line, then waits to be killed: the tests kill it to see that no process
//! outlives it.
//! With `busy` as its second argument, one worker spins on the CPU (and says
//! `spinning` on its own line first) while it waits: that worker's runtime
//! never gets to read its channel.

use std::io::Write;
use std::time::{Duration, Instant};

use aiomp::{Pool, StartMethod, Worker};

#[aiomp::remote]
async fn double(x: u64) -> u64 {
    x * 2
}

/// Spins for two minutes without yielding to the worker's runtime.
#[aiomp::remote]
async fn spin() {
    println!("spinning");
    std::io::stdout().flush().expect("stdout");
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

#[aiomp::main(flavor = "current_thread")]
async fn main() -> aiomp::Result<()> {
    let method = match std::env::args().nth(1).as_deref() {
        Some("fork") => StartMethod::Fork,
        Some("forkserver") => StartMethod::Forkserver,
        _ => StartMethod::Spawn,
    };
    let pool = Pool::builder().processes(2).start_method(method).build().await?;
    assert_eq!(pool.apply(double, (21,)).await?, 42);
    let mut pids = pool.worker_pids();
    pids.extend(aiomp_suite::forkservers_of(std::process::id()));
    if method == StartMethod::Forkserver {
        // A lone start leaves a spare waiting (a pool's start does not):
        // it too must go when this process goes.
        assert_eq!(Worker::with_args(double, (1,)).start_method(method).await?, 2);
        pids.extend(aiomp_suite::settled_spares_of(std::process::id()));
    }
    let line: Vec<String> = pids.iter().map(u32::to_string).collect();
    println!("pids {}", line.join(" "));
    std::io::stdout().flush().expect("stdout");
    if std::env::args().nth(2).as_deref() == Some("busy") {
        pool.apply(spin, ()).await?;
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    Ok(())
}
