//! Starting a child that holds one end of a private channel: a socketpair,
//! so nothing listens and nothing else can connect. The parent sends a
//! random token first on the channel: a process that got hold of the socket
//! some other way cannot pass for the parent.
//!
//! - [`spawn`]: re-execute the current binary; its `main` (or its
//!   `#[aiomp::test]`) calls [`init`](crate::init) first, which finds the fd.
//! - [`fork`]: fork the caller; the child builds a fresh runtime.
//! - [`forkserver`]: ask a single-threaded server, re-executed once, to fork.

mod fork;
mod forkserver;
mod spawn;

use std::io::IoSlice;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use crate::error::Error;
use crate::os_child::OsChild;

pub(crate) use forkserver::serve_fork_requests;

/// The environment variable that sets the default start method at
/// [`init`](crate::init): `spawn`, `fork` or `forkserver`.
pub const START_METHOD_ENV: &str = "AIOMP_START_METHOD";

/// Applies [`START_METHOD_ENV`]: sets the default start method, and for
/// `forkserver` starts the fork server at once, by fork, if this process is
/// still single-threaded and outside any runtime (otherwise it starts on
/// first use, as usual).
///
/// # Panics
///
/// If the variable holds anything but a start method's name.
pub(crate) fn apply_environment() {
    let Some(value) = std::env::var_os(START_METHOD_ENV) else {
        return;
    };
    let method = match value.to_str() {
        Some("spawn") => StartMethod::Spawn,
        Some("fork") => StartMethod::Fork,
        Some("forkserver") => StartMethod::Forkserver,
        _ => panic!("{START_METHOD_ENV} must be spawn, fork or forkserver, not {value:?}"),
    };
    set_start_method(Some(method));
    // A fork taken inside a runtime (`init` in `#[tokio::main]`) would hand
    // the server that runtime's thread-locals, and its workers with it.
    if method == StartMethod::Forkserver && single_threaded() && !crate::child::in_tokio_runtime() {
        if let Err(error) = forkserver::preload() {
            tracing::warn!(%error, "aiomp could not preload the fork server; it starts on first use");
        }
    }
}

/// Whether this process has one thread.
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

/// The environment variable that tells a re-executed binary it is a worker.
pub(crate) const WORKER_ENV: &str = "AIOMP_WORKER";

/// How child processes start: aiomultiprocess's (and `multiprocessing`'s)
/// start methods.
///
/// Every method gives the child only its end of a private socketpair and
/// the same binary, so every `#[remote]` function means the same thing on
/// both sides. Starting a worker costs milliseconds with `Spawn`, less with
/// `Fork` and `Forkserver` (BENCHMARKS.md, W5 and W7): it matters for
/// one-shot [`Worker`](crate::Worker)s and for frequent recycling
/// (`max_tasks_per_child`), hardly for a long-lived pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute the current binary (the default): a fresh process that
    /// shares nothing with the parent but the channel. Needs `main` to start
    /// with `#[aiomp::main]` or `aiomp::init()`.
    #[default]
    Spawn,
    /// Fork the caller: the child is a copy of the parent at start (its
    /// globals, its loaded state), the cheapest start. The child never
    /// touches the parent's tokio runtime (its threads do not exist there):
    /// it builds a fresh one. Locks that other parent threads held at the
    /// fork (a `Mutex` in user code, stdout while printing) stay held in the
    /// child: prefer `Forkserver` when the parent is busy with threads that
    /// hold locks for long.
    Fork,
    /// Fork workers from a single-threaded server process, re-executed once
    /// per parent on first use: fork-cheap starts without inheriting the
    /// parent's threads or locks. After a lone start (a one-shot process, a
    /// pool's restart or recycle) the server forks one worker ahead of need
    /// (`aiomp-spare` in `ps`, idle until a request takes it), so that the
    /// next start waits for neither the fork nor the worker's runtime; a
    /// pool's start, which asks for all its workers at once, leaves none.
    /// The server and its spare exit with the parent; the server is
    /// restarted if it dies.
    Forkserver,
}

impl std::fmt::Display for StartMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            StartMethod::Spawn => "spawn",
            StartMethod::Fork => "fork",
            StartMethod::Forkserver => "forkserver",
        })
    }
}

static DEFAULT_METHOD: std::sync::Mutex<Option<StartMethod>> = std::sync::Mutex::new(None);

