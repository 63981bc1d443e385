//! How a `Pool` behaves under load, with failing workers, with
//! cancellation and shutdown, and with custom configuration: one test per
//! behaviour the design promises (see PITFALLS.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiomp::{
    Error, ExitStatus, Pool, QueueId, RemoteErrorKind, RoundRobin, Scheduler, StartMethod, TaskId, WorkerRuntime,
    remote,
};
use futures_util::StreamExt;

mod common;
use common::{each_start_method, eventually, process_exists, remove_if_exists, within};

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote]
async fn whoami() -> u32 {
    std::process::id()
}

/// Sleeps, then returns its worker's pid.
#[remote]
async fn sleep_ms(ms: u64) -> u32 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    std::process::id()
}

/// Sleeps, then returns `(index, pid)`.
#[remote]
async fn sleep_then_echo(index: u64, ms: u64) -> (u64, u32) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    (index, std::process::id())
}

/// Reverses the bytes and flips each one: an 8 MiB result that depends on
/// every byte of the 8 MiB argument.
#[remote]
async fn transform_bytes(data: Vec<u8>) -> Vec<u8> {
    data.into_iter().rev().map(|b| !b).collect()
}

#[remote]
async fn string_len_and_echo(text: String) -> (usize, String) {
    (text.len(), text)
}

#[remote]
async fn abort_after(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    std::process::abort();
}

/// Returns its pid; routed to queue 0 by [`ByFunction`].
#[remote]
async fn on_queue_zero() -> u32 {
    std::process::id()
}

/// Creates `started`, sleeps, then creates `done`.
#[remote]
async fn touch_after(started: String, done: String, ms: u64) {
    std::fs::write(&started, b"started").expect("write the started marker");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    std::fs::write(&done, b"done").expect("write the done marker");
}

