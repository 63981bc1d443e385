//! Calls awaited in `block_on` of a multi-thread runtime, where a call's last
//! answer is spun for before the thread parks (`PoolBuilder::block_on_spin`).
//! Whichever way the answer is caught, each call gets its own: values,
//! panics, a worker's death, a deadline, a terminated pool. And calls longer than the spin back
//! off: the waiting thread does not burn a spin on each.

use std::sync::Arc;
use std::time::Duration;

use aiomp::{Error, Pool, remote};

mod common;
use common::within;

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote]
async fn nap(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[remote]
async fn fail(reason: String) {
    panic!("{reason}");
}

#[remote]
async fn abort_worker() {
    std::process::abort();
}

/// CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut now) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Sequential calls, a map, a panic, a dead worker and a deadline, all
/// awaited in `block_on`: each gets its own answer.
#[aiomp::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_awaited_in_block_on_gets_its_own_answer() {
    within(async {
        let pool = Pool::builder()
            .processes(2)
            .block_on_spin(Duration::from_millis(1))
            .build()
            .await
            .unwrap();
        for x in 0..500u64 {
            assert_eq!(pool.apply(double, (x,)).await.unwrap(), x * 2);
        }
        let doubled: Vec<u64> = pool.map(double, 0..2_000u64).await.unwrap();
        assert_eq!(doubled, (0..2_000u64).map(|x| x * 2).collect::<Vec<_>>());

        match pool.apply(fail, ("on purpose".to_string(),)).await {
            Err(Error::Remote(error)) => assert!(error.message.contains("on purpose"), "{error:?}"),
            other => panic!("expected the task's panic, got {other:?}"),
        }
        match pool.apply(abort_worker, ()).await {
            Err(Error::WorkerDied { .. }) => {}
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        match pool.apply(nap, (10_000,)).timeout(Duration::from_millis(50)).await {
            Err(Error::Timeout) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(pool.apply(double, (21,)).await.unwrap(), 42, "the pool still answers");
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}

/// Calls whose pool is terminated while their caller spins for the answer
/// fail with `PoolTerminated` at once: one running, one still queued.
#[aiomp::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_terminated_during_the_spin_fails_the_calls() {
    within(async {
        let pool = Pool::builder()
            .processes(1)
            .child_concurrency(1)
            .block_on_spin(Duration::from_secs(30))
            .build()
            .await
            .map(Arc::new)
            .unwrap();
        let running = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.apply(nap, (20_000,)).await }
        });
        tokio::spawn({
            let pool = Arc::clone(&pool);
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                pool.terminate();
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let queued = pool.apply(nap, (20_000,)).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        for (which, result) in [("queued", queued), ("running", running.await.unwrap())] {
            match result {
                Err(Error::PoolTerminated) => {}
                other => panic!("expected PoolTerminated for the {which} call, got {other:?}"),
            }
        }
    })
    .await;
}

/// Calls that outlast the spin: after a miss the next waits skip spinning,
/// so 40 calls of 10 ms with a 5 ms spin spin about six times, not forty.
#[aiomp::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_longer_than_the_spin_back_off() {
    within(async {
        let pool = Pool::builder()
            .processes(1)
            .block_on_spin(Duration::from_millis(5))
            .build()
            .await
            .unwrap();
        let before = thread_cpu_time();
        for _ in 0..40 {
            pool.apply(nap, (10,)).await.unwrap();
        }
        let spent = thread_cpu_time().saturating_sub(before);
        // Spinning on every call would take about 200 ms of this thread's CPU.
        assert!(spent < Duration::from_millis(100), "the waiting thread used {spent:?}");
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}
