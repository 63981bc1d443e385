//! The one error type of aiomp, and what a remote failure carries.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::exit::ExitStatus;

/// `Result` with [`Error`](enum@Error) as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong running a function in another process.
///
/// Which errors a call can meet, roughly in the order a person meets them:
///
/// - setting up: [`InvalidConfig`](Error::InvalidConfig) from
///   [`PoolBuilder::build`](crate::PoolBuilder::build),
///   [`NotRegistered`](Error::NotRegistered) and
///   [`DuplicateFunction`](Error::DuplicateFunction) for functions,
///   [`Spawn`](Error::Spawn) and [`Handshake`](Error::Handshake) for
///   workers that cannot start;
/// - running a task: [`Remote`](Error::Remote) (it panicked),
///   [`WorkerDied`](Error::WorkerDied) (its worker died under it),
///   [`Codec`](Error::Codec) (a value postcard cannot carry),
///   [`Timeout`](Error::Timeout);
/// - the pool's state: [`PoolClosed`](Error::PoolClosed),
///   [`PoolStillOpen`](Error::PoolStillOpen),
///   [`PoolTerminated`](Error::PoolTerminated),
///   [`PoolFailed`](Error::PoolFailed).
///
/// A remote function's own error is not among them: a function returning
/// `Result<T, E>` returns it as a value, and the call gives
/// `Result<Result<T, E>, Error>`.
///
/// ```
/// use aiomp::{Error, Pool, remote};
///
/// #[remote]
/// async fn risky(n: u32) -> u32 {
///     assert!(n < 10, "{n} is too big");
///     n
/// }
///
/// #[aiomp::main]
/// async fn main() -> aiomp::Result<()> {
///     let pool = Pool::builder().processes(1).build().await?;
///     match pool.apply(risky, (12,)).await {
///         Ok(n) => println!("got {n}"),
///         Err(Error::Remote(panic)) => {
///             assert_eq!(panic.message, "12 is too big");
///             println!("panicked at {:?} in worker {}", panic.location, panic.pid);
///         }
///         Err(Error::WorkerDied { pid, status }) => println!("worker {pid} died: {status}"),
///         Err(other) => return Err(other),
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task panicked or failed in the worker: the [`RemoteError`] says
    /// how, where and in which worker. The worker and its other tasks go on.
    #[error("{0}")]
    Remote(Box<RemoteError>),

    /// The worker exited or was killed while the task was in flight: every
    /// task it held fails with this, and a pool replaces the worker. An
    /// abort, a segfault, the OOM killer, a `SIGKILL` from outside and a
    /// panic under `panic = "abort"` all end here. Whether to retry is the
    /// caller's choice: the task may have had side effects before it died.
    #[error("worker {pid} died with the task in flight ({status})")]
    WorkerDied {
        /// The worker's process ID.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
    },

    /// A value could not be encoded or decoded with postcard, for this call
    /// only. postcard cannot carry `#[serde(flatten)]`, untagged enums,
    /// `skip_serializing_if` or `serde_json::Value`: wrap such a value in
    /// [`Json`](crate::Json).
    #[error("codec error in `{function}`: could not {action}: {source}")]
    Codec {
        /// The ID of the remote function the value belongs to.
        function: String,
        /// What was being done: "encode the arguments", "decode the result", ...
        action: &'static str,
        /// postcard's error.
        #[source]
        source: postcard::Error,
    },

    /// The pool is closed: it takes no new work. `apply`, `map` and
    /// `starmap` give this after [`Pool::close`](crate::Pool::close) or
    /// [`Pool::terminate`](crate::Pool::terminate).
    #[error("pool is closed")]
    PoolClosed,

    /// [`Pool::join`](crate::Pool::join) was called on a pool that was not
    /// closed (or terminated) first.
    #[error("pool is still open: call close() or terminate() before join()")]
    PoolStillOpen,

    /// The pool was terminated with the task pending: queued or in flight
    /// when [`Pool::terminate`](crate::Pool::terminate) was called.
    #[error("pool was terminated before the task completed")]
    PoolTerminated,

    /// The pool cannot run tasks any more; the reason says why. A worker
    /// slot whose worker fails to start three times in a row (an
    /// initializer that panics, a binary that cannot enter worker mode)
    /// fails the pool, rather than respawning forever; every pending and
    /// later call gets this.
    #[error("pool failed: {reason}")]
    PoolFailed {
        /// What broke it, e.g. a worker that dies at every start.
        reason: String,
    },

    /// The wait ran past its deadline: [`ApplyResult::timeout`](crate::ApplyResult::timeout)
    /// and [`PoolResult::timeout`](crate::PoolResult::timeout) (which cancel
    /// the call), or `join_timeout` on a [`Process`](crate::Process) or
    /// [`Worker`](crate::Worker) (which leaves the child running).
    #[error("timed out")]
    Timeout,

    /// [`Worker::result`](crate::Worker::result) was called before a `join`
    /// completed.
    #[error("worker has not completed yet")]
    NotCompleted,

    /// The configuration cannot work; the message names the setting. From
    /// [`PoolBuilder::build`](crate::PoolBuilder::build) (zero processes,
    /// more queues than processes, ...), or for a task a
    /// [`Scheduler`](crate::Scheduler) sent to a queue the pool does not have.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The function was not marked `#[remote]`: add
    /// [`#[aiomp::remote]`](https://docs.rs/aiomp/latest/aiomp/attr.remote.html) to it.
    #[error("function `{function}` is not registered: mark it #[aiomp::remote]")]
    NotRegistered {
        /// The function's type name.
        function: &'static str,
    },

    /// Two `#[remote]` functions share one ID (given the same
    /// `#[remote(id = "...")]`): reported by the first call of any function,
    /// since one ID must name one function in every process.
    #[error("two remote functions share the ID `{id}`: give one of them #[remote(id = \"...\")]")]
    DuplicateFunction {
        /// The shared ID.
        id: String,
    },

    /// The operating system refused to start a process (out of memory or
    /// process slots, for instance).
    #[error("could not start a worker process: {0}")]
    Spawn(#[source] std::io::Error),

    /// A worker did not complete the handshake: it exited first, took longer
    /// than the start timeout, or answered with something else. The reason
    /// says which, and what to do.
    #[error("worker {pid} failed the handshake: {reason}")]
    Handshake {
        /// The worker's process ID.
        pid: u32,
        /// What went wrong, and what to do about it.
        reason: String,
    },

    /// The channel to a worker broke or carried something malformed.
    #[error("channel to worker {pid} failed: {reason}")]
    Transport {
        /// The worker's process ID.
        pid: u32,
        /// What went wrong.
        reason: String,
    },

    /// The operation does not fit the handle's state: starting a
    /// [`Process`](crate::Process) twice or outside a tokio runtime, `close`
    /// while it runs, signalling one never started.
    #[error("{0}")]
    InvalidState(&'static str),

    /// An operating-system call failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A copy of this error: `Error` is not `Clone` (it holds `io::Error`s,
    /// rebuilt here from their kind and message), but one failure may answer
    /// several calls.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Remote(remote) => Error::Remote(remote.clone()),
            Error::WorkerDied { pid, status } => Error::WorkerDied {
                pid: *pid,
                status: *status,
            },
            Error::Codec {
                function,
                action,
                source,
            } => Error::Codec {
                function: function.clone(),
                action,
                source: source.clone(),
            },
            Error::NotRegistered { function } => Error::NotRegistered { function },
            Error::DuplicateFunction { id } => Error::DuplicateFunction { id: id.clone() },
            Error::Handshake { pid, reason } => Error::Handshake {
                pid: *pid,
                reason: reason.clone(),
            },
            Error::Transport { pid, reason } => Error::Transport {
                pid: *pid,
                reason: reason.clone(),
            },
            Error::InvalidState(message) => Error::InvalidState(message),
            Error::InvalidConfig(message) => Error::InvalidConfig(message.clone()),
            Error::PoolFailed { reason } => Error::PoolFailed { reason: reason.clone() },
            Error::Spawn(source) => Error::Spawn(std::io::Error::new(source.kind(), source.to_string())),
            Error::Io { action, source } => Error::Io {
                action,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::PoolClosed => Error::PoolClosed,
            Error::PoolStillOpen => Error::PoolStillOpen,
            Error::PoolTerminated => Error::PoolTerminated,
            Error::Timeout => Error::Timeout,
            Error::NotCompleted => Error::NotCompleted,
        }
    }

    /// The remote failure, if this is [`Error::Remote`].
    pub fn as_remote(&self) -> Option<&RemoteError> {
        match self {
            Error::Remote(remote) => Some(remote),
            _ => None,
        }
    }

    /// Whether the task panicked in the worker (an [`Error::Remote`] of kind
    /// [`RemoteErrorKind::Panic`]).
    pub fn is_panic(&self) -> bool {
        self.as_remote().is_some_and(|r| r.kind == RemoteErrorKind::Panic)
    }
}

