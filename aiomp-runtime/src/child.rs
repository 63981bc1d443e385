//! The child side: entering worker mode, the handshake, and serving tasks.
//!
//! A worker runs its own tokio runtime with many tasks in flight. Each task
//! is a tokio task: a panic fails that task alone, a cancel aborts it. The
//! worker exits when the parent asks it to drain and it holds nothing more,
//! or when the parent's end of the channel closes.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};

use crate::buffer;
use crate::buffers::Buffers;
use crate::chunk::{ArgsReader, Encoded, ResultsWriter};
use crate::codec::{self, DEFAULT_MAX_FRAME};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::idle_spin;
use crate::launch::{TOKEN_BYTES, Token, WORKER_ENV, parse_token, serve_fork_requests};
use crate::panic::{self, PanicReport};
use crate::protocol::{CodecAction, Hello, Outcome, Reply, Request, RuntimeFlavor, Settings, Task, TaskError, Welcome};
use crate::registry::{FunctionIndex, InvokeError, Invoker, Registry, Started};
use crate::sys;
use crate::transport::{self, ChannelError, FrameWriter};

/// Set once this process serves as a worker.
static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// How long a child waits for the parent's first frame.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// The exit code of a child that was started as a worker but reached code
/// that spawns workers without entering worker mode first.
pub(crate) const EXIT_STRAY_CHILD: i32 = 86;

/// The exit code of a child whose channel or handshake failed.
pub(crate) const EXIT_HANDSHAKE: i32 = 87;

/// How a worker that must not outlive its parent learns that it exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParentWatch {
    /// A thread of the worker's waits on the parent's pidfd.
    Pidfd,
    /// The kernel kills the worker (`PR_SET_PDEATHSIG`): its parent in the
    /// kernel's eyes is the parent's main thread, which lives exactly as
    /// long as the parent does. Not so where any other thread started it:
    /// tokio retires idle threads, and the signal would fire with them.
    MainThreadDeath,
}

/// Serves as a worker, never returning, if the parent started this process as one.
pub(crate) fn serve_if_child() {
    let Some(value) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    if IN_WORKER.swap(true, Ordering::SeqCst) {
        // A worker's own code called init() again: it is already serving.
        return;
    }
    let parsed = value.to_str().and_then(|v| {
        let mut parts = v.splitn(3, ':');
        let role = parts.next()?;
        Some((role, parts.next()?.parse::<RawFd>().ok()?, parse_token(parts.next()?)?))
    });
    let Some((role, fd, token)) = parsed else {
        die(EXIT_HANDSHAKE, &format!("{WORKER_ENV} is malformed: {value:?}"));
    };
    let stream = match sys::adopt_inherited_socket(fd) {
        Ok(fd) => UnixStream::from(fd),
        Err(e) => die(
            EXIT_HANDSHAKE,
            &format!("{WORKER_ENV} is set but names no inherited channel: {e}"),
        ),
    };
    let parent = std::os::unix::process::parent_id();
    match role {
        // `init` may run inside the program's runtime (`#[tokio::main]`),
        // which a worker's runtime cannot start within.
        "spawn" => on_a_clean_thread(move || serve(stream, &token, parent, ParentWatch::Pidfd, None)),
        "forkserver" => {
            // The fds that runtime opened (tokio's process-wide ones among
            // them) must stay open in the workers, for theirs to start.
            let kept = if in_tokio_runtime() {
                sys::open_fds().unwrap_or_default()
            } else {
                Vec::new()
            };
            on_a_clean_thread(move || serve_fork_requests(stream, &token, kept))
        }
        other => die(EXIT_HANDSHAKE, &format!("{WORKER_ENV} names an unknown role {other:?}")),
    }
}

/// Stops a process that was started as a worker but is about to start
/// workers of its own without ever having entered worker mode: it would
/// otherwise run the program's own work, and spawn without end.
pub(crate) fn refuse_if_stray_child() {
    if std::env::var_os(WORKER_ENV).is_some() && !IN_WORKER.load(Ordering::SeqCst) {
        die(
            EXIT_STRAY_CHILD,
            "this process was started as an aiomp worker but reached the program's own code; \
             start `main` with #[aiomp::main] or call aiomp::init() first thing, and use #[aiomp::test] in tests",
        );
    }
}

