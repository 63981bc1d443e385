//! A short spin for an answer on a thread that no runtime drives.
//!
//! A call awaited in `block_on` of a multi-thread runtime (the body of
//! `#[tokio::main]`) parks its thread, and the runtime thread that reads the
//! answer has to wake it again: on an idle vCPU that wake-up costs about as
//! much as the round trip to the worker. So the last answer such a call
//! waits for is first waited for by spinning, for at most
//! [`PoolBuilder::block_on_spin`](crate::PoolBuilder::block_on_spin), with a
//! `sched_yield` on each turn (a thread waiting for this CPU runs first).
//! On each turn it also reads the replies waiting in the live workers'
//! channels (`Link::read_now`, see `inbox.rs`), unless their reader tasks
//! are reading them: the answer is then in its hands as soon as it is in
//! the socket, without the wake-up of a runtime thread parked in the I/O
//! driver. Whichever thread reads an answer, the other's hand-over costs a
//! store, not a wake-up.
//!
//! The poll that sent the call does not spin: it asks to be polled again at
//! once, so that calls joined beside it (`join!`, `join_all`) are sent first
//! and run together. Each later poll spins, but never past the call's
//! deadline. Meanwhile the other futures of the same `block_on` wait, at
//! most the budget.
//!
//! Spins that miss back off (see [`crate::backoff`]), so calls that take
//! milliseconds spend one spin every 64 waits. The backoff is the pool's,
//! shared by all its callers. A wait that skips spinning is counted in the
//! poll that sent its call, as its answer may be what polls it next.
//!
//! Nothing spins inside a task (it would hold a runtime thread), or on a
//! current-thread runtime, whose only thread is the one that reads answers.
//! Tokio does not tell a `LocalSet` or another executor that entered the
//! runtime from `block_on`: those spin too.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;

use crate::backoff::SpinBackoff;
use crate::link::Link;

/// A pool's spin policy, shared by all its calls.
#[derive(Debug)]
pub(crate) struct Spin {
    /// The longest spin; zero never spins.
    budget: Duration,
    backoff: SpinBackoff,
}

impl Spin {
    pub(crate) fn new(budget: Duration) -> Spin {
        Spin {
            budget,
            backoff: SpinBackoff::new(),
        }
    }

