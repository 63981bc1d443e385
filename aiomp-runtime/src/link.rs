//! The parent's end of one worker: the channel's two tasks and the tasks in
//! flight on it.
//!
//! A reader task completes each task's oneshot as its outcome arrives. When
//! the channel ends (EOF, a broken or malformed frame) it waits for the child
//! to exit and fails exactly the tasks still in flight, with the worker's
//! exit status.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::exit::ExitStatus;
use crate::launch::{Launched, StartMethod};
use crate::os_child::OsChild;
use crate::pool::WorkerStats;
use crate::protocol::{Hello, Reply, Request, Settings, Task};
use crate::registry::{FunctionIndex, Registry};
use crate::remote_fn::task_error;
use crate::transport::{self, ChannelError, FrameReader, FrameWriter};

/// How long a worker may take to exit after its channel closed before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The answer to one task: each call's encoded return value or why it has
/// none, in argument order; or, when the task as a whole was lost (its worker
/// died, the pool was terminated), why.
pub(crate) type Answer = Result<Vec<Result<Vec<u8>, Error>>, Error>;

/// A task on its way to a worker: one or more calls of one function. The
/// task travels under its first call's ID; each call keeps its own, for the
/// scheduler.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) ids: Vec<u64>,
    /// The worker slots it takes while it runs.
    pub(crate) slots: usize,
    pub(crate) function: FunctionIndex,
    pub(crate) args: Vec<Vec<u8>>,
    pub(crate) reply: oneshot::Sender<Answer>,
}

/// A task in flight on a link.
#[derive(Debug)]
struct Pending {
    function: FunctionIndex,
    /// Each call's task ID, for the scheduler's `complete_task`.
    ids: Vec<u64>,
    reply: oneshot::Sender<Answer>,
    /// The worker slots it occupies, freed when it completes.
    _slots: Option<OwnedSemaphorePermit>,
}

#[derive(Debug, Default)]
struct InFlight {
    tasks: HashMap<u64, Pending>,
    /// Set once the link has failed what it held: nothing more may enter.
    closed: bool,
}

/// Called with the IDs of each task's calls as it completes (the pool's scheduler).
pub(crate) type OnComplete = Arc<dyn Fn(&[u64]) + Send + Sync>;

/// What a new link needs to know.
#[derive(Clone)]
pub(crate) struct LinkConfig {
    pub(crate) method: StartMethod,
    pub(crate) settings: Settings,
    /// Deadline for the handshake and the initializer together.
    pub(crate) start_timeout: Duration,
    pub(crate) on_complete: Option<OnComplete>,
    /// Set by the owner when it is stopping the worker on purpose: tasks then
    /// fail with [`Error::PoolTerminated`] rather than [`Error::WorkerDied`].
    pub(crate) terminating: Arc<AtomicBool>,
}

impl std::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("method", &self.method)
            .field("settings", &self.settings)
            .field("start_timeout", &self.start_timeout)
            .finish_non_exhaustive()
    }
}

/// How a link ended.
#[derive(Debug, Clone)]
pub(crate) struct LinkEnd {
    pub(crate) pid: u32,
    pub(crate) status: ExitStatus,
    /// How many tasks it failed because it ended with them in flight.
    pub(crate) lost: usize,
    /// Tasks it completed, and tasks that failed (lost ones included).
    pub(crate) completed: u64,
    pub(crate) failed: u64,
}

/// What happened to a link's tasks so far.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// One live worker, from the parent's side.
#[derive(Debug)]
pub(crate) struct Link {
    child: Arc<OsChild>,
    requests: mpsc::UnboundedSender<Request>,
    in_flight: Arc<Mutex<InFlight>>,
    counters: Arc<Counters>,
}

