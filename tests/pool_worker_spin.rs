//! A worker with nothing to run watches its channel for a while before it
//! sleeps (`PoolBuilder::worker_spin`): the kernel sees it running after a
//! call, and sleeping when the watch is off or a call is running. Watches
//! that miss back off, so calls that come seldom cost a watch on few of
//! them.

use std::time::{Duration, Instant};

use aiomp::{Pool, remote};

mod common;
use common::{sample_running, within};

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote]
async fn nap(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// How process `pid` spent `span`: (samples with one of its threads
/// running or runnable, samples with all asleep). A worker's runtime runs on
/// one of its threads (under the test harness, not the main one).
fn sample_process(pid: u32, span: Duration) -> (usize, usize) {
    sample_running(span, || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("the worker's threads")
            .filter_map(|task| Some(task.ok()?.path().join("stat")))
            .collect()
    })
}

/// A pool of one worker that watches for `spin`; its pid.
async fn one_worker(spin: Duration) -> (Pool, u32) {
    let pool = Pool::builder().processes(1).worker_spin(spin).build().await.unwrap();
    assert_eq!(pool.apply(double, (21,)).await.unwrap(), 42);
    let pid = pool.stats().workers[0].pid;
    (pool, pid)
}

/// After a call, a worker with a long watch runs (it watches its channel);
/// one with none sleeps.
#[aiomp::test]
async fn after_a_call_the_worker_watches_unless_told_not_to() {
    within(async {
        for (spin, watches) in [(Duration::from_secs(30), true), (Duration::ZERO, false)] {
            let (pool, pid) = one_worker(spin).await;
            pool.apply(double, (1,)).await.unwrap();
            let (running, other) = tokio::task::spawn_blocking(move || sample_process(pid, Duration::from_millis(200)))
                .await
                .unwrap();
            assert_eq!(
                running > other,
                watches,
                "worker_spin({spin:?}): the worker ran {running} samples and slept {other}"
            );
            // A call still gets through a watch at once.
            let started = Instant::now();
            assert_eq!(pool.apply(double, (5,)).await.unwrap(), 10);
            assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
            pool.close();
            pool.join().await.unwrap();
        }
    })
    .await;
}

/// While a call runs (here, waits on its timer), the worker does not watch
/// its channel, even with a long watch: the call's own wake-ups must not
/// wait behind it.
#[aiomp::test]
async fn a_worker_with_a_call_running_does_not_watch() {
    within(async {
        let (pool, pid) = one_worker(Duration::from_secs(30)).await;
        let watch = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            sample_process(pid, Duration::from_millis(200))
        });
        pool.apply(nap, (300,)).await.unwrap();
        let (running, other) = watch.join().unwrap();
        assert!(running < other, "the worker ran {running} samples and slept {other}");
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}

/// Sixteen calls 80 ms apart, with a 50 ms watch: every watch misses, and
/// after each miss the worker skips more of them. Watching after every call
/// would keep the worker running most of the time; backing off, it watches
/// after about four calls of the sixteen. A spinning thread is running or
/// runnable whatever the machine's load, so the share of samples holds.
#[aiomp::test]
async fn watches_that_miss_back_off() {
    within(async {
        let (pool, pid) = one_worker(Duration::from_millis(50)).await;
        let watch = std::thread::spawn(move || sample_process(pid, Duration::from_millis(1300)));
        for x in 0..16 {
            assert_eq!(pool.apply(double, (x,)).await.unwrap(), x * 2);
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
        let (running, other) = watch.join().unwrap();
        assert!(
            running * 2 < running + other,
            "the worker ran {running} samples and slept {other}"
        );
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}
