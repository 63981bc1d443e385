//! `Pool`: many tasks across many worker processes.
//!
//! Each call encodes its arguments once, asks the scheduler for a queue, and
//! pushes a job there. Every worker slot of that queue pulls jobs while it has
//! free task slots (see [`slot`]); each job's oneshot is completed by the
//! worker's link when the outcome arrives, or failed when the worker dies.

mod arrived;
mod builder;
mod hand_over;
mod result;
mod slot;
mod spin;
mod standby;
mod stats;
mod submit;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio_util::task::TaskTracker;

pub use builder::{PoolBuilder, WorkerRuntime};
pub use result::{ApplyResult, PoolResult, Unordered};
use spin::Spin;
pub use stats::{PoolStats, WorkerStats};
use submit::Encoding;

use crate::error::{Error, Result};
use crate::launch::get_start_method;
use crate::link::{Job, Link, LinkConfig};
use crate::os_child::OsChild;
use crate::protocol::Settings;
use crate::registry::FunctionIndex;
use crate::remote_fn::{RemoteFn, function_index, function_name};
use crate::scheduler::{QueueId, Scheduler, TaskId};

/// A pool of worker processes, each running many tasks at once.
///
/// ```no_run
/// use aiomp::{Pool, remote};
///
/// #[remote]
/// async fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// # async fn run() -> aiomp::Result<()> {
/// let pool = Pool::builder().processes(2).build().await?;
/// let three: u64 = pool.apply(add, (1, 2)).await?;
/// let sums: Vec<u64> = pool.starmap(add, vec![(1, 2), (3, 4)]).await?;
/// pool.close();
/// pool.join().await?;
/// # Ok(()) }
/// ```
///
/// Dropping a pool that was not joined terminates it: every worker is killed
/// and reaped before `drop` returns.
#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// What the pool's handle, its calls and its worker slots share.
pub(crate) struct Shared {
    processes: usize,
    queue_count: usize,
    child_concurrency: usize,
    /// Calls a worker may hold beyond `child_concurrency`, waiting in it.
    prefetch: usize,
    /// The threads of each worker's runtime.
    runtime_threads: usize,
    max_tasks_per_child: u64,
    link: LinkConfig,
    /// The queues' senders; `None` once the pool is closed. Calls clone them.
    senders: Mutex<Option<Vec<async_channel::Sender<Job>>>>,
    receivers: Vec<async_channel::Receiver<Job>>,
    scheduler: Mutex<Box<dyn Scheduler>>,
    /// Whether the scheduler is the user's, which may read the arguments
    /// and count completions. The default one does neither, and with one
    /// queue sends every call to it: then it is not asked at all.
    custom_scheduler: bool,
    next_task: AtomicU64,
    closed: AtomicBool,
    /// Why the pool stopped working, once it has.
    failure: Mutex<Option<String>>,
    /// Each worker slot's link while it is fed, for hand-overs.
    feeding: Vec<Mutex<Option<hand_over::Feeding>>>,
    /// Where the next hand-over starts looking, so that ties rotate.
    next_hand_over: AtomicUsize,
    /// How calls awaited in `block_on` wait for their last answer.
    spin: Spin,
    /// Live links, for cancels and for `terminate`.
    links: Mutex<HashMap<u32, Arc<Link>>>,
    /// Every child not yet reaped, for `Drop`.
    children: Mutex<HashMap<u32, Arc<OsChild>>>,
    /// Slot tasks and draining links: `join` waits for all of them.
    tracker: TaskTracker,
    /// Workers replaced after dying, and after `max_tasks_per_child`.
    restarts: AtomicU64,
    recycles: AtomicU64,
    /// Tasks completed and failed by workers no longer live.
    retired_completed: AtomicU64,
    retired_failed: AtomicU64,
}