/// Prints why this child gives up, and exits with `code`.
pub(crate) fn die(code: i32, message: &str) -> ! {
    eprintln!("aiomp worker {}: {message}", std::process::id());
    std::process::exit(code)
}

/// Serves a parent that forked this process (directly or through the fork
/// server), never returning.
///
/// `parent` is the pid of the process it serves, read before the fork.
pub(crate) fn serve_forked(stream: UnixStream, token: &Token, parent: u32, watch: ParentWatch) -> ! {
    IN_WORKER.store(true, Ordering::SeqCst);
    // The forking thread may have been a runtime's thread.
    let token = *token;
    on_a_clean_thread(move || serve(stream, &token, parent, watch, None))
}

/// Whether the calling thread is inside a tokio runtime, as its
/// thread-locals say (in a child forked from a runtime's thread too).
pub(crate) fn in_tokio_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Runs `serve`, which exits the process, on this thread, unless this
/// thread is inside a tokio runtime: its thread-locals say so (after a fork
/// from a runtime's thread too), and a worker's fresh runtime refuses to
/// start there. Then `serve` runs on a new thread, which starts clean.
fn on_a_clean_thread(serve: impl FnOnce() + Send + 'static) -> ! {
    if !in_tokio_runtime() {
        serve();
        sys::exit_now(EXIT_HANDSHAKE)
    }
    let worker = std::thread::Builder::new().name("aiomp-worker".into()).spawn(serve);
    match worker {
        // `serve` exits the process; it returns only by panicking.
        Ok(worker) => {
            let _ = worker.join();
            sys::exit_now(EXIT_HANDSHAKE)
        }
        Err(e) => die(EXIT_HANDSHAKE, &format!("could not start the worker thread: {e}")),
    }
}

/// Reads the token the parent must send before anything else; exits unless
/// it matches. Nothing else on the channel is read, let alone decoded, before.
pub(crate) fn authenticate(stream: &mut UnixStream, token: &Token) {
    let mut sent_token = [0; TOKEN_BYTES];
    let received = stream
        .set_read_timeout(Some(HELLO_TIMEOUT))
        .and_then(|()| stream.read_exact(&mut sent_token));
    match received {
        Ok(()) if constant_time_eq(&sent_token, token) => {}
        Ok(()) => die(EXIT_HANDSHAKE, "refused the channel: wrong token"),
        Err(e) => die(
            EXIT_HANDSHAKE,
            &format!("refused the channel: no token from the parent: {e}"),
        ),
    }
}

/// Readies a worker forked ahead of need (by the fork server, as a spare)
/// for its first request: the work its start takes before it reads a byte.
/// Its runtime is built for the default flavor, which a pool asks for
/// unless told otherwise and a one-shot process always does.
pub(crate) fn prepare() -> Option<tokio::runtime::Runtime> {
    IN_WORKER.store(true, Ordering::SeqCst);
    panic::install_hook();
    sys::keep_freed_memory();
    build_runtime(RuntimeFlavor::CurrentThread).ok()
}

