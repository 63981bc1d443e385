//! A sleep as long as asked, to a few microseconds: one timerfd per thread,
//! armed for 300 µs before the earliest deadline, and a spin for the rest.
//!
//! tokio's timer wheel has a resolution of one millisecond and rounds every
//! deadline up to its next tick (then `epoll_wait`'s timeout, in whole
//! milliseconds, adds its own rounding), so `tokio::time::sleep(10 ms)` lasts
//! 10 to 12 ms, about 11 on average. W3's ideal assumes sleeps of exactly
//! 10 ms; its precise rows use this sleep (in aiomp's workers and in the
//! one-process limit alike), so that what they show above the ideal is the
//! pool's own cost, not the timer's rounding.
//!
//! Each thread that sleeps gets one timerfd and one task (on the runtime it
//! first sleeps on) that wakes the sleepers due within those 300 µs, then arms
//! the timerfd for the next one: a sleep costs a heap push and, when it is
//! the new earliest, one `timerfd_settime`. A woken sleeper spins on the
//! clock until its deadline: the timerfd alone ended sleeps 140–210 µs late
//! here, the wake-up of a parked thread on this virtual machine.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Sleeps until `duration` from now has passed, to within a few microseconds.
/// Must run on a tokio runtime that outlives the thread's first sleep (the
/// thread's timer task runs on it).
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now() + duration,
    }
}

/// The future of [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
}

impl Future for Sleep {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let now = Instant::now();
        if now >= self.deadline {
            return Poll::Ready(Ok(()));
        }
        if self.deadline - now <= SPIN {
            while Instant::now() < self.deadline {
                std::hint::spin_loop();
            }
            return Poll::Ready(Ok(()));
        }
        match Timer::current() {
            Ok(timer) => {
                timer.register(self.deadline, cx.waker().clone());
                Poll::Pending
            }
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

/// How long before a deadline the timerfd fires, the sleeper spinning the
/// rest: a thread parked in `epoll_wait` wakes 100 to 200 µs after its
/// timerfd expires on a virtual machine whose CPUs went idle, and a sleep
/// that ends that late is not the 10 ms the ideal counts. The spin costs
/// about this much CPU per wave of sleeps.
const SPIN: Duration = Duration::from_micros(300);

/// The sleepers of one thread, by deadline.
struct Timer {
    fd: AsyncFd<OwnedFd>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `(deadline, order, waker)`, earliest first; `order` breaks ties.
    sleepers: BinaryHeap<Reverse<(Instant, u64, WakerCell)>>,
    next_order: u64,
    /// The deadline the timerfd is armed for, if any.
    armed: Option<Instant>,
}

/// A waker in the heap (ordered only by the fields before it).
struct WakerCell(Waker);

impl PartialEq for WakerCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for WakerCell {}

impl PartialOrd for WakerCell {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for WakerCell {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

thread_local! {
    static TIMER: RefCell<Option<Arc<Timer>>> = const { RefCell::new(None) };
}

impl Timer {
    /// This thread's timer, made (with its task) on first use.
    fn current() -> io::Result<Arc<Timer>> {
        TIMER.with(|timer| {
            if let Some(timer) = &*timer.borrow() {
                return Ok(Arc::clone(timer));
            }
            let made = Arc::new(Timer::new()?);
            let driver = Arc::clone(&made);
            tokio::spawn(async move { driver.run().await });
            *timer.borrow_mut() = Some(Arc::clone(&made));
            Ok(made)
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new() -> io::Result<Timer> {
        // SAFETY: timerfd_create takes plain integer flags.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd, owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer {
            // SAFETY: the AsyncFd owns `fd` for its whole life, and
            // `OwnedFd::as_raw_fd` always returns that same fd.
            fd: unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into_parts().1)?,
            state: Mutex::new(State::default()),
        })
    }

    fn register(&self, deadline: Instant, waker: Waker) {
        let mut state = self.state();
        state.next_order += 1;
        let order = state.next_order;
        state.sleepers.push(Reverse((deadline, order, WakerCell(waker))));
        self.arm(&mut state);
    }

    /// Arms the timerfd for the earliest deadline, unless it already is.
    fn arm(&self, state: &mut State) {
        let earliest = state.sleepers.peek().map(|Reverse((deadline, ..))| *deadline);
        let Some(earliest) = earliest else { return };
        if state.armed == Some(earliest) {
            return;
        }
        let wait = earliest
            .saturating_duration_since(Instant::now() + SPIN)
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(wait.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(wait.subsec_nanos()),
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not wanted.
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &raw const spec, std::ptr::null_mut()) };
        state.armed = Some(earliest);
    }

    /// Wakes each sleeper as its deadline passes, for as long as the runtime runs.
    async fn run(&self) {
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return;
            };
            let mut expirations = [0u8; 8];
            // SAFETY: reads at most 8 bytes into `expirations`.
            let read = unsafe { libc::read(self.fd.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
            if read != 8 {
                ready.clear_ready();
                continue;
            }
            // Those due within the spin: each spins the rest as it is polled.
            let now = Instant::now() + SPIN;
            let mut due = Vec::new();
            {
                let mut state = self.state();
                state.armed = None;
                while state
                    .sleepers
                    .peek()
                    .is_some_and(|Reverse((deadline, ..))| *deadline <= now)
                {
                    let Some(Reverse((_, _, WakerCell(waker)))) = state.sleepers.pop() else {
                        break;
                    };
                    due.push(waker);
                }
                self.arm(&mut state);
            }
            for waker in due {
                waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No sleep ends before its deadline, however many share the timer and
    /// however close their deadlines, and each ends soon after it (within a
    /// bound generous enough for a loaded machine).
    #[test]
    fn sleeps_end_at_their_deadlines_and_not_before() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let sleeps = (0..50u32).map(|i| async move {
                let asked = Duration::from_millis(2) + Duration::from_micros(97) * i;
                let started = Instant::now();
                sleep(asked).await.unwrap();
                (asked, started.elapsed())
            });
            for (asked, slept) in futures_util::future::join_all(sleeps).await {
                assert!(slept >= asked, "slept {slept:?} of {asked:?}");
                assert!(
                    slept < asked + Duration::from_millis(50),
                    "slept {slept:?} of {asked:?}"
                );
            }
        });
    }
}
