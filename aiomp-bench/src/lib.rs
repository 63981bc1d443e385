//! The aiomp benchmark suite: nine workloads run on aiomp and, in the same
//! run, on its peers (Python's aiomultiprocess and `multiprocessing.Pool`,
//! the `procspawn` crate) and on the limits of the machine (raw Unix-socket
//! round trips and streams, exec of a minimal tokio binary, tokio tasks in
//! one process).
//!
//! `cargo run --release -p aiomp-bench -- all` writes `BENCHMARKS.md` at the
//! repository root and `bench/chart.svg`; `-- all --quick` is a seconds-long
//! smoke run. Every wait in the suite has a deadline: a peer that hangs is
//! reported as timed out, and a peer that cannot run is reported as skipped
//! with the reason.

// Rates, sizes and counts here stay far below 2^52: converting them to f64 loses nothing.
#![allow(clippy::cast_precision_loss)]

pub mod chart;
pub mod cli;
pub mod companions;
pub mod limits;
pub mod machine;
pub mod methods;
pub mod peers;
pub mod proc_stat;
pub mod remote;
pub mod report;
pub mod row;
pub mod stats;
pub mod subprocess;
pub mod suite;
pub mod targets;
pub mod timer;
pub mod work;
pub mod workloads;