impl Link {
    /// Completes the handshake with a launched worker and waits until its initializer ran.
    pub(crate) async fn connect(config: &LinkConfig, launched: Launched) -> Result<(Link, JoinHandle<LinkEnd>), Error> {
        let registry = Registry::get()?;
        let child = launched.child;
        let opened = async {
            let stream = launched.stream;
            let (mut reader, mut writer) =
                transport::channel(stream, config.settings.max_frame).map_err(|source| Error::Io {
                    action: "registering a worker's channel",
                    source,
                })?;
            let hello = Hello {
                fingerprint: registry.fingerprint(),
                settings: config.settings.clone(),
            };
            transport::handshake(
                &mut reader,
                &mut writer,
                &child,
                &launched.token,
                &hello,
                config.start_timeout,
            )
            .await?;
            wait_ready(&mut reader, &child, config.start_timeout).await?;
            Ok::<_, Error>((reader, writer))
        };
        let (reader, writer) = match opened.await {
            Ok(halves) => halves,
            Err(error) => {
                child.kill_and_reap();
                return Err(error);
            }
        };
        let (requests, outbox) = mpsc::unbounded_channel();
        let in_flight = Arc::new(Mutex::new(InFlight::default()));
        let counters = Arc::new(Counters::default());
        tokio::spawn(write_requests(writer, outbox));
        let end = tokio::spawn(read_replies(
            reader,
            Replies {
                in_flight: Arc::clone(&in_flight),
                counters: Arc::clone(&counters),
                child: Arc::clone(&child),
                on_complete: config.on_complete.clone(),
                terminating: Arc::clone(&config.terminating),
            },
        ));
        Ok((
            Link {
                child,
                requests,
                in_flight,
                counters,
            },
            end,
        ))
    }

    pub(crate) fn child(&self) -> &Arc<OsChild> {
        &self.child
    }

    /// Sends jobs to the worker. Jobs whose caller is gone are dropped; jobs
    /// refused because the link has ended are handed back.
    pub(crate) fn dispatch(
        &self,
        jobs: impl IntoIterator<Item = (Job, Option<OwnedSemaphorePermit>)>,
    ) -> Vec<(Job, Option<OwnedSemaphorePermit>)> {
        let mut in_flight = crate::lock(&self.in_flight);
        if in_flight.closed {
            return jobs.into_iter().collect();
        }
        let mut tasks = Vec::new();
        for (job, slot) in jobs {
            if job.reply.is_closed() {
                continue;
            }
            in_flight.tasks.insert(
                job.id,
                Pending {
                    function: job.function,
                    ids: job.ids,
                    reply: job.reply,
                    _slots: slot,
                },
            );
            tasks.push(Task {
                id: job.id,
                function: job.function,
                args: job.args,
            });
        }
        // Sent under the lock, so a cancel for these tasks cannot overtake them.
        if !tasks.is_empty() {
            let _ = self.requests.send(Request::Tasks(tasks));
        }
        Vec::new()
    }