impl Shared {
    /// The live workers' links.
    pub(crate) fn live_links(&self) -> Vec<Arc<Link>> {
        crate::lock(&self.links).values().cloned().collect()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("processes", &self.processes)
            .field("queue_count", &self.queue_count)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool with the default configuration: one worker per available core.
    pub async fn new() -> Result<Pool> {
        Pool::builder().build().await
    }

    /// Configures a pool.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    async fn start(mut builder: PoolBuilder) -> Result<Pool> {
        let processes = builder.validate()?;
        let initializer = builder.initializer.take().transpose()?;
        let exception_handler = builder.exception_handler.take().transpose()?;
        let custom_scheduler = builder.scheduler.is_some();
        let mut scheduler = builder.take_scheduler();
        let queues: Vec<QueueId> = (0..builder.queue_count).map(|_| scheduler.register_queue()).collect();
        for process in 0..processes {
            scheduler.register_process(queues[process % queues.len()]);
        }
        let (senders, receivers) = (0..builder.queue_count).map(|_| async_channel::unbounded()).unzip();
        let shared = Arc::new(Shared {
            processes,
            queue_count: builder.queue_count,
            child_concurrency: builder.child_concurrency,
            prefetch: builder.prefetch,
            runtime_threads: match builder.runtime {
                WorkerRuntime::CurrentThread => 1,
                WorkerRuntime::MultiThread(threads) => threads,
            },
            max_tasks_per_child: builder.max_tasks_per_child,
            link: LinkConfig {
                method: builder.start_method.unwrap_or_else(get_start_method),
                settings: Settings {
                    runtime: builder.runtime.into(),
                    initializer,
                    exception_handler,
                    abort_on_parent_exit: true,
                    max_frame: builder.max_frame,
                    slots: Some(u32::try_from(builder.child_concurrency).unwrap_or(u32::MAX)),
                    idle_spin: builder.worker_spin_for(processes, builder::available_cpus()),
                },
                start_timeout: builder.start_timeout,
                on_complete: None,
                terminating: Arc::new(AtomicBool::new(false)),
                buffers: Some(Arc::default()),
            },
            senders: Mutex::new(Some(senders)),
            receivers,
            scheduler: Mutex::new(scheduler),
            custom_scheduler,
            next_task: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            failure: Mutex::new(None),
            feeding: (0..processes).map(|_| Mutex::new(None)).collect(),
            next_hand_over: AtomicUsize::new(0),
            spin: Spin::new(builder.block_on_spin),
            links: Mutex::new(HashMap::new()),
            children: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            restarts: AtomicU64::new(0),
            recycles: AtomicU64::new(0),
            retired_completed: AtomicU64::new(0),
            retired_failed: AtomicU64::new(0),
        });
        let pool = Pool { shared };
        pool.shared.start_slots().await?;
        Ok(pool)
    }

    /// Runs `f(args...)` on the pool; `args` is the argument tuple (`()` for
    /// none, `(x,)` for one).
    ///
    /// # Errors
    ///
    /// The awaited result is [`Error::PoolClosed`] on a closed pool,
    /// [`Error::NotRegistered`] for a function that is not `#[remote]`,
    /// [`Error::Codec`] for arguments postcard cannot encode,
    /// [`Error::Remote`] if it panicked, [`Error::WorkerDied`] if its worker died.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the task: if queued it never starts, if
    /// running it is aborted in the worker.
    pub fn apply<F, Args, M>(&self, _f: F, args: Args) -> ApplyResult<F::Output>
    where
        F: RemoteFn<Args, M>,
        Args: Serialize + Send + 'static,
    {
        ApplyResult::new(self.call::<F, Args, M>(std::iter::once(args)))
    }

    /// Runs `f(item)` for each item, pulling `items` lazily with a bounded
    /// window of tasks in flight. The result is a [`PoolResult`]: await it
    /// for a `Vec` in input order, or use it as a stream.
    ///
    /// # Cancel safety
    ///
    /// Dropping the result cancels every task of the call not yet completed.
    pub fn map<F, T, I, M>(&self, _f: F, items: I) -> PoolResult<F::Output>
    where
        F: RemoteFn<(T,), M>,
        T: Serialize,
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
    {
        self.call::<F, (T,), M>(items.into_iter().map(|item| (item,)))
    }

