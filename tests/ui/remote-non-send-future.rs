use std::rc::Rc;

use aiomp::remote;

// The future of a remote `async fn` runs on a worker's multi-threaded runtime.
#[remote]
async fn holds_rc(x: u64) -> u64 {
    let shared = Rc::new(x);
    tokio::task::yield_now().await;
    *shared
}

fn main() {}
