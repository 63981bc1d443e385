//! The one error type of aiomp, and what a remote failure carries.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::exit::ExitStatus;

/// `Result` with [`Error`](enum@Error) as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong running a function in another process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task panicked or failed in the worker.
    #[error("{0}")]
    Remote(Box<RemoteError>),

    /// The worker exited or was killed while the task was in flight.
    #[error("worker {pid} died with the task in flight ({status})")]
    WorkerDied {
        /// The worker's process ID.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
    },

    /// A value could not be encoded or decoded with postcard.
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

    /// The pool is closed: it takes no new work.
    #[error("pool is closed")]
    PoolClosed,

    /// `join` was called on a pool that was not closed first.
    #[error("pool is still open: call close() or terminate() before join()")]
    PoolStillOpen,

    /// The pool was terminated with the task pending.
    #[error("pool was terminated before the task completed")]
    PoolTerminated,

    /// The pool cannot run tasks any more; the reason says why.
    #[error("pool failed: {reason}")]
    PoolFailed {
        /// What broke it, e.g. a worker that dies at every start.
        reason: String,
    },

    /// The wait ran past its deadline.
    #[error("timed out")]
    Timeout,

    /// The result was asked for before the worker finished.
    #[error("worker has not completed yet")]
    NotCompleted,

    /// The configuration cannot work; the message names the setting.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The function was not marked `#[remote]`.
    #[error("function `{function}` is not registered: mark it #[aiomp::remote]")]
    NotRegistered {
        /// The function's type name.
        function: &'static str,
    },

    /// Two `#[remote]` functions share one ID.
    #[error("two remote functions share the ID `{id}`: give one of them #[remote(id = \"...\")]")]
    DuplicateFunction {
        /// The shared ID.
        id: String,
    },

    /// A process could not be started.
    #[error("could not start a worker process: {0}")]
    Spawn(#[source] std::io::Error),

    /// A worker did not complete the handshake.
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

    /// The operation does not fit the process's state (e.g. `close` while running).
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

    /// Whether the task panicked in the worker.
    pub fn is_panic(&self) -> bool {
        self.as_remote().is_some_and(|r| r.kind == RemoteErrorKind::Panic)
    }
}

/// A task that failed inside a worker: what a person needs to fix it.
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
    /// The task was cancelled before it completed.
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
        if let Some(backtrace) = &self.backtrace {
            write!(f, "\nworker backtrace:\n{backtrace}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteError {}
