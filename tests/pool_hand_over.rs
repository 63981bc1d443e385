//! Calls that skip the queue. A call whose queue is empty goes straight to a
//! worker with free slots, from the caller's own thread, and its request is
//! written to the socket there when nothing waits ahead of it. What must
//! hold whichever way a call travels: a worker is given no more calls than
//! `child_concurrency + prefetch`, requests written on the spot into a full
//! socket arrive whole and in order, calls handed over as the pool closes
//! all run, and a pool that recycles its workers still gives each exactly
//! `max_tasks_per_child` calls.

use std::collections::BTreeMap;
use std::time::Duration;

use aiomp::{Buffer, Pool, WorkerRuntime, remote};
use futures_util::future::join_all;

mod common;
use common::{count_running, each_start_method, eventually, remove_if_exists, within};

/// Creates `marker`, then holds the worker's only runtime thread for `ms`:
/// meanwhile the worker reads nothing from its socket.
#[remote]
async fn hold_the_thread(marker: String, ms: u64) {
    std::fs::write(&marker, b"").unwrap();
    std::thread::sleep(Duration::from_millis(ms));
}

/// The buffer's length and the sum of its bytes, each weighted by its position.
#[remote]
async fn weigh(data: Buffer) -> (usize, u64) {
    (data.len(), weight(&data))
}

#[remote]
async fn whoami() -> u32 {
    std::process::id()
}

fn weight(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| (i as u64 + 1) * u64::from(b))
        .sum()
}

/// `len` bytes that differ with `seed` and along the buffer.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seed * 7) as u8)
        .collect()
}

each_start_method! {
    /// Many calls at once, from the caller's thread: the worker still holds
    /// no more than `child_concurrency + prefetch` and runs no more than
    /// `child_concurrency`.
    async fn concurrent_calls_respect_the_worker_limits(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .child_concurrency(4)
                .prefetch(2)
                .build()
                .await
                .unwrap();
            let calls = join_all((0..40).map(|_| pool.apply(count_running, (20,)).into_future()));
            let calls = tokio::spawn(calls);
            let mut most_held = 0;
            while !calls.is_finished() {
                if let Some(worker) = pool.stats().workers.first() {
                    most_held = most_held.max(worker.in_flight);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let results: Vec<usize> = calls.await.unwrap().into_iter().map(Result::unwrap).collect();
            assert_eq!(results.into_iter().max(), Some(4), "calls running at once in the worker");
            assert!((1..=6).contains(&most_held), "the worker held {most_held} calls");
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// Requests written while the worker reads nothing fill the socket; the
    /// rest wait in the parent and follow, and every call gets its own
    /// arguments back, whole.
    async fn requests_written_into_a_full_socket_arrive_whole(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .worker_runtime(WorkerRuntime::CurrentThread)
                .child_concurrency(1024)
                .build()
                .await
                .unwrap();
            let marker = std::env::temp_dir().join(format!(
                "aiomp-hand-over-{}-{method:?}",
                std::process::id()
            ));
            remove_if_exists(&marker);
            let held = pool.apply(hold_the_thread, (marker.display().to_string(), 1500));
            let held = tokio::spawn(held.into_future());
            assert!(
                eventually(Duration::from_secs(20), || marker.exists()).await,
                "the worker never started holding its thread"
            );
            // 600 calls of 8 KiB each: more than the socket holds.
            let inputs: Vec<Vec<u8>> = (0..600).map(|seed| pattern(8 * 1024 - 64, seed)).collect();
            let expected: Vec<(usize, u64)> = inputs.iter().map(|input| (input.len(), weight(input))).collect();
            let calls = join_all(inputs.into_iter().map(|input| pool.apply(weigh, (Buffer::from(input),)).into_future()));
            let got: Vec<(usize, u64)> = calls.await.into_iter().map(Result::unwrap).collect();
            assert!(got == expected, "some call got another call's arguments, or a part of them");
            held.await.unwrap().unwrap();
            remove_if_exists(&marker);
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// Calls one at a time, each finding its queue empty: every worker still
    /// runs exactly `max_tasks_per_child` of them before it is replaced.
    async fn recycled_workers_run_exactly_their_share(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .max_tasks_per_child(3)
                .build()
                .await
                .unwrap();
            let mut calls_per_worker: BTreeMap<u32, usize> = BTreeMap::new();
            for _ in 0..12 {
                *calls_per_worker.entry(pool.apply(whoami, ()).await.unwrap()).or_default() += 1;
            }
            assert!(
                calls_per_worker.values().all(|&calls| calls <= 3),
                "calls per worker: {calls_per_worker:?}"
            );
            assert!(calls_per_worker.len() >= 4, "workers used: {calls_per_worker:?}");
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// Calls from many tasks at once while the pool closes, small ones
    /// written on the spot and large ones by the writer task: every one of
    /// them runs and answers, none lands behind its worker's drain.
    async fn calls_handed_over_as_the_pool_closes_all_run(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .child_concurrency(64)
                .build()
                .await
                .unwrap();
            let inputs: Vec<Vec<u8>> = (0..200)
                .map(|seed| pattern(if seed % 2 == 0 { 100 } else { 256 * 1024 }, seed))
                .collect();
            let expected: Vec<(usize, u64)> = inputs.iter().map(|input| (input.len(), weight(input))).collect();
            let calls: Vec<_> = inputs
                .into_iter()
                .map(|input| tokio::spawn(pool.apply(weigh, (Buffer::from(input),)).into_future()))
                .collect();
            pool.close();
            for (expected, call) in expected.into_iter().zip(calls) {
                assert_eq!(call.await.unwrap().unwrap(), expected);
            }
            pool.join().await.unwrap();
        })
        .await;
    }
}
