//! `aiomp-bench`: runs the benchmark suite (`all [--quick] [--output PATH]`).
//!
//! The binary starts with `#[aiomp::main]`: aiomp's workers re-execute it.

use std::process::ExitCode;

#[aiomp::main]
async fn main() -> ExitCode {
    aiomp_bench::cli::main(std::env::args().skip(1).collect()).await
}
