//! The results of a call: in input order (a future and a stream), or as
//! they complete.
//!
//! Each result is decoded when it is yielded, straight from the buffer its
//! worker sent. Dropping a result cancels its unfinished tasks.

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

use crate::error::{Error, Result};
use crate::link::{Answer, Job};
use crate::pool::Shared;
use crate::pool::arrived::Arrived;
use crate::pool::submit::{Batch, Input, Submitter};
use crate::registry::FunctionIndex;

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
    ready: Option<Arrived>,
    /// Calls submitted and not yet yielded.
    outstanding: usize,
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
        blocking: bool,
        senders: Vec<async_channel::Sender<Job>>,
        input: Box<dyn Input>,
    ) -> PoolResult<R> {
        PoolResult::from_submitter(Submitter::new(shared, function, blocking, senders, input))
    }

    pub(crate) fn failed(shared: Arc<Shared>, error: Error) -> PoolResult<R> {
        PoolResult::from_submitter(Submitter::failed(shared, error))
    }

    fn from_submitter(submitter: Submitter) -> PoolResult<R> {
        PoolResult {
            submitter,
            pending: VecDeque::new(),
            ready: None,
            outstanding: 0,
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
        // Results already read from a finished task: the next ones in input order.
        unordered.ready.extend(self.ready.take());
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
        self.ready = None;
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
        let mut sent = false;
        while let Some(room) = this.submitter.room(this.outstanding) {
            match this.submitter.next(room, &mut this.pending) {
                0 => break,
                taken => {
                    this.outstanding += taken;
                    sent = true;
                }
            }
        }
        loop {
            if let Some(arrived) = &mut this.ready {
                if let Some((_, result)) = arrived.next(this.submitter.function) {
                    this.outstanding -= 1;
                    return Poll::Ready(Some(result));
                }
                this.ready = None;
            }
            // The last answer may be spun for: nothing else waits to be sent.
            let last = this.pending.len() == 1 && this.submitter.is_spent();
            let arrived = match this.pending.front_mut() {
                None => return Poll::Ready(None),
                Some(Batch::Task {
                    first,
                    len,
                    bytes,
                    answer,
                    ..
                }) => {
                    let shared = &this.submitter.shared;
                    let answer = if last {
                        let deadline = this.submitter.deadline();
                        ready!(shared.spin.poll(answer, cx, sent, deadline, || shared.live_links()))
                    } else {
                        ready!(Pin::new(answer).poll(cx)).ok()
                    };
                    let bytes = *bytes;
                    let arrived = Arrived::from_answer(*first, *len, answer, || shared.stopped_error());
                    this.submitter.answered(bytes);
                    arrived
                }
                Some(Batch::Failed { .. }) => match this.pending.pop_front() {
                    Some(Batch::Failed { index, error }) => Arrived::failed(index, error),
                    _ => unreachable!("the front batch was a failed call"),
                },
            };
            if matches!(this.pending.front(), Some(Batch::Task { .. })) {
                this.pending.pop_front();
            }
            this.ready = Some(arrived);
        }
    }
}

impl<R: DeserializeOwned> PoolResult<R> {
    /// Polls until every result is in `out`, or one failed: a batch's
    /// results go straight into `out`, without a poll each.
    fn poll_into(&mut self, cx: &mut Context<'_>, out: &mut Vec<R>) -> Poll<Result<()>> {
        loop {
            if let Some(arrived) = &mut self.ready {
                while let Some((_, result)) = arrived.next(self.submitter.function) {
                    self.outstanding -= 1;
                    out.push(result?);
                }
                self.ready = None;
            }
            match ready!(Pin::new(&mut *self).poll_next(cx)) {
                Some(result) => out.push(result?),
                None => return Poll::Ready(Ok(())),
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
            let mut results = Vec::with_capacity(self.submitter.size_hint());
            std::future::poll_fn(|cx| self.poll_into(cx, &mut results)).await?;
            Ok(results)
        })
    }
}

/// A task's answer, tagged with where its calls sit in the input.
struct Indexed {
    first: usize,
    len: usize,
    bytes: usize,
    id: u64,
    answer: oneshot::Receiver<Answer>,
}

impl Future for Indexed {
    type Output = (usize, usize, usize, Option<Answer>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = ready!(Pin::new(&mut self.answer).poll(cx));
        Poll::Ready((self.first, self.len, self.bytes, answer.ok()))
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
    ready: VecDeque<Arrived>,
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
            Batch::Task {
                first,
                len,
                bytes,
                id,
                answer,
            } => self.running.push(Indexed {
                first,
                len,
                bytes,
                id,
                answer,
            }),
            Batch::Failed { index, error } => self.ready.push_back(Arrived::failed(index, error)),
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
            if let Some(arrived) = this.ready.front_mut() {
                if let Some(next) = arrived.next(this.submitter.function) {
                    this.outstanding -= 1;
                    return Poll::Ready(Some(next));
                }
                this.ready.pop_front();
                continue;
            }
            match ready!(this.running.poll_next_unpin(cx)) {
                Some((first, len, bytes, answer)) => {
                    this.submitter.answered(bytes);
                    let shared = &this.submitter.shared;
                    let arrived = Arrived::from_answer(first, len, answer, || shared.stopped_error());
                    this.ready.push_back(arrived);
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
