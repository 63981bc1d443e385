//! The child side: entering worker mode, the handshake, and serving tasks.
//!
//! A worker runs its own tokio runtime with many tasks in flight. Each task
//! is a tokio task: a panic fails that task alone, a cancel aborts it. The
//! worker exits when the parent asks it to drain and it holds nothing more,
//! or when the parent's end of the channel closes.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::codec::{self, DEFAULT_MAX_FRAME};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::launch::{TOKEN_BYTES, Token, WORKER_ENV, parse_token, serve_fork_requests};
use crate::panic::{self, PanicReport};
use crate::protocol::{
    Call, CodecAction, Hello, Outcome, Reply, Request, RuntimeFlavor, Settings, Task, TaskError, Welcome,
};
use crate::registry::{FunctionIndex, InvokeError, Registry};
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
    match role {
        "spawn" => serve(stream, &token, std::os::unix::process::parent_id()),
        "forkserver" => serve_fork_requests(stream, &token),
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
pub(crate) fn serve_forked(stream: UnixStream, token: &Token, parent: u32) -> ! {
    IN_WORKER.store(true, Ordering::SeqCst);
    if !tokio_was_running() {
        // Forked from a process that never started tokio (the fork server):
        // this thread is clean.
        serve(stream, token, parent);
    }
    // The forking thread may have been a runtime's thread: its thread-locals
    // say so, and a fresh runtime refuses to start there. A new thread
    // starts clean.
    let token = *token;
    let worker = std::thread::Builder::new()
        .name("aiomp-worker".into())
        .spawn(move || serve(stream, &token, parent));
    match worker {
        // `serve` exits the process; it returns only by panicking.
        Ok(worker) => {
            let _ = worker.join();
            sys::exit_now(EXIT_HANDSHAKE)
        }
        Err(e) => die(EXIT_HANDSHAKE, &format!("could not start the worker thread: {e}")),
    }
}

/// Whether this thread was inside a tokio runtime when it forked.
fn tokio_was_running() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
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

/// Serves the parent (pid `parent`) on `stream` until it is done with this
/// worker, then exits.
///
/// The parent must first send `token`: nothing else on the channel is read,
/// let alone decoded, before that.
pub(crate) fn serve(mut stream: UnixStream, token: &Token, parent: u32) -> ! {
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
    let sent = codec::encode(&welcome)
        .map_err(std::io::Error::other)
        .and_then(|frame| codec::write_frame(&mut stream, &frame))
        .and_then(|()| stream.set_read_timeout(None));
    if let (Err(reason), _) | (_, Err(reason)) = (accepted, sent.map_err(|e| e.to_string())) {
        die(EXIT_HANDSHAKE, &format!("handshake failed: {reason}"));
    }
    let registry = registry.expect("checked above");
    if hello.settings.abort_on_parent_exit {
        exit_with_parent(parent);
    }
    panic::install_hook();
    let runtime = match build_runtime(hello.settings.runtime) {
        Ok(runtime) => runtime,
        Err(e) => die(EXIT_HANDSHAKE, &format!("could not build the worker runtime: {e}")),
    };
    let code = runtime.block_on(Serve::new(registry, hello.settings).run(stream));
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    sys::exit_now(code)
}

/// Exits this process as soon as `parent` exits, whatever the runtime is
/// doing (a CPU-bound task does not delay it): a thread waits on the
/// parent's pidfd. Does not rely on the channel's EOF, which a sibling
/// holding a copy of the parent's end would delay.
fn exit_with_parent(parent: u32) {
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
        RuntimeFlavor::CurrentThread => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        RuntimeFlavor::MultiThread(threads) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .enable_all()
            .build(),
    }
}

/// A task's ID and its calls' encoded results, as its tokio task returns them.
type Finished = (u64, Vec<Result<Vec<u8>, TaskError>>);

/// The state of one worker's task loop.
struct Serve {
    registry: &'static Registry,
    settings: Settings,
    pid: u32,
    tasks: JoinSet<Finished>,
    /// Each running task's abort handle and number of calls.
    running: HashMap<u64, (AbortHandle, usize)>,
    by_task: HashMap<tokio::task::Id, u64>,
    any_failed: bool,
}

