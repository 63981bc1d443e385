//! Soak: pushes many small tasks (1,000,000 by default) through a pool of
//! two workers that are recycled every 1,000 tasks (`max_tasks_per_child`),
//! and shows that the parent does not leak: its resident memory (`VmRSS`) and
//! its open file descriptors are printed right after the pool is built and
//! again at the end, with the elapsed time, the number of workers recycled,
//! and the zombies left among its children (exited but never reaped: there
//! must be none). It exits non-zero if a result is wrong, if fds grew, or if
//! a zombie remains.
//!
//! Run it with `cargo run --release --example soak -- --tasks 1000000`
//! (`--tasks N` sets the count). `tests/hardening_leaks.rs` runs the same
//! check with 50,000 tasks in the test suite.

use std::time::Instant;

use aiomp::{Pool, remote};
use aiomp_suite::{open_fds, vm_rss_kib, zombies};

#[remote]
async fn bump(x: u64) -> u64 {
    x + 1
}

fn tasks_from_args() -> u64 {
    let mut args = std::env::args().skip(1);
    let mut tasks = 1_000_000;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tasks" => {
                tasks = args
                    .next()
                    .and_then(|n| n.replace('_', "").parse().ok())
                    .expect("--tasks takes a number");
            }
            other => panic!("unknown argument {other:?}; usage: soak [--tasks N]"),
        }
    }
    tasks
}

#[aiomp::main]
async fn main() -> aiomp::Result<()> {
    let tasks = tasks_from_args();
    let pool = Pool::builder().processes(2).max_tasks_per_child(1000).build().await?;
    let (rss_start, fds_start) = (vm_rss_kib(), open_fds());
    println!("start: {tasks} tasks, VmRSS {rss_start} KiB, {fds_start} open fds");

    let started = Instant::now();
    let mut results = pool.map(bump, 0..tasks);
    let mut count = 0u64;
    let mut sum = 0u64;
    while let Some(result) = futures_util::StreamExt::next(&mut results).await {
        let value = result?;
        if value != count + 1 {
            eprintln!("task {count} returned {value}");
            std::process::exit(1);
        }
        sum = sum.wrapping_add(value);
        count += 1;
    }
    let elapsed = started.elapsed();

    // Let the last recycled worker finish exiting and be reaped.
    aiomp_suite::settle(&pool, 2, fds_start).await;
    let (rss_end, fds_end, left) = (vm_rss_kib(), open_fds(), zombies());
    let stats = pool.stats();
    println!(
        "end:   {count} tasks in {elapsed:.2?} ({:.0} tasks/s), VmRSS {rss_end} KiB ({:+} KiB), {fds_end} open fds ({:+}), \
         {} workers recycled, {} restarted, zombies: {left:?}",
        u32::try_from(count).map_or(f64::NAN, f64::from) / elapsed.as_secs_f64(),
        rss_end as i64 - rss_start as i64,
        fds_end as i64 - fds_start as i64,
        stats.recycles,
        stats.restarts,
    );
    pool.close();
    pool.join().await?;

    let expected_sum = (1..=tasks).fold(0u64, u64::wrapping_add);
    if count != tasks || sum != expected_sum || fds_end > fds_start || !left.is_empty() {
        eprintln!("soak failed: {count}/{tasks} results, fds {fds_start} -> {fds_end}, zombies {left:?}");
        std::process::exit(1);
    }
    Ok(())
}