/// Serves the parent (pid `parent`) on `stream` until it is done with this
/// worker, then exits; `watch` says how it would learn of the parent's exit.
/// `prepared`: the runtime [`prepare`] built, used if the parent asks for
/// its flavor.
///
/// The parent must first send `token`: nothing else on the channel is read,
/// let alone decoded, before that.
pub(crate) fn serve(
    mut stream: UnixStream,
    token: &Token,
    parent: u32,
    watch: ParentWatch,
    prepared: Option<tokio::runtime::Runtime>,
) -> ! {
    let registry = Registry::get();
    authenticate(&mut stream, token);
    let hello = codec::read_frame(&mut stream, DEFAULT_MAX_FRAME)
        .and_then(|frame| codec::decode::<Hello>(&frame).map_err(std::io::Error::other));
    let hello = match hello {
        Ok(hello) => hello,
        Err(e) => die(EXIT_HANDSHAKE, &format!("no valid hello from the parent: {e}")),
    };
    let fingerprint = registry.as_ref().map_or(0, |r| r.fingerprint());
    let accepted = match &registry {
        Err(e) => Err(e.to_string()),
        Ok(_) if fingerprint != hello.fingerprint => {
            Err("its registry of remote functions differs from the parent's (a different binary)".to_owned())
        }
        Ok(_) => Ok(()),
    };
    let welcome = Welcome {
        pid: std::process::id(),
        fingerprint,
        accepted: accepted.clone(),
    };
    // Without an initializer the worker is ready as soon as it accepts: it
    // says so in the same write, and the parent's first task crosses while
    // its runtime starts.
    let ready_at_once = accepted.is_ok() && hello.settings.initializer.is_none();
    let mut frames = Vec::new();
    let sent = codec::encode(&welcome)
        .and_then(|welcome| {
            let mut replies = vec![welcome];
            if ready_at_once {
                replies.push(codec::encode(&Reply::Ready)?);
            }
            Ok(replies)
        })
        .map_err(std::io::Error::other)
        .and_then(|replies| {
            replies
                .iter()
                .try_for_each(|frame| codec::push_frame(&mut frames, frame))
        })
        .and_then(|()| stream.write_all(&frames))
        .and_then(|()| stream.set_read_timeout(None));
    if let (Err(reason), _) | (_, Err(reason)) = (accepted, sent.map_err(|e| e.to_string())) {
        die(EXIT_HANDSHAKE, &format!("handshake failed: {reason}"));
    }
    let registry = registry.expect("checked above");
    if hello.settings.abort_on_parent_exit {
        exit_with_parent(parent, watch);
    }
    if prepared.is_none() {
        // A spare did this in `prepare`, before its request came.
        panic::install_hook();
        sys::keep_freed_memory();
    }
    let runtime = match prepared.filter(|_| hello.settings.runtime == RuntimeFlavor::CurrentThread) {
        Some(runtime) => runtime,
        None => match build_runtime(hello.settings.runtime) {
            Ok(runtime) => runtime,
            Err(e) => die(EXIT_HANDSHAKE, &format!("could not build the worker runtime: {e}")),
        },
    };
    idle_spin::arm(stream.as_raw_fd(), hello.settings.idle_spin);
    let code = runtime.block_on(Serve::new(registry, hello.settings).run(stream, ready_at_once));
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    sys::exit_now(code)
}

/// Exits this process as soon as `parent` exits, whatever the runtime is
/// doing (a CPU-bound task does not delay it): the kernel's parent-death
/// signal where `watch` says it is safe, else a thread waiting on the
/// parent's pidfd (a thread costs a worker's start as much as the rest of
/// it). Does not rely on the channel's EOF, which a sibling holding a copy
/// of the parent's end would delay.
fn exit_with_parent(parent: u32, watch: ParentWatch) {
    if watch == ParentWatch::MainThreadDeath && sys::kill_on_parent_death().is_ok() {
        // The parent may have exited before the signal was armed: this
        // process would then have been handed to another.
        if std::os::unix::process::parent_id() != parent {
            sys::exit_now(0);
        }
        return;
    }
    let pidfd = match sys::pidfd_open(parent) {
        Ok(pidfd) => pidfd,
        // It was already gone (an exited one not yet reaped still opens, and reads as exited).
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => sys::exit_now(0),
        // No pidfds here: the channel's EOF still ends the worker.
        Err(_) => return,
    };
    let watcher = std::thread::Builder::new()
        .name("aiomp-parent-watch".into())
        .spawn(move || {
            if sys::wait_readable(&[pidfd.as_raw_fd()]).is_ok() {
                sys::exit_now(0);
            }
        });
    drop(watcher);
}

