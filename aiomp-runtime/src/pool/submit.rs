//! Feeding a call's input to the pool: a chunk at a time, within a window.
//!
//! A call pulls its input lazily and keeps at most a window of calls
//! submitted and not yet yielded, so a ten-million item iterator runs in
//! bounded memory. Consecutive calls travel as one task (a chunk): their
//! arguments are encoded one after the other into one buffer, so that a map
//! of tiny calls costs one buffer, one frame, one oneshot and one worker task
//! per chunk rather than an allocation or more per call.

use std::borrow::Cow;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::chunk::{ArgsReader, Encoded, args_within};
use crate::error::{Error, Result};
use crate::link::{Answer, Job};
use crate::pool::Shared;
use crate::registry::FunctionIndex;
use crate::remote_fn::{function_id, push_call_args};

/// A chunk stops growing once its arguments reach this many bytes, so that
/// large values still pipeline.
const CHUNK_BYTES: usize = 128 * 1024;

/// The most calls in one chunk.
const MAX_CHUNK_CALLS: usize = 16 * 1024;

/// Chunks per worker that a map of `async fn` calls aims for: enough to keep
/// every worker busy to the end of a short map.
const CHUNKS_PER_WORKER: usize = 8;

/// Chunks per worker that a map of plain `fn` calls aims for: each may be
/// long, and a chunk's calls run one after another, so smaller chunks keep
/// the workers evenly loaded to the end.
const BLOCKING_CHUNKS_PER_WORKER: usize = 32;

/// Chunks of `async fn` calls a worker holds at once: a chunk takes at most
/// this fraction of the worker's slots, so that the worker has the next
/// chunk in hand while the parent reads the last one's results.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Calls submitted and not yet yielded, per worker slot: enough that every
/// slot stays busy while results wait to be read in order.
const WINDOW_PER_SLOT: usize = 4;

/// Bytes of arguments submitted and not yet answered, at most (unless one
/// call alone is larger): calls of large values need few in flight to keep
/// every worker busy, and each one in flight holds its buffer.
const WINDOW_BYTES: usize = 16 << 20;

/// Room in a frame for the messages around a chunk's arguments.
const FRAME_OVERHEAD: usize = 1024;

/// A call's input, encoded an item at a time straight into chunk buffers.
pub(crate) trait Input: Send {
    /// Appends the next item's encoded arguments to `out`; `None` at the end.
    /// On an error `out` is as it was.
    fn push_next(&mut self, out: &mut Encoded) -> Option<Result<()>>;

    /// A lower bound on the items left.
    fn size_hint(&self) -> usize;
}

/// The [`Input`] of argument tuples from an iterator.
pub(crate) struct Encoding<I> {
    pub(crate) items: I,
    pub(crate) function: FunctionIndex,
}

impl<I, A> Input for Encoding<I>
where
    I: Iterator<Item = A> + Send,
    A: Serialize,
{
    fn push_next(&mut self, out: &mut Encoded) -> Option<Result<()>> {
        let item = self.items.next()?;
        Some(push_call_args(self.function, &item, out))
    }

    fn size_hint(&self) -> usize {
        self.items.size_hint().0
    }
}

/// A run of submitted calls, in input order.
pub(crate) enum Batch {
    /// A task of `len` calls, the first at input index `first`, with
    /// `bytes` of arguments.
    Task {
        first: usize,
        len: usize,
        bytes: usize,
        id: u64,
        answer: oneshot::Receiver<Answer>,
    },
    /// A call whose arguments could not be encoded or sent: it never left.
    Failed { index: usize, error: Error },
}

