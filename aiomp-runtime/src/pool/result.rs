//! The results of a call: in input order (a future and a stream), or as
//! they complete.
//!
//! A call pulls its input lazily: it keeps at most a window of tasks
//! submitted and not yet yielded, so a ten-million item iterator runs in
//! bounded memory. Dropping a result cancels its unfinished tasks.

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
use crate::protocol::Call;
use crate::registry::FunctionIndex;
use crate::remote_fn::decode_output;

type Calls = Box<dyn Iterator<Item = Result<Call>> + Send>;

/// Feeds a call's input to the pool, a window at a time.
struct Submitter {
    shared: Arc<Shared>,
    function: FunctionIndex,
    calls: Option<Calls>,
    /// Dropped with the input's end, so that a closed pool can finish.
    senders: Option<Vec<async_channel::Sender<Job>>>,
    next_index: usize,
    window: usize,
    /// Set when the call could not start: yielded first, then nothing more.
    failed: Option<Error>,
    deadline: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
}

/// One submitted task: its input index and where its answer arrives.
struct Submitted {
    index: usize,
    id: Option<u64>,
    answer: Result<oneshot::Receiver<Answer>>,
}

impl Submitter {
    fn next(&mut self) -> Option<Submitted> {
        let call = self.calls.as_mut()?.next();
        let Some(call) = call else {
            self.calls = None;
            self.senders = None;
            return None;
        };
        let index = self.next_index;
        self.next_index += 1;
        let senders = self.senders.as_deref().unwrap_or_default();
        Some(match call {
            Ok(call) => {
                let (id, answer) = self.shared.submit(senders, call);
                Submitted {
                    index,
                    id: Some(id),
                    answer: Ok(answer),
                }
            }
            Err(error) => Submitted {
                index,
                id: None,
                answer: Err(error),
            },
        })
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

    fn decode<R: DeserializeOwned>(&self, answer: std::result::Result<Answer, oneshot::error::RecvError>) -> Result<R> {
        match answer {
            Ok(Ok(bytes)) => decode_output(self.function, &bytes),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(self.shared.stopped_error()),
        }
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
    pending: VecDeque<Submitted>,
    _output: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for PoolResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolResult")
            .field("submitted", &self.submitter.next_index)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<R> PoolResult<R> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        function: FunctionIndex,
        senders: Vec<async_channel::Sender<Job>>,
        calls: Calls,
    ) -> PoolResult<R> {
        let window = (shared.processes * shared.child_concurrency * 2).max(64);
        PoolResult {
            submitter: Submitter {
                shared,
                function,
                calls: Some(calls),
                senders: Some(senders),
                next_index: 0,
                window,
                failed: None,
                deadline: None,
                timer: None,
            },
            pending: VecDeque::new(),
            _output: PhantomData,
        }
    }

    pub(crate) fn failed(shared: Arc<Shared>, error: Error) -> PoolResult<R> {
        let mut result = PoolResult::new(shared, 0, Vec::new(), Box::new(std::iter::empty()));
        result.submitter.calls = None;
        result.submitter.failed = Some(error);
        result
    }

    /// Fails the call with [`Error::Timeout`] (cancelling what is left) if it
    /// has not completed within `timeout` of its first poll.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.submitter.deadline = Some(timeout);
        self
    }

    /// The results as they complete, each with its input index.
    pub fn unordered(mut self) -> Unordered<R> {
        let running: FuturesUnordered<Indexed> = self.pending.drain(..).map(Indexed::from).collect();
        let shared = Arc::clone(&self.submitter.shared);
        let submitter = std::mem::replace(
            &mut self.submitter,
            Submitter {
                shared,
                function: 0,
                calls: None,
                senders: None,
                next_index: 0,
                window: 0,
                failed: None,
                deadline: None,
                timer: None,
            },
        );
        Unordered {
            submitter,
            running,
            _output: PhantomData,
        }
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
        while this.pending.len() < this.submitter.window {
            match this.submitter.next() {
                Some(submitted) => this.pending.push_back(submitted),
                None => break,
            }
        }
        let Some(front) = this.pending.front_mut() else {
            return Poll::Ready(None);
        };
        if let Ok(receiver) = &mut front.answer {
            let answer = ready!(Pin::new(receiver).poll(cx));
            this.pending.pop_front();
            return Poll::Ready(Some(this.submitter.decode(answer)));
        }
        // The call could not be encoded: its error takes its place in order.
        let Some(Submitted { answer: Err(error), .. }) = this.pending.pop_front() else {
            unreachable!("checked above")
        };
        Poll::Ready(Some(Err(error)))
    }
}

impl<R> PoolResult<R> {
    fn cancel_all(&mut self) {
        let ids: Vec<u64> = self.pending.drain(..).filter_map(|s| s.id).collect();
        self.submitter.shared.cancel(&ids);
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
            while let Some(result) = self.next().await {
                results.push(result?);
            }
            Ok(results)
        })
    }
}

/// A task's answer, tagged with its input index.
struct Indexed {
    index: usize,
    id: Option<u64>,
    answer: Option<Result<oneshot::Receiver<Answer>>>,
}

impl From<Submitted> for Indexed {
    fn from(submitted: Submitted) -> Indexed {
        Indexed {
            index: submitted.index,
            id: submitted.id,
            answer: Some(submitted.answer),
        }
    }
}

type IndexedAnswer = (
    usize,
    Option<u64>,
    Result<std::result::Result<Answer, oneshot::error::RecvError>>,
);

impl Future for Indexed {
    type Output = IndexedAnswer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<IndexedAnswer> {
        let answer = match self.answer.as_mut().expect("polled after completion") {
            Ok(receiver) => Ok(ready!(Pin::new(receiver).poll(cx))),
            Err(_) => match self.answer.take() {
                Some(Err(error)) => Err(error),
                _ => unreachable!("matched above"),
            },
        };
        self.answer = None;
        Poll::Ready((self.index, self.id, answer))
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
    _output: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Unordered<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unordered")
            .field("submitted", &self.submitter.next_index)
            .field("running", &self.running.len())
            .finish_non_exhaustive()
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
        while this.running.len() < this.submitter.window {
            match this.submitter.next() {
                Some(submitted) => this.running.push(Indexed::from(submitted)),
                None => break,
            }
        }
        match ready!(this.running.poll_next_unpin(cx)) {
            Some((index, _, Ok(answer))) => Poll::Ready(Some((index, this.submitter.decode(answer)))),
            Some((index, _, Err(error))) => Poll::Ready(Some((index, Err(error)))),
            None => Poll::Ready(None),
        }
    }
}

impl<R> Unordered<R> {
    fn cancel_all(&mut self) {
        let ids: Vec<u64> = self
            .running
            .iter()
            .filter_map(|i| i.answer.is_some().then_some(i.id).flatten())
            .collect();
        self.running.clear();
        self.submitter.shared.cancel(&ids);
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
            self.inner
                .next()
                .await
                .unwrap_or_else(|| Err(Error::InvalidState("apply produced no result")))
        })
    }
}
