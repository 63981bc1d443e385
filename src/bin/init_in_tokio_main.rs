//! A program that calls `aiomp::init()` inside its runtime, as a
//! `#[tokio::main]` would, rather than first thing in a plain `main`: its
//! workers must serve all the same, under every start method.
//!
//! Arguments: the start method (`spawn`, `fork` or `forkserver`), then the
//! runtime's flavor (`current_thread`, or else multi-thread). Prints
//! `ok: ONE MAPPED` (a one-shot worker's answer, then the sum a pool of two
//! mapped), or the error the parent got, on one line.

use aiomp::{Pool, StartMethod, Worker};

#[aiomp::remote]
async fn answer() -> u64 {
    42
}

#[aiomp::remote]
async fn double(x: u64) -> u64 {
    x * 2
}

async fn one_shot_and_pool(method: StartMethod) -> aiomp::Result<(u64, u64)> {
    let one = Worker::new(answer).start_method(method).await?;
    let pool = Pool::builder().processes(2).start_method(method).build().await?;
    let mapped: Vec<u64> = pool.map(double, [1, 2]).await?;
    pool.close();
    pool.join().await?;
    Ok((one, mapped.iter().sum()))
}

fn main() {
    // Whatever runs before `init` runs in every spawned worker (and the
    // fork server) too, which are started without the arguments.
    let mut runtime = match std::env::args().nth(2).as_deref() {
        Some("current_thread") => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = runtime.enable_all().build().expect("a runtime");
    runtime.block_on(async {
        aiomp::init();
        let method = match std::env::args().nth(1).as_deref() {
            Some("spawn") => StartMethod::Spawn,
            Some("fork") => StartMethod::Fork,
            Some("forkserver") => StartMethod::Forkserver,
            other => panic!("no start method named {other:?}"),
        };
        match one_shot_and_pool(method).await {
            Ok((one, mapped)) => println!("ok: {one} {mapped}"),
            Err(error) => println!("error: {error}"),
        }
    });
}
