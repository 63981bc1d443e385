//! `Process` and `Worker`: one function, one child process.
//!
//! `start` launches the child at once (so `pid` is known) and hands the rest
//! (handshake, the call, waiting for the exit) to a task on the current tokio
//! runtime, so the child makes progress whether or not anyone awaits `join`.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::Shared;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::chunk::Encoded;
use crate::codec::DEFAULT_MAX_FRAME;
use crate::error::{Error, Result};
use crate::exit::ExitStatus;
use crate::launch::{StartMethod, get_start_method, launch};
use crate::link::{Answer, Job, Link, LinkConfig};
use crate::os_child::OsChild;
use crate::protocol::{Call, RuntimeFlavor, Settings};
use crate::registry::FunctionIndex;
use crate::remote_fn::{RemoteFn, decode_output, encode_call, function_index, push_call_args};

/// How long a child may take to answer the handshake and run its initializer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished run left behind.
#[derive(Debug, Clone)]
struct Finished {
    answer: Arc<Result<Bytes, Error>>,
    status: ExitStatus,
}

/// A run: talking to the child until it is done, and reaping it. A task
/// drives it, and so does whoever awaits it first (whichever runs first):
/// a `join` right after the start does not wait for that task's thread.
type Run = Shared<Pin<Box<dyn Future<Output = Finished> + Send>>>;

/// A child process running one call.
struct Running {
    child: Arc<OsChild>,
    run: Run,
    /// Set when this handle terminated or killed the child itself.
    stopped: bool,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("child", &self.child)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum State {
    New,
    Running(Running),
    Closed,
}

/// The call a process runs: its function, and its arguments laid out as a
/// chunk of one call, in pieces (a large `Buffer` by reference).
#[derive(Debug)]
struct Target {
    function: FunctionIndex,
    args: Vec<Bytes>,
}

impl Target {
    fn encode<Args: Serialize>(function: FunctionIndex, args: &Args) -> Result<Target> {
        let mut encoded = Encoded::default();
        push_call_args(function, args, &mut encoded)?;
        Ok(Target {
            function,
            args: encoded.into_pieces(),
        })
    }
}

/// What `Process` and `Worker` share: the call, the settings and the child.
#[derive(Debug)]
struct Handle {
    name: Option<String>,
    daemon: bool,
    method: Option<StartMethod>,
    target: Result<Target>,
    initializer: Option<Result<Call>>,
    state: State,
}

impl Handle {
    fn new<F, Args, M>(args: &Args) -> Handle
    where
        F: RemoteFn<Args, M>,
        Args: Serialize,
    {
        Handle {
            name: None,
            daemon: false,
            method: None,
            target: function_index::<F>().and_then(|f| Target::encode(f, args)),
            initializer: None,
            state: State::New,
        }
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn start(&mut self) -> Result<()> {
        match self.state {
            State::New => {}
            State::Running(_) => return Err(Error::InvalidState("process was already started")),
            State::Closed => return Err(Error::InvalidState("process was closed")),
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::InvalidState("starting a process needs a tokio runtime: call start() from async code")
        })?;
        let target = self.target.as_ref().map_err(Error::duplicate)?;
        let initializer = match &self.initializer {
            Some(Ok(call)) => Some(call.clone()),
            Some(Err(e)) => return Err(e.duplicate()),
            None => None,
        };
        let config = LinkConfig {
            method: self.method.unwrap_or_else(get_start_method),
            settings: Settings {
                runtime: RuntimeFlavor::CurrentThread,
                initializer,
                exception_handler: None,
                abort_on_parent_exit: self.daemon,
                max_frame: DEFAULT_MAX_FRAME,
                slots: None,
                // One call: nothing follows it.
                idle_spin: Duration::ZERO,
            },
            start_timeout: START_TIMEOUT,
            on_complete: None,
            terminating: Arc::new(AtomicBool::new(false)),
            buffers: None,
        };
        let (reply, answer) = oneshot::channel();
        let function = target.function;
        let job = Job {
            ids: 0..1,
            slots: 1,
            concurrency: 1,
            blocking: false,
            function: target.function,
            args: target.args.clone(),
            reply,
        };
        // The call and the drain go out with the greeting (or the handshake).
        let greeting = Link::greeting(&config, Some(&job))?;
        let launched = {
            let _guard = runtime.enter();
            launch(config.method, &greeting.bytes)?
        };
        let only_greeted = greeting.carries_only;
        let child = Arc::clone(&launched.child);
        let run = async move {
            let child = Arc::clone(&launched.child);
            let answer = match Link::connect(&config, launched, Some(job), only_greeted).await {
                Ok((link, end)) => {
                    let answer: Answer = answer
                        .await
                        .unwrap_or(Err(Error::InvalidState("the worker's link dropped the task")));
                    // One task, one call: its only result.
                    let answer = answer.and_then(|results| results.into_single(function));
                    let _ = end.await;
                    drop(link);
                    answer
                }
                Err(error) => Err(error),
            };
            let status = child.wait().await;
            Finished {
                answer: Arc::new(answer),
                status,
            }
        };
        let run: Run = (Box::pin(run) as Pin<Box<dyn Future<Output = Finished> + Send>>).shared();
        runtime.spawn(run.clone());
        self.state = State::Running(Running {
            child,
            run,
            stopped: false,
        });
        Ok(())
    }

