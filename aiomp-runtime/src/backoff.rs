//! A short spin before sleeping, and when one that keeps missing stops
//! being tried.
//!
//! A thread about to sleep may spin a short while first, for something that
//! is likely on its way (an answer, the next call): cheaper than being woken.
//! It calls `sched_yield` on each turn, so that a thread waiting for its CPU
//! runs first. After a spin that missed, the next waits do not spin, twice as many each
//! time up to [`MAX_SKIPPED`]; a spin that caught what it waited for resets
//! that. So waits that are always long spend one spin in 64.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// The most waits in a row that skip spinning after a spin missed.
pub(crate) const MAX_SKIPPED: u32 = 64;

/// Whether the next wait spins, shared by every thread that waits.
#[derive(Debug)]
pub(crate) struct SpinBackoff {
    /// Waits still to skip spinning.
    skipping: AtomicU32,
    /// How many waits the next miss makes skip.
    backoff: AtomicU32,
}

impl SpinBackoff {
    pub(crate) const fn new() -> SpinBackoff {
        SpinBackoff {
            skipping: AtomicU32::new(0),
            backoff: AtomicU32::new(1),
        }
    }

    /// Whether this wait skips spinning, counting it if so.
    pub(crate) fn skip(&self) -> bool {
        self.skipping
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }

    /// [`spin_until`] `end`, counting the spin as caught or missed.
    pub(crate) fn spin_until<T>(&self, end: Instant, check: impl FnMut() -> Option<T>) -> Option<T> {
        let got = spin_until(end, check);
        if got.is_some() {
            self.caught();
        } else {
            self.missed();
        }
        got
    }

    /// A spin caught what it waited for.
    pub(crate) fn caught(&self) {
        self.backoff.store(1, Ordering::Relaxed);
    }

    /// A spin ran out.
    pub(crate) fn missed(&self) {
        let backoff = self.backoff.load(Ordering::Relaxed);
        self.skipping.store(backoff, Ordering::Relaxed);
        self.backoff.store((backoff * 2).min(MAX_SKIPPED), Ordering::Relaxed);
    }
}

/// Calls `check` until it gives a value or `end` passes, with a
/// `sched_yield` between calls.
pub(crate) fn spin_until<T>(end: Instant, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Misses until the first spin: how many waits skipped in between.
    fn skipped_after_each_miss(backoff: &SpinBackoff, misses: usize) -> Vec<u32> {
        (0..misses)
            .map(|_| {
                backoff.missed();
                let mut skipped = 0;
                while backoff.skip() {
                    skipped += 1;
                }
                skipped
            })
            .collect()
    }

    #[test]
    fn misses_back_off_doubling_up_to_the_cap() {
        let backoff = SpinBackoff::new();
        assert_eq!(skipped_after_each_miss(&backoff, 8), [1, 2, 4, 8, 16, 32, 64, 64]);
    }

    #[test]
    fn a_catch_starts_the_backoff_over() {
        let backoff = SpinBackoff::new();
        skipped_after_each_miss(&backoff, 4);
        backoff.caught();
        assert_eq!(skipped_after_each_miss(&backoff, 2), [1, 2]);
    }
}
