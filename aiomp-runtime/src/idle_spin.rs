//! A worker's short watch of its channel before its runtime sleeps.
//!
//! A worker that sent its last result and has nothing left to run would
//! sleep in `epoll_wait`, and the parent's next call would have to wake it:
//! on an idle vCPU, tens of µs, as much as the rest of the round trip. So
//! just before its runtime's thread parks with no call running, the worker
//! watches its channel for up to the pool's
//! [`worker_spin`](crate::PoolBuilder::worker_spin), with a `sched_yield` on
//! each turn; a call that arrives meanwhile is then read without a wake-up.
//! Anything else that would end the park (a timer, another socket, a wake
//! from another thread) waits, at most the budget. While calls run, their
//! own timers and sockets end the parks, and nothing is watched.
//!
//! Watches that miss back off (see [`crate::backoff`]): a worker whose
//! calls come seldom watches on about one park in 64. Only a
//! current-thread runtime watches: a multi-thread one would have each of
//! its threads spin on one channel.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backoff::SpinBackoff;
use crate::sys;

/// The worker's channel; negative until [`arm`] is called.
static CHANNEL: AtomicI32 = AtomicI32::new(-1);
/// The longest watch, in µs; zero never watches.
static BUDGET_MICROS: AtomicU64 = AtomicU64::new(0);
static BACKOFF: SpinBackoff = SpinBackoff::new();
/// Whether a call is running: then nothing is watched.
static BUSY: AtomicBool = AtomicBool::new(false);

/// From now on, each park of the runtime's thread first watches `channel`
/// for up to `budget`. The channel stays open until the worker stops
/// serving, and no park follows that.
pub(crate) fn arm(channel: RawFd, budget: Duration) {
    BUDGET_MICROS.store(u64::try_from(budget.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    CHANNEL.store(channel, Ordering::Relaxed);
}

/// Tells the watch whether any call is running.
pub(crate) fn set_busy(busy: bool) {
    BUSY.store(busy, Ordering::Relaxed);
}

/// The runtime's `on_thread_park` hook: returns once the channel is
/// readable (or closed), or the budget ran out.
pub(crate) fn before_park() {
    let channel = CHANNEL.load(Ordering::Relaxed);
    let budget = Duration::from_micros(BUDGET_MICROS.load(Ordering::Relaxed));
    if channel < 0 || budget.is_zero() || BUSY.load(Ordering::Relaxed) || BACKOFF.skip() {
        return;
    }
    // Readable, closed or failed: in each case the runtime has work.
    BACKOFF.spin_until(Instant::now() + budget, || sys::readable_now(channel).then_some(()));
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::backoff::spin_until;

    /// Whether `channel` turned ready within `budget`, as a park watches it.
    fn watch(channel: RawFd, budget: Duration) -> bool {
        spin_until(Instant::now() + budget, || sys::readable_now(channel).then_some(())).is_some()
    }

    #[test]
    fn a_watch_ends_when_the_channel_turns_readable() {
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            ours.write_all(b"x").unwrap();
            ours
        });
        let started = Instant::now();
        assert!(watch(theirs.as_raw_fd(), Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
        drop(writer.join());
    }

    #[test]
    fn a_watch_ends_when_the_channel_closes() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(ours);
        assert!(watch(theirs.as_raw_fd(), Duration::from_secs(5)));
    }

    #[test]
    fn a_watch_of_a_quiet_channel_runs_out() {
        let (_ours, theirs) = UnixStream::pair().unwrap();
        let started = Instant::now();
        assert!(!watch(theirs.as_raw_fd(), Duration::from_millis(20)));
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
