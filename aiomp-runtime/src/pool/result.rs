//! The results of a call: in input order (a future and a stream), or as
//! they complete.
//!
//! A call pulls its input lazily: it keeps at most a window of calls
//! submitted and not yet yielded, so a ten-million item iterator runs in
//! bounded memory. Consecutive calls travel as one task (a chunk), so that a
//! map of tiny calls costs one frame, one oneshot and one worker task per
//! chunk rather than per call. Dropping a result cancels its unfinished tasks.

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::error::{Error, Result};
use crate::link::{Answer, Job};
use crate::pool::Shared;
use crate::registry::FunctionIndex;
use crate::remote_fn::decode_output;

/// Each call's encoded argument tuple, pulled lazily.
pub(crate) type Calls = Box<dyn Iterator<Item = Result<Vec<u8>>> + Send>;

/// A chunk stops growing once its arguments reach this many bytes, so that
/// large values still pipeline.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks per worker that a call aims for: enough to keep every worker busy
/// to the end of a short map.
const CHUNKS_PER_WORKER: usize = 8;

/// Chunks a worker can hold at once: a chunk takes at most this fraction of
/// its slots, so the worker has the next chunk in hand while the parent reads
/// the last one's results.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Calls submitted and not yet yielded, per worker slot: enough that every
/// slot stays busy while results wait to be read in order.
const WINDOW_PER_SLOT: usize = 4;

/// One call's result as it arrives: encoded, or why there is none.
type Encoded = Result<Vec<u8>>;

/// A run of submitted calls.
enum Batch {
    /// A task of `len` calls, the first at input index `first`.
    Task {
        first: usize,
        len: usize,
        id: u64,
        answer: oneshot::Receiver<Answer>,
    },
    /// A call whose arguments could not be encoded: it never left.
    Failed { index: usize, error: Error },
}

/// Consecutive calls the scheduler sent to one queue, on their way to it.
struct Run {
    /// The input index of its first call.
    first: usize,
    queue: usize,
    ids: Vec<u64>,
    args: Vec<Vec<u8>>,
}

