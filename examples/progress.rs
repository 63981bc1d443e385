//! A progress bar (with [`indicatif`](https://docs.rs/indicatif)) driven by
//! the as-completed stream of a pool call: `pool.map(...).unordered()`
//! yields `(index, result)` as each task finishes, so the bar moves with the
//! work rather than with the slowest task in input order.
//!
//! 3,000 jobs of 1 to 100 ms each; one of them fails, and the stream carries
//! on past it. The bar's message shows `pool.stats()`: tasks in flight and
//! queued. Where stderr is not a terminal (CI), indicatif draws nothing and
//! the example prints a line at each quarter instead.
//!
//! Run it with `cargo run --release --example progress`.

use std::time::{Duration, Instant};

use aiomp::{Pool, remote};
use indicatif::{ProgressBar, ProgressStyle};

const JOBS: u64 = 3000;
/// The job that fails, to show a failure in the middle of the stream.
const BAD_JOB: u64 = 1234;

/// A job that takes 1 to 100 ms (spread by a hash of its number) and returns
/// a checksum.
#[remote]
async fn job(n: u64) -> u64 {
    let hash = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    tokio::time::sleep(Duration::from_millis(1 + (hash >> 32) % 100)).await;
    assert!(n != BAD_JOB, "corrupt input");
    hash >> 48
}

#[aiomp::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder().processes(2).child_concurrency(64).build().await?;
    let bar = ProgressBar::new(JOBS);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} ({eta} left) {msg}")?
            .progress_chars("=> "),
    );

    let started = Instant::now();
    let mut checksums = vec![0u64; JOBS as usize];
    let mut failures = Vec::new();
    let mut done = 0u64;
    let mut results = pool.map(job, 0..JOBS).unordered();
    while let Some((index, result)) = results.next().await {
        match result {
            Ok(checksum) => checksums[index] = checksum,
            Err(error) => {
                // A panic comes back as Error::Remote: message, location, pid.
                let why = error.as_remote().map_or_else(
                    || error.to_string(),
                    |remote| format!("{:?} at {}", remote.message, remote.location.as_deref().unwrap_or("?")),
                );
                bar.suspend(|| println!("job {index} failed: {why}"));
                failures.push(index);
            }
        }
        done += 1;
        bar.inc(1);
        if done % 100 == 0 {
            let stats = pool.stats();
            let in_flight: usize = stats.workers.iter().map(|w| w.in_flight).sum();
            bar.set_message(format!("{in_flight} in flight, {} queued", stats.queued));
        }
        if bar.is_hidden() && done % (JOBS / 4) == 0 {
            println!("{done}/{JOBS} done after {:.2?}", started.elapsed());
        }
    }
    bar.finish_with_message("done");

    let stats = pool.stats();
    println!(
        "{} jobs in {:.2?}: {} completed, {} failed (jobs {failures:?}); checksum {}",
        JOBS,
        started.elapsed(),
        stats.completed,
        stats.failed,
        checksums.iter().sum::<u64>()
    );
    assert_eq!(failures, [BAD_JOB as usize]);
    pool.close();
    pool.join().await?;
    Ok(())
}
