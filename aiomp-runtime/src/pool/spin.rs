//! A short spin for an answer on a thread that no runtime drives.
//!
//! A call awaited in `block_on` of a multi-thread runtime (the body of
//! `#[tokio::main]`) parks its thread, and the runtime thread that reads the
//! answer has to wake it again: on an idle vCPU that wake-up costs about as
//! much as the round trip to the worker. So the last answer such a call
//! waits for is first waited for by spinning, for at most
//! [`PoolBuilder::block_on_spin`](crate::PoolBuilder::block_on_spin), giving
//! the CPU to any other thread that wants it on each turn; the runtime
//! thread's hand-over then costs a store, not a wake-up.
//!
//! Spins that miss back off: after each, the next waits do not spin, twice as
//! many each time up to [`MAX_SKIPPED`], so calls that take milliseconds
//! spend one spin every 64 calls. A spin that catches its answer resets it.
//!
//! Nothing spins inside a task (it would hold a runtime thread), or on a
//! current-thread runtime, whose only thread is the one that reads answers.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot;

/// The most waits in a row that skip spinning after a spin missed.
const MAX_SKIPPED: u32 = 64;

/// A pool's spin policy, shared by all its calls.
#[derive(Debug)]
pub(crate) struct Spin {
    /// The longest spin; zero never spins.
    budget: Duration,
    /// Waits still to skip spinning.
    skipping: AtomicU32,
    /// How many waits the next miss makes skip.
    backoff: AtomicU32,
}

impl Spin {
    pub(crate) fn new(budget: Duration) -> Spin {
        Spin {
            budget,
            skipping: AtomicU32::new(0),
            backoff: AtomicU32::new(1),
        }
    }

    /// Polls `answer`; if it is not there yet and this thread may spin, waits
    /// for it by spinning, at most the budget. `None` if its sender was
    /// dropped. Pending registers `cx`'s waker as a plain poll does.
    pub(crate) fn poll<T>(&self, answer: &mut oneshot::Receiver<T>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Poll::Ready(received) = Pin::new(&mut *answer).poll(cx) {
            return Poll::Ready(received.ok());
        }
        if self.budget.is_zero() || !may_spin() || self.skip() {
            return Poll::Pending;
        }
        let start = Instant::now();
        loop {
            match answer.try_recv() {
                Ok(value) => {
                    self.backoff.store(1, Ordering::Relaxed);
                    return Poll::Ready(Some(value));
                }
                Err(oneshot::error::TryRecvError::Closed) => return Poll::Ready(None),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            if start.elapsed() >= self.budget {
                self.missed();
                return Poll::Pending;
            }
            std::thread::yield_now();
        }
    }

    /// Whether this wait skips spinning, counting it if so.
    fn skip(&self) -> bool {
        self.skipping
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }

    fn missed(&self) {
        let backoff = self.backoff.load(Ordering::Relaxed);
        self.skipping.store(backoff, Ordering::Relaxed);
        self.backoff.store((backoff * 2).min(MAX_SKIPPED), Ordering::Relaxed);
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
    fn misses_back_off_doubling_up_to_the_cap() {
        let spin = Spin::new(Duration::from_micros(1));
        let mut skipped_runs = Vec::new();
        for _ in 0..8 {
            spin.missed();
            let mut skipped = 0;
            while spin.skip() {
                skipped += 1;
            }
            skipped_runs.push(skipped);
        }
        assert_eq!(skipped_runs, [1, 2, 4, 8, 16, 32, 64, 64]);
    }

    #[test]
    fn spins_only_in_block_on_of_a_multi_thread_runtime() {
        assert!(!may_spin(), "no runtime");
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        assert!(multi.block_on(async { may_spin() }), "multi-thread block_on");
        let in_task = multi.block_on(async { tokio::spawn(async { may_spin() }).await.unwrap() });
        assert!(!in_task, "a task of a multi-thread runtime");
        let current = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert!(!current.block_on(async { may_spin() }), "current-thread block_on");
    }

    /// Spins once, in `block_on` of a multi-thread runtime, for an answer
    /// that a task sends (or drops, for `None`) after 20 ms.
    fn spin_for(spin: &Spin, answer: Option<u32>) -> Poll<Option<u32>> {
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let (sender, mut receiver) = oneshot::channel();
        multi.block_on(async {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Some(value) = answer {
                    sender.send(value).unwrap();
                }
            });
            // One poll: a wait that parked would be Pending here.
            std::future::poll_fn(|cx| Poll::Ready(spin.poll(&mut receiver, cx))).await
        })
    }

    #[test]
    fn a_spin_catches_an_answer_sent_while_it_spins() {
        let spin = Spin::new(Duration::from_secs(5));
        spin.missed();
        spin.missed();
        while spin.skip() {}
        let caught = spin_for(&spin, Some(7));
        assert_eq!(caught, Poll::Ready(Some(7)));
        assert_eq!(spin.backoff.load(Ordering::Relaxed), 1, "a catch resets the backoff");
    }

    #[test]
    fn a_spin_ends_when_the_sender_is_dropped() {
        let spin = Spin::new(Duration::from_secs(5));
        let started = Instant::now();
        assert_eq!(spin_for(&spin, None), Poll::Ready(None));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "it spun on: {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_zero_budget_never_spins() {
        assert_eq!(spin_for(&Spin::new(Duration::ZERO), Some(7)), Poll::Pending);
    }
}
