//! Configuring a pool.

use std::time::Duration;

use serde::Serialize;

use crate::codec::DEFAULT_MAX_FRAME;
use crate::error::{Error, RemoteError, Result};
use crate::launch::StartMethod;
use crate::pool::Pool;
use crate::protocol::{Call, RuntimeFlavor};
use crate::registry::FunctionIndex;
use crate::remote_fn::{RemoteFn, encode_call, function_index};
use crate::scheduler::{RoundRobin, Scheduler};

/// The tokio runtime each worker runs its tasks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WorkerRuntime {
    /// One thread per worker runs all its tasks (the default): the worker's
    /// concurrency is async, its parallelism comes from the number of
    /// processes. It runs one plain `fn` at a time, and the pool gives it no
    /// more than that, but for the next one on standby while many wait (see
    /// the crate's performance notes).
    #[default]
    CurrentThread,
    /// A multi-thread runtime with this many threads per worker (the
    /// counterpart of aiomultiprocess's `loop_initializer`): up to that many
    /// plain `fn`s at once in each worker. `MultiThread(0)` is
    /// [`Error::InvalidConfig`].
    MultiThread(usize),
}

impl From<WorkerRuntime> for RuntimeFlavor {
    fn from(runtime: WorkerRuntime) -> RuntimeFlavor {
        match runtime {
            WorkerRuntime::CurrentThread => RuntimeFlavor::CurrentThread,
            WorkerRuntime::MultiThread(threads) => RuntimeFlavor::MultiThread(threads),
        }
    }
}

/// How long a call awaited in `block_on` spins for its answer, unless
/// configured with [`PoolBuilder::block_on_spin`].
const DEFAULT_BLOCK_ON_SPIN: Duration = Duration::from_micros(150);

/// How long a worker watches its channel when [`PoolBuilder::worker_spin`]
/// is left to its default on a machine with CPUs to spare.
const SPARE_CPU_WORKER_SPIN: Duration = Duration::from_micros(50);

/// The CPUs this process may use, as `available_parallelism` counts them
/// (1 if it cannot tell).
pub(crate) fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Configures and builds a [`Pool`]. Made by [`Pool::builder`].
///
/// Every setting has a default; settings that cannot work are reported by
/// [`build`](PoolBuilder::build) as [`Error::InvalidConfig`], naming the
/// setting. A `#[remote]` function given to `initializer` or
/// `exception_handler` that is not registered fails `build` with
/// [`Error::NotRegistered`].
///
/// ```no_run
/// # #[aiomp::remote] async fn setup(level: u8) {}
/// # async fn run() -> aiomp::Result<()> {
/// use aiomp::{Pool, RoundRobin, StartMethod};
///
/// let pool = Pool::builder()
///     .processes(4)
///     .child_concurrency(16)
///     .max_tasks_per_child(1000)
///     .queue_count(2)
///     .scheduler(RoundRobin::new())
///     .initializer(setup, (3,))
///     .start_method(StartMethod::Spawn)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct PoolBuilder {
    pub(crate) processes: Option<usize>,
    pub(crate) child_concurrency: usize,
    pub(crate) prefetch: usize,
    pub(crate) max_tasks_per_child: u64,
    pub(crate) queue_count: usize,
    pub(crate) scheduler: Option<Box<dyn Scheduler>>,
    pub(crate) initializer: Option<Result<Call>>,
    pub(crate) exception_handler: Option<Result<FunctionIndex>>,
    pub(crate) start_method: Option<StartMethod>,
    pub(crate) runtime: WorkerRuntime,
    pub(crate) start_timeout: Duration,
    pub(crate) max_frame: usize,
    pub(crate) block_on_spin: Duration,
    /// `None`: chosen by [`worker_spin_for`](Self::worker_spin_for).
    pub(crate) worker_spin: Option<Duration>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("child_concurrency", &self.child_concurrency)
            .field("prefetch", &self.prefetch)
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("queue_count", &self.queue_count)
            .field("start_method", &self.start_method)
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