/// Feeds a call's input to the pool, a chunk at a time, within a window.
struct Submitter {
    shared: Arc<Shared>,
    function: FunctionIndex,
    calls: Option<Calls>,
    /// Dropped with the input's end, so that a closed pool can finish.
    senders: Option<Vec<async_channel::Sender<Job>>>,
    next_index: usize,
    /// The most calls submitted and not yet yielded.
    window: usize,
    /// The most calls in one task.
    chunk: usize,
    /// The worker slots each call takes.
    slots_per_call: usize,
    /// Set when the call could not start: yielded first, then nothing more.
    failed: Option<Error>,
    deadline: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Submitter {
    fn new(
        shared: Arc<Shared>,
        function: FunctionIndex,
        slots_per_call: usize,
        senders: Vec<async_channel::Sender<Job>>,
        calls: Calls,
    ) -> Self {
        let workers = shared.processes;
        let window = (workers * shared.child_concurrency * WINDOW_PER_SLOT).max(64);
        let (known, _) = calls.size_hint();
        // A worker recycled after N calls must run exactly N: no chunks then.
        let chunk = if shared.max_tasks_per_child > 0 {
            1
        } else {
            (known / (workers * CHUNKS_PER_WORKER))
                .clamp(1, (shared.child_concurrency / slots_per_call / CHUNKS_IN_FLIGHT).max(1))
        };
        Submitter {
            shared,
            function,
            calls: Some(calls),
            senders: Some(senders),
            next_index: 0,
            window,
            chunk,
            slots_per_call,
            failed: None,
            deadline: None,
            timer: None,
        }
    }

    /// A submitter with nothing to submit.
    fn inert(shared: Arc<Shared>) -> Self {
        let mut submitter = Submitter::new(shared, 0, 1, Vec::new(), Box::new(std::iter::empty()));
        submitter.calls = None;
        submitter
    }

    fn failed(shared: Arc<Shared>, error: Error) -> Self {
        let mut submitter = Submitter::inert(shared);
        submitter.failed = Some(error);
        submitter
    }

    /// Submits up to a chunk of calls, at most `room`, and hands `out` their
    /// batches in input order: runs of calls the scheduler sent to one queue
    /// travel as one task (each call is still its own task to the scheduler,
    /// with its own ID), and a call whose arguments could not be encoded
    /// stands alone. Returns how many calls it took from the input.
    fn next(&mut self, room: usize, out: &mut impl Extend<Batch>) -> usize {
        let Some(input) = self.calls.as_mut() else { return 0 };
        let first = self.next_index;
        let mut calls: Vec<Result<Vec<u8>>> = Vec::new();
        let mut bytes = 0;
        while calls.len() < room.min(self.chunk) && bytes < CHUNK_BYTES {
            let Some(call) = input.next() else {
                self.calls = None;
                break;
            };
            bytes += call.as_ref().map_or(0, Vec::len);
            calls.push(call);
        }
        self.next_index += calls.len();
        let senders = self.senders.take();
        let taken = self.submit(first, calls, senders.as_deref().unwrap_or_default(), out);
        if self.calls.is_some() {
            self.senders = senders;
        } // else the input ended: let go of the queues so that a closed pool can finish.
        taken
    }

    fn submit(
        &self,
        first: usize,
        calls: Vec<Result<Vec<u8>>>,
        senders: &[async_channel::Sender<Job>],
        out: &mut impl Extend<Batch>,
    ) -> usize {
        let taken = calls.len();
        let encoded: Vec<&[u8]> = calls.iter().filter_map(|call| call.as_deref().ok()).collect();
        let (mut id, queues) = self.shared.schedule(self.function, encoded.into_iter());
        let mut queues = queues.into_iter();
        let mut run: Option<Run> = None;
        let mut batches = Vec::new();
        for (index, call) in (first..).zip(calls) {
            match call {
                Err(error) => {
                    batches.extend(run.take().map(|run| self.send(run, senders)));
                    batches.push(Batch::Failed { index, error });
                }
                Ok(args) => {
                    let queue = queues.next().expect("one queue per encoded call");
                    if run.as_ref().is_some_and(|run| run.queue != queue) {
                        batches.extend(run.take().map(|run| self.send(run, senders)));
                    }
                    let run = run.get_or_insert_with(|| Run {
                        first: index,
                        queue,
                        ids: Vec::new(),
                        args: Vec::new(),
                    });
                    run.ids.push(id);
                    run.args.push(args);
                    id += 1;
                }
            }
        }
        batches.extend(run.take().map(|run| self.send(run, senders)));
        out.extend(batches);
        taken
    }

    fn send(&self, run: Run, senders: &[async_channel::Sender<Job>]) -> Batch {
        let len = run.args.len();
        let id = run.ids[0];
        let answer = self.shared.send(
            senders,
            run.queue,
            self.function,
            self.slots_per_call,
            run.ids,
            run.args,
        );
        Batch::Task {
            first: run.first,
            len,
            id,
            answer,
        }
    }

    /// How many more calls to submit with `outstanding` in flight: none
    /// until a whole chunk fits (topping the window up one call at a time,
    /// as results are yielded one at a time, would send chunks of one),
    /// unless nothing at all is in flight.
    fn room(&self, outstanding: usize) -> Option<usize> {
        let room = self.window.saturating_sub(outstanding);
        (room >= self.chunk || (outstanding == 0 && room > 0)).then_some(room)
    }

    /// `Ready` with `Error::Timeout` once the call's deadline passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        if let Some(deadline) = self.deadline.take() {
            self.timer = Some(Box::pin(tokio::time::sleep(deadline)));
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx).map(|()| {
                self.calls = None;
                self.senders = None;
                Error::Timeout
            }),
            None => Poll::Pending,
        }
    }

    /// Each call's result from a task's answer, `len` of them in order.
    fn results(&self, len: usize, answer: std::result::Result<Answer, oneshot::error::RecvError>) -> Vec<Encoded> {
        match answer {
            Ok(Ok(results)) if results.len() == len => results,
            Ok(Ok(_)) => (0..len)
                .map(|_| {
                    Err(Error::Transport {
                        pid: 0,
                        reason: "a worker answered with the wrong number of results".into(),
                    })
                })
                .collect(),
            Ok(Err(error)) => (0..len).map(|_| Err(error.duplicate())).collect(),
            Err(_) => (0..len).map(|_| Err(self.shared.stopped_error())).collect(),
        }
    }

    fn decode<R: DeserializeOwned>(&self, result: Encoded) -> Result<R> {
        decode_output(self.function, &result?)
    }
}

/// The results of [`Pool::map`](crate::Pool::map) or
/// [`starmap`](crate::Pool::starmap), in input order.
///
/// Await it for a `Vec` (the first failure, in input order, is returned and
/// the rest cancelled), or use it as a [`Stream`] of each result as it
/// becomes ready in input order. [`unordered`](Self::unordered) yields them
/// as they complete instead.
///
/// # Cancel safety
///
/// Dropping it cancels every task not yet yielded: queued ones never start,
/// running ones are aborted in their worker.
#[must_use = "a PoolResult does nothing unless awaited or polled"]
pub struct PoolResult<R> {
    submitter: Submitter,
    /// Submitted batches, in input order.
    pending: VecDeque<Batch>,
    /// Results of the front batch, not yet yielded.
    ready: VecDeque<Encoded>,
    /// Calls submitted and not yet yielded.
    outstanding: usize,
    /// Results yielded so far: the input index of the next one.
    yielded: usize,
    _output: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for PoolResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolResult")
            .field("submitted", &self.submitter.next_index)
            .field("outstanding", &self.outstanding)
            .finish_non_exhaustive()
    }
}

