//! `PoolBuilder::prefetch`: a worker holds calls beyond its
//! `child_concurrency`, runs no more than that many at once, starts a waiting
//! call the moment a running one completes, fails its waiting calls with it
//! when it dies, and runs them all before a closed pool joins. (A waiting
//! call that is dropped never starts: `pool_behaviour.rs`.)

use std::collections::BTreeSet;
use std::time::Duration;

use aiomp::{Error, Pool, remote};

mod common;
use common::{count_running, each_start_method, eventually, within};

/// Aborts the worker after `ms`.
#[remote]
async fn abort_after(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    std::process::abort();
}

#[remote]
async fn whoami() -> u32 {
    std::process::id()
}

/// Calls each worker runs at once in these tests.
const CONCURRENCY: usize = 4;
/// Calls each worker may hold beyond them.
const PREFETCH: usize = 8;

each_start_method! {
    /// The worker holds up to `child_concurrency + prefetch` calls and runs
    /// exactly `child_concurrency` of them at once.
    async fn a_worker_holds_the_prefetch_and_runs_child_concurrency(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .child_concurrency(CONCURRENCY)
                .prefetch(PREFETCH)
                .build()
                .await
                .unwrap();
            let map = tokio::spawn(pool.map(count_running, vec![20; 60]).into_future());
            let mut most_held = 0;
            while !map.is_finished() {
                if let Some(worker) = pool.stats().workers.first() {
                    most_held = most_held.max(worker.in_flight);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let most_running = map.await.unwrap().unwrap().into_iter().max().unwrap();
            assert_eq!(most_running, CONCURRENCY, "calls running at once in the worker");
            assert!(
                most_held > CONCURRENCY && most_held <= CONCURRENCY + PREFETCH,
                "the worker held at most {most_held} calls"
            );
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// A worker that dies fails the calls waiting in it with `WorkerDied`,
    /// like the one running; its replacement serves the next calls.
    async fn a_dead_worker_fails_its_waiting_calls(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .child_concurrency(1)
                .prefetch(1)
                .build()
                .await
                .unwrap();
            let victim = pool.worker_pids()[0];
            let running = pool.apply(abort_after, (300,)).into_future();
            let waiting = pool.apply(whoami, ()).into_future();
            let (running, waiting) = tokio::join!(running, waiting);
            for outcome in [running.map(|()| 0), waiting] {
                match outcome {
                    Err(Error::WorkerDied { pid, .. }) => assert_eq!(pid, victim),
                    other => panic!("expected WorkerDied from {victim}, got {other:?}"),
                }
            }
            let replacement = pool.apply(whoami, ()).await.unwrap();
            assert_ne!(replacement, victim);
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// Prefetched calls count towards `max_tasks_per_child` like the others:
    /// every call runs once, on workers recycled after three each.
    async fn prefetch_keeps_max_tasks_per_child(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .child_concurrency(2)
                .prefetch(4)
                .max_tasks_per_child(3)
                .build()
                .await
                .unwrap();
            let pids = pool.starmap(whoami, vec![(); 12]).await.unwrap();
            let workers: BTreeSet<u32> = pids.iter().copied().collect();
            assert_eq!(workers.len(), 4, "12 calls, 3 per worker: {pids:?}");
            for worker in &workers {
                assert_eq!(pids.iter().filter(|pid| *pid == worker).count(), 3);
            }
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// Closing a pool lets its workers finish the calls waiting in them:
    /// `join` returns once every call ran, and every result arrives.
    async fn close_runs_the_waiting_calls_before_join(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .child_concurrency(1)
                .prefetch(4)
                .build()
                .await
                .unwrap();
            let calls: Vec<_> = (0..5).map(|_| tokio::spawn(pool.apply(count_running, (50,)).into_future())).collect();
            assert!(
                eventually(Duration::from_secs(5), || pool.stats().workers[0].in_flight == 5).await,
                "the calls never reached the worker"
            );
            pool.close();
            pool.join().await.unwrap();
            for call in calls {
                assert_eq!(call.await.unwrap().unwrap(), 1, "calls ran one at a time");
            }
        })
        .await;
    }
}
