//! Async functions on a pool of worker processes, each worker running its own
//! tokio runtime with many tasks in flight: Python's
//! [aiomultiprocess](https://aiomultiprocess.omnilib.dev), done in Rust.
//!
//! A crash, a leak, a non-thread-safe native library or a `panic = "abort"`
//! dependency is contained in one worker process; `max_tasks_per_child` resets
//! leaky state; the pool survives.
//!
//! ```no_run
//! use aiomp::{Pool, remote};
//!
//! #[remote]
//! async fn double(x: u64) -> u64 {
//!     x * 2
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     let pool = Pool::new().await?;
//!     let doubled: Vec<u64> = pool.map(double, 0..1000).await?;
//!     assert_eq!(doubled[21], 42);
//!     let one: u64 = aiomp::Worker::with_args(double, (21,)).await?;
//!     assert_eq!(one, 42);
//!     Ok(())
//! }
//! ```
//!
//! # Entering worker mode
//!
//! A spawned worker re-executes the current binary. Start `main` with
//! [`#[aiomp::main]`](main) (a drop-in for `#[tokio::main]`) or call
//! [`init()`] first thing in a hand-written `main`; integration tests use
//! [`#[aiomp::test]`](test) (a drop-in for `#[tokio::test]`). Nothing runs
//! before `main`.
//!
//! # Data
//!
//! Arguments and results travel as [postcard](https://docs.rs/postcard).
//! postcard cannot carry `#[serde(flatten)]`, untagged enums,
//! `skip_serializing_if` or `serde_json::Value`; such a value fails its call
//! with [`Error::Codec`] naming the function.
#![forbid(unsafe_code)]

/// Marks a function that can run in a worker process.
///
/// The function stays callable locally exactly as written. It is registered
/// under a stable ID, its module path and name (or `#[remote(id = "...")]`),
/// which is what crosses the process boundary. Arguments and the return value
/// must be `Serialize + DeserializeOwned + Send + 'static`.
///
/// ```
/// #[aiomp::remote]
/// async fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// #[aiomp::remote(id = "crunch-v1")]
/// fn crunch(n: u64) -> u64 {
///     (0..n).map(|i| i * i % 7).sum()
/// }
///
/// assert_eq!(crunch(3), 0 + 1 + 4);
/// ```
///
/// Misuse is a compile error that says the fix:
///
/// ```compile_fail
/// #[aiomp::remote]
/// async fn greet(name: &str) -> String {
///     format!("hello {name}")
/// }
/// ```
pub use aiomp_macros::remote;

/// Starts `main` in a tokio runtime, after entering worker mode if this
/// process is a worker. A drop-in for `#[tokio::main]`: it accepts
/// `flavor = "current_thread" | "multi_thread"` and `worker_threads = N`.
pub use aiomp_macros::main;

/// Runs an async test in a tokio runtime, and lets the test binary host
/// workers. A drop-in for `#[tokio::test]`; nothing else is needed in the test file.
pub use aiomp_macros::test;

pub use aiomp_runtime::{
    ApplyResult, AsyncFn, BlockingFn, Error, ExitStatus, Json, Pool, PoolBuilder, PoolResult, PoolStats, Process,
    QueueId, RemoteError, RemoteErrorKind, RemoteFn, Result, RoundRobin, Scheduler, StartMethod, TaskId, Unordered,
    Worker, WorkerRuntime, WorkerStats, get_start_method, init, set_start_method,
};

#[doc(hidden)]
pub mod __private {
    //! Not public API. Used by generated code.
    pub use aiomp_runtime::__private::*;
}