impl<R> PoolResult<R> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        function: FunctionIndex,
        slots_per_call: usize,
        senders: Vec<async_channel::Sender<Job>>,
        calls: Calls,
    ) -> PoolResult<R> {
        PoolResult::from_submitter(Submitter::new(shared, function, slots_per_call, senders, calls))
    }

    pub(crate) fn failed(shared: Arc<Shared>, error: Error) -> PoolResult<R> {
        PoolResult::from_submitter(Submitter::failed(shared, error))
    }

    fn from_submitter(submitter: Submitter) -> PoolResult<R> {
        PoolResult {
            submitter,
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            outstanding: 0,
            yielded: 0,
            _output: PhantomData,
        }
    }

    /// Fails the call with [`Error::Timeout`] (cancelling what is left) if it
    /// has not completed within `timeout` of its first poll.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.submitter.deadline = Some(timeout);
        self
    }

    /// The next result in input order; `None` once every result was yielded.
    /// The same as [`StreamExt::next`](futures_util::StreamExt::next), without
    /// the import.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a result not yet yielded stays for the next call.
    pub async fn next(&mut self) -> Option<Result<R>>
    where
        R: DeserializeOwned,
    {
        StreamExt::next(self).await
    }

    /// The results as they complete, each with its input index.
    pub fn unordered(mut self) -> Unordered<R> {
        let shared = Arc::clone(&self.submitter.shared);
        let submitter = std::mem::replace(&mut self.submitter, Submitter::inert(shared));
        let mut unordered = Unordered {
            submitter,
            running: FuturesUnordered::new(),
            ready: VecDeque::new(),
            outstanding: self.outstanding,
            _output: PhantomData,
        };
        // Results already read from finished tasks: the next ones in input order.
        let first = self.yielded;
        unordered
            .ready
            .extend(self.ready.drain(..).enumerate().map(|(i, r)| (first + i, r)));
        for batch in self.pending.drain(..) {
            unordered.track(batch);
        }
        self.outstanding = 0;
        unordered
    }

    fn cancel_all(&mut self) {
        let ids: Vec<u64> = self
            .pending
            .drain(..)
            .filter_map(|batch| match batch {
                Batch::Task { id, .. } => Some(id),
                Batch::Failed { .. } => None,
            })
            .collect();
        self.ready.clear();
        self.outstanding = 0;
        self.submitter.shared.cancel(&ids);
    }
}

impl<R: DeserializeOwned> Stream for PoolResult<R> {
    type Item = Result<R>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<R>>> {
        let this = self.get_mut();
        if let Some(error) = this.submitter.failed.take() {
            return Poll::Ready(Some(Err(error)));
        }
        if let Poll::Ready(error) = this.submitter.poll_deadline(cx) {
            this.cancel_all();
            return Poll::Ready(Some(Err(error)));
        }
        while let Some(room) = this.submitter.room(this.outstanding) {
            match this.submitter.next(room, &mut this.pending) {
                0 => break,
                taken => this.outstanding += taken,
            }
        }
        loop {
            if let Some(result) = this.ready.pop_front() {
                this.outstanding -= 1;
                this.yielded += 1;
                return Poll::Ready(Some(this.submitter.decode(result)));
            }
            let Some(front) = this.pending.front_mut() else {
                return Poll::Ready(None);
            };
            let results = match front {
                Batch::Task { answer, len, .. } => {
                    let answer = ready!(Pin::new(answer).poll(cx));
                    this.submitter.results(*len, answer)
                }
                Batch::Failed { .. } => Vec::new(),
            };
            match this.pending.pop_front() {
                Some(Batch::Failed { error, .. }) => this.ready.push_back(Err(error)),
                _ => this.ready.extend(results),
            }
        }
    }
}

impl<R> Drop for PoolResult<R> {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

impl<R: DeserializeOwned + Send + 'static> IntoFuture for PoolResult<R> {
    type Output = Result<Vec<R>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Vec<R>>> + Send>>;

    fn into_future(mut self) -> Self::IntoFuture {
        Box::pin(async move {
            let mut results = Vec::new();
            while let Some(result) = StreamExt::next(&mut self).await {
                results.push(result?);
            }
            Ok(results)
        })
    }
}