    /// Asks the worker to abort those of `ids` it is running.
    pub(crate) fn cancel(&self, ids: &[u64]) {
        let in_flight = crate::lock(&self.in_flight);
        let held: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| in_flight.tasks.contains_key(id))
            .collect();
        if !held.is_empty() {
            let _ = self.requests.send(Request::Cancel(held));
        }
    }

    /// The worker's pid, tasks in flight, and tasks completed and failed so far.
    pub(crate) fn stats(&self) -> WorkerStats {
        WorkerStats {
            pid: self.child.pid(),
            in_flight: crate::lock(&self.in_flight)
                .tasks
                .values()
                .map(|task| task.ids.len())
                .sum(),
            completed: self.counters.completed.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Asks the worker to finish what it holds and exit.
    pub(crate) fn drain(&self) {
        let _ = self.requests.send(Request::Drain);
    }
}

async fn wait_ready(reader: &mut FrameReader, child: &OsChild, deadline: Duration) -> Result<(), Error> {
    let pid = child.pid();
    tokio::select! {
        // A child that reports and then exits has its report read first.
        biased;
        reply = reader.recv::<Reply>() => match reply {
            Ok(Reply::Ready) => Ok(()),
            Ok(Reply::InitFailed(remote)) => Err(Error::Remote(Box::new(remote))),
            Ok(Reply::Outcomes(_)) => Err(Error::Transport { pid, reason: "outcomes before the worker was ready".into() }),
            Err(ChannelError::Closed) => Err(ended_while_starting(pid, child.wait().await)),
            Err(other) => Err(Error::Transport { pid, reason: other.to_string() }),
        },
        status = child.wait() => Err(ended_while_starting(pid, status)),
        () = tokio::time::sleep(deadline) => Err(Error::Handshake {
            pid,
            reason: format!("its initializer did not complete within {deadline:?}"),
        }),
    }
}

/// The error for a worker that exited before it was ready.
fn ended_while_starting(pid: u32, status: crate::exit::ExitStatus) -> Error {
    Error::Handshake {
        pid,
        reason: format!("it ended ({status}) while running its initializer"),
    }
}

/// Writes requests as they come, merging queued-up task batches into one frame.
async fn write_requests(mut writer: FrameWriter, mut outbox: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::new();
    while outbox.recv_many(&mut batch, 256).await > 0 {
        let mut tasks = Vec::new();
        for request in batch.drain(..) {
            let other = match request {
                Request::Tasks(mut more) => {
                    tasks.append(&mut more);
                    continue;
                }
                other => other,
            };
            if !tasks.is_empty() && writer.feed(&Request::Tasks(std::mem::take(&mut tasks))).await.is_err() {
                return;
            }
            if writer.feed(&other).await.is_err() {
                return;
            }
        }
        if !tasks.is_empty() && writer.feed(&Request::Tasks(tasks)).await.is_err() {
            return;
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}

/// What the reader of a link's replies updates.
struct Replies {
    in_flight: Arc<Mutex<InFlight>>,
    counters: Arc<Counters>,
    child: Arc<OsChild>,
    on_complete: Option<OnComplete>,
    terminating: Arc<AtomicBool>,
}

async fn read_replies(mut reader: FrameReader, replies: Replies) -> LinkEnd {
    let Replies {
        in_flight,
        counters,
        child,
        on_complete,
        terminating,
    } = replies;
    let pid = child.pid();
    let failure = loop {
        match reader.recv::<Reply>().await {
            Ok(Reply::Outcomes(outcomes)) => {
                for outcome in outcomes {
                    let pending = crate::lock(&in_flight).tasks.remove(&outcome.id);
                    let Some(pending) = pending else { continue };
                    if let Some(on_complete) = &on_complete {
                        on_complete(&pending.ids);
                    }
                    let results: Vec<Result<Vec<u8>, Error>> = outcome
                        .results
                        .into_iter()
                        .map(|result| result.map_err(|e| task_error(pending.function, e)))
                        .collect();
                    let failed = results.iter().filter(|r| r.is_err()).count() as u64;
                    counters
                        .completed
                        .fetch_add(results.len() as u64 - failed, Ordering::Relaxed);
                    counters.failed.fetch_add(failed, Ordering::Relaxed);
                    if let Some(Err(error)) = results.iter().find(|r| r.is_err()) {
                        tracing::debug!(pid, task = outcome.id, failed, %error, "aiomp task failed");
                    }
                    let answer = Ok(results);
                    let _ = pending.reply.send(answer);
                }
            }
            Ok(other) => break Some(format!("unexpected message after the handshake: {other:?}")),
            Err(ChannelError::Closed) => break None,
            Err(error) => break Some(error.to_string()),
        }
    };
    if failure.is_some() {
        // A worker that sends garbage is not trusted with more work.
        let _ = child.signal(libc::SIGKILL);
    }
    let status = tokio::select! {
        status = child.wait() => status,
        () = tokio::time::sleep(EXIT_GRACE) => {
            let _ = child.signal(libc::SIGKILL);
            child.wait().await
        }
    };
    let lost = {
        let mut in_flight = crate::lock(&in_flight);
        in_flight.closed = true;
        std::mem::take(&mut in_flight.tasks)
    };
    let count: usize = lost.values().map(|pending| pending.ids.len()).sum();
    counters.failed.fetch_add(count as u64, Ordering::Relaxed);
    for pending in lost.into_values() {
        if let Some(on_complete) = &on_complete {
            on_complete(&pending.ids);
        }
        let error = if terminating.load(Ordering::SeqCst) {
            Error::PoolTerminated
        } else if let Some(reason) = &failure {
            Error::Transport {
                pid,
                reason: reason.clone(),
            }
        } else {
            Error::WorkerDied { pid, status }
        };
        let _ = pending.reply.send(Err(error));
    }
    LinkEnd {
        pid,
        status,
        lost: count,
        completed: counters.completed.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
    }
}