    /// Polls `answer`; if it is not there yet and this thread may spin,
    /// waits for it by spinning, at most the budget and never past
    /// `deadline`, reading the replies of the `links` it may come on as it
    /// spins. `None` if its sender was dropped. The poll that `sent` the
    /// call does not spin, but wakes itself to spin on the next one.
    /// Pending registers `cx`'s waker as a plain poll does.
    pub(crate) fn poll<T>(
        &self,
        answer: &mut oneshot::Receiver<T>,
        cx: &mut Context<'_>,
        sent: bool,
        deadline: Option<Instant>,
        links: impl FnOnce() -> Vec<Arc<Link>>,
    ) -> Poll<Option<T>> {
        if let Poll::Ready(received) = Pin::new(&mut *answer).poll(cx) {
            return Poll::Ready(received.ok());
        }
        if self.budget.is_zero() || !may_spin() {
            return Poll::Pending;
        }
        if sent {
            // A wait that skips spinning is counted here: its answer may be
            // what polls it next. One that spins does so on the next poll,
            // once futures joined beside this one have sent their calls.
            if !self.backoff.skip() {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        if self.backoff.skip() {
            return Poll::Pending;
        }
        let limit = Instant::now() + self.budget;
        let end = deadline.map_or(limit, |deadline| deadline.min(limit));
        let links = links();
        let received = self.backoff.spin_until(end, || {
            for link in &links {
                link.read_now();
            }
            match answer.try_recv() {
                Ok(value) => Some(Some(value)),
                Err(oneshot::error::TryRecvError::Closed) => Some(None),
                Err(oneshot::error::TryRecvError::Empty) => None,
            }
        });
        received.map_or(Poll::Pending, Poll::Ready)
    }
}

/// Whether this thread waits outside any task while another thread of a
/// multi-thread runtime reads the answers: in its `block_on`.
fn may_spin() -> bool {
    tokio::task::try_id().is_none()
        && Handle::try_current().is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_only_in_block_on_of_a_multi_thread_runtime() {
        assert!(!may_spin(), "no runtime");
        let multi = multi_thread_runtime();
        assert!(multi.block_on(async { may_spin() }), "multi-thread block_on");
        let in_task = multi.block_on(async { tokio::spawn(async { may_spin() }).await.unwrap() });
        assert!(!in_task, "a task of a multi-thread runtime");
        let blocking = multi.block_on(async { tokio::task::spawn_blocking(may_spin).await.unwrap() });
        assert!(!blocking, "a blocking task of a multi-thread runtime");
        let current = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(!current.block_on(async { may_spin() }), "current-thread block_on");
    }

    fn multi_thread_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap()
    }

    /// Spins once, in `block_on` of a multi-thread runtime, for an answer
    /// that a task sends (or drops, for `None`) `after` it starts; a
    /// `deadline` that far from the start.
    fn spin_for(spin: &Spin, answer: Option<u32>, after: Duration, deadline: Option<Duration>) -> Poll<Option<u32>> {
        let (sender, mut receiver) = oneshot::channel();
        multi_thread_runtime().block_on(async {
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                if let Some(value) = answer {
                    sender.send(value).unwrap();
                }
            });
            let deadline = deadline.map(|left| Instant::now() + left);
            // One poll, after the one that sent: a wait that parked would be Pending here.
            std::future::poll_fn(|cx| Poll::Ready(spin.poll(&mut receiver, cx, false, deadline, Vec::new))).await
        })
    }

    const SOON: Duration = Duration::from_millis(20);

    #[test]
    fn a_spin_catches_an_answer_sent_while_it_spins() {
        let spin = Spin::new(Duration::from_secs(5));
        spin.backoff.missed();
        spin.backoff.missed();
        while spin.backoff.skip() {}
        assert_eq!(spin_for(&spin, Some(7), SOON, None), Poll::Ready(Some(7)));
        spin.backoff.missed();
        assert!(
            spin.backoff.skip() && !spin.backoff.skip(),
            "a catch resets the backoff"
        );
    }

    #[test]
    fn a_spin_ends_when_the_sender_is_dropped() {
        let spin = Spin::new(Duration::from_secs(5));
        let started = Instant::now();
        assert_eq!(spin_for(&spin, None, SOON, None), Poll::Ready(None));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "it spun on: {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_spin_ends_at_the_deadline() {
        let spin = Spin::new(Duration::from_secs(5));
        let started = Instant::now();
        let caught = spin_for(&spin, Some(7), Duration::from_millis(300), Some(SOON));
        assert_eq!(caught, Poll::Pending, "the answer came after the deadline");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "it spun on: {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_zero_budget_never_spins() {
        assert_eq!(spin_for(&Spin::new(Duration::ZERO), Some(7), SOON, None), Poll::Pending);
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// A wait whose answer arrives before it is polled again skips in the
    /// poll that sent its call: otherwise a miss would stop all spinning,
    /// as no later wait ever reached the poll that counts a skip.
    #[test]
    fn waits_answered_without_spinning_count_as_skipped() {
        let spin = Spin::new(Duration::from_secs(5));
        spin.backoff.missed();
        let counter = std::sync::Arc::new(Wakes::default());
        let waker = std::task::Waker::from(std::sync::Arc::clone(&counter));
        let runtime = multi_thread_runtime();
        let send_and_poll = || {
            let (_sender, mut receiver) = oneshot::channel::<u32>();
            runtime.block_on(async { spin.poll(&mut receiver, &mut Context::from_waker(&waker), true, None, Vec::new) })
        };
        assert_eq!(send_and_poll(), Poll::Pending);
        assert_eq!(
            counter.0.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "the wait after a miss skips: it does not ask to spin"
        );
        assert_eq!(send_and_poll(), Poll::Pending);
        assert_eq!(
            counter.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the next wait spins again"
        );
    }

    #[test]
    fn the_poll_that_sent_does_not_spin_but_asks_for_another() {
        let spin = Spin::new(Duration::from_secs(5));
        let counter = std::sync::Arc::new(Wakes::default());
        let waker = std::task::Waker::from(std::sync::Arc::clone(&counter));
        let (_sender, mut receiver) = oneshot::channel::<u32>();
        let started = Instant::now();
        let polled = multi_thread_runtime()
            .block_on(async { spin.poll(&mut receiver, &mut Context::from_waker(&waker), true, None, Vec::new) });
        assert_eq!(polled, Poll::Pending);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "it spun: {:?}",
            started.elapsed()
        );
        assert_eq!(
            counter.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "it asks to be polled again"
        );
    }
}