/// A task's answer, tagged with where its calls sit in the input.
struct Indexed {
    first: usize,
    len: usize,
    id: u64,
    answer: oneshot::Receiver<Answer>,
}

impl Future for Indexed {
    type Output = (usize, usize, std::result::Result<Answer, oneshot::error::RecvError>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = ready!(Pin::new(&mut self.answer).poll(cx));
        Poll::Ready((self.first, self.len, answer))
    }
}

/// The results of a call as they complete, each with its input index. Made
/// by [`PoolResult::unordered`].
///
/// # Cancel safety
///
/// Dropping it cancels every task not yet yielded.
#[must_use = "a stream does nothing unless polled"]
pub struct Unordered<R> {
    submitter: Submitter,
    running: FuturesUnordered<Indexed>,
    ready: VecDeque<(usize, Encoded)>,
    outstanding: usize,
    _output: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Unordered<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unordered")
            .field("submitted", &self.submitter.next_index)
            .field("outstanding", &self.outstanding)
            .finish_non_exhaustive()
    }
}

impl<R> Unordered<R> {
    /// The next result to complete, with its input index; `None` once every
    /// result was yielded. The same as
    /// [`StreamExt::next`](futures_util::StreamExt::next), without the import.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a result not yet yielded stays for the next call.
    pub async fn next(&mut self) -> Option<(usize, Result<R>)>
    where
        R: DeserializeOwned,
    {
        StreamExt::next(self).await
    }

    fn track(&mut self, batch: Batch) {
        match batch {
            Batch::Task { first, len, id, answer } => self.running.push(Indexed { first, len, id, answer }),
            Batch::Failed { index, error } => self.ready.push_back((index, Err(error))),
        }
    }

    fn cancel_all(&mut self) {
        let ids: Vec<u64> = self.running.iter().map(|task| task.id).collect();
        self.running.clear();
        self.ready.clear();
        self.outstanding = 0;
        self.submitter.shared.cancel(&ids);
    }
}

impl<R: DeserializeOwned> Stream for Unordered<R> {
    type Item = (usize, Result<R>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<(usize, Result<R>)>> {
        let this = self.get_mut();
        if let Some(error) = this.submitter.failed.take() {
            return Poll::Ready(Some((0, Err(error))));
        }
        if let Poll::Ready(error) = this.submitter.poll_deadline(cx) {
            this.cancel_all();
            return Poll::Ready(Some((this.submitter.next_index, Err(error))));
        }
        while let Some(room) = this.submitter.room(this.outstanding) {
            let mut batches = Vec::new();
            match this.submitter.next(room, &mut batches) {
                0 => break,
                taken => this.outstanding += taken,
            }
            for batch in batches {
                this.track(batch);
            }
        }
        loop {
            if let Some((index, result)) = this.ready.pop_front() {
                this.outstanding -= 1;
                return Poll::Ready(Some((index, this.submitter.decode(result))));
            }
            match ready!(this.running.poll_next_unpin(cx)) {
                Some((first, len, answer)) => {
                    let results = this.submitter.results(len, answer);
                    this.ready
                        .extend(results.into_iter().enumerate().map(|(i, r)| (first + i, r)));
                }
                None => return Poll::Ready(None),
            }
        }
    }
}

impl<R> Drop for Unordered<R> {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

/// The result of [`Pool::apply`](crate::Pool::apply): await it for the return value.
///
/// # Cancel safety
///
/// Dropping it cancels the task: if queued it never starts, if running it
/// is aborted in its worker.
#[must_use = "an ApplyResult does nothing unless awaited"]
pub struct ApplyResult<R> {
    inner: PoolResult<R>,
}

impl<R> std::fmt::Debug for ApplyResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyResult").finish_non_exhaustive()
    }
}

impl<R> ApplyResult<R> {
    pub(crate) fn new(inner: PoolResult<R>) -> ApplyResult<R> {
        ApplyResult { inner }
    }

    /// Fails with [`Error::Timeout`] (cancelling the task) if it has not
    /// completed within `timeout` of being awaited.
    pub fn timeout(self, timeout: Duration) -> Self {
        ApplyResult {
            inner: self.inner.timeout(timeout),
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> IntoFuture for ApplyResult<R> {
    type Output = Result<R>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<R>> + Send>>;

    fn into_future(mut self) -> Self::IntoFuture {
        Box::pin(async move {
            StreamExt::next(&mut self.inner)
                .await
                .unwrap_or_else(|| Err(Error::InvalidState("apply produced no result")))
        })
    }
}
