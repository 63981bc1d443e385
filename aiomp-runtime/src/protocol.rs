//! The messages that cross a channel between the parent and a worker.
//!
//! The handshake comes first: the parent sends [`Hello`], the child answers
//! [`Welcome`]. After that the parent sends [`Request`]s and the child sends
//! [`Reply`]s. Every message is one frame (see [`codec`](crate::codec)).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::RemoteError;
use crate::registry::FunctionIndex;

/// The parent's first frame: who it is and how the worker must run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The parent's registry fingerprint; the child refuses a different one.
    pub(crate) fingerprint: u64,
    /// How the worker runs.
    pub(crate) settings: Settings,
}

/// How a worker runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// The worker's tokio runtime.
    pub(crate) runtime: RuntimeFlavor,
    /// A call to make once, before any task.
    pub(crate) initializer: Option<Call>,
    /// A function called with a [`TaskFailure`](crate::TaskFailure) for each failed task.
    pub(crate) exception_handler: Option<FunctionIndex>,
    /// When the parent goes away: `true` aborts running tasks at once (daemon),
    /// `false` lets them finish first.
    pub(crate) abort_on_parent_exit: bool,
    /// The largest frame either side sends or accepts.
    pub(crate) max_frame: usize,
    /// The most slots (see [`Task::slots`]) the worker's running tasks may
    /// take together; a task that arrives when they are taken waits in the
    /// worker, in order, and starts the moment enough are free. `None`: every
    /// task starts as it arrives.
    pub(crate) slots: Option<u32>,
    /// How long the worker watches its channel before its runtime sleeps
    /// (see [`crate::idle_spin`]); zero never.
    pub(crate) idle_spin: Duration,
}

/// The worker's runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RuntimeFlavor {
    /// One thread runs every task (the default).
    CurrentThread,
    /// A multi-thread runtime with this many worker threads.
    MultiThread(usize),
}

/// A function and its encoded arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Call {
    /// The function's index in the (fingerprinted, identical) registry.
    pub(crate) function: FunctionIndex,
    /// The argument tuple, encoded with postcard.
    pub(crate) args: Vec<u8>,
}

/// The child's first frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Welcome {
    /// The child's process ID, as it sees it.
    pub(crate) pid: u32,
    /// The child's registry fingerprint.
    pub(crate) fingerprint: u64,
    /// `Err` with the reason when the child refuses the parent.
    pub(crate) accepted: Result<(), String>,
}

/// One task: an ID unique within the parent, a function, and one or more
/// calls of it (several for a chunk of a `map`). The calls' arguments follow
/// the message in the frame (see [`chunk`](crate::chunk)), `args_len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Task {
    /// The task's ID.
    pub(crate) id: u64,
    /// The function's index in the (fingerprinted, identical) registry.
    pub(crate) function: FunctionIndex,
    /// How many of its calls may run at once.
    pub(crate) concurrency: u32,
    /// The worker slots it takes while it runs (see [`Settings::slots`]).
    pub(crate) slots: u32,
    /// The length of its argument buffer.
    pub(crate) args_len: u32,
    /// Sent while the worker was busy, so that it may wait there: the worker
    /// says [`Reply::Started`] before it starts it, and a worker that dies
    /// before then leaves it to the parent to send elsewhere.
    pub(crate) standby: bool,
}

/// Parent to worker, after the handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Run these tasks; their argument buffers follow, in order.
    Tasks(Vec<Task>),
    /// Abort these tasks if they are running; each still gets an outcome.
    Cancel(Vec<u64>),
    /// Take no more tasks: finish those held, then exit.
    Drain,
}

/// Worker to parent, after the handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The initializer ran; tasks will now run.
    Ready,
    /// The initializer failed; the worker exits.
    InitFailed(RemoteError),
    /// Tasks that completed, in the order they completed; their result
    /// buffers follow, in order.
    Outcomes(Vec<Outcome>),
    /// A task sent on [`standby`](Task::standby) is about to start: written
    /// out before it does.
    Started(u64),
}

/// How one task ended. Its result buffer (a result per call, see
/// [`chunk`](crate::chunk)) follows the message in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcome {
    /// The task's ID.
    pub(crate) id: u64,
    /// How many of its calls failed.
    pub(crate) failed: u32,
    /// The length of its result buffer.
    pub(crate) results_len: u32,
}

/// Why a task has no return value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum TaskError {
    /// It panicked, was cancelled, or named a function the worker lacks.
    Remote(RemoteError),
    /// Its arguments did not decode, or its return value did not encode.
    Codec {
        /// "decode the arguments" or "encode the result".
        action: CodecAction,
        /// postcard's error.
        error: postcard::Error,
    },
}

/// Which side of a call a worker-side codec error happened on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum CodecAction {
    /// Decoding the arguments in the worker.
    DecodeArguments,
    /// Encoding the return value in the worker.
    EncodeResult,
}

impl CodecAction {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            CodecAction::DecodeArguments => "decode the arguments in the worker",
            CodecAction::EncodeResult => "encode the result in the worker",
        }
    }
}
