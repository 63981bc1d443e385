//! A plain `fn`'s next call waits on standby in its busy worker: the worker
//! starts it the moment the running one returns, without a round trip to the
//! parent. The pool does so only while its queue is long; the answer of the
//! call before still goes out first; and a worker that dies hands back, to
//! run elsewhere, the call it had on standby and never started, but never a
//! call that started.

use std::future::IntoFuture;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aiomp::{Error, Pool, StartMethod, WorkerRuntime, remote};
use futures_util::StreamExt;

mod common;
use common::{each_start_method, within};

/// Sleeps `ms` on the worker's thread; returns the worker's pid.
#[remote]
fn nap(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// Sleeps `ms` on the worker's thread; returns when it woke (µs since the epoch).
#[remote]
fn nap_until(ms: u64) -> u128 {
    std::thread::sleep(Duration::from_millis(ms));
    micros_now()
}

/// Writes `call` to `log` as it starts; aborts the worker after `ms` if
/// `crash`, else sleeps `ms` and returns its pid.
#[remote]
fn logged(log: String, call: usize, crash: bool, ms: u64) -> u32 {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    // One write, so that a crash in another call cannot split it.
    file.write_all(format!("{call}\n").as_bytes()).unwrap();
    drop(file);
    std::thread::sleep(Duration::from_millis(ms));
    if crash {
        std::process::abort();
    }
    std::process::id()
}

fn micros_now() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()
}

fn log_path(name: &str, method: StartMethod) -> PathBuf {
    std::env::temp_dir().join(format!("aiomp-standby-{name}-{method}-{}", std::process::id()))
}

