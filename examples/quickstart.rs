//! Quickstart: a pool of worker processes doubling numbers, one `apply`, a
//! `map`, a `starmap`, and a one-shot `Worker`.
//!
//! Run it with `cargo run --release --example quickstart`.

use aiomp::{Pool, Worker, remote};

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote]
async fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[remote]
fn whoami() -> u32 {
    std::process::id()
}

#[aiomp::main]
async fn main() -> aiomp::Result<()> {
    let pool = Pool::builder().processes(2).build().await?;
    println!(
        "pool of {} workers: {:?} (parent {})",
        pool.process_count(),
        pool.worker_pids(),
        std::process::id()
    );

    let three: u64 = pool.apply(add, (1, 2)).await?;
    println!("apply(add, (1, 2)) = {three}");

    let doubled: Vec<u64> = pool.map(double, 0..10).await?;
    println!("map(double, 0..10) = {doubled:?}");

    let sums: Vec<u64> = pool.starmap(add, vec![(1, 2), (3, 4), (5, 6)]).await?;
    println!("starmap(add, ...) = {sums:?}");

    let pids: Vec<u32> = pool.starmap(whoami, vec![(); 8]).await?;
    println!("tasks ran in processes {pids:?}");

    pool.close();
    pool.join().await?;

    let one: u64 = Worker::with_args(double, (21,)).await?;
    println!("Worker::with_args(double, (21,)) = {one}");
    Ok(())
}
