//! Forkserver: a single-threaded server process, re-executed once per
//! parent on first use, forks workers on request.
//!
//! The server's control channel is a socketpair it inherited, authenticated
//! with a token like a worker's: nothing listens. For each worker the parent
//! makes a fresh socketpair and passes the child's end over the control
//! channel (`SCM_RIGHTS`); the server forks, the child keeps that one fd and
//! serves the parent directly. The server reaps its children and reports
//! each exit status back. It exits when the parent goes away (its control
//! channel closes); if it dies, the next start launches a new one.

mod server;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::Duration;

use sendfd::SendWithFd;

use crate::error::Error;
use crate::exit::ExitStatus;
use crate::launch::{Launched, TOKEN_BYTES, random_token, spawn};
use crate::os_child::OsChild;
use crate::registry::Registry;

pub(crate) use server::serve_fork_requests;

/// A request: `FORK`, then the new worker's token; its channel rides along as an fd.
const FORK: u8 = 1;
const REQUEST_BYTES: usize = 1 + TOKEN_BYTES;

/// Replies: a tag, then a pid or errno, then (for `EXITED`) how it ended.
const FORKED: u8 = 1;
const FAILED: u8 = 2;
const EXITED: u8 = 3;
const REPLY_BYTES: usize = 10;

/// How long a fork request may take before the server is presumed stuck.
const FORK_TIMEOUT: Duration = Duration::from_secs(10);

/// The running fork server, from the parent's side.
#[derive(Debug)]
struct ForkServer {
    process: Arc<OsChild>,
    control: UnixStream,
    forked: mpsc::Receiver<std::io::Result<Arc<OsChild>>>,
    alive: Arc<AtomicBool>,
}

static SERVER: Mutex<Option<ForkServer>> = Mutex::new(None);

/// The fork server's children, by pid, so that their exit reports find them.
static CHILDREN: Mutex<Option<HashMap<u32, Weak<OsChild>>>> = Mutex::new(None);

/// Asks the fork server (starting it if needed) for a new worker.
pub(super) fn fork_worker() -> Result<Launched, Error> {
    Registry::get()?;
    let mut server = crate::lock(&SERVER);
    let mut restarted = false;
    loop {
        if !server.as_ref().is_some_and(ForkServer::is_alive) {
            *server = Some(ForkServer::start()?);
            restarted = true;
        }
        let running = server.as_ref().expect("started above");
        match running.fork() {
            Ok(launched) => return Ok(launched),
            // The server died since the last request: start a new one, once.
            Err(_) if !restarted && !running.is_alive() => {}
            Err(error) => return Err(error),
        }
    }
}

impl ForkServer {
    fn start() -> Result<ForkServer, Error> {
        let launched = spawn::spawn("forkserver")?;
        let mut control = launched.stream;
        control.write_all(&launched.token).map_err(|source| Error::Io {
            action: "sending the fork server its token",
            source,
        })?;
        let replies = control.try_clone().map_err(|source| Error::Io {
            action: "cloning the fork server's channel",
            source,
        })?;
        let (forked_tx, forked) = mpsc::channel();
        let alive = Arc::new(AtomicBool::new(true));
        let process = launched.child;
        let reader = ReplyReader {
            replies,
            forked: forked_tx,
            alive: Arc::clone(&alive),
            server: Arc::clone(&process),
        };
        std::thread::Builder::new()
            .name("aiomp-forkserver".into())
            .spawn(move || reader.run())
            .map_err(Error::Spawn)?;
        tracing::debug!(pid = process.pid(), "aiomp fork server started");
        Ok(ForkServer {
            process,
            control,
            forked,
            alive,
        })
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    fn fork(&self) -> Result<Launched, Error> {
        let token = random_token()?;
        let (parent_end, child_end) = UnixStream::pair().map_err(Error::Spawn)?;
        let mut request = [0; REQUEST_BYTES];
        request[0] = FORK;
        request[1..].copy_from_slice(&token);
        let sent = self.control.send_with_fd(&request, &[child_end.as_raw_fd()]);
        let sent = sent.and_then(|n| (&self.control).write_all(&request[n..]));
        drop(child_end);
        let dead = || {
            Error::Spawn(std::io::Error::other(format!(
                "the fork server (pid {}) died; it will be restarted",
                self.process.pid()
            )))
        };
        if sent.is_err() {
            self.alive.store(false, Ordering::SeqCst);
            return Err(dead());
        }
        let child = match self.forked.recv_timeout(FORK_TIMEOUT) {
            Ok(Ok(child)) => child,
            Ok(Err(error)) => return Err(Error::Spawn(error)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(Error::Spawn(std::io::Error::other(format!(
                    "the fork server (pid {}) did not answer within {FORK_TIMEOUT:?}",
                    self.process.pid()
                ))));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(dead()),
        };
        child.watch();
        Ok(Launched {
            child,
            stream: parent_end,
            token,
        })
    }
}

/// Reads the fork server's replies on a thread of its own: fork results go
/// to the requester, exit reports to the child they concern.
struct ReplyReader {
    replies: UnixStream,
    forked: mpsc::Sender<std::io::Result<Arc<OsChild>>>,
    alive: Arc<AtomicBool>,
    server: Arc<OsChild>,
}

impl ReplyReader {
    fn run(mut self) {
        let mut reply = [0; REPLY_BYTES];
        while self.replies.read_exact(&mut reply).is_ok() {
            let pid = u32::from_le_bytes(reply[1..5].try_into().expect("4 bytes"));
            let value = i32::from_le_bytes(reply[6..10].try_into().expect("4 bytes"));
            match reply[0] {
                FORKED => {
                    let child = OsChild::adopt_remote(pid);
                    crate::lock(&CHILDREN)
                        .get_or_insert_with(HashMap::new)
                        .insert(pid, Arc::downgrade(&child));
                    let _ = self.forked.send(Ok(child));
                }
                FAILED => {
                    let _ = self.forked.send(Err(std::io::Error::from_raw_os_error(value)));
                }
                EXITED => {
                    let status = if reply[5] == 0 {
                        ExitStatus::Code(value)
                    } else {
                        ExitStatus::Signal(value)
                    };
                    let child = crate::lock(&CHILDREN).as_mut().and_then(|c| c.remove(&pid));
                    if let Some(child) = child.and_then(|c| c.upgrade()) {
                        child.record(status);
                    }
                }
                _ => break,
            }
        }
        self.alive.store(false, Ordering::SeqCst);
        // Its children's statuses are lost with it; their pidfds still tell when they exit.
        crate::lock(&CHILDREN).take();
        let status = self.server.wait_blocking();
        tracing::warn!(pid = self.server.pid(), %status, "aiomp fork server exited; the next start launches a new one");
    }
}