/// Compares two tokens without returning early on the first difference.
fn constant_time_eq(a: &Token, b: &Token) -> bool {
    a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn build_runtime(flavor: RuntimeFlavor) -> std::io::Result<tokio::runtime::Runtime> {
    match flavor {
        RuntimeFlavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .on_thread_park(idle_spin::before_park)
            .enable_all()
            .build(),
        RuntimeFlavor::MultiThread(threads) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build(),
    }
}

/// A task's ID and its calls' results, as its tokio task returns them.
type Finished = (u64, ResultsWriter);

/// A message for the parent, with the payload that follows it.
enum Outgoing {
    Reply(Reply),
    Outcome(Outcome, Vec<Bytes>),
    /// A task on standby is about to start: told once it is written out.
    Started(u64, oneshot::Sender<()>),
}

/// A running task.
struct Running {
    abort: AbortHandle,
    calls: u32,
    slots: usize,
}

/// A task as it arrived: its message, its argument buffer and its number of calls.
struct Arrived {
    task: Task,
    args: Bytes,
    calls: usize,
}

/// The state of one worker's task loop.
struct Serve {
    registry: &'static Registry,
    settings: Settings,
    pid: u32,
    tasks: JoinSet<Finished>,
    running: HashMap<u64, Running>,
    by_task: HashMap<tokio::task::Id, u64>,
    /// Tasks that arrived while too few slots were free, in order.
    waiting: VecDeque<Arrived>,
    /// Slots free for tasks to start in (`usize::MAX`: no limit).
    free_slots: usize,
    any_failed: bool,
    /// Result buffers, back from the writer once written out.
    buffers: Arc<Buffers>,
    /// The writer's queue, while tasks may start.
    replies: Option<mpsc::UnboundedSender<Outgoing>>,
}

impl Serve {
    fn new(registry: &'static Registry, settings: Settings) -> Serve {
        let free_slots = settings.slots.map_or(usize::MAX, |slots| slots as usize);
        Serve {
            registry,
            settings,
            pid: std::process::id(),
            tasks: JoinSet::new(),
            running: HashMap::new(),
            by_task: HashMap::new(),
            waiting: VecDeque::new(),
            free_slots,
            any_failed: false,
            buffers: Arc::default(),
            replies: None,
        }
    }

    /// Runs the initializer (and says `Ready`, unless the handshake already
    /// did), then tasks until done; returns the exit code.
    async fn run(mut self, stream: UnixStream, announced_ready: bool) -> i32 {
        let (mut reader, mut writer) = match transport::channel(stream, self.settings.max_frame) {
            Ok(halves) => halves,
            Err(e) => die(EXIT_HANDSHAKE, &format!("could not register the channel: {e}")),
        };
        writer.recycle_into(Arc::clone(&self.buffers));
        let (replies, outbox) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_replies(writer, self.settings.max_frame, outbox));

        if let Some(initializer) = self.settings.initializer.take() {
            if let Err(error) = run_call(self.registry, initializer.function, &initializer.args).await {
                let report = error.into_remote(self.pid, "initializer");
                let _ = replies.send(Outgoing::Reply(Reply::InitFailed(report)));
                drop(replies);
                let _ = writer.await;
                return 1;
            }
        }
        if !announced_ready {
            let _ = replies.send(Outgoing::Reply(Reply::Ready));
        }
        self.replies = Some(replies.clone());

        let mut draining = false;
        let mut parent_gone = false;
        loop {
            if draining && self.tasks.is_empty() && self.waiting.is_empty() {
                break;
            }
            tokio::select! {
                request = reader.recv_with_payload::<Request>(), if !parent_gone => {
                    let handled = match request {
                        Ok((Request::Tasks(tasks), payload)) => self.start_all(&tasks, &payload),
                        Ok((_, payload)) if !payload.is_empty() => {
                            Err(ChannelError::Malformed(postcard::Error::DeserializeBadEncoding))
                        }
                        Ok((Request::Cancel(ids), _)) => {
                            for (outcome, results) in self.cancel(&ids) {
                                let _ = replies.send(Outgoing::Outcome(outcome, results));
                            }
                            Ok(())
                        }
                        Ok((Request::Drain, _)) => {
                            draining = true;
                            Ok(())
                        }
                        Err(error) => Err(error),
                    };
                    if let Err(error) = handled {
                        if let ChannelError::Malformed(_) | ChannelError::Io(_) = error {
                            eprintln!("aiomp worker {}: channel to the parent failed: {error}", self.pid);
                        }
                        parent_gone = true;
                        draining = true;
                        if self.settings.abort_on_parent_exit {
                            return 0;
                        }
                    }
                },
                Some(done) = self.tasks.join_next_with_id() => {
                    let (outcome, results) = self.finish(done);
                    let _ = replies.send(Outgoing::Outcome(outcome, results));
                }
            }
        }
        drop(replies);
        self.replies = None;
        let _ = writer.await;
        i32::from(self.any_failed)
    }

    /// Starts every task of a request, whose argument buffers lie one after
    /// the other in `payload`. Nothing starts unless all of it is well formed.
    fn start_all(&mut self, tasks: &[Task], payload: &Bytes) -> Result<(), ChannelError> {
        let malformed = || ChannelError::Malformed(postcard::Error::DeserializeBadEncoding);
        let mut offset = 0usize;
        let mut checked = Vec::with_capacity(tasks.len());
        for task in tasks {
            let end = offset.checked_add(task.args_len as usize).ok_or_else(malformed)?;
            let args = payload.get(offset..end).ok_or_else(malformed)?;
            let calls = ArgsReader::count(args).map_err(|_| malformed())?;
            checked.push((task, payload.slice(offset..end), calls));
            offset = end;
        }
        if offset != payload.len() {
            return Err(malformed());
        }
        for (task, args, calls) in checked {
            self.admit(Arrived {
                task: *task,
                args,
                calls,
            });
        }
        Ok(())
    }

    /// Starts a task that arrived, unless it must wait for slots: others
    /// wait before it, or it needs more than are free while tasks run.
    fn admit(&mut self, arrived: Arrived) {
        if self.waiting.is_empty() && self.fits(&arrived.task) {
            self.start(arrived);
        } else {
            self.waiting.push_back(arrived);
        }
    }

    /// Whether `task` may start now. A worker with nothing running starts
    /// any task, however many slots it asks for.
    fn fits(&self, task: &Task) -> bool {
        task.slots as usize <= self.free_slots || self.running.is_empty()
    }

    /// Starts the waiting tasks, in order, for which slots are free.
    fn start_waiting(&mut self) {
        while let Some(next) = self.waiting.front() {
            if !self.fits(&next.task) {
                return;
            }
            let next = self.waiting.pop_front().expect("just looked at it");
            self.start(next);
        }
    }

    /// Aborts the tasks of `ids` that run, and answers those that wait
    /// (they never start): the cancelled ones' outcomes.
    fn cancel(&mut self, ids: &[u64]) -> Vec<(Outcome, Vec<Bytes>)> {
        let mut answered = Vec::new();
        for id in ids {
            if let Some(running) = self.running.get(id) {
                running.abort.abort();
            } else if let Some(at) = self.waiting.iter().position(|arrived| arrived.task.id == *id) {
                let arrived = self.waiting.remove(at).expect("just found it");
                // A chunk never holds more than u32::MAX calls.
                #[allow(clippy::cast_possible_truncation)]
                let results = cancelled_results(
                    self.pid,
                    arrived.calls as u32,
                    "cancelled by the parent before it started",
                );
                answered.push(self.outcome(*id, results));
            }
        }
        answered
    }

    fn start(&mut self, Arrived { task, args, calls }: Arrived) {
        let call = CallContext {
            registry: self.registry,
            function: task.function,
            pid: self.pid,
            handler: self.settings.exception_handler,
            max_result: self.settings.max_frame.saturating_sub(FRAME_OVERHEAD),
        };
        let id = task.id;
        let concurrency = (task.concurrency as usize).max(1);
        // Most results are about as long as their arguments: one reservation up front.
        let results = ResultsWriter::into_buffer(self.buffers.take(args.len() + calls * 16));
        let announced = task.standby.then(|| self.announce(id));
        let pid = self.pid;
        let handle = self.tasks.spawn(async move {
            // The parent hears that a task on standby started before it does:
            // were the worker to die first, it would send the task elsewhere.
            if let Some(announced) = announced
                && announced.await.is_err()
            {
                // A chunk never holds more than u32::MAX calls.
                #[allow(clippy::cast_possible_truncation)]
                let results = cancelled_results(pid, calls as u32, "its start could not be told to the parent");
                return (id, results);
            }
            (id, ChunkRun::new(call, args, concurrency, results).await)
        });
        self.by_task.insert(handle.id(), id);
        let slots = task.slots as usize;
        self.free_slots = self.free_slots.saturating_sub(slots);
        // A chunk never holds more than u32::MAX calls: its buffer is under 4 GiB and each call takes 4 bytes.
        #[allow(clippy::cast_possible_truncation)]
        self.running.insert(
            id,
            Running {
                abort: handle,
                calls: calls as u32,
                slots,
            },
        );
        idle_spin::set_busy(true);
    }

    /// Asks the writer to tell the parent that task `id` starts: the
    /// receiver hears once it is written out, or that it never will be.
    fn announce(&self, id: u64) -> oneshot::Receiver<()> {
        let (written, announced) = oneshot::channel();
        if let Some(replies) = &self.replies {
            let _ = replies.send(Outgoing::Started(id, written));
        }
        announced
    }

    /// The outcome of task `id`, and its results to follow it.
    fn outcome(&mut self, id: u64, results: ResultsWriter) -> (Outcome, Vec<Bytes>) {
        self.any_failed |= results.failed() > 0;
        let failed = results.failed();
        let results = results.into_encoded();
        // Under 4 GiB: results over the frame limit are refused call by call.
        #[allow(clippy::cast_possible_truncation)]
        let outcome = Outcome {
            id,
            failed,
            results_len: results.len() as u32,
        };
        (outcome, results.into_pieces())
    }

    fn finish(&mut self, done: Result<(tokio::task::Id, Finished), tokio::task::JoinError>) -> (Outcome, Vec<Bytes>) {
        let (task_id, id, results) = match done {
            Ok((task_id, (id, results))) => (task_id, id, results),
            Err(join_error) => {
                let id = self.by_task.get(&join_error.id()).copied().unwrap_or(u64::MAX);
                let calls = self.running.get(&id).map_or(1, |running| running.calls);
                let message = if join_error.is_cancelled() {
                    "cancelled by the parent"
                } else {
                    "the task's wrapper panicked"
                };
                (join_error.id(), id, cancelled_results(self.pid, calls, message))
            }
        };
        self.by_task.remove(&task_id);
        if let Some(done) = self.running.remove(&id) {
            self.free_slots = self.free_slots.saturating_add(done.slots);
        }
        idle_spin::set_busy(!self.running.is_empty());
        // The slots are free before the parent hears of it: what it sends
        // next, on the strength of this outcome, finds them so.
        self.start_waiting();
        self.outcome(id, results)
    }
}