    /// Waits for the run to finish, starting it first if needed.
    async fn finished(&mut self) -> Result<Finished> {
        if let State::New = self.state {
            self.start()?;
        }
        let running = match &mut self.state {
            State::Running(running) => running,
            State::New => unreachable!("started above"),
            State::Closed => return Err(Error::InvalidState("process was closed")),
        };
        let finished = running.run.clone().await;
        match &*finished.answer {
            // This handle stopped it (maybe before the handshake completed).
            Err(_) if running.stopped && matches!(finished.status, ExitStatus::Signal(_)) => {}
            Err(e) => return Err(e.duplicate()),
            Ok(_) => {}
        }
        Ok(finished)
    }

    fn running(&self) -> Option<&Running> {
        match &self.state {
            State::Running(running) => Some(running),
            _ => None,
        }
    }

    fn pid(&self) -> Option<u32> {
        self.running().map(|r| r.child.pid())
    }

    fn is_alive(&self) -> bool {
        self.running().is_some_and(|r| r.child.try_wait().is_none())
    }

    fn exitcode(&self) -> Option<i32> {
        self.running().and_then(|r| r.child.try_wait()).map(ExitStatus::code)
    }

    fn signal(&mut self, signal: i32) -> Result<()> {
        match &mut self.state {
            State::Running(running) => {
                running.stopped = true;
                running.child.signal(signal).map_err(|source| Error::Io {
                    action: "signalling the process",
                    source,
                })
            }
            State::New => Err(Error::InvalidState("process was never started")),
            State::Closed => Err(Error::InvalidState("process was closed")),
        }
    }