impl Serve {
    fn new(registry: &'static Registry, settings: Settings) -> Serve {
        Serve {
            registry,
            settings,
            pid: std::process::id(),
            tasks: JoinSet::new(),
            running: HashMap::new(),
            by_task: HashMap::new(),
            any_failed: false,
        }
    }

    /// Runs the initializer, then tasks until done; returns the exit code.
    async fn run(mut self, stream: UnixStream) -> i32 {
        let (mut reader, writer) = match transport::channel(stream, self.settings.max_frame) {
            Ok(halves) => halves,
            Err(e) => die(EXIT_HANDSHAKE, &format!("could not register the channel: {e}")),
        };
        let (replies, outbox) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_replies(writer, self.settings.max_frame, outbox));

        if let Some(initializer) = self.settings.initializer.take() {
            if let Err(error) = run_call(self.registry, initializer).await {
                let _ = replies.send(Reply::InitFailed(error.into_remote(self.pid, "initializer")));
                drop(replies);
                let _ = writer.await;
                return 1;
            }
        }
        let _ = replies.send(Reply::Ready);

        let mut draining = false;
        let mut parent_gone = false;
        loop {
            if draining && self.tasks.is_empty() {
                break;
            }
            tokio::select! {
                request = reader.recv::<Request>(), if !parent_gone => match request {
                    Ok(Request::Tasks(tasks)) => {
                        for task in tasks {
                            self.start(task);
                        }
                    }
                    Ok(Request::Cancel(ids)) => {
                        for id in ids {
                            if let Some((handle, _)) = self.running.get(&id) {
                                handle.abort();
                            }
                        }
                    }
                    Ok(Request::Drain) => draining = true,
                    Err(error) => {
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
                    let outcome = self.finish(done);
                    let _ = replies.send(Reply::Outcomes(vec![outcome]));
                }
            }
        }
        drop(replies);
        let _ = writer.await;
        i32::from(self.any_failed)
    }

    fn start(&mut self, task: Task) {
        let call = CallContext {
            registry: self.registry,
            function: task.function,
            pid: self.pid,
            handler: self.settings.exception_handler,
            max_result: self.settings.max_frame.saturating_sub(FRAME_OVERHEAD),
        };
        let calls = task.args.len();
        let id = task.id;
        let handle = self.tasks.spawn(async move { (id, call.run_all(task.args).await) });
        self.by_task.insert(handle.id(), id);
        self.running.insert(id, (handle, calls));
    }

    fn finish(&mut self, done: Result<(tokio::task::Id, Finished), tokio::task::JoinError>) -> Outcome {
        let (task_id, outcome) = match done {
            Ok((task_id, (id, results))) => (task_id, Outcome { id, results }),
            Err(join_error) => {
                let id = self.by_task.get(&join_error.id()).copied().unwrap_or(u64::MAX);
                let calls = self.running.get(&id).map_or(1, |(_, calls)| *calls);
                let message = if join_error.is_cancelled() {
                    "cancelled by the parent"
                } else {
                    "the task's wrapper panicked"
                };
                let error = RemoteError {
                    kind: RemoteErrorKind::Cancelled,
                    message: message.to_owned(),
                    location: None,
                    function: String::new(),
                    pid: self.pid,
                    backtrace: None,
                };
                let results = (0..calls).map(|_| Err(TaskError::Remote(error.clone()))).collect();
                (join_error.id(), Outcome { id, results })
            }
        };
        self.by_task.remove(&task_id);
        self.running.remove(&outcome.id);
        self.any_failed |= outcome.results.iter().any(Result::is_err);
        outcome
    }
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

impl CallContext {
    /// Runs every call of a task, concurrently, and returns their results in
    /// order. A call that completes at its first poll (any plain `fn`, and an
    /// `async fn` that never waits) costs no extra task or allocation beyond
    /// its own future: only those that wait are gathered to run together.
    async fn run_all(self, args: Vec<Vec<u8>>) -> Vec<Result<Vec<u8>, TaskError>> {
        if args.len() == 1 {
            let args = args.into_iter().next().expect("one");
            return vec![self.run_one(args).await];
        }
        let mut results: Vec<Option<Result<Vec<u8>, TaskError>>> = Vec::with_capacity(args.len());
        let mut waiting = FuturesUnordered::new();
        for (index, args) in args.into_iter().enumerate() {
            let mut call = Box::pin(self.run_one(args));
            if let Some(result) = (&mut call).now_or_never() {
                results.push(Some(result));
            } else {
                results.push(None);
                waiting.push(async move { (index, call.await) });
            }
        }
        while let Some((index, result)) = waiting.next().await {
            results[index] = Some(result);
        }
        results.into_iter().map(|r| r.expect("every call completed")).collect()
    }