/// The results of a task of `calls` calls, none of which ran to completion.
fn cancelled_results(pid: u32, calls: u32, message: &str) -> ResultsWriter {
    let error = TaskError::Remote(RemoteError {
        kind: RemoteErrorKind::Cancelled,
        message: message.to_owned(),
        location: None,
        function: String::new(),
        pid,
        backtrace: None,
    });
    let mut results = ResultsWriter::default();
    for index in 0..calls {
        results.push_failed(index, &error);
    }
    results
}

/// What every call of one task shares.
#[derive(Clone, Copy)]
struct CallContext {
    registry: &'static Registry,
    function: FunctionIndex,
    pid: u32,
    handler: Option<FunctionIndex>,
    max_result: usize,
}

/// Calls a chunk starts in one poll before it lets the worker's other tasks run.
const CALLS_PER_POLL: usize = 1024;

/// A call that waited at its first poll, on its way to completion.
type Waiting = Pin<Box<dyn Future<Output = (u32, Result<Encoded, CallError>)> + Send>>;

/// Runs every call of a task, at most `concurrency` at a time, writing each
/// result as it completes. A call that completes at its first poll (any
/// plain `fn`, and an `async fn` that never waits) costs one allocation at
/// most (its boxed future) and writes its value straight into the results.
struct ChunkRun {
    call: CallContext,
    invoker: Option<Invoker>,
    args: Bytes,
    /// How far into `args` the calls have been started.
    offset: usize,
    next_index: u32,
    concurrency: usize,
    waiting: FuturesUnordered<Waiting>,
    /// Exception-handler calls for failed calls: the task ends after them.
    handlers: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send>>>,
    results: ResultsWriter,
}

