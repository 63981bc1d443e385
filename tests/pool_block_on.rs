//! Calls awaited in `block_on` of a multi-thread runtime, where a call's last
//! answer is spun for before the thread parks (`PoolBuilder::block_on_spin`).
//! The waiting thread is seen spinning (running, in `/proc`) only for a
//! call's last answer, and calls joined beside each other still run
//! together. Whichever way the answer is caught, each call gets its own:
//! values, panics, a worker's death, a deadline shorter than the spin, a
//! terminated pool. The spinning thread reads the answer from the worker's
//! channel itself, even while every runtime thread is busy. And calls
//! longer than the spin back off: the waiting thread does not burn a spin
//! on each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiomp::{Error, Pool, remote};

mod common;
use common::{count_running, sample_running, within};

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

/// Samples this thread, from another one, for `span` after `delay`.
fn watch_this_thread(delay: Duration, span: Duration) -> std::thread::JoinHandle<(usize, usize)> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        sample_running(span, || vec![format!("/proc/self/task/{tid}/stat").into()])
    })
}

/// Two calls joined in `block_on`: both are sent before either is spun for,
/// so they run at once, and the thread then spins (runs) rather than sleeps.
#[aiomp::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_calls_run_together_and_the_thread_spins() {
    within(async {
        let pool = Pool::builder()
            .processes(1)
            .child_concurrency(2)
            .block_on_spin(Duration::from_secs(10))
            .build()
            .await
            .unwrap();
        let watch = watch_this_thread(Duration::from_millis(50), Duration::from_millis(250));
        let (first, second) = tokio::join!(pool.apply(count_running, (400,)), pool.apply(count_running, (400,)));
        assert_eq!((first.unwrap(), second.unwrap()), (2, 2), "calls running at once");
        let (running, other) = watch.join().unwrap();
        assert!(
            running > other,
            "the waiting thread ran {running} samples and slept {other}"
        );
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}

/// A map of three calls, one at a time: the thread sleeps while the first
/// two run (more answers are due) and spins for the last.
#[aiomp::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_spins_for_its_last_answer_only() {
    within(async {
        let pool = Pool::builder()
            .processes(1)
            .child_concurrency(1)
            .block_on_spin(Duration::from_secs(10))
            .build()
            .await
            .unwrap();
        let early = watch_this_thread(Duration::from_millis(50), Duration::from_millis(600));
        let late = watch_this_thread(Duration::from_millis(900), Duration::from_millis(200));
        let done: Vec<()> = pool.map(nap, [400, 400, 400]).await.unwrap();
        assert_eq!(done.len(), 3);
        let (running, other) = early.join().unwrap();
        assert!(
            running < other,
            "while two answers were due: ran {running} samples, slept {other}"
        );
        let (running, other) = late.join().unwrap();
        assert!(
            running > other,
            "while the last was due: ran {running} samples, slept {other}"
        );
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}

/// A deadline shorter than the spin: the spin ends at the deadline, and the
/// call fails with `Timeout` rather than returning the answer caught later.
#[aiomp::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_shorter_than_the_spin_still_fails_the_call() {
    within(async {
        let pool = Pool::builder()
            .processes(1)
            .block_on_spin(Duration::from_secs(5))
            .build()
            .await
            .unwrap();
        match pool.apply(nap, (300,)).timeout(Duration::from_millis(20)).await {
            Err(Error::Timeout) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
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

/// The waiting thread reads its answer from the worker's channel itself:
/// a call completes while the runtime's only thread, which would otherwise
/// read it, is held by a task until the call has completed.
#[aiomp::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_waiting_thread_reads_its_answer_while_the_runtime_is_busy() {
    within(async {
        let pool = Pool::builder()
            .processes(1)
            .block_on_spin(Duration::from_secs(30))
            .build()
            .await
            .unwrap();
        assert_eq!(pool.apply(double, (1,)).await.unwrap(), 2);
        let (holding, held) = std::sync::mpsc::channel();
        let (completed, release) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn(async move {
            holding.send(()).unwrap();
            // Blocks the runtime's thread until the call completes.
            release.recv_timeout(Duration::from_secs(20)).is_ok()
        });
        held.recv().unwrap();
        let answer = pool.apply(double, (21,)).await;
        let _ = completed.send(());
        assert!(
            holder.await.unwrap(),
            "the call completed only once the runtime's thread was free"
        );
        assert_eq!(answer.unwrap(), 42);
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}

/// A call whose pool is terminated while its caller spins for the answer
/// fails with `PoolTerminated` at once, as does one running beside it in a
/// task.
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
        let started = Instant::now();
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