/// A task that failed inside a worker: what a person needs to fix it.
///
/// Its `Display` is one line (`` `function` panicked in worker PID: message
/// at file:line:column``), followed by the worker's backtrace on the next
/// lines when one was captured. It is also what an
/// [`exception_handler`](crate::PoolBuilder::exception_handler) receives,
/// in the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RemoteError {
    /// What kind of failure it was.
    pub kind: RemoteErrorKind,
    /// The panic message or the failure's description.
    pub message: String,
    /// Where the panic happened (`file:line:column`), when known.
    pub location: Option<String>,
    /// The stable ID of the function that failed.
    pub function: String,
    /// The worker's process ID.
    pub pid: u32,
    /// The backtrace, when the worker captured one (`RUST_BACKTRACE=1`).
    pub backtrace: Option<String>,
}

/// The kinds of [`RemoteError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// The function panicked.
    Panic,
    /// The worker does not have the function (a different binary).
    UnknownFunction,
    /// The task was cancelled before it completed. A caller rarely sees this:
    /// cancelling is dropping the call, and with it the result.
    Cancelled,
    /// The worker could not decode the arguments or encode the result.
    Codec,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            RemoteErrorKind::Panic => "panicked",
            RemoteErrorKind::UnknownFunction => "is unknown",
            RemoteErrorKind::Cancelled => "was cancelled",
            RemoteErrorKind::Codec => "hit a codec error",
        };
        write!(f, "`{}` {what} in worker {}: {}", self.function, self.pid, self.message)?;
        if let Some(location) = &self.location {
            write!(f, " at {location}")?;
        }
        // The backtrace, when captured, only with `{:#}`: one line otherwise.
        if let (true, Some(backtrace)) = (f.alternate(), &self.backtrace) {
            write!(f, "\nworker backtrace:\n{backtrace}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteError {}
