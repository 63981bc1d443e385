//! Async functions on a pool of worker processes, each worker running its own
//! tokio runtime with many tasks in flight: Python's
//! [aiomultiprocess](https://aiomultiprocess.omnilib.dev), done in Rust.
//!
//! Mark a function [`#[remote]`](remote), start `main` with
//! [`#[aiomp::main]`](macro@main), and run the function on a [`Pool`] of
//! worker processes, or in a one-shot [`Worker`]:
//!
//! ```
//! use aiomp::{Pool, Worker, remote};
//!
//! #[remote]
//! async fn double(x: u64) -> u64 {
//!     x * 2
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     let pool = Pool::builder().processes(2).build().await?;
//!     let doubled: Vec<u64> = pool.map(double, 0..1000).await?;
//!     assert_eq!(doubled[21], 42);
//!     pool.close();
//!     pool.join().await?;
//!
//!     let one: u64 = Worker::with_args(double, (21,)).await?;
//!     assert_eq!(one, 42);
//!     Ok(())
//! }
//! ```
//!
//! A process boundary buys isolation that threads cannot: a crash, a leak, a
//! non-thread-safe native library or a `panic = "abort"` dependency is
//! contained in one worker; the pool replaces it and keeps going, and the
//! tasks that were lost with it fail with [`Error::WorkerDied`] instead of
//! hanging. Inside each worker, tokio runs many tasks at once, so I/O-bound
//! work needs few processes.
//!
//! This page is the user guide. It follows aiomultiprocess's own guide:
//!
//! - [Entering worker mode](#entering-worker-mode)
//! - [Remote functions](#remote-functions)
//! - [Workers: `Process` and `Worker`](#workers-process-and-worker)
//! - [Process pools](#process-pools)
//! - [Start methods](#start-methods)
//! - [Initializers](#initializers)
//! - [Exceptions](#exceptions)
//! - [Choosing the worker runtime](#choosing-the-worker-runtime)
//! - [Cancellation and timeouts](#cancellation-and-timeouts)
//! - [Observability](#observability)
//! - [Performance tuning](#performance-tuning)
//! - [Data](#data)
//! - [Coming from aiomultiprocess](#coming-from-aiomultiprocess)
//!
//! The examples in the repository's `examples/` directory are whole programs:
//! `quickstart`, `crawl` (I/O-bound), `cpu` (CPU-bound), `worker` (`Worker`
//! and `Process`), `progress` (a progress bar over the as-completed stream)
//! and `isolation` (aborts, panics and leaks contained).
//!
//! # Entering worker mode
//!
//! Workers started with [`StartMethod::Spawn`] (the default) re-execute the
//! current binary. The binary has to know, first thing, that it is a worker:
//!
//! - start `main` with [`#[aiomp::main]`](macro@main), a drop-in for
//!   `#[tokio::main]`;
//! - or call [`init()`] as the first statement of a hand-written `main`;
//! - and write integration tests with [`#[aiomp::test]`](macro@test), a
//!   drop-in for `#[tokio::test]`: a spawned worker re-runs only that test,
//!   which serves tasks instead of running its body.
//!
//! Nothing runs before `main`. Whatever a hand-written `main` does before
//! [`init()`] it does again in every worker, so call it first:
//!
//! ```
//! fn main() {
//!     aiomp::init(); // a worker serves tasks here and never returns
//!     let runtime = tokio::runtime::Runtime::new().unwrap();
//!     runtime.block_on(async {
//!         let v: u64 = aiomp::Worker::with_args(triple, (14,)).await.unwrap();
//!         assert_eq!(v, 42);
//!     });
//! }
//!
//! #[aiomp::remote]
//! async fn triple(x: u64) -> u64 {
//!     x * 3
//! }
//! ```
//!
//! A program that never entered worker mode cannot spawn workers: the call
//! fails with an error that says to add `#[aiomp::main]` or `aiomp::init()`,
//! and a stray child exits with that message instead of running the program
//! a second time.
//!
//! # Remote functions
//!
//! [`#[remote]`](remote) registers a free `async fn` or plain `fn` under a
//! stable ID (its module path and name, or `#[remote(id = "...")]`); the ID is
//! what crosses the process boundary, so parent and workers must be the same
//! binary, which every start method guarantees. The function stays callable
//! locally exactly as written.
//!
//! Arguments and the return value are owned `serde` types (`String`, not
//! `&str`). Calls take the argument tuple: `()` for none, `(x,)` for one,
//! `(a, b)` for two; `map` takes the single argument of each call. An
//! `async fn` can keep many tasks in flight in one worker; a plain `fn` runs
//! on its worker's thread from start to finish, which is right for CPU-bound
//! work. The pool knows the difference: it counts a plain `fn` call as
//! taking a whole runtime thread, so a worker is given only the CPU-bound
//! calls it can run at once (and, while many wait, the next one on standby),
//! and they spread evenly over the workers.
//!
//! ```
//! use aiomp::remote;
//!
//! #[remote]
//! async fn fetch_len(url: String) -> usize {
//!     url.len() // an async fn: I/O-bound work, many in flight per worker
//! }
//!
//! #[remote]
//! fn crunch(n: u64) -> u64 {
//!     (0..n).map(|i| i * i % 7).sum() // a plain fn: CPU-bound work
//! }
//!
//! assert_eq!(crunch(4), 0 + 1 + 4 + 2);
//! ```
//!
//! Passing a function that is not `#[remote]` fails that call with
//! [`Error::NotRegistered`], naming the function.
//!
//! # Workers: `Process` and `Worker`
//!
//! [`Worker`] runs one function in a new process and returns its result;
//! [`Process`] does the same for a job whose exit status is enough. Both are
//! builders (`.name()`, `.daemon()`, `.initializer()`, `.start_method()`) and
//! both are [`IntoFuture`]: awaiting one starts it if
//! needed and waits for it. Rust has no overloading, so the getters of what
//! the builders set are [`get_name()`](Process::get_name) and
//! [`is_daemon()`](Process::is_daemon).
//!
//! ```
//! use std::time::Duration;
//!
//! use aiomp::{Error, Process, Worker, remote};
//!
//! #[remote]
//! async fn double(x: u64) -> u64 {
//!     x * 2
//! }
//!
//! #[remote]
//! async fn nap(ms: u64) {
//!     tokio::time::sleep(Duration::from_millis(ms)).await;
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     // One process, one result.
//!     let v: u64 = Worker::with_args(double, (21,)).await?;
//!     assert_eq!(v, 42);
//!
//!     // Start, look at it, join; the result stays available.
//!     let mut worker = Worker::with_args(double, (4,)).name("doubler");
//!     worker.start()?;
//!     assert!(worker.pid().is_some());
//!     assert_eq!(worker.join().await?, 8);
//!     assert_eq!(*worker.result()?, 8);
//!
//!     // A Process with a deadline on the wait, then stopped.
//!     let mut p = Process::with_args(nap, (60_000,)).name("sleeper").daemon(true);
//!     p.start()?;
//!     assert!(matches!(p.join_timeout(Duration::from_millis(20)).await, Err(Error::Timeout)));
//!     assert!(p.is_alive());
//!     p.terminate()?;
//!     p.join().await?;
//!     assert_eq!(p.exitcode(), Some(-15)); // killed by SIGTERM, as Python reports it
//!     assert_eq!(p.get_name(), "sleeper");
//!     Ok(())
//! }
//! ```
//!
//! # Process pools
//!
//! A [`Pool`] keeps `processes` workers, each running up to
//! `child_concurrency` tasks at once. [`Pool::new`] uses one process per
//! core; [`Pool::builder`] configures everything else (see [`PoolBuilder`]).
//!
//! - [`apply(f, args)`](Pool::apply) runs one call; await it for the result.
//! - [`map(f, items)`](Pool::map) runs `f(item)` for each item;
//!   [`starmap(f, tuples)`](Pool::starmap) unpacks each tuple into the
//!   arguments. Both pull their input lazily, with a bounded window of tasks
//!   in flight, so a ten-million item iterator runs in bounded memory.
//! - Their [`PoolResult`] is three things: await it for a `Vec` in input
//!   order; read it as a `Stream` of each result in
//!   input order, as soon as that one is ready; or call
//!   [`.unordered()`](PoolResult::unordered) for `(index, result)` pairs as
//!   tasks complete.
//!
//! ```
//! use aiomp::{Pool, remote};
//! use futures_util::StreamExt;
//!
//! #[remote]
//! async fn add(a: u64, b: u64) -> u64 {
//!     a + b
//! }
//!
//! #[remote]
//! async fn double(x: u64) -> u64 {
//!     x * 2
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     let pool = Pool::builder()
//!         .processes(2)
//!         .child_concurrency(16)
//!         .build()
//!         .await?;
//!
//!     let three: u64 = pool.apply(add, (1, 2)).await?;
//!     let sums: Vec<u64> = pool.starmap(add, vec![(1, 2), (3, 4)]).await?;
//!     assert_eq!((three, sums), (3, vec![3, 7]));
//!
//!     // In input order, each as soon as it is ready.
//!     let mut results = pool.map(double, 0..100);
//!     let mut expected = 0;
//!     while let Some(result) = results.next().await {
//!         assert_eq!(result?, expected * 2);
//!         expected += 1;
//!     }
//!
//!     // As they complete, with each input's index.
//!     let mut total = 0;
//!     let mut results = pool.map(double, 0..100).unordered();
//!     while let Some((index, result)) = results.next().await {
//!         assert_eq!(result?, index as u64 * 2);
//!         total += 1;
//!     }
//!     assert_eq!(total, 100);
//!
//!     pool.close(); // no new work; what was submitted finishes
//!     pool.join().await?; // wait for the workers to exit
//!     Ok(())
//! }
//! ```
//!
//! Shutting down, the counterpart of `async with Pool() as pool:`:
//!
//! - [`close()`](Pool::close) then [`join()`](Pool::join) lets submitted work
//!   finish and waits for every worker to exit. `join` on an open pool is
//!   [`Error::PoolStillOpen`]; a call on a closed pool is
//!   [`Error::PoolClosed`].
//! - [`terminate()`](Pool::terminate) stops now: the workers get SIGTERM and
//!   pending calls fail with [`Error::PoolTerminated`].
//! - Dropping a pool kills and reaps its workers before `drop` returns, like
//!   aiomultiprocess's `__aexit__`: no process outlives the pool.
//!
//! A worker that dies (an abort, the OOM killer, a `SIGKILL` from outside)
//! fails exactly the tasks it had in flight with [`Error::WorkerDied`] and is
//! replaced; a slot whose worker dies at every start fails the pool with
//! [`Error::PoolFailed`] instead of respawning forever.
//!
//! Tasks are routed to `queue_count` queues by a [`Scheduler`], by default
//! [`RoundRobin`], weighted by the processes of each queue; the workers of
//! one queue share it, and a task goes to whichever has a free slot.
//!
//! # Start methods
//!
//! | method | how a worker starts | use it when |
//! | --- | --- | --- |
//! | [`Spawn`](StartMethod::Spawn) (default) | re-executes the binary: a fresh process | you want predictable children that share nothing but the channel |
//! | [`Fork`](StartMethod::Fork) | forks the caller: a copy of the parent, globals included | starts must be cheap, the parent is small and it holds no locks in other threads |
//! | [`Forkserver`](StartMethod::Forkserver) | forks from a single-threaded server started once (and restarted if it dies) | starts must be cheap (many one-shot `Worker`s, `max_tasks_per_child`) and the parent is multi-threaded or large |
//!
//! A fork costs time in proportion to the memory the parent holds: the
//! kernel copies its page tables. On a 2-core VM, a one-shot `Worker` took
//! 0.9 ms with fork from a parent holding little, 12.5 ms with 100 MiB
//! resident and 54 ms with 1 GiB; with forkserver 0.55 ms, and with spawn
//! 1.8 ms, whatever the parent held: the fork server is a fresh process of
//! the binary, started on first use, and stays small.
//!
//! [`set_start_method`] sets the method for every later pool and process
//! (`None` restores the default, spawn); a pool or process can name its own:
//!
//! ```
//! use aiomp::{Pool, StartMethod, Worker, remote, set_start_method};
//!
//! #[remote]
//! async fn pid() -> u32 {
//!     std::process::id()
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     set_start_method(Some(StartMethod::Forkserver));
//!     let a: u32 = Worker::new(pid).await?;
//!
//!     let pool = Pool::builder()
//!         .processes(1)
//!         .start_method(StartMethod::Fork) // this pool only
//!         .build()
//!         .await?;
//!     let b: u32 = pool.apply(pid, ()).await?;
//!     assert_ne!(a, b);
//!     set_start_method(None); // back to spawn
//!     Ok(())
//! }
//! ```
//!
//! The environment can set the default too: `AIOMP_START_METHOD=forkserver`
//! (or `spawn`, `fork`) is read by [`init`] (which `#[aiomp::main]` calls
//! first). With `forkserver` the server starts right there, forked from the
//! program while it is still single-threaded at the top of `main`, so the
//! first pool's workers are forked at once rather than after re-executing
//! the binary for the server.
//!
//! A forked child never touches the parent's tokio runtime (its threads do not
//! exist after a fork); it builds a fresh one. Locks that other parent threads
//! held at the fork stay held in the child: prefer `Forkserver` to `Fork` in a
//! busy multi-threaded parent.
//!
//! # Initializers
//!
//! An initializer is a `#[remote]` fn run once in each worker, with its
//! arguments, before that worker takes any task: the place to open a
//! connection pool, load a model or set up logging in the child. The pool's
//! [`build`](PoolBuilder::build) waits until every worker ran it; a replaced
//! or recycled worker runs it again. [`Process`] and [`Worker`] take one too.
//!
//! ```
//! use std::sync::OnceLock;
//!
//! use aiomp::{Pool, remote};
//!
//! static PREFIX: OnceLock<String> = OnceLock::new();
//!
//! #[remote]
//! fn setup(prefix: String) {
//!     PREFIX.set(prefix).unwrap();
//! }
//!
//! #[remote]
//! async fn label(n: u32) -> String {
//!     format!("{}-{n}", PREFIX.get().unwrap())
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     let pool = Pool::builder()
//!         .processes(2)
//!         .initializer(setup, ("job".to_owned(),))
//!         .build()
//!         .await?;
//!     assert_eq!(pool.map(label, 1..=2).await?, ["job-1", "job-2"]);
//!     Ok(())
//! }
//! ```
//!
//! An initializer that panics fails the worker's start: after three attempts
//! `build` returns the error, as [`Error::Remote`].
//!
//! # Exceptions
//!
//! aiomultiprocess turns every failure into a traceback string. aiomp keeps
//! failures typed:
//!
//! - A remote fn that returns `Result<T, E>` returns it as a value: the call
//!   gives `aiomp::Result<Result<T, E>>`, the outer layer for what went wrong
//!   around the call, the inner one for your function's own error.
//! - A panic fails only its own task, as [`Error::Remote`]: a [`RemoteError`]
//!   with the panic message, its location (`file:line:column`), the
//!   function's ID, the worker's pid, and a backtrace when the worker
//!   captured one (`RUST_BACKTRACE=1`). [`Error::is_panic`] and
//!   [`Error::as_remote`] look inside. The worker and its other tasks carry on.
//! - A worker that dies fails the tasks it had in flight with
//!   [`Error::WorkerDied`], with its pid and [`ExitStatus`]. A panic under
//!   `panic = "abort"` is such a death.
//! - A value postcard cannot encode fails its call with [`Error::Codec`],
//!   naming the function (see [Data](#data)).
//! - An exception handler, [`PoolBuilder::exception_handler`], is a
//!   `#[remote]` fn the worker runs with the [`RemoteError`] of every task that
//!   fails there (a panic or a codec error; not a cancellation, and not an
//!   `Err` your function returns): the place to report failures from inside
//!   the worker.
//!
//! ```
//! use aiomp::{Error, Pool, RemoteError, remote};
//!
//! #[remote]
//! async fn parse(text: String) -> Result<u32, String> {
//!     text.parse().map_err(|e| format!("{text:?}: {e}"))
//! }
//!
//! #[remote]
//! async fn explode() {
//!     panic!("out of cheese");
//! }
//!
//! #[remote]
//! async fn report(error: RemoteError) {
//!     eprintln!("worker {}: {} failed: {}", error.pid, error.function, error.message);
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     let pool = Pool::builder()
//!         .processes(1)
//!         .exception_handler(report)
//!         .build()
//!         .await?;
//!
//!     // Your function's own error comes back typed.
//!     assert_eq!(pool.apply(parse, ("42".to_owned(),)).await?, Ok(42));
//!     assert!(pool.apply(parse, ("x".to_owned(),)).await?.is_err());
//!
//!     // A panic is Error::Remote, with what a person needs to fix it.
//!     let error = pool.apply(explode, ()).await.unwrap_err();
//!     assert!(error.is_panic());
//!     let Error::Remote(panic) = &error else { unreachable!() };
//!     assert_eq!(panic.message, "out of cheese");
//!     assert!(panic.function.ends_with("explode"));
//!     assert!(panic.location.as_deref().unwrap_or_default().contains(".rs:"));
//!
//!     // The worker lives on.
//!     assert_eq!(pool.apply(parse, ("7".to_owned(),)).await?, Ok(7));
//!     Ok(())
//! }
//! ```
//!
//! # Choosing the worker runtime
//!
//! Each worker runs its tasks on a tokio runtime of its own,
//! [`WorkerRuntime::CurrentThread`] by default: one thread per worker, its
//! concurrency async, its parallelism coming from the number of processes.
//! That is the cheapest shape, and the right one for I/O-bound `async fn`s and
//! for CPU-bound plain `fn`s alike.
//!
//! [`WorkerRuntime::MultiThread(n)`](WorkerRuntime::MultiThread) gives each
//! worker a multi-thread runtime with `n` threads (the counterpart of
//! aiomultiprocess's `loop_initializer`): each worker then runs up to `n`
//! plain `fn` calls at once, and tasks that block for a while between awaits
//! do not hold up their neighbours. It suits work that shares one expensive
//! per-process resource (a loaded model, a large cache) among threads.
//!
//! ```
//! use aiomp::{Pool, WorkerRuntime, remote};
//!
//! #[remote]
//! fn crunch(n: u64) -> u64 {
//!     (0..n).map(|i| i * i % 7).sum()
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     let pool = Pool::builder()
//!         .processes(1)
//!         .worker_runtime(WorkerRuntime::MultiThread(2))
//!         .build()
//!         .await?;
//!     assert_eq!(pool.map(crunch, [10, 20]).await?, [crunch(10), crunch(20)]);
//!     Ok(())
//! }
//! ```
//!
//! Process and Worker always use a current-thread runtime.
//!
//! # Cancellation and timeouts
//!
//! Dropping a call cancels it: the tasks of an [`ApplyResult`],
//! [`PoolResult`] or [`Unordered`] that are still queued never start, and
//! those running are aborted in their worker. So `tokio::time::timeout`,
//! `tokio::select!` and dropping a stream half-read all clean up after
//! themselves. [`ApplyResult::timeout`] and [`PoolResult::timeout`] put a
//! deadline on a call and fail it with [`Error::Timeout`], cancelling what is
//! left.
//!
//! ```
//! use std::time::Duration;
//!
//! use aiomp::{Error, Pool, remote};
//!
//! #[remote]
//! async fn nap(ms: u64) -> u64 {
//!     tokio::time::sleep(Duration::from_millis(ms)).await;
//!     ms
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     let pool = Pool::builder().processes(1).build().await?;
//!
//!     let late = pool.apply(nap, (60_000,)).timeout(Duration::from_millis(20)).await;
//!     assert!(matches!(late, Err(Error::Timeout)));
//!
//!     let all = pool.map(nap, vec![60_000; 8]).timeout(Duration::from_millis(20)).await;
//!     assert!(matches!(all, Err(Error::Timeout)));
//!
//!     // Dropped by select!: cancelled too.
//!     tokio::select! {
//!         _ = pool.apply(nap, (60_000,)).into_future() => unreachable!(),
//!         _ = tokio::time::sleep(Duration::from_millis(20)) => {}
//!     }
//!
//!     // Nothing is left running in the worker.
//!     # let deadline = std::time::Instant::now() + Duration::from_secs(30);
//!     while pool.stats().workers[0].in_flight > 0 {
//!         # assert!(std::time::Instant::now() < deadline, "{:?}", pool.stats());
//!         tokio::time::sleep(Duration::from_millis(10)).await;
//!     }
//!     assert_eq!(pool.apply(nap, (1,)).await?, 1);
//!     Ok(())
//! }
//! ```
//!
//! An `async fn` is aborted at its next `.await`. A plain `fn` has no await
//! point: once started, it runs to the end in its worker and its result is
//! thrown away. [`Process::join`] and [`Worker::join`] are cancel safe the
//! other way round: dropping the wait leaves the child running, and
//! [`join_timeout`](Process::join_timeout) gives up waiting without stopping
//! it.
//!
//! # Observability
//!
//! [`Pool::stats`] takes a [`PoolStats`] snapshot: tasks queued (submitted,
//! waiting for a worker slot), workers restarted after dying and recycled
//! after `max_tasks_per_child`, tasks completed and failed over the pool's
//! life, and for each live worker ([`WorkerStats`]) its pid, tasks in flight,
//! completed and failed. [`Pool::worker_pids`] lists the live workers.
//!
//! The runtime reports its life cycle as [`tracing`](https://docs.rs/tracing)
//! events under the target `aiomp_runtime`; install any subscriber to see
//! them (`RUST_LOG=aiomp_runtime=debug` with `tracing-subscriber`'s
//! `EnvFilter`):
//!
//! | level | message | fields |
//! | --- | --- | --- |
//! | INFO | `aiomp pool started` | `processes`, `queues` |
//! | INFO | `aiomp pool closed: finishing queued work`, `aiomp pool terminated`, `aiomp pool stopped: every worker exited` | |
//! | DEBUG | `aiomp worker started` | `slot`, `pid` |
//! | DEBUG | `aiomp worker exited` | `slot`, `pid`, `status` |
//! | DEBUG | `aiomp worker recycled` | `slot`, `pid`, `completed` |
//! | WARN | `aiomp worker died; replacing it` | `slot`, `pid`, `status`, `lost` (tasks that failed with it) |
//! | WARN | `aiomp worker failed to start; retrying` | `slot`, `attempt`, `error` |
//! | ERROR | `aiomp pool failed` (a slot could not start a worker) | `slot`, `error` |
//! | DEBUG | `aiomp task failed` | `pid`, `task`, `failed` (its calls that failed) |
//! | DEBUG | `aiomp fork server started` | `pid` |
//! | WARN | `aiomp fork server exited; the next start launches a new one` | `pid`, `status` |
//!
//! The messages and fields are for people and log searches; they may change
//! between versions, unlike the API.
//!
//! A worker slot's events are inside the span `aiomp_worker_slot{slot}`.
//! Workers inherit the parent's stdout and stderr, so what tasks print shows
//! up as usual.
//!
//! # Performance tuning
//!
//! - **Concurrency.** Total concurrency is `processes × child_concurrency`.
//!   For I/O-bound tasks, throughput is about total concurrency ÷ job time:
//!   2 processes × 64 tasks of 10 ms each is ~12,800 tasks/s. Raise
//!   `child_concurrency` before `processes`.
//! - **CPU-bound work.** Use a plain `fn` and `processes` = cores. A
//!   current-thread worker runs one plain `fn` at a time, and the pool gives
//!   it only that one, whatever `child_concurrency` is, and one more on
//!   standby while the shared queue holds at least two calls per worker: the
//!   worker starts that one the moment the running one returns, without
//!   waiting a round trip for the parent, and the last calls of a map still
//!   go to whichever worker is free first. A worker that dies hands back the
//!   call it had on standby, unstarted, to run elsewhere. CPU-heavy code
//!   inside an `async fn` gets no such care: it blocks its worker's other
//!   tasks.
//! - **Queues.** All workers of a queue take tasks from it, so the load on
//!   each queue is throughput ÷ `queue_count`. One queue is enough for most
//!   pools (the W1 benchmark passes ~20 million trivial calls/s through one
//!   queue on 2 cores); add queues, up to `processes`, when profiling shows
//!   contention on it, or to route tasks with a custom [`Scheduler`].
//! - **Maps of tiny calls.** A `map` sends consecutive calls as one chunk:
//!   their arguments in one buffer, one frame, one task in the worker, their
//!   results in one buffer back. A worker holds at most `child_concurrency`
//!   calls, running or waiting (so that a crash fails no more than that), and
//!   a chunk is at most a quarter of that. With the default 16, a chunk is 4
//!   calls; for maps of thousands of calls of a microsecond each, raise
//!   `child_concurrency` into the thousands (W1 runs with 4096: chunks of
//!   1024 calls, ~20 million calls/s on 2 cores).
//! - **One call at a time.** A call whose queue is empty goes straight to a
//!   worker with free slots, its request written by the calling thread, and
//!   a round trip costs about what a bare socket ping-pong does. A call
//!   awaited in `block_on` of a multi-thread runtime (the body of
//!   `#[tokio::main]`) spins for its reply for up to
//!   [`block_on_spin`](PoolBuilder::block_on_spin) (150 µs), reading the
//!   worker's channel itself, rather than parking until a runtime thread,
//!   itself woken, reads the reply and wakes it: each wake-up is tens of µs
//!   on a virtual machine. For sequences of short calls, one at a time, set
//!   [`worker_spin`](PoolBuilder::worker_spin) too (50 µs): a worker with
//!   no call running then watches its channel before it sleeps, and the
//!   next call does not have to wake it. It is off by default, as its CPU
//!   slowed maps of CPU-bound calls on a machine short of CPU. Both spins
//!   call `sched_yield` on each turn and back off when they miss. W2
//!   measured 25–48 µs a call from `block_on`, about 45 µs from a spawned
//!   task or a current-thread runtime (`#[aiomp::main(flavor =
//!   "current_thread")]`) and 22–30 µs with `worker_spin(50 µs)` as well,
//!   against 61–106 µs with both spins off and a ping-pong of about 50–60
//!   µs. Set `block_on_spin` to `Duration::ZERO` where CPU matters more than
//!   latency, or where a `LocalSet` or another executor runs futures beside
//!   the call on the `block_on` thread.
//! - **Calls that complete in waves.** When a worker's calls complete
//!   together (timers, a rate limit lifting, a batch upstream), the worker
//!   idles while their results reach the parent and its next calls come
//!   back: a few hundred µs each time on a loaded machine.
//!   [`prefetch`](PoolBuilder::prefetch) lets it hold that many more calls,
//!   waiting in the worker, that start the moment running ones complete.
//!   At most `child_concurrency` still run at once; a worker that dies fails
//!   the waiting calls too, and they do not move to an idle worker, so leave
//!   it at 0 for long CPU-bound calls. W3 (10 ms sleeps, 2 × 256) runs at
//!   1.036–1.055× its ideal with `prefetch(256)`, against 1.06–1.08×
//!   without: as fast as the same sleeps in one process.
//! - **Recycling.** [`max_tasks_per_child`](PoolBuilder::max_tasks_per_child)
//!   replaces a worker after that many tasks, which resets whatever it leaked.
//!   A new worker costs milliseconds (least with forkserver), so recycle
//!   after hundreds or thousands of tasks, not every one.
//! - **Short-lived workers.** One-shot [`Worker`]s and frequent recycling
//!   start fastest with [`StartMethod::Forkserver`] (or `Fork`). Run the
//!   program with `AIOMP_START_METHOD=forkserver` to have [`init`] fork the
//!   server at the top of `main`, so that even the first pool's workers are
//!   forked rather than executed.
//! - **Byte buffers.** See [Byte buffers](#byte-buffers).
//!
//! BENCHMARKS.md in the repository measures all of this against
//! aiomultiprocess, `multiprocessing.Pool` and procspawn.
//!
//! # Data
//!
//! Arguments and results travel as [postcard](https://docs.rs/postcard):
//! compact and fast, but it cannot carry every `serde` shape. It rejects
//! `#[serde(flatten)]`, `#[serde(untagged)]` enums, `skip_serializing_if`,
//! and self-describing values such as `serde_json::Value`. Such a value fails
//! its own call with [`Error::Codec`] naming the function and the cause;
//! nothing else is affected. Wrap it in [`Json`] to send it as JSON instead,
//! at JSON's cost for that value only:
//!
//! ```
//! use aiomp::{Json, Pool, remote};
//!
//! #[remote]
//! async fn count_keys(doc: Json<serde_json::Value>) -> usize {
//!     doc.as_object().map_or(0, |object| object.len())
//! }
//!
//! #[aiomp::main]
//! async fn main() -> aiomp::Result<()> {
//!     let pool = Pool::builder().processes(1).build().await?;
//!     let doc = serde_json::json!({ "a": 1, "b": [2, 3] });
//!     assert_eq!(pool.apply(count_keys, (Json(doc),)).await?, 2);
//!     Ok(())
//! }
//! ```
//!
//! The largest frame either side accepts, and so the largest encoded argument
//! tuple or result, is bounded; raise the bound with
//! [`max_frame_bytes`](PoolBuilder::max_frame_bytes) for very large values.
//!
//! ## Byte buffers
//!
//! For binary data use [`Buffer`]: aiomp writes its bytes to the channel
//! from where they lie, and a received one shares the frame it arrived in,
//! so a large buffer is not copied in user space on either side (4.3 GB/s
//! in BENCHMARKS.md's W6, 90% of a one-way socket stream). [`serde_bytes::ByteBuf`](https://docs.rs/serde_bytes)
//! (or `#[serde(with = "serde_bytes")]` on a field) is the portable choice,
//! one block but copied into and out of each frame (3.0 GB/s). A plain
//! `Vec<u8>` is the trap: serde encodes it element by element (0.44 GB/s).
//!
//! ```
//! use aiomp::Buffer;
//! use serde_bytes::ByteBuf;
//!
//! #[aiomp::remote]
//! async fn checksum(data: Buffer) -> u64 {
//!     data.iter().map(|&b| u64::from(b)).sum()
//! }
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Image {
//!     name: String,
//!     pixels: Buffer,
//!     #[serde(with = "serde_bytes")]
//!     thumbnail: Vec<u8>,
//! }
//!
//! # let data = ByteBuf::from(vec![1, 2, 3]);
//! # let image = Image { name: "a".into(), pixels: Buffer::from(data.to_vec()), thumbnail: data.to_vec() };
//! # assert_eq!(image.pixels.len(), 3);
//! ```
//!
//! # Coming from aiomultiprocess
//!
//! | aiomultiprocess | aiomp |
//! | --- | --- |
//! | `async def f(...)` | `#[remote] async fn f(...)` (or a plain `fn`) |
//! | `Pool(processes=4, childconcurrency=16)` | `Pool::builder().processes(4).child_concurrency(16)` |
//! | `maxtasksperchild=`, `queuecount=`, `scheduler=` | `.max_tasks_per_child(n)`, `.queue_count(n)`, `.scheduler(s)` |
//! | `initializer=f, initargs=(a,)` | `.initializer(f, (a,))` |
//! | `exception_handler=h` | `.exception_handler(h)` |
//! | `loop_initializer=` | `.worker_runtime(WorkerRuntime::MultiThread(n))` |
//! | `await pool.apply(f, (a, b))` | `pool.apply(f, (a, b)).await?` |
//! | `await pool.map(f, items)`, `async for r in pool.map(...)` | `pool.map(f, items).await?`, `while let Some(r) = results.next().await` |
//! | `await pool.starmap(f, tuples)` | `pool.starmap(f, tuples).await?` |
//! | `async with Pool() as pool:` | `pool.close(); pool.join().await?`, or drop the pool |
//! | `Process(target=f, args=(a,), name=, daemon=)` | `Process::with_args(f, (a,)).name(..).daemon(..)` |
//! | `p.name`, `p.daemon` | `p.get_name()`, `p.is_daemon()` |
//! | `await p.join(timeout)` | `p.join_timeout(d).await` |
//! | `await Worker(target=f, args=(a,))`, `w.result` | `Worker::with_args(f, (a,)).await?`, `w.result()?` |
//! | `set_start_method("fork")`, `set_start_method(None)` | `set_start_method(Some(StartMethod::Fork))`, `set_start_method(None)` |
//! | `class S(Scheduler)`, `RoundRobin()` | `impl Scheduler for S`, `RoundRobin::new()` |
//! | `kwds=` | none: pass a struct |
#![forbid(unsafe_code)]

/// Marks a function that can run in a worker process.
///
/// The function stays callable locally exactly as written. It is registered
/// under a stable ID, its module path and name (or `#[remote(id = "...")]`),
/// which is what crosses the process boundary. Arguments and the return value
/// must be `Serialize + DeserializeOwned + Send + 'static`.
///
/// ```
/// #[aiomp::remote]
/// async fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// #[aiomp::remote(id = "crunch-v1")]
/// fn crunch(n: u64) -> u64 {
///     (0..n).map(|i| i * i % 7).sum()
/// }
///
/// assert_eq!(crunch(3), 0 + 1 + 4);
/// ```
///
/// Misuse is a compile error that says the fix:
///
/// ```compile_fail
/// #[aiomp::remote]
/// async fn greet(name: &str) -> String {
///     format!("hello {name}")
/// }
/// ```
pub use aiomp_macros::remote;

/// Starts `main` in a tokio runtime, after entering worker mode if this
/// process is a worker. A drop-in for `#[tokio::main]`: it accepts
/// `flavor = "current_thread" | "multi_thread"` (the default) and
/// `worker_threads = N`.
///
/// The first thing the generated `main` does is [`init()`]: in a spawned
/// worker, that serves tasks and exits, so the body never runs there. See
/// [Entering worker mode](crate#entering-worker-mode).
///
/// ```
/// #[aiomp::main(flavor = "current_thread")]
/// async fn main() {
///     // create pools and workers here
/// }
/// ```
///
/// # Panics
///
/// If the tokio runtime cannot be built, as `#[tokio::main]` does.
pub use aiomp_macros::main;

/// Runs an async test in a tokio runtime, and lets the test binary host
/// workers. A drop-in for `#[tokio::test]`; nothing else is needed in the test file.
///
/// A spawned worker re-runs the test binary with this test's exact name,
/// and the wrapper serves tasks instead of running the body. It accepts
/// `flavor = "current_thread"` (the default) or `"multi_thread"` and
/// `worker_threads = N`.
///
/// ```
/// #[aiomp::remote]
/// async fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// #[aiomp::test]
/// async fn doubles_in_a_worker() {
///     let pool = aiomp::Pool::builder().processes(1).build().await.unwrap();
///     assert_eq!(pool.apply(double, (21,)).await.unwrap(), 42);
/// }
/// # fn main() {}
/// ```
///
/// # Panics
///
/// If the tokio runtime cannot be built, as `#[tokio::test]` does.
pub use aiomp_macros::test;

pub use aiomp_runtime::{
    ApplyResult, AsyncFn, BlockingFn, Buffer, Error, ExitStatus, Json, Pool, PoolBuilder, PoolResult, PoolStats,
    Process, QueueId, RemoteError, RemoteErrorKind, RemoteFn, Result, RoundRobin, START_METHOD_ENV, Scheduler,
    StartMethod, TaskId, Unordered, Worker, WorkerRuntime, WorkerStats, get_start_method, init, set_start_method,
};

#[doc(hidden)]
pub mod __private {
    //! Not public API. Used by generated code.
    pub use aiomp_runtime::__private::*;
}
