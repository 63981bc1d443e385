//! A program that gets entering worker mode wrong, for the entry tests.
//!
//! - `skip-init-in-children`: calls `aiomp::init()` only when it is not a
//!   worker, so its children run the program's own code: aiomp must stop them
//!   before they start workers of their own.
//! - `no-init`: never calls `aiomp::init()`: aiomp must refuse to spawn.
//!
//! Prints the error the parent got, on one line.

#[aiomp::remote]
async fn answer() -> u64 {
    42
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let is_child = std::env::var_os("AIOMP_WORKER").is_some();
    if mode == "skip-init-in-children" && !is_child {
        aiomp::init();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(aiomp::Worker::new(answer).into_future()) {
        Ok(value) => println!("ok: {value}"),
        Err(error) => println!("error: {error}"),
    }
}