impl Default for PoolBuilder {
    fn default() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            child_concurrency: 16,
            prefetch: 0,
            max_tasks_per_child: 0,
            queue_count: 1,
            scheduler: None,
            initializer: None,
            exception_handler: None,
            start_method: None,
            runtime: WorkerRuntime::CurrentThread,
            start_timeout: Duration::from_secs(60),
            max_frame: DEFAULT_MAX_FRAME,
            block_on_spin: DEFAULT_BLOCK_ON_SPIN,
            worker_spin: None,
        }
    }
}

impl PoolBuilder {
    /// Worker processes (default: the available parallelism, one per core).
    /// 0 is [`Error::InvalidConfig`].
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// Tasks in flight per worker (default 16); 0 is [`Error::InvalidConfig`].
    ///
    /// The pool's total concurrency is `processes × child_concurrency`: for
    /// I/O-bound `async fn`s, raise this rather than `processes`. A plain
    /// `fn` takes a whole runtime thread's share of these slots while it
    /// runs, so CPU-bound calls need no tuning here.
    pub fn child_concurrency(mut self, tasks: usize) -> Self {
        self.child_concurrency = tasks;
        self
    }

    /// Calls each worker may hold beyond its `child_concurrency` (default 0):
    /// they wait in the worker, in order, and start the moment its running
    /// calls leave room, without a round trip to the parent.
    ///
    /// Without them, a worker whose calls complete together (a wave of
    /// timers, a rate limit lifting) idles while their results reach the
    /// parent and its next calls come back: a few hundred µs on a loaded
    /// machine, each time. At most `child_concurrency` calls still run at
    /// once. The costs: a worker that dies fails every `async fn` call it
    /// held, the waiting ones with the running ones ([`Error::WorkerDied`]);
    /// and a call waiting in one worker does not move to another that is
    /// idle, so leave it at 0 for long CPU-bound calls, which need none (a
    /// busy worker already holds its next plain `fn` call on standby while
    /// many are queued, and hands it back unstarted if it dies). A plain
    /// `fn`'s chunk counts as a runtime thread's share of `child_concurrency`
    /// here too.
    pub fn prefetch(mut self, calls: usize) -> Self {
        self.prefetch = calls;
        self
    }

    /// Recycles a worker after it was given this many tasks; 0 (the default) never does.
    ///
    /// The worker finishes what it holds and exits, and its replacement
    /// (which runs the initializer again) starts at once: this resets
    /// whatever the worker leaked.
    pub fn max_tasks_per_child(mut self, tasks: u64) -> Self {
        self.max_tasks_per_child = tasks;
        self
    }

    /// Task queues (default 1); more than `processes` is
    /// [`Error::InvalidConfig`]. Process `i` serves queue `i % queue_count`,
    /// and the [`scheduler`](Self::scheduler) routes each task to a queue.
    pub fn queue_count(mut self, queues: usize) -> Self {
        self.queue_count = queues;
        self
    }

    /// Routes tasks to queues (default [`RoundRobin`]); see [`Scheduler`].
    pub fn scheduler(mut self, scheduler: impl Scheduler) -> Self {
        self.scheduler = Some(Box::new(scheduler));
        self
    }

    /// A `#[remote]` fn run once in each worker, with `args`, before any task
    /// (and again in each replacement): per-process set-up such as opening
    /// connections or loading data into a `static`. `build` waits until
    /// every worker ran it. One that panics fails the worker's start, and
    /// after three attempts `build` returns its [`Error::Remote`].
    pub fn initializer<F, Args, M>(mut self, _f: F, args: Args) -> Self
    where
        F: RemoteFn<Args, M>,
        Args: Serialize,
    {
        self.initializer = Some(function_index::<F>().and_then(|f| encode_call(f, &args)));
        self
    }

