//! The parent's end of one worker: the channel's two tasks and the tasks in
//! flight on it.
//!
//! A reader task completes each task's oneshot as its outcome arrives (or a
//! caller spinning for its answer does, see [`Link::read_now`]). When
//! the channel ends (EOF, a broken or malformed frame) it waits for the child
//! to exit and fails exactly the tasks still in flight, with the worker's
//! exit status; but after a clean EOF, tasks sent on standby that the worker
//! never said it started are left to be queued again
//! ([`Link::take_unstarted`]).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::task::JoinHandle;

use crate::buffers::Buffers;
use crate::chunk::read_results;
use crate::codec;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::inbox::{Inbox, Refused};
use crate::launch::{Launched, StartMethod};
use crate::os_child::OsChild;
use crate::outbox::Outbox;
use crate::pool::WorkerStats;
use crate::protocol::{Hello, Outcome, Reply, Request, Settings, Task};
use crate::registry::{FunctionIndex, Registry};
use crate::remote_fn::decode_task_error;
use crate::transport::{self, ChannelError, FrameReader};

/// The largest arguments a one-shot job's greeting copies (larger ones go
/// out from where they lie, with the handshake).
const GREETING_ARGS_MAX: usize = 64 * 1024;

/// What a new worker finds in its channel as it starts, after its token.
#[derive(Debug)]
pub(crate) struct Greeting {
    pub(crate) bytes: Vec<u8>,
    /// Whether the one-shot job and the drain after it are in it.
    pub(crate) carries_only: bool,
}

/// How long a worker may take to exit after its channel closed before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The answer to one task: its calls' results as the worker sent them; or,
/// when the task as a whole was lost (its worker died, the pool was
/// terminated), why.
pub(crate) type Answer = Result<Results, Error>;

/// A task's results buffer, laid out as [`chunk`](crate::chunk) describes:
/// a result per call, each the encoded return value or why there is none.
#[derive(Debug)]
pub(crate) struct Results {
    /// The worker that sent them.
    pub(crate) pid: u32,
    pub(crate) bytes: Bytes,
}

impl Results {
    /// The only result of a task of one call: its encoded return value, or
    /// why there is none.
    pub(crate) fn into_single(self, function: FunctionIndex) -> Result<Bytes, Error> {
        let malformed = |reason: String| Error::Transport { pid: self.pid, reason };
        let entries = read_results(&self.bytes, 1).map_err(|e| malformed(e.to_string()))?;
        let entry = entries[0];
        let range = entry.start as usize..(entry.start + entry.len) as usize;
        if entry.ok {
            Ok(self.bytes.slice(range))
        } else {
            Err(decode_task_error(function, &self.bytes[range]))
        }
    }
}

/// A task on its way to a worker: one or more calls of one function, whose
/// arguments lie in one buffer. The task travels under its first call's ID;
/// each call keeps its own (the range `ids`), for the scheduler.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) ids: Range<u64>,
    /// The worker slots it takes while it runs.
    pub(crate) slots: usize,
    /// How many of its calls may run at once.
    pub(crate) concurrency: u32,
    /// Whether its calls are a plain `fn`'s, which hold a runtime thread.
    pub(crate) blocking: bool,
    pub(crate) function: FunctionIndex,
    /// The calls' arguments, laid out as [`chunk`](crate::chunk) describes,
    /// in pieces to be written one after the other.
    pub(crate) args: Vec<Bytes>,
    pub(crate) reply: oneshot::Sender<Answer>,
}

impl Job {
    /// The task's ID: its first call's.
    pub(crate) fn id(&self) -> u64 {
        self.ids.start
    }

    /// The length of its arguments.
    pub(crate) fn args_len(&self) -> usize {
        self.args.iter().map(Bytes::len).sum()
    }

    /// How many calls it carries.
    pub(crate) fn calls(&self) -> u64 {
        self.ids.end - self.ids.start
    }
}

/// A task in flight on a link.
#[derive(Debug)]
struct Pending {
    /// Its calls' task IDs, for the scheduler's `complete_task`.
    ids: Range<u64>,
    reply: oneshot::Sender<Answer>,
    /// The worker slots it occupies (or the standby), freed when it completes.
    slots: Option<OwnedSemaphorePermit>,
    /// A task sent on standby, until the worker says it started: what it
    /// takes to send it again.
    unstarted: Option<Unstarted>,
}

/// A task on standby that its worker has not started, less its IDs and reply.
#[derive(Debug)]
struct Unstarted {
    slots: usize,
    concurrency: u32,
    blocking: bool,
    function: FunctionIndex,
    args: Vec<Bytes>,
}