    /// Runs `f(a, b, ...)` for each argument tuple, like [`map`](Self::map).
    pub fn starmap<F, Args, I, M>(&self, _f: F, items: I) -> PoolResult<F::Output>
    where
        F: RemoteFn<Args, M>,
        Args: Serialize,
        I: IntoIterator<Item = Args>,
        I::IntoIter: Send + 'static,
    {
        self.call::<F, Args, M>(items.into_iter())
    }

    fn call<F, Args, M>(&self, items: impl Iterator<Item = Args> + Send + 'static) -> PoolResult<F::Output>
    where
        F: RemoteFn<Args, M>,
        Args: Serialize,
    {
        let opened = function_index::<F>().and_then(|function| Ok((function, self.shared.senders()?)));
        match opened {
            Ok((function, senders)) => PoolResult::new(
                Arc::clone(&self.shared),
                function,
                F::BLOCKING,
                senders,
                Box::new(Encoding { items, function }),
            ),
            Err(error) => PoolResult::failed(Arc::clone(&self.shared), error),
        }
    }

    /// Takes no new work; work already submitted still finishes.
    pub fn close(&self) {
        tracing::info!("aiomp pool closed: finishing queued work");
        self.shared.close();
    }

    /// Waits for every worker to finish its work and exit. The pool must be
    /// closed (or terminated) first.
    ///
    /// # Errors
    ///
    /// [`Error::PoolStillOpen`] before `close`; [`Error::PoolFailed`] if the
    /// pool had failed.
    pub async fn join(&self) -> Result<()> {
        if !self.shared.closed.load(Ordering::SeqCst) {
            return Err(Error::PoolStillOpen);
        }
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
        tracing::info!("aiomp pool stopped: every worker exited");
        match crate::lock(&self.shared.failure).clone() {
            Some(reason) => Err(Error::PoolFailed { reason }),
            None => Ok(()),
        }
    }

    /// Stops now: workers get SIGTERM, and every pending task fails with
    /// [`Error::PoolTerminated`]. `join` then waits for the workers to exit.
    pub fn terminate(&self) {
        tracing::info!("aiomp pool terminated");
        self.shared.terminate(libc::SIGTERM, None);
    }

    /// The number of worker processes.
    pub fn process_count(&self) -> usize {
        self.shared.processes
    }

    /// The number of task queues.
    pub fn queue_count(&self) -> usize {
        self.shared.queue_count
    }

    /// A snapshot of the pool: queued tasks, restarts and recycles, task
    /// totals, and each live worker's pid, tasks in flight, completed and failed.
    ///
    /// ```no_run
    /// # async fn run(pool: aiomp::Pool) {
    /// let stats = pool.stats();
    /// for worker in &stats.workers {
    ///     println!("{}: {} in flight, {} done", worker.pid, worker.in_flight, worker.completed);
    /// }
    /// # }
    /// ```
    pub fn stats(&self) -> PoolStats {
        let shared = &self.shared;
        let mut workers: Vec<WorkerStats> = crate::lock(&shared.links).values().map(|link| link.stats()).collect();
        workers.sort_by_key(|w| w.pid);
        PoolStats {
            queued: shared.receivers.iter().map(async_channel::Receiver::len).sum(),
            restarts: shared.restarts.load(Ordering::Relaxed),
            recycles: shared.recycles.load(Ordering::Relaxed),
            completed: shared.retired_completed.load(Ordering::Relaxed)
                + workers.iter().map(|w| w.completed).sum::<u64>(),
            failed: shared.retired_failed.load(Ordering::Relaxed) + workers.iter().map(|w| w.failed).sum::<u64>(),
            workers,
        }
    }

    /// The process IDs of the live workers.
    pub fn worker_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = crate::lock(&self.shared.links).keys().copied().collect();
        pids.sort_unstable();
        pids
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.terminate(libc::SIGKILL, None);
        let children: Vec<Arc<OsChild>> = crate::lock(&self.shared.children).values().cloned().collect();
        for child in children {
            child.kill_and_reap();
        }
    }
}

impl Shared {
    fn senders(&self) -> Result<Vec<async_channel::Sender<Job>>> {
        if let Some(reason) = crate::lock(&self.failure).clone() {
            return Err(Error::PoolFailed { reason });
        }
        crate::lock(&self.senders).clone().ok_or(Error::PoolClosed)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        crate::lock(&self.senders).take();
    }