/// Feeds a call's input to the pool, a chunk at a time, within a window.
pub(crate) struct Submitter {
    pub(crate) shared: Arc<Shared>,
    pub(crate) function: FunctionIndex,
    input: Option<Box<dyn Input>>,
    /// Dropped with the input's end, so that a closed pool can finish.
    senders: Option<Vec<async_channel::Sender<Job>>>,
    /// The input index of the next call.
    pub(crate) next_index: usize,
    /// The most calls submitted and not yet yielded.
    window: usize,
    /// The most calls in one chunk.
    chunk: usize,
    /// Whether the function is a plain `fn`: a chunk of its calls runs them
    /// one at a time.
    blocking: bool,
    /// The worker slots a call takes: one for an `async fn`, a runtime
    /// thread's share for a plain `fn` (a chunk of which takes one share).
    slots_per_call: usize,
    /// The largest argument buffer a chunk may have: under the frame limit.
    max_chunk_bytes: usize,
    /// The bytes encoded into the last chunk's argument buffer (buffers
    /// spliced in by reference not counted).
    last_chunk_bytes: usize,
    /// Bytes of arguments submitted and not yet answered.
    in_flight_bytes: usize,
    /// A call encoded too late for the last chunk: it starts the next one.
    carried: Encoded,
    /// Set when the call could not start: yielded first, then nothing more.
    pub(crate) failed: Option<Error>,
    pub(crate) deadline: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Submitter {
    pub(crate) fn new(
        shared: Arc<Shared>,
        function: FunctionIndex,
        blocking: bool,
        senders: Vec<async_channel::Sender<Job>>,
        input: Box<dyn Input>,
    ) -> Self {
        let workers = shared.processes;
        let known = input.size_hint();
        let slots_per_call = shared.slots_per_call(blocking);
        let per_worker = if blocking {
            BLOCKING_CHUNKS_PER_WORKER
        } else {
            CHUNKS_PER_WORKER
        };
        // A worker holds at most `child_concurrency` calls, running or not
        // (plus `prefetch`, waiting, if asked), so that its death fails no
        // more than that: a chunk of `async fn` calls takes a slot per call,
        // and holds a fraction of them so that the worker has the next chunk
        // in hand while the parent reads the last.
        // A plain fn holds its runtime thread, so a chunk of them runs one at
        // a time on a thread's share of the slots, and holds no more calls
        // than that share.
        let most = if blocking {
            slots_per_call
        } else {
            (shared.child_concurrency / CHUNKS_IN_FLIGHT).max(1)
        };
        // A worker recycled after N calls must run exactly N: no chunks then.
        let chunk = if shared.max_tasks_per_child > 0 {
            1
        } else {
            (known / (workers * per_worker)).clamp(1, MAX_CHUNK_CALLS.min(most))
        };
        // Prefetched calls are slots too: the window keeps them filled.
        let held = shared.child_concurrency.saturating_add(shared.prefetch);
        let window = (workers.saturating_mul(held).saturating_mul(WINDOW_PER_SLOT))
            .max(workers * 2 * CHUNKS_IN_FLIGHT * chunk)
            .max(64);
        let max_chunk_bytes = shared.link.settings.max_frame.saturating_sub(FRAME_OVERHEAD);
        Submitter {
            slots_per_call,
            blocking,
            shared,
            function,
            input: Some(input),
            senders: Some(senders),
            next_index: 0,
            window,
            chunk,
            max_chunk_bytes,
            last_chunk_bytes: 0,
            in_flight_bytes: 0,
            carried: Encoded::default(),
            failed: None,
            deadline: None,
            timer: None,
        }
    }

    /// A submitter with nothing to submit.
    pub(crate) fn inert(shared: Arc<Shared>) -> Self {
        let mut submitter = Submitter::new(shared, 0, false, Vec::new(), Box::new(Nothing));
        submitter.input = None;
        submitter
    }

    pub(crate) fn failed(shared: Arc<Shared>, error: Error) -> Self {
        let mut submitter = Submitter::inert(shared);
        submitter.failed = Some(error);
        submitter
    }

    /// Stops taking input: what was submitted still completes.
    pub(crate) fn stop(&mut self) {
        self.input = None;
        self.senders = None;
        self.carried = Encoded::default();
    }

    /// Submits up to a chunk of calls, at most `room`, and hands `out` their
    /// batches in input order: runs of calls the scheduler sent to one queue
    /// travel as one task (each call is still its own task to the scheduler,
    /// with its own ID), and a call whose arguments could not be encoded
    /// stands alone. Returns how many calls it took from the input.
    pub(crate) fn next(&mut self, room: usize, out: &mut impl Extend<Batch>) -> usize {
        if self.is_spent() {
            return 0;
        }
        let first = self.next_index;
        let limit = room.min(self.chunk);
        let mut buffer = std::mem::take(&mut self.carried);
        if buffer.is_empty() {
            // About as long as the last chunk's (no growing by doubling), and
            // a written-out one when that is large.
            let expected = self.last_chunk_bytes + self.last_chunk_bytes / 8;
            buffer = Encoded::into_buffer(match &self.shared.link.buffers {
                Some(buffers) => buffers.take(expected),
                None => Vec::with_capacity(expected),
            });
        }
        let mut calls: Vec<Slot> = Vec::new();
        if !buffer.is_empty() {
            calls.push(Slot::Encoded(0..buffer.len()));
        }
        while calls.len() < limit && buffer.len() < CHUNK_BYTES {
            let Some(input) = self.input.as_mut() else { break };
            let start = buffer.mark();
            let start_len = buffer.len();
            match input.push_next(&mut buffer) {
                None => {
                    self.input = None;
                    break;
                }
                Some(Err(error)) => calls.push(Slot::Failed(error)),
                Some(Ok(())) if buffer.len_since(start) > self.max_chunk_bytes => {
                    buffer.truncate_to(start);
                    calls.push(Slot::Failed(self.oversized()));
                }
                Some(Ok(())) if buffer.len() > self.max_chunk_bytes => {
                    // It fits a frame alone, not with the others: it starts the next chunk.
                    self.carried = buffer.split_off(start);
                    break;
                }
                Some(Ok(())) => calls.push(Slot::Encoded(start_len..buffer.len())),
            }
        }
        self.next_index += calls.len();
        self.last_chunk_bytes = buffer.written_len();
        self.in_flight_bytes += buffer.len();
        let senders = self.senders.take();
        let taken = calls.len();
        self.submit(first, buffer, calls, senders.as_deref().unwrap_or_default(), out);
        if self.input.is_some() || !self.carried.is_empty() {
            self.senders = senders;
        } // else the input ended: let go of the queues so that a closed pool can finish.
        taken
    }

    /// Whether every call of the input was submitted.
    pub(crate) fn is_spent(&self) -> bool {
        self.input.is_none() && self.carried.is_empty()
    }

    fn oversized(&self) -> Error {
        Error::Codec {
            function: function_id(self.function),
            action: "send the arguments: they exceed the frame limit (PoolBuilder::max_frame_bytes)",
            source: postcard::Error::SerializeBufferFull,
        }
    }

    /// How many calls are known to be left, for reserving room for their
    /// results (at most a few million: an iterator may overstate).
    pub(crate) fn size_hint(&self) -> usize {
        self.input.as_ref().map_or(0, |input| input.size_hint()).min(1 << 22)
    }

    fn submit(
        &self,
        first: usize,
        buffer: Encoded,
        calls: Vec<Slot>,
        senders: &[async_channel::Sender<Job>],
        out: &mut impl Extend<Batch>,
    ) {
        let all_sent = !calls.iter().any(|call| matches!(call, Slot::Failed(_)));
        let (first_id, queues) = if self.shared.custom_scheduler {
            // Each call's arguments in one slice: gathered from their pieces
            // if they span several.
            let encoded: Vec<Cow<'_, [u8]>> = calls
                .iter()
                .filter_map(|call| match call {
                    Slot::Encoded(range) => Some(buffer.view(args_within(range.clone()))),
                    Slot::Failed(_) => None,
                })
                .collect();
            self.shared
                .schedule(self.function, encoded.iter().map(|call| &call[..]))
        } else if all_sent && self.shared.queue_count == 1 {
            // The default scheduler would send every call to the one queue,
            // so it is not asked; queue 0, named once, stands for them all.
            let first_id = self.shared.next_task.fetch_add(calls.len() as u64, Ordering::Relaxed);
            (first_id, if calls.is_empty() { Vec::new() } else { vec![0] })
        } else {
            // The default scheduler never reads them.
            let encoded = calls.iter().filter(|call| matches!(call, Slot::Encoded(_))).count();
            self.shared
                .schedule(self.function, std::iter::repeat_n(&[][..], encoded))
        };
        if all_sent && queues.windows(2).all(|pair| pair[0] == pair[1]) {
            // The common case: every call to one queue, in the buffer as encoded.
            if let Some(&queue) = queues.first() {
                let ids = first_id..first_id + calls.len() as u64;
                out.extend([self.send(first, queue, ids, buffer.into_pieces(), senders)]);
            }
            return;
        }
        // Split into runs of calls to one queue, each with its own buffer.
        let mut id = first_id;
        let mut queues = queues.into_iter();
        let mut run: Option<(usize, usize, u64, Encoded)> = None;
        let mut batches = Vec::new();
        for (index, call) in (first..).zip(calls) {
            match call {
                Slot::Failed(error) => {
                    batches.extend(run.take().map(|run| self.send_run(run, id, senders)));
                    batches.push(Batch::Failed { index, error });
                }
                Slot::Encoded(range) => {
                    let queue = queues.next().expect("one queue per encoded call");
                    if run.as_ref().is_some_and(|run| run.1 != queue) {
                        batches.extend(run.take().map(|run| self.send_run(run, id, senders)));
                    }
                    let run = run.get_or_insert_with(|| (index, queue, id, Encoded::default()));
                    buffer.copy_range(range, &mut run.3);
                    id += 1;
                }
            }
        }
        batches.extend(run.take().map(|run| self.send_run(run, id, senders)));
        out.extend(batches);
    }

    fn send_run(
        &self,
        (first, queue, first_id, args): (usize, usize, u64, Encoded),
        end_id: u64,
        senders: &[async_channel::Sender<Job>],
    ) -> Batch {
        self.send(first, queue, first_id..end_id, args.into_pieces(), senders)
    }

    fn send(
        &self,
        first: usize,
        queue: usize,
        ids: Range<u64>,
        args: Vec<Bytes>,
        senders: &[async_channel::Sender<Job>],
    ) -> Batch {
        let len = (ids.end - ids.start) as usize;
        if let [whole] = &args[..] {
            debug_assert_eq!(ArgsReader::count(whole), Ok(len));
        }
        let (concurrency, slots) = if self.blocking {
            (1, self.slots_per_call)
        } else {
            (len, len)
        };
        let (reply, answer) = oneshot::channel();
        let id = ids.start;
        let args_len = args.iter().map(Bytes::len).sum();
        // At most MAX_CHUNK_CALLS (a u32 on the wire).
        #[allow(clippy::cast_possible_truncation)]
        let job = Job {
            ids,
            slots,
            concurrency: concurrency.min(u32::MAX as usize) as u32,
            blocking: self.blocking,
            function: self.function,
            args,
            reply,
        };
        self.shared.enqueue(senders, queue, job);
        Batch::Task {
            first,
            len,
            bytes: args_len,
            id,
            answer,
        }
    }

    /// Notes that a task with `bytes` of arguments was answered.
    pub(crate) fn answered(&mut self, bytes: usize) {
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(bytes);
    }

    /// How many more calls to submit with `outstanding` in flight: none
    /// until a whole chunk fits (topping the window up one call at a time,
    /// as results are yielded one at a time, would send chunks of one),
    /// nor while the bytes in flight fill their window, unless nothing at
    /// all is in flight.
    pub(crate) fn room(&self, outstanding: usize) -> Option<usize> {
        if outstanding == 0 {
            return Some(self.window);
        }
        let room = self.window.saturating_sub(outstanding);
        (room >= self.chunk && self.in_flight_bytes < WINDOW_BYTES).then_some(room)
    }

    /// When the call's deadline passes, once its timer runs.
    pub(crate) fn deadline(&self) -> Option<std::time::Instant> {
        self.timer.as_ref().map(|timer| timer.deadline().into_std())
    }

    /// `Ready` with `Error::Timeout` once the call's deadline passed.
    pub(crate) fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        if let Some(deadline) = self.deadline.take() {
            self.timer = Some(Box::pin(tokio::time::sleep(deadline)));
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().poll(cx).map(|()| {
                self.stop();
                Error::Timeout
            }),
            None => Poll::Pending,
        }
    }
}

/// One call of a chunk being built.
enum Slot {
    /// Its arguments, at this range of the chunk's buffer.
    Encoded(Range<usize>),
    /// Why it cannot be sent.
    Failed(Error),
}

/// An input with no items.
struct Nothing;

impl Input for Nothing {
    fn push_next(&mut self, _out: &mut Encoded) -> Option<Result<()>> {
        None
    }

    fn size_hint(&self) -> usize {
        0
    }
}
