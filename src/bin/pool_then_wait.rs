//! Builds a pool of two workers with the start method named in its first
//! argument, prints `pids <worker> <worker> [<fork server>]` on one line, then
//! waits to be killed: the tests kill it to see that no process outlives it.

use std::io::Write;

use aiomp::{Pool, StartMethod};

#[aiomp::remote]
async fn double(x: u64) -> u64 {
    x * 2
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
    let line: Vec<String> = pids.iter().map(u32::to_string).collect();
    println!("pids {}", line.join(" "));
    std::io::stdout().flush().expect("stdout");
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    Ok(())
}