    fn close(&mut self) -> Result<()> {
        if self.is_alive() {
            return Err(Error::InvalidState("cannot close a process that is still running"));
        }
        self.state = State::Closed;
        Ok(())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let State::Running(running) = &self.state {
            if self.daemon {
                running.child.kill_and_reap();
            }
        }
    }
}

macro_rules! handle_methods {
    () => {
        /// Sets the process's name (default: empty). Read it back with
        /// `get_name()`: Rust has no overloading, so the builder keeps `name`.
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.handle.name = Some(name.into());
            self
        }

        /// Makes it a daemon: it is killed when this handle is dropped, and
        /// aborts its work if the parent process goes away. A non-daemon
        /// process finishes its call even then (as long as the tokio runtime
        /// that started it is running). Read it back with `is_daemon()`.
        pub fn daemon(mut self, daemon: bool) -> Self {
            self.handle.daemon = daemon;
            self
        }

        /// Runs `f(args)` in the child before the target (a `#[remote]` fn):
        /// per-process set-up. If it panics, the target never runs and
        /// `join` returns its [`Error::Remote`].
        pub fn initializer<F, Args, M>(mut self, _f: F, args: Args) -> Self
        where
            F: RemoteFn<Args, M>,
            Args: Serialize,
        {
            self.handle.initializer = Some(function_index::<F>().and_then(|f| encode_call(f, &args)));
            self
        }

        /// Starts the child with `method` instead of the global one
        /// ([`set_start_method`](crate::set_start_method)).
        pub fn start_method(mut self, method: StartMethod) -> Self {
            self.handle.method = Some(method);
            self
        }

        /// The process's name, as set by `name` (empty by default).
        pub fn get_name(&self) -> &str {
            self.handle.name()
        }

        /// Whether it is a daemon, as set by `daemon`.
        pub fn is_daemon(&self) -> bool {
            self.handle.daemon
        }

        /// Starts the child process. Must be called within a tokio runtime,
        /// which then drives the child (its handshake, its call, its exit)
        /// whether or not anyone awaits `join`. `pid` is known on return.
        ///
        /// # Errors
        ///
        /// [`Error::InvalidState`] if it was already started or closed, or
        /// when called outside a tokio runtime; [`Error::NotRegistered`] and
        /// [`Error::Codec`] for a target that cannot be sent; [`Error::Spawn`]
        /// if the OS refused to start it.
        pub fn start(&mut self) -> Result<()> {
            self.handle.start()
        }

        /// The child's process ID, once started.
        pub fn pid(&self) -> Option<u32> {
            self.handle.pid()
        }

        /// Whether the child is running.
        pub fn is_alive(&self) -> bool {
            self.handle.is_alive()
        }

        /// `None` while running (or never started); the exit code once it
        /// exited, or `-N` if signal `N` killed it, as in Python.
        pub fn exitcode(&self) -> Option<i32> {
            self.handle.exitcode()
        }

        /// Sends SIGTERM. A later `join` returns once it has exited; a child
        /// stopped by its own handle is not an error for `join`.
        ///
        /// # Errors
        ///
        /// [`Error::InvalidState`] if it was never started or was closed;
        /// [`Error::Io`] if the signal could not be sent.
        pub fn terminate(&mut self) -> Result<()> {
            self.handle.signal(libc::SIGTERM)
        }

        /// Sends SIGKILL. A later `join` returns once it has exited; a child
        /// stopped by its own handle is not an error for `join`.
        ///
        /// # Errors
        ///
        /// [`Error::InvalidState`] if it was never started or was closed;
        /// [`Error::Io`] if the signal could not be sent.
        pub fn kill(&mut self) -> Result<()> {
            self.handle.signal(libc::SIGKILL)
        }

        /// Releases the handle's resources. Afterwards every other call on the
        /// handle is refused.
        ///
        /// # Errors
        ///
        /// [`Error::InvalidState`] while the child is still running.
        pub fn close(&mut self) -> Result<()> {
            self.handle.close()
        }
    };
}

/// A child process running one `#[remote]` function, for a job whose exit
/// status is enough: aiomultiprocess's `Process`.
///
/// Build it with [`new`](Process::new) or [`with_args`](Process::with_args)
/// and the builder methods, then [`start`](Process::start) it and
/// [`join`](Process::join) it, or just `.await` it (it is
/// [`IntoFuture`]: that starts it if needed and joins it). The child exits
/// with code 0 when the function returned, 1 when it panicked.
///
/// ```
/// use aiomp::{Process, remote};
///
/// #[remote]
/// async fn job(name: String) {
///     println!("running {name}");
/// }
///
/// #[aiomp::main]
/// async fn main() -> aiomp::Result<()> {
///     let mut p = Process::with_args(job, ("job-1".to_owned(),)).name("job-1");
///     p.start()?;
///     assert!(p.pid().is_some());
///     p.join().await?;
///     assert_eq!(p.exitcode(), Some(0));
///     assert_eq!(p.get_name(), "job-1");
///
///     Process::with_args(job, ("job-2".to_owned(),)).await?; // start and join
///     Ok(())
/// }
/// ```
#[derive(Debug)]
#[must_use = "a process does nothing until started or joined"]
pub struct Process {
    handle: Handle,
}

impl Process {
    /// A process that will run `f()`.
    pub fn new<F, M>(f: F) -> Process
    where
        F: RemoteFn<(), M>,
    {
        Process::with_args(f, ())
    }

    /// A process that will run `f(args...)`; `args` is the argument tuple.
    pub fn with_args<F, Args, M>(_f: F, args: Args) -> Process
    where
        F: RemoteFn<Args, M>,
        Args: Serialize,
    {
        Process {
            handle: Handle::new::<F, Args, M>(&args),
        }
    }

    handle_methods!();