    /// Runs one call; a failure also goes to the exception handler.
    async fn run_one(self, args: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        let CallContext {
            registry,
            function,
            pid,
            handler,
            max_result,
        } = self;
        let result = run_call(registry, Call { function, args }).await.and_then(|bytes| {
            if bytes.len() > max_result {
                Err(CallError::TooLarge(bytes.len(), max_result))
            } else {
                Ok(bytes)
            }
        });
        if let (Err(error), Some(handler)) = (&result, handler) {
            let report = error.clone().into_remote(pid, registry.id(function).unwrap_or("?"));
            if let Ok(args) = codec::encode(&(report,)) {
                let _ = run_call(
                    registry,
                    Call {
                        function: handler,
                        args,
                    },
                )
                .await;
            }
        }
        result.map_err(|e| e.into_task_error(pid, registry.id(function)))
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

async fn run_call(registry: &'static Registry, call: Call) -> Result<Vec<u8>, CallError> {
    let invoker = registry
        .invoker(call.function)
        .ok_or(CallError::Unknown(call.function))?;
    match panic::catch(async move { invoker(call.args).await }).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(InvokeError::DecodeArguments(e))) => Err(CallError::Codec(CodecAction::DecodeArguments, e)),
        Ok(Err(InvokeError::EncodeResult(e))) => Err(CallError::Codec(CodecAction::EncodeResult, e)),
        Err(report) => Err(CallError::Panic(report)),
    }
}

/// Room left in a frame for the message around a task's result.
const FRAME_OVERHEAD: usize = 1024;

/// Writes replies as they come, merging the outcomes that queued up meanwhile
/// into one frame (bounded by the frame limit): under load, many outcomes
/// share one write.
async fn write_replies(mut writer: FrameWriter, max_frame: usize, mut outbox: mpsc::UnboundedReceiver<Reply>) {
    let mut batch = Vec::new();
    while outbox.recv_many(&mut batch, 1024).await > 0 {
        let mut outcomes = Vec::new();
        let mut size = 0;
        for reply in batch.drain(..) {
            let ready = match reply {
                Reply::Outcomes(more) => {
                    let mut full = None;
                    for outcome in more {
                        let len: usize = outcome
                            .results
                            .iter()
                            .map(|r| r.as_ref().map_or(FRAME_OVERHEAD, |bytes| bytes.len() + 16))
                            .sum();
                        if size + len > max_frame.saturating_sub(FRAME_OVERHEAD) && !outcomes.is_empty() {
                            full = Some(Reply::Outcomes(std::mem::take(&mut outcomes)));
                            size = 0;
                        }
                        size += len;
                        outcomes.push(outcome);
                        if let Some(reply) = full.take() {
                            if writer.feed(&reply).await.is_err() {
                                return;
                            }
                        }
                    }
                    None
                }
                other => Some(other),
            };
            if let Some(reply) = ready {
                if writer.feed(&reply).await.is_err() {
                    return;
                }
            }
        }
        if !outcomes.is_empty() && writer.feed(&Reply::Outcomes(outcomes)).await.is_err() {
            return;
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}
