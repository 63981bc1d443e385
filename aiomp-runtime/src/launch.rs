//! Starting a child that holds one end of a private channel.
//!
//! Spawn re-executes the current binary with the child's end of a socketpair
//! inherited (the only fd it gets beyond stdio), named in the environment.
//! Its `main` (or its `#[aiomp::test]`) calls [`init`](crate::init) first,
//! which finds the fd and serves.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::entry::{Entry, entry};
use crate::error::Error;
use crate::os_child::OsChild;
use crate::sys;

/// The environment variable that tells a re-executed binary it is a worker.
pub(crate) const WORKER_ENV: &str = "AIOMP_WORKER";

/// How child processes start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// Re-execute the current binary (the default): a fresh process that
    /// shares nothing with the parent but the channel.
    #[default]
    Spawn,
}

static DEFAULT_METHOD: std::sync::Mutex<Option<StartMethod>> = std::sync::Mutex::new(None);

/// Sets the start method of every later [`Process`](crate::Process),
/// [`Worker`](crate::Worker) and [`Pool`](crate::Pool) that does not name its own.
///
/// `None` restores the platform's default, [`StartMethod::Spawn`] on every
/// platform: a fresh process is the predictable choice, as in aiomultiprocess.
pub fn set_start_method(method: Option<StartMethod>) {
    *DEFAULT_METHOD.lock().unwrap() = method;
}

/// The start method in effect for new processes.
pub fn get_start_method() -> StartMethod {
    DEFAULT_METHOD.lock().unwrap().unwrap_or_default()
}

/// A started child and the parent's end of its channel.
#[derive(Debug)]
pub(crate) struct Launched {
    pub(crate) child: Arc<OsChild>,
    pub(crate) stream: UnixStream,
}

/// Starts a child with `method`.
pub(crate) fn launch(method: StartMethod) -> Result<Launched, Error> {
    crate::child::refuse_if_stray_child();
    match method {
        StartMethod::Spawn => spawn(),
    }
}

fn spawn() -> Result<Launched, Error> {
    let args: Vec<String> = match entry() {
        Some(Entry::Main) => Vec::new(),
        Some(Entry::Test(name)) => vec![name.clone(), "--exact".into(), "--nocapture".into(), "--quiet".into()],
        None => {
            return Err(Error::InvalidState(
                "cannot spawn workers: this program never entered aiomp; start `main` with \
                 #[aiomp::main] or call aiomp::init() first, and use #[aiomp::test] for tests",
            ));
        }
    };
    let exe = std::env::current_exe().map_err(Error::Spawn)?;
    let (parent_end, child_end) = UnixStream::pair().map_err(Error::Spawn)?;
    let fd = child_end.as_raw_fd();
    let mut command = Command::new(exe);
    command
        .args(args)
        .env(WORKER_ENV, format!("spawn:{fd}"))
        .stdin(Stdio::null());
    sys::keep_fd_across_exec(&mut command, fd);
    let child = command.spawn().map_err(Error::Spawn)?;
    drop(child_end);
    Ok(Launched {
        child: OsChild::adopt(child.id()),
        stream: parent_end,
    })
}
