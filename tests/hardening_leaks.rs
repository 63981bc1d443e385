//! No leaks in the parent over a long run: 50,000 tasks through a pool of two
//! workers recycled every 1,000 tasks (so 50 worker starts and exits per
//! start method). Open fds stay flat (±2), resident memory grows by less
//! than 32 MiB, and no child is left a zombie. `examples/soak.rs` is the same
//! check at 1,000,000 tasks.
//!
//! The measurements are of the whole test process, so this file holds one
//! test, which runs the start methods one after the other.

use std::time::{Duration, Instant};

use aiomp::{Pool, StartMethod, remote};
use aiomp_suite::{open_fds, vm_rss_kib, zombies};

const TASKS: u64 = 50_000;

#[remote]
async fn bump(x: u64) -> u64 {
    x + 1
}

async fn soak(method: StartMethod) {
    let pool = Pool::builder()
        .processes(2)
        .max_tasks_per_child(1000)
        .start_method(method)
        .build()
        .await
        .unwrap();
    let (rss_start, fds_start) = (vm_rss_kib(), open_fds());
    let started = Instant::now();
    let mut results = pool.map(bump, 0..TASKS);
    let mut next = 0;
    let run = async {
        while let Some(result) = results.next().await {
            assert_eq!(result.unwrap(), next + 1);
            next += 1;
        }
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("50,000 tasks did not complete within 300 s");
    assert_eq!(next, TASKS);
    let elapsed = started.elapsed();

    // The last recycled worker may still be exiting: give it a bounded while.
    aiomp_suite::settle(&pool, 2, fds_start).await;
    let (rss_end, fds_end, left) = (vm_rss_kib(), open_fds(), zombies());
    let stats = pool.stats();
    eprintln!(
        "{method}: {TASKS} tasks in {elapsed:.2?}, VmRSS {rss_start} -> {rss_end} KiB, fds {fds_start} -> {fds_end}, \
         {} recycles, zombies {left:?}",
        stats.recycles
    );
    assert!(
        stats.recycles >= TASKS / 1000 - 2,
        "{method}: workers were not recycled ({} recycles)",
        stats.recycles
    );
    assert_eq!(stats.restarts, 0, "{method}: no worker should have died");
    assert!(
        fds_end.abs_diff(fds_start) <= 2,
        "{method}: open fds went from {fds_start} to {fds_end}"
    );
    assert!(
        rss_end < rss_start + 32 * 1024,
        "{method}: VmRSS grew from {rss_start} KiB to {rss_end} KiB"
    );
    assert_eq!(left, Vec::<u32>::new(), "{method}: zombies among the children");
    pool.close();
    tokio::time::timeout(Duration::from_secs(30), pool.join())
        .await
        .expect("join hung")
        .unwrap();
}

#[aiomp::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_leaks_no_memory_fds_or_zombies() {
    for method in [StartMethod::Spawn, StartMethod::Fork, StartMethod::Forkserver] {
        soak(method).await;
    }
}
