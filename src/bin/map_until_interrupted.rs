//! Runs a long `map` (10,000 tasks of a 100 ms sleep) on a pool of two
//! workers started with the method named in its first argument, prints
//! `started <worker> <worker> [<fork server> <spare>]` once tasks are
//! running, and keeps going until interrupted: the tests send it SIGINT, as
//! a terminal's Ctrl-C does, to see that nothing outlives it and nothing
//! panics.

use std::io::Write;
use std::time::Duration;

use aiomp::{Pool, StartMethod, Worker};

#[aiomp::remote]
async fn nap(i: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(100)).await;
    i
}

#[aiomp::main(flavor = "current_thread")]
async fn main() -> aiomp::Result<()> {
    let method = match std::env::args().nth(1).as_deref() {
        Some("fork") => StartMethod::Fork,
        Some("forkserver") => StartMethod::Forkserver,
        _ => StartMethod::Spawn,
    };
    let pool = Pool::builder().processes(2).start_method(method).build().await?;
    let map = tokio::spawn(std::future::IntoFuture::into_future(pool.map(nap, 0..10_000u64)));
    // Wait until both workers hold tasks.
    loop {
        let stats = pool.stats();
        if stats.workers.len() == 2 && stats.workers.iter().all(|w| w.in_flight > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut pids = pool.worker_pids();
    pids.extend(aiomp_suite::forkservers_of(std::process::id()));
    if method == StartMethod::Forkserver {
        // A lone start leaves a spare waiting (a pool's start does not):
        // it too must go on Ctrl-C.
        assert_eq!(Worker::with_args(nap, (7,)).start_method(method).await?, 7);
        pids.extend(aiomp_suite::settled_spares_of(std::process::id()));
    }
    let line: Vec<String> = pids.iter().map(u32::to_string).collect();
    println!("started {}", line.join(" "));
    std::io::stdout().flush().expect("stdout");
    let results = map.await.expect("the map task")?;
    println!("done {}", results.len());
    Ok(())
}