/// Panics for `index == fail`, otherwise sleeps 500 ms and returns its pid.
#[remote]
async fn fail_one(index: u64, fail: u64) -> u32 {
    assert!(index != fail, "boom {index}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::process::id()
}

/// What the worker's runtime looks like from inside a task.
#[remote]
async fn runtime_shape() -> (String, usize, u64) {
    let handle = tokio::runtime::Handle::current();
    let flavor = format!("{:?}", handle.runtime_flavor());
    let workers = handle.metrics().num_workers();
    // Work spawned on the runtime runs, and a blocking section does not stall it.
    let spawned = tokio::spawn(async { 20 }).await.expect("spawned task");
    let blocking = tokio::task::spawn_blocking(|| 22).await.expect("blocking task");
    (flavor, workers, spawned + blocking)
}

static LEVEL: AtomicU64 = AtomicU64::new(0);

#[remote]
async fn set_level(level: u64) {
    LEVEL.store(level, Ordering::SeqCst);
}

#[remote]
async fn read_level() -> (u64, u32) {
    (LEVEL.load(Ordering::SeqCst), std::process::id())
}

#[remote]
async fn exploding_init() {
    panic!("init exploded");
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: sends a signal to one of this test's own workers.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}): {}", std::io::Error::last_os_error());
}

/// A path unique to this test process, `name` and `method`.
fn temp_path(name: &str, method: StartMethod) -> PathBuf {
    std::env::temp_dir().join(format!("aiomp-pool-behaviour-{name}-{method}-{}", std::process::id()))
}

fn path_arg(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_owned()
}

/// Routes tasks by function: `abort_after` and `on_queue_zero` to queue 0,
/// everything else to queue 1.
#[derive(Debug, Default)]
struct ByFunction {
    queues: usize,
}

impl Scheduler for ByFunction {
    fn register_queue(&mut self) -> QueueId {
        self.queues += 1;
        QueueId::from(self.queues - 1)
    }

    fn register_process(&mut self, _queue: QueueId) {}

    fn schedule_task(&mut self, _task: TaskId, function: &str, _args: &[u8]) -> QueueId {
        if function.ends_with("abort_after") || function.ends_with("on_queue_zero") {
            QueueId::from(0usize)
        } else {
            QueueId::from(1usize)
        }
    }

    fn complete_task(&mut self, _task: TaskId) {}
}

/// What a recording scheduler saw.
#[derive(Debug, Default)]
struct Seen {
    queues: usize,
    processes: Vec<usize>,
    /// The queue chosen for each task, in the order they were scheduled.
    scheduled: Vec<(u64, usize)>,
    completed: Vec<u64>,
}

/// Sends every task to queue 0, recording what the pool told it.
#[derive(Debug)]
struct AllToFirst {
    seen: Arc<Mutex<Seen>>,
}

impl Scheduler for AllToFirst {
    fn register_queue(&mut self) -> QueueId {
        let mut seen = self.seen.lock().unwrap();
        seen.queues += 1;
        QueueId::from(seen.queues - 1)
    }

    fn register_process(&mut self, queue: QueueId) {
        self.seen.lock().unwrap().processes.push(queue.into());
    }

    fn schedule_task(&mut self, task: TaskId, _function: &str, _args: &[u8]) -> QueueId {
        self.seen.lock().unwrap().scheduled.push((task.into(), 0));
        QueueId::from(0usize)
    }

    fn complete_task(&mut self, task: TaskId) {
        self.seen.lock().unwrap().completed.push(task.into());
    }
}

/// `RoundRobin`, recording the queue it picks for each task.
#[derive(Debug)]
struct Recording {
    inner: RoundRobin,
    seen: Arc<Mutex<Seen>>,
}

impl Scheduler for Recording {
    fn register_queue(&mut self) -> QueueId {
        self.seen.lock().unwrap().queues += 1;
        self.inner.register_queue()
    }

    fn register_process(&mut self, queue: QueueId) {
        self.seen.lock().unwrap().processes.push(queue.into());
        self.inner.register_process(queue);
    }

    fn schedule_task(&mut self, task: TaskId, function: &str, args: &[u8]) -> QueueId {
        let queue = self.inner.schedule_task(task, function, args);
        self.seen.lock().unwrap().scheduled.push((task.into(), queue.into()));
        queue
    }

    fn complete_task(&mut self, task: TaskId) {
        self.seen.lock().unwrap().completed.push(task.into());
        self.inner.complete_task(task);
    }
}

/// A pool of `processes` over `queues` queues, its `RoundRobin` recorded.
async fn recorded_pool(method: StartMethod, processes: usize, queues: usize) -> (Pool, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let pool = Pool::builder()
        .start_method(method)
        .processes(processes)
        .queue_count(queues)
        .scheduler(Recording {
            inner: RoundRobin::new(),
            seen: Arc::clone(&seen),
        })
        .build()
        .await
        .unwrap();
    assert_eq!(pool.queue_count(), queues);
    (pool, seen)
}

each_start_method! {
    async fn hundred_thousand_small_tasks_in_order(method) {
        within(async {
            const N: u64 = 100_000;
            let pool = Pool::builder().start_method(method).processes(2).build().await.unwrap();
            let start = Instant::now();
            let results: Vec<u64> = pool.map(double, 0..N).await.unwrap();
            let elapsed = start.elapsed();
            eprintln!("map of {N} tasks took {elapsed:?}");
            assert_eq!(results.len(), N as usize);
            for (i, result) in results.iter().enumerate() {
                assert_eq!(*result, i as u64 * 2, "result {i}");
            }
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    async fn eight_mib_argument_and_result_round_trip(method) {
        within(async {
            const SIZE: usize = 8 << 20;
            let pool = Pool::builder().start_method(method).processes(1).build().await.unwrap();

            let data: Vec<u8> = (0..SIZE).map(|i| (i * 31 + i / 4099) as u8).collect();
            let expected: Vec<u8> = data.iter().rev().map(|b| !b).collect();
            let result: Vec<u8> = pool.apply(transform_bytes, (data,)).await.unwrap();
            assert_eq!(result.len(), SIZE);
            assert!(result == expected, "the 8 MiB result differs from the expected bytes");

            let text: String = (0..SIZE).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let (len, echoed): (usize, String) = pool.apply(string_len_and_echo, (text.clone(),)).await.unwrap();
            assert_eq!(len, SIZE);
            assert!(echoed == text, "the 8 MiB string came back changed");

            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    async fn many_slots_run_sleeps_concurrently(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .child_concurrency(64)
                .build()
                .await
                .unwrap();
            let start = Instant::now();
            let pids: Vec<u32> = pool.map(sleep_ms, vec![1000; 128]).await.unwrap();
            let elapsed = start.elapsed();
            assert_eq!(pids.len(), 128);
            assert!(elapsed >= Duration::from_secs(1), "1 s sleeps finished in {elapsed:?}");
            assert!(
                elapsed < Duration::from_secs(10),
                "128 sleeps of 1 s over 2 x 64 slots took {elapsed:?}"
            );
            let workers: BTreeSet<u32> = pool.worker_pids().into_iter().collect();
            assert!(
                pids.iter().all(|pid| workers.contains(pid)),
                "pids {pids:?} vs workers {workers:?}"
            );
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    async fn custom_scheduler_routes_everything_to_one_queue(method) {
        within(async {
            let seen = Arc::new(Mutex::new(Seen::default()));
            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .queue_count(2)
                .scheduler(AllToFirst {
                    seen: Arc::clone(&seen),
                })
                .build()
                .await
                .unwrap();
            assert_eq!(pool.queue_count(), 2);
            let workers = pool.worker_pids();
            assert_eq!(workers.len(), 2);

            let pids: Vec<u32> = pool.starmap(whoami, vec![(); 40]).await.unwrap();
            let distinct: BTreeSet<u32> = pids.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                1,
                "queue 0 has one worker, but tasks ran on {distinct:?}"
            );
            assert!(workers.contains(pids.first().unwrap()));

            let seen = std::mem::take(&mut *seen.lock().unwrap());
            assert_eq!(seen.queues, 2);
            assert_eq!(seen.processes, vec![0, 1], "processes map to queues i % queue_count");
            assert_eq!(seen.scheduled.len(), 40);
            let ids: BTreeSet<u64> = seen.scheduled.iter().map(|&(id, _)| id).collect();
            assert_eq!(ids.len(), 40, "task IDs are unique");
            let completed: BTreeSet<u64> = seen.completed.iter().copied().collect();
            assert_eq!(completed, ids, "complete_task follows for every scheduled task");

            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// With one queue the default scheduler is not asked (it has one answer),
    /// but a scheduler of the user's still sees every call and completion.
    async fn custom_scheduler_of_a_one_queue_pool_sees_every_call(method) {
        within(async {
            let (pool, seen) = recorded_pool(method, 2, 1).await;
            let doubled: Vec<u64> = pool.map(double, 0..1000).await.unwrap();
            assert_eq!(doubled[999], 1998);

            let seen = std::mem::take(&mut *seen.lock().unwrap());
            assert_eq!(seen.scheduled.len(), 1000);
            assert!(seen.scheduled.iter().all(|&(_, queue)| queue == 0));
            let ids: BTreeSet<u64> = seen.scheduled.iter().map(|&(id, _)| id).collect();
            let completed: BTreeSet<u64> = seen.completed.iter().copied().collect();
            assert_eq!(completed, ids, "complete_task follows for every scheduled task");

            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// 12 processes over 8 queues: queues 0..4 have two workers each and get
    /// twice the tasks of queues 4..8. Each task runs on a worker of the queue
    /// the scheduler picked.
    async fn round_robin_weights_twelve_processes_over_eight_queues(method) {
        within(async {
            let (pool, seen) = recorded_pool(method, 12, 8).await;
            assert_eq!(pool.worker_pids().len(), 12);

            let pids: Vec<u32> = pool.starmap(whoami, vec![(); 1200]).await.unwrap();

            let seen = std::mem::take(&mut *seen.lock().unwrap());
            assert_eq!(seen.queues, 8);
            assert_eq!(seen.processes.len(), 12);
            let per_queue_processes = seen.processes.iter().fold(vec![0; 8], |mut counts, &q| {
                counts[q] += 1;
                counts
            });
            assert_eq!(per_queue_processes, [2, 2, 2, 2, 1, 1, 1, 1]);

            // The map schedules its tasks in input order: `scheduled[i]` is task i's queue.
            assert_eq!(seen.scheduled.len(), 1200);
            let mut per_queue = [0; 8];
            for &(_, queue) in &seen.scheduled {
                per_queue[queue] += 1;
            }
            assert_eq!(per_queue, [200, 200, 200, 200, 100, 100, 100, 100]);

            // A worker serves one queue only, and each queue is served by no more
            // workers than were assigned to it.
            let mut queues_of_pid: HashMap<u32, BTreeSet<usize>> = HashMap::new();
            let mut pids_of_queue: BTreeMap<usize, BTreeSet<u32>> = BTreeMap::new();
            for (&pid, &(_, queue)) in pids.iter().zip(&seen.scheduled) {
                queues_of_pid.entry(pid).or_default().insert(queue);
                pids_of_queue.entry(queue).or_default().insert(pid);
            }
            for (pid, queues) in &queues_of_pid {
                assert_eq!(queues.len(), 1, "worker {pid} ran tasks of queues {queues:?}");
            }
            for (queue, pids) in &pids_of_queue {
                assert!(
                    pids.len() <= per_queue_processes[*queue],
                    "queue {queue} was served by {pids:?}"
                );
            }

            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// SIGKILL of a worker mid-map: exactly its in-flight tasks fail with
    /// `WorkerDied`, everything else succeeds, the worker is replaced.
    async fn sigkill_mid_map_fails_only_in_flight_tasks(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(2).build().await.unwrap();
            let workers = pool.worker_pids();
            let victim = workers[0];

            let mut results = pool.map(sleep_ms, vec![50; 200]).unordered();
            let mut outcomes: BTreeMap<usize, aiomp::Result<u32>> = BTreeMap::new();
            let mut killed = false;
            while let Some((index, result)) = results.next().await {
                assert!(outcomes.insert(index, result).is_none(), "index {index} yielded twice");
                if !killed && outcomes.len() >= 40 {
                    kill(victim, libc::SIGKILL);
                    killed = true;
                }
            }
            drop(results);
            assert!(killed, "the map ended before the kill");
            assert_eq!(outcomes.len(), 200);
            assert_eq!(*outcomes.keys().next().unwrap(), 0);
            assert_eq!(*outcomes.keys().last().unwrap(), 199);

            let mut died = 0;
            let mut ok_pids = BTreeSet::new();
            for (index, outcome) in &outcomes {
                match outcome {
                    Ok(pid) => {
                        ok_pids.insert(*pid);
                    }
                    Err(Error::WorkerDied { pid, status }) => {
                        assert_eq!(*pid, victim, "task {index} failed on a worker that was not killed");
                        assert_eq!(*status, ExitStatus::Signal(libc::SIGKILL));
                        died += 1;
                    }
                    Err(other) => panic!("task {index} failed with {other:?}"),
                }
            }
            assert!(died >= 1, "no task was in flight on the killed worker");
            assert!(died <= 16, "{died} tasks failed, more than the worker's 16 slots");

            // The pool still serves, on a replacement worker.
            let pid: u32 = pool.apply(whoami, ()).await.unwrap();
            assert_ne!(pid, victim);
            assert!(
                eventually(Duration::from_secs(10), || {
                    let now = pool.worker_pids();
                    now.len() == 2 && !now.contains(&victim)
                })
                .await,
                "workers after the kill: {:?} (victim {victim})",
                pool.worker_pids()
            );
            let new: Vec<u32> = pool
                .worker_pids()
                .into_iter()
                .filter(|p| !workers.contains(p))
                .collect();
            assert_eq!(
                new.len(),
                1,
                "one replacement worker: {:?} vs {workers:?}",
                pool.worker_pids()
            );
            let known: BTreeSet<u32> = workers.iter().chain(&new).copied().collect();
            assert!(ok_pids.is_subset(&known), "results from {ok_pids:?}, workers {known:?}");
            assert!(!process_exists(victim), "the killed worker {victim} was not reaped");
            let values: Vec<u64> = pool.map(double, 0..100).await.unwrap();
            assert_eq!(values, (0..100).map(|x| x * 2).collect::<Vec<u64>>());

            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// A task that aborts its worker fails with `WorkerDied` (SIGABRT); tasks
    /// on the other worker are unaffected, and the pool still serves.
    async fn aborting_task_fails_with_worker_died(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .queue_count(2)
                .scheduler(ByFunction::default())
                .build()
                .await
                .unwrap();
            let doomed: u32 = pool.apply(on_queue_zero, ()).await.unwrap();

            let aborting = pool.apply(abort_after, (300,));
            let siblings = pool.map(sleep_ms, vec![800; 8]);
            let (aborted, siblings) = tokio::join!(aborting.into_future(), IntoFuture::into_future(siblings));

            match aborted {
                Err(Error::WorkerDied { pid, status }) => {
                    assert_eq!(pid, doomed, "the task ran on queue 0's worker");
                    assert_eq!(status, ExitStatus::Signal(libc::SIGABRT));
                }
                other => panic!("expected WorkerDied with SIGABRT, got {other:?}"),
            }
            let siblings: Vec<u32> = siblings.expect("tasks on the other worker succeed");
            assert_eq!(siblings.len(), 8);
            assert!(siblings.iter().all(|&pid| pid != doomed));

            // Queue 0 gets a new worker, and the pool serves both queues.
            let replacement: u32 = pool.apply(on_queue_zero, ()).await.unwrap();
            assert_ne!(replacement, doomed);
            assert_eq!(pool.apply(double, (21,)).await.unwrap(), 42);
            assert!(!process_exists(doomed), "the aborted worker {doomed} was not reaped");

            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// Dropping a pool kills and reaps its workers before `drop` returns: not
    /// even a zombie is left.
    async fn drop_reaps_workers(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(3).build().await.unwrap();
            // Busy workers too: a task in flight must not keep one alive.
            let busy = pool.map(sleep_ms, vec![10_000; 3]);
            let mut busy = Box::pin(busy);
            assert!(
                tokio::time::timeout(Duration::from_millis(200), busy.next())
                    .await
                    .is_err(),
                "a 10 s sleep finished within 200 ms"
            );
            let pids = pool.worker_pids();
            assert_eq!(pids.len(), 3);
            for &pid in &pids {
                assert!(process_exists(pid), "worker {pid} is not running before the drop");
            }
            drop(pool);
            for &pid in &pids {
                assert!(
                    !process_exists(pid),
                    "worker {pid} still exists (or is a zombie) after drop"
                );
            }
            // The pending result learns that its pool is gone.
            let outcome = tokio::time::timeout(Duration::from_secs(10), busy.next())
                .await
                .expect("a result of a dropped pool hangs");
            assert!(
                matches!(outcome, Some(Err(_))),
                "a result of a dropped pool: {outcome:?}"
            );
        })
        .await;
    }
}

each_start_method! {
    /// Dropping the future of a running task cancels it in the worker.
    async fn dropping_a_running_apply_cancels_it(method) {
        within(async {
            let started = temp_path("running-started", method);
            let done = temp_path("running-done", method);
            remove_if_exists(&started);
            remove_if_exists(&done);
            let pool = Pool::builder().start_method(method).processes(1).build().await.unwrap();

            let call = pool.apply(touch_after, (path_arg(&started), path_arg(&done), 1000));
            let outcome = tokio::time::timeout(Duration::from_millis(200), call.into_future()).await;
            assert!(outcome.is_err(), "a 1 s task completed within 200 ms: {outcome:?}");
            assert!(
                eventually(Duration::from_secs(5), || started.exists()).await,
                "the task never started"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            let cancelled = !done.exists();
            remove_if_exists(&started);
            remove_if_exists(&done);
            assert!(cancelled, "the dropped task ran to completion");

            // The worker survives the cancel.
            assert_eq!(pool.apply(double, (4,)).await.unwrap(), 8);
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

/// Fills a one-slot worker with a 1 s task, then drops a second call while
/// it waits (in the parent's queue; in the worker itself with `prefetch`):
/// it must never start, and the calls after it still run.
async fn a_dropped_waiting_call_never_starts(method: StartMethod, prefetch: usize) {
    let names = ["blocker-started", "blocker-done", "started", "done"];
    let [blocker_started, blocker_done, started, done] =
        names.map(|name| temp_path(&format!("waiting-{prefetch}-{name}"), method));
    for path in [&blocker_started, &blocker_done, &started, &done] {
        remove_if_exists(path);
    }
    let pool = Pool::builder()
        .start_method(method)
        .processes(1)
        .child_concurrency(1)
        .prefetch(prefetch)
        .build()
        .await
        .unwrap();

    // Fill the only slot.
    let blocker = tokio::spawn(
        pool.apply(touch_after, (path_arg(&blocker_started), path_arg(&blocker_done), 1000))
            .into_future(),
    );
    assert!(
        eventually(Duration::from_secs(5), || blocker_started.exists()).await,
        "the blocking task never started"
    );

    let call = pool.apply(touch_after, (path_arg(&started), path_arg(&done), 0));
    let waiting = tokio::time::timeout(Duration::from_millis(200), call.into_future());
    let where_it_waits = async {
        // With prefetch, the call reached the worker (it holds two).
        let held = if prefetch > 0 { 2 } else { 1 };
        assert!(
            eventually(Duration::from_secs(5), || pool.stats().workers[0].in_flight == held).await,
            "the worker never held {held} calls"
        );
    };
    let (outcome, ()) = tokio::join!(waiting, where_it_waits);
    assert!(
        outcome.is_err(),
        "a waiting task completed while the slot was taken: {outcome:?}"
    );

    blocker.await.unwrap().unwrap();
    assert!(blocker_done.exists());
    // The slot is free now; give a wrongly kept task time to run.
    assert_eq!(pool.apply(double, (4,)).await.unwrap(), 8);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ran = started.exists() || done.exists();
    for path in [&blocker_started, &blocker_done, &started, &done] {
        remove_if_exists(path);
    }
    assert!(!ran, "the dropped waiting task ran");
    assert_eq!(pool.stats().workers[0].in_flight, 0);

    pool.close();
    pool.join().await.unwrap();
}

each_start_method! {
    /// Dropping the future of a task queued in the parent means it never starts.
    async fn dropping_a_queued_apply_cancels_it(method) {
        within(a_dropped_waiting_call_never_starts(method, 0)).await;
    }
}

each_start_method! {
    /// Dropping the future of a task waiting in the worker (`prefetch`)
    /// means it never starts: the worker answers it as cancelled.
    async fn dropping_an_apply_waiting_in_the_worker_cancels_it(method) {
        within(a_dropped_waiting_call_never_starts(method, 2)).await;
    }
}

each_start_method! {
    async fn apply_timeout_gives_timeout_error(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(1).build().await.unwrap();
            let start = Instant::now();
            let outcome = pool.apply(sleep_ms, (5000,)).timeout(Duration::from_millis(200)).await;
            let elapsed = start.elapsed();
            assert!(matches!(outcome, Err(Error::Timeout)), "got {outcome:?}");
            assert!(elapsed < Duration::from_secs(4), "the timeout fired after {elapsed:?}");

            // A task within its deadline succeeds, and the pool still serves.
            let pid: u32 = pool
                .apply(sleep_ms, (10,))
                .timeout(Duration::from_secs(20))
                .await
                .unwrap();
            assert_eq!(pool.worker_pids(), vec![pid]);
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// `terminate` fails running and queued work with `PoolTerminated` at once.
    async fn terminate_fails_pending_work(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .child_concurrency(2)
                .build()
                .await
                .unwrap();
            let workers = pool.worker_pids();
            let applies: Vec<_> = (0..4)
                .map(|_| tokio::spawn(pool.apply(sleep_ms, (30_000,)).into_future()))
                .collect();
            let mapped = tokio::spawn(IntoFuture::into_future(pool.map(sleep_ms, vec![30_000; 4])));
            tokio::time::sleep(Duration::from_millis(500)).await;

            let start = Instant::now();
            pool.terminate();
            for apply in applies {
                let outcome = apply.await.unwrap();
                assert!(matches!(outcome, Err(Error::PoolTerminated)), "apply: {outcome:?}");
            }
            let outcome = mapped.await.unwrap();
            assert!(matches!(outcome, Err(Error::PoolTerminated)), "map: {outcome:?}");
            pool.join().await.unwrap();
            let elapsed = start.elapsed();
            assert!(elapsed < Duration::from_secs(10), "terminate took {elapsed:?}");
            for pid in workers {
                assert!(!process_exists(pid), "worker {pid} still exists after terminate + join");
            }
            assert!(pool.apply(double, (1,)).await.is_err(), "a terminated pool took work");
        })
        .await;
    }
}

each_start_method! {
    /// `close` takes no new work but lets submitted work finish.
    async fn close_lets_submitted_work_finish(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .child_concurrency(2)
                .build()
                .await
                .unwrap();
            let running = tokio::spawn(IntoFuture::into_future(pool.map(sleep_ms, vec![100; 10])));
            tokio::time::sleep(Duration::from_millis(50)).await;
            let submitted = pool.starmap(sleep_then_echo, (0..20).map(|i| (i, 100)));
            pool.close();

            let error = pool.apply(double, (1,)).await.unwrap_err();
            assert!(matches!(error, Error::PoolClosed), "apply after close: {error:?}");

            let echoed: Vec<(u64, u32)> = submitted.await.unwrap();
            assert_eq!(
                echoed.iter().map(|&(i, _)| i).collect::<Vec<u64>>(),
                (0..20).collect::<Vec<u64>>()
            );
            assert_eq!(running.await.unwrap().unwrap().len(), 10);
            pool.join().await.unwrap();
            assert!(
                pool.worker_pids().is_empty(),
                "workers after join: {:?}",
                pool.worker_pids()
            );
        })
        .await;
    }
}

each_start_method! {
    /// A panic fails its own task only: its siblings on the same worker succeed.
    async fn panic_fails_only_its_own_task(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .child_concurrency(8)
                .build()
                .await
                .unwrap();
            let start = Instant::now();
            let outcomes: Vec<aiomp::Result<u32>> = pool.starmap(fail_one, (0..8).map(|i| (i, 3))).collect().await;
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "8 tasks of 500 ms did not run concurrently: {:?}",
                start.elapsed()
            );
            assert_eq!(outcomes.len(), 8);
            let failed = outcomes[3].as_ref().unwrap_err();
            let remote = failed.as_remote().expect("a remote failure");
            assert_eq!(remote.kind, RemoteErrorKind::Panic);
            assert!(remote.message.contains("boom 3"), "message: {:?}", remote.message);
            for (index, outcome) in outcomes.iter().enumerate() {
                if index != 3 {
                    let pid = *outcome
                        .as_ref()
                        .unwrap_or_else(|e| panic!("sibling {index} failed: {e}"));
                    assert_eq!(pid, remote.pid, "sibling {index} ran on another worker");
                }
            }
            assert_eq!(pool.worker_pids(), vec![remote.pid], "the worker survived the panic");
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    async fn multi_thread_worker_runtime(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .worker_runtime(WorkerRuntime::MultiThread(2))
                .build()
                .await
                .unwrap();
            let shapes: Vec<(String, usize, u64)> = pool.starmap(runtime_shape, vec![(); 4]).await.unwrap();
            for shape in shapes {
                assert_eq!(shape, ("MultiThread".to_owned(), 2, 42));
            }
            let values: Vec<u64> = pool.map(double, 0..200).await.unwrap();
            assert_eq!(values, (0..200).map(|x| x * 2).collect::<Vec<u64>>());
            pool.close();
            pool.join().await.unwrap();

            // The default is one current-thread runtime per worker.
            let pool = Pool::builder().start_method(method).processes(1).build().await.unwrap();
            let shape: (String, usize, u64) = pool.apply(runtime_shape, ()).await.unwrap();
            assert_eq!(shape, ("CurrentThread".to_owned(), 1, 42));
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// The initializer runs in every worker, replacements included, before tasks.
    async fn initializer_sets_a_global_read_by_tasks(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .max_tasks_per_child(3)
                .initializer(set_level, (42,))
                .build()
                .await
                .unwrap();
            let seen: Vec<(u64, u32)> = pool.starmap(read_level, vec![(); 20]).await.unwrap();
            assert!(seen.iter().all(|&(level, _)| level == 42), "levels: {seen:?}");
            let pids: BTreeSet<u32> = seen.iter().map(|&(_, pid)| pid).collect();
            assert!(pids.len() >= 7, "20 tasks at 3 per worker ran on only {pids:?}");
            assert_eq!(LEVEL.load(Ordering::SeqCst), 0, "the initializer ran in the parent");
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// The as-completed stream yields every index exactly once, in completion order.
    async fn unordered_yields_every_index_once(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(2).build().await.unwrap();
            let mut stream = pool
                .starmap(sleep_then_echo, (0..50u64).map(|i| (i, (50 - i) * 10)))
                .unordered();
            let mut order = Vec::new();
            while let Some((index, result)) = stream.next().await {
                let (echoed, _) = result.unwrap();
                assert_eq!(echoed, index as u64, "result of index {index}");
                order.push(index);
            }
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..50).collect::<Vec<usize>>(), "every index exactly once");
            assert_ne!(order, sorted, "results came in input order, not as completed");
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// A panicking initializer fails `build` with the panic, within seconds.
    async fn panicking_initializer_fails_build(method) {
        within(async {
            let start = Instant::now();
            let result = Pool::builder()
                .start_method(method)
                .processes(2)
                .initializer(exploding_init, ())
                .build()
                .await;
            let elapsed = start.elapsed();
            match result {
                Err(Error::Remote(remote)) => {
                    assert!(
                        remote.message.contains("init exploded"),
                        "message: {:?}",
                        remote.message
                    );
                    assert_eq!(remote.kind, RemoteErrorKind::Panic);
                }
                Err(other) => panic!("expected Error::Remote, got {other:?}"),
                Ok(pool) => panic!("a pool with a panicking initializer was built: {pool:?}"),
            }
            assert!(elapsed < Duration::from_secs(20), "build took {elapsed:?} to fail");
        })
        .await;
    }
}

each_start_method! {
    /// Switching to `unordered()` part-way keeps every index: results already
    /// read from a finished chunk come first, with their input indices, even
    /// when that chunk was the last one (32 calls on one worker travel in
    /// chunks of 4; 29 are read in order, 3 stay buffered).
    async fn unordered_after_ordered_reads_keeps_indices(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(1).build().await.unwrap();
            let mut results = pool.map(double, 0..32u64);
            for expected in 0..29u64 {
                assert_eq!(results.next().await.unwrap().unwrap(), expected * 2);
            }
            let mut rest: Vec<(usize, u64)> = Vec::new();
            let mut unordered = results.unordered();
            while let Some((index, result)) = unordered.next().await {
                rest.push((index, result.unwrap()));
            }
            rest.sort_unstable();
            assert_eq!(rest, [(29, 58), (30, 60), (31, 62)]);
        })
        .await;
    }
}
