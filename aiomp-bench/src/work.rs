//! The CPU-bound work of W4, shared by aiomp and the procspawn peer, and its
//! calibration to a wall time per call.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// CPU-bound arithmetic over `iters` steps (the same as the Python peers' `spin`).
pub fn spin(iters: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..black_box(iters) {
        acc = acc.wrapping_mul(31).wrapping_add(i * i % 7);
    }
    black_box(acc)
}

/// The number of `spin` iterations that take about `target` in this process
/// (the median of three timed calls after a coarse search).
pub fn calibrate(target: Duration) -> u64 {
    let mut iters = 100_000u64;
    let mut elapsed = time(iters);
    while elapsed < Duration::from_millis(2) {
        iters *= 4;
        elapsed = time(iters);
    }
    iters = scale(iters, target, elapsed);
    let mut samples: Vec<Duration> = (0..3).map(|_| time(iters)).collect();
    samples.sort_unstable();
    scale(iters, target, samples[1])
}

fn time(iters: u64) -> Duration {
    let started = Instant::now();
    spin(iters);
    started.elapsed()
}

fn scale(iters: u64, target: Duration, took: Duration) -> u64 {
    ((iters as f64) * target.as_secs_f64() / took.as_secs_f64().max(1e-9)).max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_lands_near_the_target() {
        let iters = calibrate(Duration::from_millis(5));
        let took = time(iters);
        assert!(
            took > Duration::from_millis(1) && took < Duration::from_millis(50),
            "{took:?}"
        );
    }
}