/// Sets the start method of every later [`Process`](crate::Process),
/// [`Worker`](crate::Worker) and [`Pool`](crate::Pool) that does not name its own.
/// A pool keeps the method it started with, for its replacement workers too.
///
/// `None` restores the platform's default, [`StartMethod::Spawn`] on every
/// platform: a fresh process is the predictable choice, as in aiomultiprocess.
///
/// ```
/// use aiomp::{StartMethod, get_start_method, set_start_method};
///
/// set_start_method(Some(StartMethod::Forkserver));
/// assert_eq!(get_start_method(), StartMethod::Forkserver);
/// set_start_method(None);
/// assert_eq!(get_start_method(), StartMethod::Spawn);
/// ```
pub fn set_start_method(method: Option<StartMethod>) {
    *crate::lock(&DEFAULT_METHOD) = method;
}

/// The start method in effect for new processes.
pub fn get_start_method() -> StartMethod {
    crate::lock(&DEFAULT_METHOD).unwrap_or_default()
}

/// The secret a child must be sent before anything else on its channel.
pub(crate) type Token = [u8; TOKEN_BYTES];

/// The length of a [`Token`].
pub(crate) const TOKEN_BYTES: usize = 16;

/// A started child and the parent's end of its channel.
#[derive(Debug)]
pub(crate) struct Launched {
    pub(crate) child: Arc<OsChild>,
    pub(crate) stream: UnixStream,
    /// The end of the token and greeting that the channel did not take
    /// before the child started (usually nothing): the parent writes it first.
    pub(crate) unsent: Vec<u8>,
}

/// Puts `token` and then `greeting` into the parent's end of a new channel
/// before the child starts, as far as the socket takes them without
/// blocking; returns the rest, for the parent to write first.
///
/// The child finds its first words waiting as it starts: it does not wait
/// for the parent to come back from starting it (a fork request's answer,
/// other workers' starts) before it can go on.
fn greet(stream: &UnixStream, token: &Token, greeting: &[u8]) -> Result<Vec<u8>, Error> {
    let pieces = [IoSlice::new(token), IoSlice::new(greeting)];
    let sent = match crate::sys::send_now(stream.as_fd(), &pieces) {
        Ok(sent) => sent,
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(source) => {
            return Err(Error::Io {
                action: "writing a new worker's token and greeting",
                source,
            });
        }
    };
    // Usually all of it went: nothing is copied then.
    Ok(match sent.checked_sub(token.len()) {
        Some(past_token) => greeting[past_token..].to_vec(),
        None => [&token[sent..], greeting].concat(),
    })
}

/// A fresh random token from the OS.
pub(crate) fn random_token() -> Result<Token, Error> {
    let mut token = [0; TOKEN_BYTES];
    crate::sys::fill_random(&mut token).map_err(|source| Error::Io {
        action: "reading the kernel's random source for a channel token",
        source,
    })?;
    Ok(token)
}

/// The token as lowercase hex, for the environment.
pub(crate) fn token_hex(token: &Token) -> String {
    use std::fmt::Write;
    token.iter().fold(String::with_capacity(2 * TOKEN_BYTES), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// Parses [`token_hex`]'s output.
pub(crate) fn parse_token(hex: &str) -> Option<Token> {
    let mut token = [0; TOKEN_BYTES];
    if hex.len() != TOKEN_BYTES * 2 {
        return None;
    }
    for (i, byte) in token.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(token)
}

/// Starts `count` children with `method`, as [`launch`] does, but all at
/// once where the method allows (the fork server forks them back to back).
pub(crate) fn launch_many(method: StartMethod, count: usize, greeting: &[u8]) -> Vec<Result<Launched, Error>> {
    match method {
        StartMethod::Forkserver => {
            crate::child::refuse_if_stray_child();
            forkserver::fork_workers(count, greeting)
        }
        _ => (0..count).map(|_| launch(method, greeting)).collect(),
    }
}

/// Starts a child with `method`; its channel holds the token and then
/// `greeting` (the parent's first frames) by the time it starts, as far as
/// the socket takes them.
pub(crate) fn launch(method: StartMethod, greeting: &[u8]) -> Result<Launched, Error> {
    crate::child::refuse_if_stray_child();
    match method {
        StartMethod::Spawn => spawn::spawn_worker(greeting),
        StartMethod::Fork => fork::fork_worker(greeting),
        StartMethod::Forkserver => forkserver::fork_worker(greeting),
    }
}