    /// A `#[remote]` fn run in the worker for each task that fails (panics or
    /// hits a codec error), with the failure: the counterpart of
    /// aiomultiprocess's `exception_handler`.
    ///
    /// It takes one argument, the [`RemoteError`], and runs before the
    /// failure is sent back to the caller (who still gets it). A cancelled
    /// task, and a function that returns `Err` as a value, do not call it.
    ///
    /// ```
    /// use aiomp::{Pool, RemoteError, remote};
    ///
    /// #[remote]
    /// async fn log_failure(error: RemoteError) {
    ///     eprintln!("[worker {}] {} failed: {}", error.pid, error.function, error.message);
    /// }
    ///
    /// # #[remote]
    /// # async fn explode() { panic!("boom") }
    /// #[aiomp::main]
    /// async fn main() -> aiomp::Result<()> {
    ///     let pool = Pool::builder().processes(1).exception_handler(log_failure).build().await?;
    ///     assert!(pool.apply(explode, ()).await.unwrap_err().is_panic());
    ///     Ok(())
    /// }
    /// ```
    pub fn exception_handler<F, M>(mut self, _f: F) -> Self
    where
        F: RemoteFn<(RemoteError,), M>,
    {
        self.exception_handler = Some(function_index::<F>());
        self
    }

    /// How workers start; overrides [`set_start_method`](crate::set_start_method)
    /// for this pool, its replacement workers included.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// The tokio runtime inside each worker (default: current-thread).
    pub fn worker_runtime(mut self, runtime: WorkerRuntime) -> Self {
        self.runtime = runtime;
        self
    }

    /// How long a worker may take to start and run its initializer (default
    /// 60 s); past it, the start fails with [`Error::Handshake`].
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// The largest frame, and so the largest encoded argument tuple or
    /// result, either side accepts (default 256 MiB).
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// How long a call awaited outside any task, in `block_on` of a
    /// multi-thread runtime (the body of `#[tokio::main]`), spins for its
    /// last answer before its thread parks (default 150 µs);
    /// `Duration::ZERO` never spins.
    ///
    /// A parked thread is woken by the runtime thread that reads the answer,
    /// which is itself woken from the I/O driver, and on an idle core each
    /// wake-up costs about as much as the round trip to the worker. A
    /// spinning thread reads the workers' channels itself instead, and
    /// catches the answer as it arrives. It calls `sched_yield` on each
    /// turn, so a thread waiting for that CPU runs first, but the spin is
    /// CPU time all the same.
    ///
    /// - The poll that sends a call does not spin: calls joined beside it
    ///   (`join!`, `join_all`) are sent first and run together. Each later
    ///   poll spins (a spurious wake-up spins again), never past the call's
    ///   [`timeout`](crate::ApplyResult::timeout), while the other futures of
    ///   the same `block_on` wait.
    /// - Spins that miss back off: after each miss, twice as many waits do
    ///   not spin, up to 64; a spin that catches its answer resets that. The
    ///   backoff is the pool's, so calls of milliseconds spin about once in
    ///   64, fewer where quick calls are mixed in.
    /// - Nothing spins in a task, on a current-thread runtime, in
    ///   `spawn_blocking`, for an [`unordered`](crate::PoolResult::unordered)
    ///   stream, or while more of a `map`'s calls wait to be sent. Tokio
    ///   does not tell a `LocalSet` or another executor that entered the
    ///   runtime apart from `block_on`: they spin too, so give such pools
    ///   `Duration::ZERO`.
    pub fn block_on_spin(mut self, spin: Duration) -> Self {
        self.block_on_spin = spin;
        self
    }