impl ChunkRun {
    fn new(call: CallContext, args: Bytes, concurrency: usize, results: ResultsWriter) -> ChunkRun {
        ChunkRun {
            invoker: call.registry.invoker(call.function),
            call,
            args,
            offset: 0,
            next_index: 0,
            concurrency,
            waiting: FuturesUnordered::new(),
            handlers: FuturesUnordered::new(),
            results,
        }
    }

    /// The next call's index and where its arguments lie in `args` (checked
    /// well formed when the task arrived).
    fn next_args(&mut self, args: &[u8]) -> Option<(u32, std::ops::Range<usize>)> {
        let mut reader = ArgsReader::new(&args[self.offset..]);
        let call = reader.next_call()?.ok()?;
        let start = call.as_ptr() as usize - args.as_ptr() as usize;
        self.offset = start + call.len();
        let index = self.next_index;
        self.next_index += 1;
        Some((index, start..self.offset))
    }

    /// Starts call `index`, whose arguments are `chunk[range]`.
    fn start_call(&mut self, index: u32, chunk: &Bytes, range: std::ops::Range<usize>, cx: &mut Context<'_>) {
        let Some(invoker) = self.invoker else {
            self.record(index, Err(CallError::Unknown(self.call.function)));
            return;
        };
        let mark = self.results.begin(index);
        let out = self.results.out();
        // A large `Buffer` argument shares the chunk rather than being copied out.
        let invoke = || buffer::decode_from(chunk, &chunk[range], |args| invoker(args, cx, out));
        match panic::catch_in_task(invoke) {
            Ok(Started::Done(Ok(()))) => {
                let written = self.results.written(mark);
                if written > self.call.max_result {
                    self.results.abandon(mark);
                    self.record(index, Err(CallError::TooLarge(written, self.call.max_result)));
                } else {
                    self.results.finish(mark);
                }
            }
            Ok(Started::Done(Err(error))) => {
                self.results.abandon(mark);
                self.record(index, Err(CallError::from(error)));
            }
            Ok(Started::Pending(rest)) => {
                self.results.abandon(mark);
                self.waiting.push(Box::pin(async move {
                    let result = match panic::catch(rest).await {
                        Ok(result) => result.map_err(CallError::from),
                        Err(report) => Err(CallError::Panic(report)),
                    };
                    (index, result)
                }));
            }
            Err(report) => {
                self.results.abandon(mark);
                self.record(index, Err(CallError::Panic(report)));
            }
        }
    }

