//! The smallest tokio program: builds a current-thread runtime, runs an
//! empty future and exits. The suite times fork + exec + wait of it, the
//! floor under any start method that executes a binary.

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {});
}