    /// How long a worker that has no call running watches its channel for
    /// the next call before it sleeps. The default is 50 µs where the
    /// machine has CPUs to spare (more than twice as many as the pool has
    /// processes, as [`available_parallelism`] counts them, which heeds a
    /// container's CPU quota), and no watch otherwise: a pool of the default
    /// size, one process per CPU, does not watch.
    ///
    /// A sleeping worker is woken by the parent's next call, and on an idle
    /// core that wake-up costs about as much as the rest of the round trip;
    /// a call that arrives during the watch is read at once. For sequences
    /// of short calls, one at a time, 50 µs (about the parent's turnaround)
    /// halves a round trip on a virtual machine. The watch calls
    /// `sched_yield` on each turn, a hint that lets a thread waiting for
    /// that CPU run, but it is CPU time all the same, and it counts against
    /// a container's CPU quota: on a machine short of CPU it slowed maps of
    /// CPU-bound calls, which is why it is off there by default. Meanwhile
    /// anything else that would wake the worker (its initializer's timers,
    /// a thread's wake-up) waits, at most this long. While calls run,
    /// nothing is watched.
    ///
    /// Watches that miss back off: after each miss, twice as many parks do
    /// not watch, up to 64, and one that catches a call resets that. A pool
    /// whose calls come seldom watches on about one park in 64, and an idle
    /// pool on none. Only workers on a
    /// [`CurrentThread`](WorkerRuntime::CurrentThread) runtime (the
    /// default) watch.
    ///
    /// [`available_parallelism`]: std::thread::available_parallelism
    pub fn worker_spin(mut self, spin: Duration) -> Self {
        self.worker_spin = Some(spin);
        self
    }

    /// The watch of a pool of `processes` on a machine of `cpus`: the one
    /// set, else the default [`worker_spin`](Self::worker_spin) describes.
    pub(crate) fn worker_spin_for(&self, processes: usize, cpus: usize) -> Duration {
        match self.worker_spin {
            Some(spin) => spin,
            // Each watching worker and the parent get a CPU of their own, and more remain.
            None if cpus > 2 * processes => SPARE_CPU_WORKER_SPIN,
            None => Duration::ZERO,
        }
    }

    /// Starts the workers and waits until each is ready (its initializer ran).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for settings that cannot work (naming the
    /// setting); [`Error::NotRegistered`] or [`Error::Codec`] for an
    /// initializer or exception handler that cannot be sent; the first
    /// worker's start error if workers cannot start (after three attempts
    /// per worker), with every worker already started stopped again.
    pub async fn build(self) -> Result<Pool> {
        Pool::start(self).await
    }

    pub(crate) fn validate(&self) -> Result<usize> {
        let processes = self.processes.unwrap_or_else(available_cpus);
        if processes == 0 {
            return Err(Error::InvalidConfig("processes must be at least 1".into()));
        }
        if self.child_concurrency == 0 {
            return Err(Error::InvalidConfig("child concurrency must be at least 1".into()));
        }
        if self.queue_count == 0 {
            return Err(Error::InvalidConfig("queue count must be at least 1".into()));
        }
        if self.queue_count > processes {
            return Err(Error::InvalidConfig(format!(
                "queue count {} exceeds the number of processes {processes}",
                self.queue_count
            )));
        }
        if let WorkerRuntime::MultiThread(0) = self.runtime {
            return Err(Error::InvalidConfig(
                "a multi-thread worker runtime needs at least 1 thread".into(),
            ));
        }
        Ok(processes)
    }

    pub(crate) fn take_scheduler(&mut self) -> Box<dyn Scheduler> {
        self.scheduler.take().unwrap_or_else(|| Box::new(RoundRobin::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_watch_by_default_only_where_cpus_are_to_spare() {
        let micros = |us| Duration::from_micros(us);
        assert_eq!(Pool::builder().worker_spin_for(2, 16), micros(50));
        assert_eq!(Pool::builder().worker_spin_for(7, 16), micros(50));
        // Twice as many CPUs as processes is not enough to spare.
        assert_eq!(Pool::builder().worker_spin_for(8, 16), Duration::ZERO);
        assert_eq!(Pool::builder().worker_spin_for(2, 4), Duration::ZERO);
        assert_eq!(Pool::builder().worker_spin_for(1, 2), Duration::ZERO);
        // The default pool has one process per CPU.
        assert_eq!(Pool::builder().worker_spin_for(16, 16), Duration::ZERO);
    }

    #[test]
    fn a_worker_spin_set_is_kept_whatever_the_machine() {
        assert_eq!(
            Pool::builder().worker_spin(Duration::ZERO).worker_spin_for(2, 16),
            Duration::ZERO
        );
        let set = Duration::from_micros(30);
        assert_eq!(Pool::builder().worker_spin(set).worker_spin_for(2, 2), set);
    }
}