    /// Waits for the child to finish, starting it first if needed.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] if the function panicked, [`Error::WorkerDied`] if the
    /// child died on its own (not by this handle's `terminate` or `kill`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the child keeps running, and a later `join` picks it up.
    pub async fn join(&mut self) -> Result<()> {
        self.handle.finished().await.map(drop)
    }

    /// [`join`](Self::join) with a deadline: [`Error::Timeout`] when it passes,
    /// and the child keeps running.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the deadline passes; otherwise as `join`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as `join`: the child keeps running.
    pub async fn join_timeout(&mut self, timeout: Duration) -> Result<()> {
        tokio::time::timeout(timeout, self.join())
            .await
            .map_err(|_| Error::Timeout)?
    }
}

impl IntoFuture for Process {
    type Output = Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

    fn into_future(mut self) -> Self::IntoFuture {
        Box::pin(async move { self.join().await })
    }
}

/// A child process running one `#[remote]` function, returning its result:
/// aiomultiprocess's `Worker`.
///
/// It has [`Process`]'s builder methods and getters; [`join`](Worker::join)
/// returns the function's result, and [`result`](Worker::result) gives it
/// again afterwards. Awaiting a `Worker` starts it if needed and joins it.
///
/// ```
/// #[aiomp::remote]
/// async fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// #[aiomp::main]
/// async fn main() -> aiomp::Result<()> {
///     let v: u64 = aiomp::Worker::with_args(double, (21,)).await?;
///     assert_eq!(v, 42);
///
///     let mut worker = aiomp::Worker::with_args(double, (4,));
///     assert!(worker.result().is_err()); // Error::NotCompleted
///     assert_eq!(worker.join().await?, 8);
///     assert_eq!(*worker.result()?, 8);
///     Ok(())
/// }
/// ```
#[must_use = "a worker does nothing until started or awaited"]
pub struct Worker<R> {
    handle: Handle,
    result: OnceLock<R>,
    _output: PhantomData<fn() -> R>,
}

impl<R: std::fmt::Debug> std::fmt::Debug for Worker<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("handle", &self.handle)
            .field("result", &self.result.get())
            .finish()
    }
}

impl<R: DeserializeOwned + Send + 'static> Worker<R> {
    /// A worker that will run `f()`.
    pub fn new<F, M>(f: F) -> Worker<R>
    where
        F: RemoteFn<(), M, Output = R>,
    {
        Worker::with_args(f, ())
    }

    /// A worker that will run `f(args...)`; `args` is the argument tuple.
    pub fn with_args<F, Args, M>(_f: F, args: Args) -> Worker<R>
    where
        F: RemoteFn<Args, M, Output = R>,
        Args: Serialize,
    {
        Worker {
            handle: Handle::new::<F, Args, M>(&args),
            result: OnceLock::new(),
            _output: PhantomData,
        }
    }

    handle_methods!();

    /// Waits for the result, starting the worker first if needed. A later
    /// `join` returns the same result again.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] if the function panicked, [`Error::WorkerDied`] if the
    /// child died, [`Error::Codec`] if the result did not decode.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the child keeps running, and a later `join` picks it up.
    pub async fn join(&mut self) -> Result<R> {
        let finished = self.handle.finished().await?;
        let Ok(bytes) = &*finished.answer else {
            return Err(Error::InvalidState(
                "the worker was stopped before it returned a result",
            ));
        };
        let function = self.handle.target.as_ref().map_or(0, |target| target.function);
        if self.result.get().is_none() {
            let _ = self.result.set(decode_output(function, bytes, bytes)?);
        }
        decode_output(function, bytes, bytes)
    }

    /// [`join`](Self::join) with a deadline: [`Error::Timeout`] when it passes,
    /// and the child keeps running.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the deadline passes; otherwise as `join`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as `join`: the child keeps running.
    pub async fn join_timeout(&mut self, timeout: Duration) -> Result<R> {
        tokio::time::timeout(timeout, self.join())
            .await
            .map_err(|_| Error::Timeout)?
    }

    /// The result of a completed `join`; [`Error::NotCompleted`] before that.
    pub fn result(&self) -> Result<&R> {
        self.result.get().ok_or(Error::NotCompleted)
    }
}

impl<R: DeserializeOwned + Send + 'static> IntoFuture for Worker<R> {
    type Output = Result<R>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<R>> + Send>>;

    fn into_future(mut self) -> Self::IntoFuture {
        Box::pin(async move { self.join().await })
    }
}
