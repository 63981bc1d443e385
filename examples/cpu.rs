//! CPU-bound work: the same calls run serially in this process, then on a
//! pool with one worker process per core, and the speedup printed against
//! the serial time.
//!
//! The work is a plain `fn` (no `async`): it runs on its worker's thread from
//! start to finish. The pool counts such a call as taking the worker's whole
//! thread, so each worker is given one call at a time and the rest wait in
//! the pool's queue for whichever worker is free first.
//!
//! Run it with `cargo run --release --example cpu`.

use std::time::{Duration, Instant};

use aiomp::{Pool, remote};

/// Counts the primes in `start..end` by trial division: pure CPU.
#[remote]
fn count_primes(start: u64, end: u64) -> u64 {
    (start..end).filter(|&n| is_prime(n)).count() as u64
}

fn is_prime(n: u64) -> bool {
    let mut divisor = 2;
    while divisor * divisor <= n {
        if n % divisor == 0 {
            return false;
        }
        divisor += 1;
    }
    n >= 2
}

#[aiomp::main]
async fn main() -> aiomp::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let pool = Pool::builder().processes(cores).build().await?;

    // Size a chunk to take at least 25 ms here, then make 8 chunks per worker.
    let mut width = 10_000u64;
    loop {
        let started = Instant::now();
        count_primes(1_000_000, 1_000_000 + width);
        if started.elapsed() >= Duration::from_millis(25) {
            break;
        }
        width *= 2;
    }
    let chunks: Vec<(u64, u64)> = (0..8 * cores as u64)
        .map(|i| (1_000_000 + i * width, 1_000_000 + (i + 1) * width))
        .collect();
    println!(
        "{} chunks of {width} numbers to test for primality, {} worker processes",
        chunks.len(),
        pool.process_count()
    );

    let started = Instant::now();
    let serial: Vec<u64> = chunks.iter().map(|&(start, end)| count_primes(start, end)).collect();
    let serial_time = started.elapsed();
    println!(
        "serial, in this process: {serial_time:>9.2?}  ({:.2?} a chunk)",
        serial_time / u32::try_from(chunks.len()).unwrap_or(u32::MAX)
    );

    let started = Instant::now();
    let parallel: Vec<u64> = pool.starmap(count_primes, chunks).await?;
    let pool_time = started.elapsed();
    assert_eq!(serial, parallel);
    let speedup = serial_time.as_secs_f64() / pool_time.as_secs_f64();
    println!(
        "on the pool:             {pool_time:>9.2?}  {speedup:.2}x the serial speed ({:.0}% of the ideal {cores}x)",
        100.0 * speedup / f64::from(cores as u32)
    );
    println!("primes found: {}", parallel.iter().sum::<u64>());

    pool.close();
    pool.join().await?;
    Ok(())
}