impl Pending {
    /// The job again, if its worker never started it.
    fn into_unstarted_job(self) -> Option<Job> {
        let Unstarted {
            slots,
            concurrency,
            blocking,
            function,
            args,
        } = self.unstarted?;
        Some(Job {
            ids: self.ids,
            slots,
            concurrency,
            blocking,
            function,
            args,
            reply: self.reply,
        })
    }
}

#[derive(Debug, Default)]
struct InFlight {
    tasks: HashMap<u64, Pending>,
    /// Set once the link has failed what it held: nothing more may enter.
    closed: bool,
    /// Tasks on standby that the worker never started, left when it ended
    /// for the pool to send elsewhere.
    unstarted: Vec<Job>,
}

/// Called with the IDs of each task's calls as it completes (the pool's scheduler).
pub(crate) type OnComplete = Arc<dyn Fn(Range<u64>) + Send + Sync>;

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
    /// Where the link's writer returns written-out argument buffers.
    pub(crate) buffers: Option<Arc<Buffers>>,
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
    pub(crate) lost: u64,
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
    outbox: Outbox,
    /// Where its replies are read, and the tasks in flight they answer.
    replies: Arc<Replies>,
}

impl Link {
    /// The frames a worker launched with `config` reads first, for
    /// [`launch`](crate::launch::launch) to put in its channel: the hello;
    /// for a one-shot link, its job and the drain after it too, unless its
    /// arguments are large (they then go out with the handshake, uncopied).
    pub(crate) fn greeting(config: &LinkConfig, only: Option<&Job>) -> Result<Greeting, Error> {
        let hello = Hello {
            fingerprint: Registry::get()?.fingerprint(),
            settings: config.settings.clone(),
        };
        let max_frame = config.settings.max_frame;
        let mut bytes = Vec::new();
        let unencodable = |e: ChannelError| Error::Io {
            action: "encoding a new worker's greeting",
            source: std::io::Error::other(e.to_string()),
        };
        // The child reads its hello under the default limit, whatever the pool's.
        transport::push_frame(&mut bytes, &hello, &[], codec::DEFAULT_MAX_FRAME).map_err(unencodable)?;
        let only = only.filter(|job| job.args_len() <= GREETING_ARGS_MAX);
        if let Some(job) = only {
            let (task, args) = task_of(job, false);
            transport::push_frame(&mut bytes, &Request::Tasks(vec![task]), &args, max_frame)
                .and_then(|()| transport::push_frame(&mut bytes, &Request::Drain, &[], max_frame))
                .map_err(unencodable)?;
        }
        Ok(Greeting {
            bytes,
            carries_only: only.is_some(),
        })
    }