    fn is_stopping(&self) -> bool {
        self.link.terminating.load(Ordering::SeqCst) || crate::lock(&self.failure).is_some()
    }

    /// Stops every worker with `signal` and fails everything pending; with a
    /// `failure`, the pool is marked failed for that reason.
    fn terminate(&self, signal: i32, failure: Option<&str>) {
        if let Some(reason) = &failure {
            crate::lock(&self.failure).get_or_insert_with(|| (*reason).to_owned());
        }
        self.link.terminating.store(true, Ordering::SeqCst);
        self.close();
        let error = || match &failure {
            Some(reason) => Error::PoolFailed {
                reason: (*reason).to_owned(),
            },
            None => Error::PoolTerminated,
        };
        for queue in &self.receivers {
            queue.close();
            while let Ok(job) = queue.try_recv() {
                let _ = job.reply.send(Err(error()));
            }
        }
        for link in crate::lock(&self.links).values() {
            let _ = link.child().signal(signal);
        }
    }

    /// The worker slots one call takes. An `async fn` takes one. A plain `fn`
    /// holds a runtime thread until it returns, so it takes a thread's share
    /// of the slots: all of them on a current-thread worker, which runs one
    /// at a time whatever its concurrency. A worker is then given only what
    /// it can run, and CPU-bound calls spread evenly over the workers.
    fn slots_per_call(&self, blocking: bool) -> usize {
        if blocking {
            self.child_concurrency.div_ceil(self.runtime_threads)
        } else {
            1
        }
    }

    /// How many worker slots take tasks from `queue`: the slots `queue`,
    /// `queue + queue_count`, `queue + 2 × queue_count`, ...
    fn slots_serving(&self, queue: usize) -> usize {
        self.processes.saturating_sub(queue).div_ceil(self.queue_count)
    }

    /// Gives each call its task ID and asks the scheduler for its queue,
    /// under one lock; returns the first ID (the others follow it).
    fn schedule<'a>(
        &self,
        function: FunctionIndex,
        calls: impl ExactSizeIterator<Item = &'a [u8]>,
    ) -> (u64, Vec<usize>) {
        let first = self.next_task.fetch_add(calls.len() as u64, Ordering::Relaxed);
        let name = function_name(function);
        let mut scheduler = crate::lock(&self.scheduler);
        let queues = (first..)
            .zip(calls)
            .map(|(id, args)| usize::from(scheduler.schedule_task(TaskId::from(id), name, args)))
            .collect();
        (first, queues)
    }

    /// Sends a task (calls scheduled to one queue) to that queue; the
    /// task's reply gets the answer.
    fn enqueue(&self, senders: &[async_channel::Sender<Job>], queue: usize, job: Job) {
        let Some(sender) = senders.get(queue) else {
            let _ = job.reply.send(Err(Error::InvalidConfig(format!(
                "the scheduler chose queue {queue}, but the pool has {} queues",
                senders.len()
            ))));
            return;
        };
        // Straight to a worker if nothing waits ahead of it in its queue.
        let job = if sender.is_empty() {
            match self.hand_over(queue, job) {
                Some(job) => job,
                None => return,
            }
        } else {
            job
        };
        if let Err(refused) = sender.try_send(job) {
            let job = refused.into_inner();
            let _ = job.reply.send(Err(self.stopped_error()));
        }
    }

    fn stopped_error(&self) -> Error {
        match crate::lock(&self.failure).clone() {
            Some(reason) => Error::PoolFailed { reason },
            None => Error::PoolTerminated,
        }
    }

    /// Tells the scheduler these calls completed, under one lock.
    fn complete(&self, ids: std::ops::Range<u64>) {
        let mut scheduler = crate::lock(&self.scheduler);
        for id in ids {
            scheduler.complete_task(TaskId::from(id));
        }
    }

    /// Cancels the tasks `ids` wherever they run.
    fn cancel(&self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        for link in crate::lock(&self.links).values() {
            link.cancel(ids);
        }
    }
}
