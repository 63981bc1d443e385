//! The runtime behind [`aiomp`](https://docs.rs/aiomp): registry, wire protocol,
//! transport, the worker side, `Pool`, `Process` and `Worker`.
//!
//! Depend on `aiomp`, not on this crate: its API is re-exported and documented there.

mod backoff;
mod buffer;
mod buffers;
mod child;
mod chunk;
mod codec;
mod entry;
mod error;
mod exit;
#[cfg(test)]
mod fuzz;
mod idle_spin;
mod inbox;
mod json;
mod launch;
mod link;
mod os_child;
mod outbox;
mod panic;
mod pool;
mod private;
mod process;
mod protocol;
mod registry;
mod remote_fn;
mod scheduler;
mod sys;
mod transport;

/// Locks `mutex`, recovering the data if a panicking thread poisoned it: the
/// runtime's critical sections leave their data consistent at every step.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[doc(hidden)]
pub mod __private {
    //! Not public API. Used by generated code.
    pub use crate::private::*;
}

pub use buffer::Buffer;
pub use entry::init;
pub use error::{Error, RemoteError, RemoteErrorKind, Result};
pub use exit::ExitStatus;
pub use json::Json;
pub use launch::{START_METHOD_ENV, StartMethod, get_start_method, set_start_method};
pub use pool::{ApplyResult, Pool, PoolBuilder, PoolResult, PoolStats, Unordered, WorkerRuntime, WorkerStats};
pub use process::{Process, Worker};
pub use remote_fn::{AsyncFn, BlockingFn, RemoteFn};
pub use scheduler::{QueueId, RoundRobin, Scheduler, TaskId};