    /// Completes the handshake with a launched worker and waits until its
    /// initializer ran. With `only`, the link is one-shot: that job and then
    /// a drain go out with the handshake (unless `only_greeted`: they went
    /// with the [`greeting`](Self::greeting)), and cross while the worker starts.
    pub(crate) async fn connect(
        config: &LinkConfig,
        launched: Launched,
        only: Option<Job>,
        only_greeted: bool,
    ) -> Result<(Link, JoinHandle<LinkEnd>), Error> {
        let registry = Registry::get()?;
        let child = launched.child;
        let mut preface = Vec::new();
        if let Some(job) = only.as_ref().filter(|_| !only_greeted) {
            let (task, args) = task_of(job, false);
            preface.push((Request::Tasks(vec![task]), args));
            preface.push((Request::Drain, Vec::new()));
        }
        let opened = async {
            let stream = launched.stream;
            let (mut reader, mut writer) =
                transport::channel(stream, config.settings.max_frame).map_err(|source| Error::Io {
                    action: "registering a worker's channel",
                    source,
                })?;
            if let Some(buffers) = &config.buffers {
                writer.recycle_into(Arc::clone(buffers));
            }
            transport::handshake(
                &mut reader,
                &mut writer,
                &child,
                &launched.unsent,
                registry.fingerprint(),
                preface,
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
        let outbox = match Outbox::spawn(writer, config.settings.max_frame) {
            Ok(outbox) => outbox,
            Err(source) => {
                child.kill_and_reap();
                return Err(Error::Io {
                    action: "duplicating a worker's channel",
                    source,
                });
            }
        };
        let mut in_flight = InFlight::default();
        if let Some(job) = only {
            in_flight.tasks.insert(
                job.ids.start,
                Pending {
                    ids: job.ids,
                    reply: job.reply,
                    slots: None,
                    unstarted: None,
                },
            );
        }
        let replies = Arc::new(Replies {
            inbox: Inbox::new(reader),
            in_flight: Mutex::new(in_flight),
            counters: Counters::default(),
            pid: child.pid(),
            on_complete: config.on_complete.clone(),
        });
        let end = tokio::spawn(read_replies(
            Arc::clone(&replies),
            Arc::clone(&child),
            Arc::clone(&config.terminating),
        ));
        Ok((Link { child, outbox, replies }, end))
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
        let mut in_flight = crate::lock(&self.replies.in_flight);
        if in_flight.closed {
            return jobs.into_iter().collect();
        }
        let mut tasks = Vec::new();
        let mut payload = Vec::new();
        for (job, slot) in jobs {
            if job.reply.is_closed() {
                continue;
            }
            // A plain fn's job sent to a busy worker may wait there: it goes
            // on standby, so that the worker's death does not fail it unstarted.
            let standby = job.blocking && !in_flight.tasks.is_empty();
            let (task, args) = task_of(&job, standby);
            tasks.push(task);
            payload.extend(args);
            let unstarted = standby.then(|| Unstarted {
                slots: job.slots,
                concurrency: job.concurrency,
                blocking: job.blocking,
                function: job.function,
                args: job.args,
            });
            in_flight.tasks.insert(
                job.ids.start,
                Pending {
                    ids: job.ids,
                    reply: job.reply,
                    slots: slot,
                    unstarted,
                },
            );
        }
        // Sent under the lock, so a cancel for these tasks cannot overtake them.
        if !tasks.is_empty() {
            self.outbox.send(Request::Tasks(tasks), payload);
        }
        Vec::new()
    }

    /// Takes the replies the worker has sent so far, if its reader task is
    /// not reading them: for a caller spinning for an answer, which then
    /// need not wait for the reader task to be woken.
    pub(crate) fn read_now(&self) {
        // A worker with nothing in flight has no answer to read.
        if crate::lock(&self.replies.in_flight).tasks.is_empty() {
            return;
        }
        self.replies.inbox.read_now(|frame| self.replies.take(frame));
    }

    /// Asks the worker to abort those of `ids` it is running.
    pub(crate) fn cancel(&self, ids: &[u64]) {
        let in_flight = crate::lock(&self.replies.in_flight);
        let held: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| in_flight.tasks.contains_key(id))
            .collect();
        if !held.is_empty() {
            self.outbox.send(Request::Cancel(held), Vec::new());
        }
    }

    /// The worker's pid, tasks in flight, and tasks completed and failed so far.
    pub(crate) fn stats(&self) -> WorkerStats {
        WorkerStats {
            pid: self.child.pid(),
            in_flight: crate::lock(&self.replies.in_flight)
                .tasks
                .values()
                .map(|task| task.ids.end - task.ids.start)
                .sum::<u64>() as usize,
            completed: self.replies.counters.completed.load(Ordering::Relaxed),
            failed: self.replies.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Gives task `id`, sent on a standby permit, the worker slots in
    /// `permit` instead, which frees the standby for the next task. The
    /// permit is dropped if the task is no longer in flight.
    pub(crate) fn promote(&self, id: u64, permit: OwnedSemaphorePermit) {
        if let Some(pending) = crate::lock(&self.replies.in_flight).tasks.get_mut(&id) {
            pending.slots = Some(permit);
        }
    }

    /// Whether task `id` is in flight on this link.
    pub(crate) fn holds(&self, id: u64) -> bool {
        crate::lock(&self.replies.in_flight).tasks.contains_key(&id)
    }

    /// The tasks on standby that the ended worker never started, to be sent
    /// again; they are in no one's hands until then.
    pub(crate) fn take_unstarted(&self) -> Vec<Job> {
        std::mem::take(&mut crate::lock(&self.replies.in_flight).unstarted)
    }

    /// Asks the worker to finish what it holds and exit.
    pub(crate) fn drain(&self) {
        // Under the lock, so that no task dispatched before it can follow it.
        let _in_flight = crate::lock(&self.replies.in_flight);
        self.outbox.send(Request::Drain, Vec::new());
    }
}

async fn wait_ready(reader: &mut FrameReader, child: &OsChild, deadline: Duration) -> Result<(), Error> {
    let pid = child.pid();
    let answer = |reply: Result<Reply, ChannelError>, status: Option<ExitStatus>| match reply {
        Ok(Reply::Ready) => Ok(()),
        Ok(Reply::InitFailed(remote)) => Err(Error::Remote(Box::new(remote))),
        Ok(Reply::Outcomes(_) | Reply::Started(_)) => Err(Error::Transport {
            pid,
            reason: "task replies before the worker was ready".into(),
        }),
        Err(ChannelError::Closed) => Err(ended_while_starting(pid, status.unwrap_or(ExitStatus::Unknown))),
        Err(other) => Err(Error::Transport {
            pid,
            reason: other.to_string(),
        }),
    };
    let ready = reader.recv::<Reply>();
    tokio::pin!(ready);
    tokio::select! {
        biased;
        reply = &mut ready => match reply {
            Err(ChannelError::Closed) => answer(reply, Some(child.wait().await)),
            reply => answer(reply, None),
        },
        // A child that reported (a one-shot one may even be done) and then
        // exited left its report in the channel: it is read first.
        status = child.wait() => match transport::left_behind(ready).await {
            Some(reply) => answer(reply, Some(status)),
            None => Err(ended_while_starting(pid, status)),
        },
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

/// A link's replies: where they are read, and what each one updates.
struct Replies {
    inbox: Inbox,
    in_flight: Mutex<InFlight>,
    counters: Counters,
    pid: u32,
    on_complete: Option<OnComplete>,
}

impl std::fmt::Debug for Replies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Replies {
    /// Completes the tasks that `frame` answers, or says why the frame does
    /// not belong on a link; then it changes nothing.
    fn take(&self, frame: &Bytes) -> Result<(), Refused> {
        let pid = self.pid;
        match transport::split_message::<Reply>(frame) {
            Ok((Reply::Outcomes(outcomes), payload)) => {
                let Some(results) = split_results(&outcomes, &payload) else {
                    return Err("malformed frame: its result buffers do not add up to its payload".to_owned());
                };
                for (outcome, bytes) in outcomes.iter().zip(results) {
                    let pending = crate::lock(&self.in_flight).tasks.remove(&outcome.id);
                    let Some(pending) = pending else { continue };
                    let calls = pending.ids.end - pending.ids.start;
                    let failed = u64::from(outcome.failed).min(calls);
                    if let Some(on_complete) = &self.on_complete {
                        on_complete(pending.ids);
                    }
                    self.counters.completed.fetch_add(calls - failed, Ordering::Relaxed);
                    self.counters.failed.fetch_add(failed, Ordering::Relaxed);
                    if failed > 0 {
                        tracing::debug!(pid, task = outcome.id, failed, "aiomp task failed");
                    }
                    let _ = pending.reply.send(Ok(Results { pid, bytes }));
                }
                Ok(())
            }
            Ok((Reply::Started(id), payload)) if payload.is_empty() => {
                if let Some(pending) = crate::lock(&self.in_flight).tasks.get_mut(&id) {
                    pending.unstarted = None;
                }
                Ok(())
            }
            Ok((other, _)) => Err(format!("unexpected message after the handshake: {other:?}")),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// Reads the link's replies until its channel ends, then waits for the
/// child to exit and fails the tasks still in flight.
async fn read_replies(replies: Arc<Replies>, child: Arc<OsChild>, terminating: Arc<AtomicBool>) -> LinkEnd {
    let failure = replies.inbox.read(|frame| replies.take(frame)).await;
    let Replies {
        in_flight,
        counters,
        on_complete,
        pid,
        ..
    } = &*replies;
    let pid = *pid;
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
    // Tasks on standby that never started go back to the pool, unless the
    // channel failed (what followed the failure went unread) or the pool is
    // stopping.
    let resend = failure.is_none() && !terminating.load(Ordering::SeqCst);
    let lost = {
        let mut in_flight = crate::lock(in_flight);
        in_flight.closed = true;
        let (unstarted, lost): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut in_flight.tasks)
            .into_values()
            .partition(|pending| resend && pending.unstarted.is_some());
        let mut unstarted: Vec<Job> = unstarted.into_iter().filter_map(Pending::into_unstarted_job).collect();
        // In the order they were sent.
        unstarted.sort_by_key(Job::id);
        in_flight.unstarted.extend(unstarted);
        lost
    };
    let count: u64 = lost.iter().map(|pending| pending.ids.end - pending.ids.start).sum();
    counters.failed.fetch_add(count, Ordering::Relaxed);
    for pending in lost {
        if let Some(on_complete) = on_complete {
            on_complete(pending.ids.clone());
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

/// A job's task message, and its argument buffer to follow it.
fn task_of(job: &Job, standby: bool) -> (Task, Vec<Bytes>) {
    // The submitter keeps every buffer under the frame limit, far under 4 GiB.
    #[allow(clippy::cast_possible_truncation)]
    let task = Task {
        id: job.id(),
        function: job.function,
        concurrency: job.concurrency,
        slots: job.slots.min(u32::MAX as usize) as u32,
        args_len: job.args_len() as u32,
        standby,
    };
    (task, job.args.clone())
}

/// Each outcome's result buffer, cut from the payload that follows the
/// outcomes in their frame; `None` unless their lengths add up to it exactly.
fn split_results(outcomes: &[Outcome], payload: &Bytes) -> Option<Vec<Bytes>> {
    let mut offset = 0usize;
    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let end = offset.checked_add(outcome.results_len as usize)?;
        if end > payload.len() {
            return None;
        }
        results.push(payload.slice(offset..end));
        offset = end;
    }
    (offset == payload.len()).then_some(results)
}