    /// Writes call `index`'s result; a failure also goes to the exception handler.
    fn record(&mut self, index: u32, result: Result<Encoded, CallError>) {
        let CallContext {
            registry,
            function,
            pid,
            handler,
            max_result,
        } = self.call;
        let result = result.and_then(|bytes| {
            if bytes.len() > max_result {
                Err(CallError::TooLarge(bytes.len(), max_result))
            } else {
                Ok(bytes)
            }
        });
        match result {
            Ok(value) => {
                let mark = self.results.begin(index);
                self.results.out().append(value);
                self.results.finish(mark);
            }
            Err(error) => {
                if let Some(handler) = handler {
                    let report = error.clone().into_remote(pid, registry.id(function).unwrap_or("?"));
                    if let Ok(args) = codec::encode(&(report,)) {
                        self.handlers.push(Box::pin(async move {
                            let _ = run_call(registry, handler, &args).await;
                        }));
                    }
                }
                let error = error.into_task_error(pid, registry.id(function));
                self.results.push_failed(index, &error);
            }
        }
    }
}

impl Future for ChunkRun {
    type Output = ResultsWriter;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<ResultsWriter> {
        let this = self.get_mut();
        let _in_task = panic::InTaskGuard::enter();
        let mut budget = CALLS_PER_POLL;
        loop {
            let mut progressed = false;
            // Lent out while calls start, so that each borrows its slice of it.
            let args = std::mem::take(&mut this.args);
            while this.waiting.len() < this.concurrency {
                if budget == 0 {
                    // Let the worker's other tasks (and its channel) run.
                    this.args = args;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                let Some((index, range)) = this.next_args(&args) else {
                    break;
                };
                budget -= 1;
                this.start_call(index, &args, range, cx);
                progressed = true;
            }
            this.args = args;
            while let Poll::Ready(Some((index, result))) = this.waiting.poll_next_unpin(cx) {
                this.record(index, result);
                progressed = true;
            }
            while let Poll::Ready(Some(())) = this.handlers.poll_next_unpin(cx) {}
            let started_all = this.offset == this.args.len();
            if started_all && this.waiting.is_empty() && this.handlers.is_empty() {
                return Poll::Ready(std::mem::take(&mut this.results));
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

/// A failed call, before it is shaped for the parent or the exception handler.
#[derive(Debug, Clone)]
enum CallError {
    Unknown(u32),
    Codec(CodecAction, postcard::Error),
    Panic(PanicReport),
    TooLarge(usize, usize),
}

impl From<InvokeError> for CallError {
    fn from(error: InvokeError) -> CallError {
        match error {
            InvokeError::DecodeArguments(e) => CallError::Codec(CodecAction::DecodeArguments, e),
            InvokeError::EncodeResult(e) => CallError::Codec(CodecAction::EncodeResult, e),
        }
    }
}

impl CallError {
    fn into_remote(self, pid: u32, function: &str) -> RemoteError {
        let (kind, message, location, backtrace) = match self {
            CallError::Unknown(index) => (
                RemoteErrorKind::UnknownFunction,
                format!("no function #{index} in this worker"),
                None,
                None,
            ),
            CallError::Codec(action, error) => (
                RemoteErrorKind::Codec,
                format!("could not {}: {error}", action.describe()),
                None,
                None,
            ),
            CallError::Panic(report) => (
                RemoteErrorKind::Panic,
                report.message,
                report.location,
                report.backtrace,
            ),
            CallError::TooLarge(len, max) => (
                RemoteErrorKind::Codec,
                format!("the result of {len} bytes exceeds the frame limit of {max} bytes"),
                None,
                None,
            ),
        };
        RemoteError {
            kind,
            message,
            location,
            function: function.to_owned(),
            pid,
            backtrace,
        }
    }

    fn into_task_error(self, pid: u32, function: Option<&str>) -> TaskError {
        match self {
            CallError::Codec(action, error) => TaskError::Codec { action, error },
            other => TaskError::Remote(other.into_remote(pid, function.unwrap_or("?"))),
        }
    }
}

/// Runs one call of `function` to completion (the initializer, an exception handler).
async fn run_call(registry: &'static Registry, function: FunctionIndex, args: &[u8]) -> Result<Encoded, CallError> {
    let invoker = registry.invoker(function).ok_or(CallError::Unknown(function))?;
    let mut out = Encoded::default();
    let started = std::future::poll_fn(|cx| Poll::Ready(panic::catch_now(|| invoker(args, cx, &mut out)))).await;
    match started {
        Ok(Started::Done(result)) => result.map(|()| out).map_err(CallError::from),
        Ok(Started::Pending(rest)) => match panic::catch(rest).await {
            Ok(result) => result.map_err(CallError::from),
            Err(report) => Err(CallError::Panic(report)),
        },
        Err(report) => Err(CallError::Panic(report)),
    }
}

/// Room left in a frame for the message around a task's result.
const FRAME_OVERHEAD: usize = 1024;

/// Writes replies as they come, merging the outcomes that queued up meanwhile
/// into one frame (bounded by the frame limit): under load, many outcomes
/// share one write.
async fn write_replies(mut writer: FrameWriter, max_frame: usize, mut outbox: mpsc::UnboundedReceiver<Outgoing>) {
    let limit = max_frame.saturating_sub(FRAME_OVERHEAD);
    let mut batch = Vec::new();
    let mut announced = Vec::new();
    while outbox.recv_many(&mut batch, 1024).await > 0 {
        let mut outcomes = Vec::new();
        let mut payload = Vec::new();
        let mut size = 0;
        for message in batch.drain(..) {
            let fed = match message {
                Outgoing::Outcome(outcome, results) => {
                    let len = results.iter().map(Bytes::len).sum::<usize>() + 32;
                    let mut fed = Ok(());
                    if size + len > limit && !outcomes.is_empty() {
                        fed = writer.feed_with_payload(
                            &Reply::Outcomes(std::mem::take(&mut outcomes)),
                            std::mem::take(&mut payload),
                        );
                        size = 0;
                    }
                    size += len;
                    outcomes.push(outcome);
                    payload.extend(results);
                    fed
                }
                Outgoing::Reply(reply) => writer.feed(&reply),
                Outgoing::Started(id, written) => {
                    announced.push(written);
                    writer.feed(&Reply::Started(id))
                }
            };
            if fed.is_err() {
                return;
            }
        }
        if !outcomes.is_empty() && writer.feed_with_payload(&Reply::Outcomes(outcomes), payload).is_err() {
            return;
        }
        if writer.flush().await.is_err() {
            return;
        }
        for written in announced.drain(..) {
            let _ = written.send(());
        }
    }
}