/// The most calls the pool's first worker held at once while `map` ran.
async fn most_held(pool: &Pool, map: tokio::task::JoinHandle<aiomp::Result<Vec<u32>>>) -> (usize, Vec<u32>) {
    let mut most = 0;
    while !map.is_finished() {
        if let Some(worker) = pool.stats().workers.first() {
            most = most.max(worker.in_flight);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (most, map.await.unwrap().unwrap())
}

#[aiomp::test]
async fn a_busy_worker_holds_the_next_plain_call_on_standby() {
    within(async {
        let pool = Pool::builder().processes(1).build().await.unwrap();
        let map = tokio::spawn(IntoFuture::into_future(pool.map(nap, vec![100; 8])));
        let (most, pids) = most_held(&pool, map).await;
        assert_eq!(pids.len(), 8);
        assert_eq!(most, 2, "calls the worker held at once: one running, one on standby");
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}

#[aiomp::test]
async fn a_short_queue_is_left_to_the_workers_that_finish_first() {
    within(async {
        // Two calls on one worker: the second is all that is queued, so it
        // waits in the parent rather than on standby.
        let pool = Pool::builder().processes(1).build().await.unwrap();
        let map = tokio::spawn(IntoFuture::into_future(pool.map(nap, vec![300; 2])));
        let (most, _) = most_held(&pool, map).await;
        assert_eq!(most, 1, "calls the worker held at once");
        pool.close();
        pool.join().await.unwrap();

        // Two calls on two workers: one each, none on standby behind the other.
        let pool = Pool::builder().processes(2).build().await.unwrap();
        for _ in 0..5 {
            let pids = pool.map(nap, vec![200; 2]).await.unwrap();
            assert_ne!(pids[0], pids[1], "both calls ran in one worker");
        }
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}

#[aiomp::test]
async fn an_answer_goes_out_before_the_call_on_standby_runs() {
    within(async {
        let pool = Pool::builder().processes(1).build().await.unwrap();
        let mut results = pool.map(nap_until, vec![400; 4]);
        let mut arrived = Vec::new();
        let mut woke = Vec::new();
        while let Some(result) = results.next().await {
            arrived.push(micros_now());
            woke.push(result.unwrap());
        }
        // Each answer arrives while the next call, started from standby, still sleeps.
        for call in 0..3 {
            assert!(
                arrived[call] < woke[call + 1],
                "call {call}'s answer arrived at {}, after call {} woke at {}",
                arrived[call],
                call + 1,
                woke[call + 1]
            );
        }
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}

/// Runs `calls` (whether each crashes, and its sleep) of [`logged`] as one
/// `starmap`; returns their results and how many times each call started.
async fn run_logged(pool: &Pool, log: &Path, calls: &[(bool, u64)]) -> (Vec<aiomp::Result<u32>>, Vec<usize>) {
    let _ = std::fs::remove_file(log);
    let path = log.display().to_string();
    let args: Vec<_> = calls
        .iter()
        .enumerate()
        .map(|(call, &(crash, ms))| (path.clone(), call, crash, ms))
        .collect();
    let results: Vec<_> = pool.starmap(logged, args).collect().await;
    let mut starts = vec![0; calls.len()];
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        starts[line.parse::<usize>().unwrap()] += 1;
    }
    let _ = std::fs::remove_file(log);
    (results, starts)
}

each_start_method! {
    /// The call on standby behind one that kills its worker never started:
    /// it runs on the replacement, once; the killer fails with `WorkerDied`.
    async fn a_dead_worker_hands_back_its_unstarted_standby_call(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(1).build().await.unwrap();
            let victim = pool.worker_pids()[0];
            let calls = [(true, 300), (false, 10), (false, 10), (false, 10)];
            let (results, starts) = run_logged(&pool, &log_path("unstarted", method), &calls).await;
            match &results[0] {
                Err(Error::WorkerDied { pid, .. }) => assert_eq!(*pid, victim),
                other => panic!("expected WorkerDied from {victim}, got {other:?}"),
            }
            for result in &results[1..] {
                assert_ne!(*result.as_ref().unwrap(), victim);
            }
            assert_eq!(starts, [1, 1, 1, 1], "times each call started");
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// A call that started from standby and killed its worker is not sent
    /// again: it fails with `WorkerDied`, having run once.
    async fn a_started_standby_call_that_kills_its_worker_runs_once(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(1).build().await.unwrap();
            let calls = [(false, 200), (true, 100), (false, 10), (false, 10)];
            let (results, starts) = run_logged(&pool, &log_path("started", method), &calls).await;
            let first = *results[0].as_ref().unwrap();
            match &results[1] {
                Err(Error::WorkerDied { pid, .. }) => assert_eq!(*pid, first),
                other => panic!("expected WorkerDied from {first}, got {other:?}"),
            }
            assert!(results[2..].iter().all(Result::is_ok), "{results:?}");
            assert_eq!(starts, [1, 1, 1, 1], "times each call started");
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// On a multi-thread worker a task sent on standby may start at once, on
    /// another thread: it still waits until the parent can know it started,
    /// so a call that kills its worker the moment it starts runs once.
    async fn a_standby_call_that_kills_its_worker_at_once_runs_once(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .worker_runtime(WorkerRuntime::MultiThread(2))
                .build()
                .await
                .unwrap();
            let log = log_path("at-once", method);
            // The race it guards against is lost only some of the time.
            for round in 0..5 {
                let calls = [(false, 300), (true, 0), (false, 10), (false, 10), (false, 10)];
                let (results, starts) = run_logged(&pool, &log, &calls).await;
                assert!(
                    matches!(results[1], Err(Error::WorkerDied { .. })),
                    "round {round}: {results:?}"
                );
                // The first call may die before it logs its start.
                assert!(starts[0] <= 1, "round {round}: times each call started: {starts:?}");
                assert_eq!(starts[1..], [1, 1, 1, 1], "round {round}: times each call started");
            }
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

/// Runs `calls` of [`logged`] on `pool`, closing it as soon as they are
/// submitted; returns their results and how many times each started.
async fn run_logged_and_close(pool: &Pool, log: &Path, calls: &[(bool, u64)]) -> (Vec<aiomp::Result<u32>>, Vec<usize>) {
    let run = run_logged(pool, log, calls);
    tokio::pin!(run);
    // The first poll submits every call.
    if let std::task::Poll::Ready(done) = futures_util::poll!(&mut run) {
        return done;
    }
    pool.close();
    run.await
}

each_start_method! {
    /// A closed pool still runs the call its dying worker had on standby:
    /// the slot starts a new worker for it.
    async fn a_closed_pool_runs_the_standby_call_of_a_dead_worker(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(1).build().await.unwrap();
            let calls = [(true, 300), (false, 10), (false, 10), (false, 10)];
            let (results, starts) = run_logged_and_close(&pool, &log_path("closed", method), &calls).await;
            assert!(matches!(results[0], Err(Error::WorkerDied { .. })), "{results:?}");
            assert!(results[1..].iter().all(Result::is_ok), "{results:?}");
            assert_eq!(starts, [1, 1, 1, 1], "times each call started");
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// A worker whose queue closed and emptied, dying with a call it never
    /// started, is replaced for that call alone.
    async fn a_worker_draining_a_closed_pool_hands_back_its_unstarted_call(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .child_concurrency(1)
                .prefetch(2)
                .build()
                .await
                .unwrap();
            // All three go to the worker; the queue is then empty and closed.
            let calls = [(false, 100), (true, 200), (false, 10)];
            let (results, starts) = run_logged_and_close(&pool, &log_path("draining", method), &calls).await;
            assert!(results[0].is_ok(), "{results:?}");
            assert!(matches!(results[1], Err(Error::WorkerDied { .. })), "{results:?}");
            assert!(results[2].is_ok(), "{results:?}");
            assert_eq!(starts, [1, 1, 1], "times each call started");
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// A recycled worker that dies draining, after the pool closed, leaves
    /// its unstarted call to its slot, which starts a worker for it.
    async fn a_recycled_worker_hands_back_its_unstarted_call_after_close(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .child_concurrency(1)
                .prefetch(1)
                .max_tasks_per_child(2)
                .build()
                .await
                .unwrap();
            let calls = [(true, 200), (false, 10), (false, 10)];
            let (results, starts) = run_logged_and_close(&pool, &log_path("recycled", method), &calls).await;
            assert!(matches!(results[0], Err(Error::WorkerDied { .. })), "{results:?}");
            assert!(results[1..].iter().all(Result::is_ok), "{results:?}");
            assert_eq!(starts, [1, 1, 1], "times each call started");
            pool.join().await.unwrap();
        })
        .await;
    }
}

/// Sleeps `ms` on the worker's thread; returns the worker's pid and when the
/// call started (µs since the epoch).
#[remote]
fn timed_nap(ms: u64) -> (u32, u128) {
    let started = micros_now();
    std::thread::sleep(Duration::from_millis(ms));
    (std::process::id(), started)
}

#[aiomp::test]
async fn a_call_started_from_standby_keeps_the_next_ones_from_its_worker() {
    within(async {
        // The 1 s call goes on standby behind a short one (in the usual
        // order of dispatch), then runs; the queue is short by then, so the
        // calls after it go to the worker that frees next instead of waiting
        // behind it.
        let pool = Pool::builder().processes(2).build().await.unwrap();
        for round in 0..3 {
            let naps = [50, 1000, 200, 50, 50, 50];
            let calls = pool.map(timed_nap, naps).await.unwrap();
            let (long_worker, long_started) = calls[1];
            let long_ended = long_started + 1_000_000;
            for (call, &(pid, started)) in calls.iter().enumerate().skip(2) {
                assert!(
                    pid != long_worker || started < long_ended,
                    "round {round}: call {call} waited for the 1 s call in worker {pid}: {calls:?}"
                );
            }
        }
        pool.close();
        pool.join().await.unwrap();
    })
    .await;
}
