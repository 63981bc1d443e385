//! `aiomp-bench`: runs the benchmark suite (`all [--quick] [--output PATH]`).
//!
//! A hand-written `main` that calls [`aiomp::init`] first (aiomp's workers
//! re-execute this binary), so that a fresh process for W5 is timed from
//! before aiomp starts: a fork server preloaded by `init` is inside the time.

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let started = Instant::now();
    aiomp::init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("failed to build the tokio runtime")
        .block_on(aiomp_bench::cli::main(std::env::args().skip(1).collect(), started))
}
