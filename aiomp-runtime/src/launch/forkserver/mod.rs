//! Forkserver: a single-threaded server process, re-executed once per
//! parent on first use, forks workers on request.
//!
//! The server's control channel is a socketpair it inherited, authenticated
//! with a token like a worker's: nothing listens. For each worker the parent
//! makes a fresh socketpair and passes the child's end over the control
//! channel (`SCM_RIGHTS`); the server hands it to a spare it forked ahead of
//! need as the parent's own child (`CLONE_PARENT`) and answers with its pid;
//! the child keeps that one fd (and stdio) and serves the parent directly,
//! which reaps it like any other worker. (Where `init` ran inside the
//! program's runtime, the child also keeps the fds the server started with:
//! that runtime's process-wide ones, which a new runtime needs.) The server
//! announces each spare before it hands it out, so that the parent can reap
//! one that a dead server left behind. The server exits when the parent
//! goes away (its control channel closes); if it dies, the next start
//! launches a new one.

mod server;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use sendfd::SendWithFd;

use crate::child::ParentWatch;
use crate::error::Error;
use crate::launch::{Launched, TOKEN_BYTES, greet, random_token, spawn};
use crate::os_child::OsChild;
use crate::registry::Registry;

pub(crate) use server::serve_fork_requests;

/// A request: `FORK` or `FORK_BATCH`, then the new worker's token; its
/// channel rides along as an fd. After a `FORK` (a one-shot process, a
/// pool's restart or recycle, which tend to come one after another) the
/// server forks a spare for the next request; after a `FORK_BATCH` (one of
/// a pool's first workers, asked for together) it does not: the next
/// request is likely far off, and on a machine with few cores the spare's
/// start would take CPU time from the workers starting beside it.
const FORK: u8 = 1;
const FORK_BATCH: u8 = 2;
const REQUEST_BYTES: usize = 1 + TOKEN_BYTES;

/// Messages from the server, each `REPLY_BYTES` long: a tag, then a pid,
/// then (for `FAILED`) the errno. A request's reply is `FORKED` (the pid of
/// its worker) or `FAILED`; `SPARE` (the pid of the spare that will take the
/// next request) comes unasked, before the reply that hands it out.
const FORKED: u8 = 1;
const FAILED: u8 = 2;
const SPARE: u8 = 3;
const REPLY_BYTES: usize = 9;

/// How long a fork request may take before the server is presumed stuck.
const FORK_TIMEOUT: Duration = Duration::from_secs(10);

/// The running fork server, from the parent's side.
#[derive(Debug)]
struct ForkServer {
    process: Arc<OsChild>,
    control: UnixStream,
    /// Cleared once the server is known to be gone.
    alive: bool,
    /// Whether its exit is watched (a preloaded one's is from its first use on,
    /// as no runtime existed when it started).
    watched: bool,
    /// The spare the server said it forked for the next request: our child,
    /// reaped here should the server not hand it one.
    spare: Option<u32>,
}

static SERVER: Mutex<Option<ForkServer>> = Mutex::new(None);

/// A fork request sent, its reply not yet read.
struct Requested {
    parent_end: UnixStream,
    unsent: Vec<u8>,
}

/// Starts the fork server now by forking this process, which must be
/// single-threaded (nothing else may hold a lock the server would need): the
/// server is then a copy of the program as it starts `main`, and the first
/// pool's workers are forked without re-executing the binary. Does nothing
/// if a server runs already.
pub(crate) fn preload() -> Result<(), Error> {
    let mut server = crate::lock(&SERVER);
    if server.is_some() {
        return Ok(());
    }
    let (control, server_end) = UnixStream::pair().map_err(Error::Spawn)?;
    // Forked by the main thread, the server and the workers it forks (as
    // this process's children) can leave the watch to the kernel.
    let watch = if crate::sys::is_main_thread() {
        ParentWatch::MainThreadDeath
    } else {
        ParentWatch::Pidfd
    };
    match crate::sys::fork().map_err(Error::Spawn)? {
        crate::sys::Forked::Child => {
            drop(control);
            // Like a spawned server's, its workers' stdin is /dev/null.
            if let Err(error) = crate::sys::null_stdin() {
                crate::child::die(crate::child::EXIT_HANDSHAKE, &format!("fork server: {error}"));
            }
            server::serve(server_end, watch, Vec::new())
        }
        crate::sys::Forked::Parent(pid) => {
            drop(server_end);
            control
                .set_read_timeout(Some(FORK_TIMEOUT))
                .map_err(|source| Error::Io {
                    action: "configuring the fork server's channel",
                    source,
                })?;
            tracing::debug!(pid, "aiomp fork server started (preloaded)");
            *server = Some(ForkServer {
                process: OsChild::adopt_unwatched(pid),
                control,
                alive: true,
                watched: false,
                spare: None,
            });
            Ok(())
        }
    }
}

/// Asks the fork server for `count` workers at once, their channels greeted
/// with `greeting`: every request goes out before the first reply is read,
/// so the server forks the next while the reply to the last crosses.
/// Requests a running server did not answer (none ran, or it died) are
/// made again one by one, as [`fork_worker`] makes them.
pub(super) fn fork_workers(count: usize, greeting: &[u8]) -> Vec<Result<Launched, Error>> {
    let mut server = crate::lock(&SERVER);
    if !server.as_ref().is_some_and(|server| server.alive) {
        // Failing here, it fails again below, one request at a time, and says why.
        *server = ForkServer::start().ok();
    }
    let mut requested = Vec::with_capacity(count);
    if let Some(running) = server.as_mut().filter(|server| server.alive) {
        while requested.len() < count {
            match running.request(greeting, FORK_BATCH) {
                Ok(request) => requested.push(request),
                Err(_) => break,
            }
        }
    }
    let mut launched = Vec::with_capacity(count);
    for request in requested {
        let running = server.as_mut().expect("requests went to a running server");
        if !running.alive {
            break;
        }
        match running.answer(request) {
            Err(_) if !running.alive => break,
            answered => launched.push(answered),
        }
    }
    drop(server);
    while launched.len() < count {
        launched.push(fork_worker(greeting));
    }
    launched
}

/// Asks the fork server (starting it if needed) for a new worker, its
/// channel greeted with `greeting`.
pub(super) fn fork_worker(greeting: &[u8]) -> Result<Launched, Error> {
    Registry::get()?;
    let mut server = crate::lock(&SERVER);
    let mut restarted = false;
    loop {
        if !server.as_ref().is_some_and(|server| server.alive) {
            *server = Some(ForkServer::start()?);
            restarted = true;
        }
        let running = server.as_mut().expect("started above");
        match running.fork(greeting) {
            Ok(launched) => return Ok(launched),
            // The server died since the last request: start a new one, once.
            Err(_) if !restarted && !running.alive => {}
            Err(error) => return Err(error),
        }
    }
}

impl ForkServer {
    /// Re-executes this binary as the server and hands it its token.
    fn start() -> Result<ForkServer, Error> {
        let launched = spawn::spawn("forkserver", &[])?;
        let mut control = launched.stream;
        control
            .write_all(&launched.unsent)
            .and_then(|()| control.set_read_timeout(Some(FORK_TIMEOUT)))
            .map_err(|source| Error::Io {
                action: "sending the fork server its token",
                source,
            })?;
        let process = launched.child;
        tracing::debug!(pid = process.pid(), "aiomp fork server started");
        Ok(ForkServer {
            process,
            control,
            alive: true,
            watched: true,
            spare: None,
        })
    }

    /// Asks the server for a worker, passing it the worker's end of a fresh
    /// channel (greeted with `greeting`), and waits for its pid.
    fn fork(&mut self, greeting: &[u8]) -> Result<Launched, Error> {
        let requested = self.request(greeting, FORK)?;
        self.answer(requested)
    }

    /// Sends a fork request (`kind`: [`FORK`] or [`FORK_BATCH`]), passing the
    /// server the worker's end of a fresh channel (greeted with `greeting`);
    /// [`answer`](Self::answer) reads the reply. Requests may be sent ahead:
    /// the server answers them in order.
    fn request(&mut self, greeting: &[u8], kind: u8) -> Result<Requested, Error> {
        if !self.watched {
            self.process.watch();
            self.watched = true;
        }
        let token = random_token()?;
        let (parent_end, child_end) = UnixStream::pair().map_err(Error::Spawn)?;
        let unsent = greet(&parent_end, &token, greeting)?;
        let mut request = [0; REQUEST_BYTES];
        request[0] = kind;
        request[1..].copy_from_slice(&token);
        let sent = self.control.send_with_fd(&request, &[child_end.as_raw_fd()]);
        let sent = sent.and_then(|n| self.control.write_all(&request[n..]));
        drop(child_end);
        match sent {
            Ok(()) => Ok(Requested { parent_end, unsent }),
            Err(_) => Err(self.died()),
        }
    }

    /// Reads the server's reply to the oldest request not yet answered.
    fn answer(&mut self, requested: Requested) -> Result<Launched, Error> {
        let Requested { parent_end, unsent } = requested;
        let mut reply = [0; REPLY_BYTES];
        let read = loop {
            match self.control.read_exact(&mut reply) {
                Ok(()) if reply[0] == SPARE => self.spare = Some(pid_in(&reply)),
                read => break read,
            }
        };
        if let Err(error) = read {
            let stuck = matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            );
            if !stuck {
                return Err(self.died());
            }
            // Its late answers would be taken for later requests': replace it.
            let _ = self.process.signal(libc::SIGKILL);
            let _ = self.died();
            return Err(Error::Spawn(std::io::Error::other(format!(
                "the fork server (pid {}) did not answer within {FORK_TIMEOUT:?}",
                self.process.pid()
            ))));
        }
        let pid = pid_in(&reply);
        match reply[0] {
            FORKED => {
                if let Some(gone) = self.spare.take().filter(|&spare| spare != pid) {
                    // The spare was gone when this request came.
                    reap_spare(gone);
                }
                // Our own child: reaped here, on the caller's runtime.
                let child = OsChild::adopt_unwatched(pid);
                child.watch();
                Ok(Launched {
                    child,
                    stream: parent_end,
                    unsent,
                })
            }
            FAILED => {
                let errno = i32::from_le_bytes(reply[5..9].try_into().expect("4 bytes"));
                Err(Error::Spawn(std::io::Error::from_raw_os_error(errno)))
            }
            _ => {
                let _ = self.process.signal(libc::SIGKILL);
                Err(self.died())
            }
        }
    }

    /// Marks the server gone (killing it, should it be alive but broken), and says so.
    fn died(&mut self) -> Error {
        self.alive = false;
        let pid = self.process.pid();
        let status = self.process.kill_and_reap();
        // Read what it said before it went. The spare it announced last is
        // left waiting for nothing, and a worker it forked for a reply never
        // read serves no one: both are our children to reap.
        let mut message = [0; REPLY_BYTES];
        while self.control.read_exact(&mut message).is_ok() {
            let child = pid_in(&message);
            match message[0] {
                SPARE => self.spare.replace(child).into_iter().for_each(reap_spare),
                FORKED => {
                    self.spare = self.spare.filter(|&spare| spare != child);
                    reap_spare(child);
                }
                _ => {}
            }
        }
        self.spare.take().into_iter().for_each(reap_spare);
        tracing::warn!(pid, %status, "aiomp fork server exited; the next start launches a new one");
        Error::Spawn(std::io::Error::other(format!(
            "the fork server (pid {pid}) died ({status}); it will be restarted"
        )))
    }
}

/// Kills and reaps a child the fork server forked for us but no request
/// took. It is our own child, not yet reaped, so its pid cannot have been
/// reused. A pid that no fork returns (0, or one that reads as negative)
/// is ignored: `kill` would take it for a whole process group.
fn reap_spare(pid: u32) {
    if pid == 0 || i32::try_from(pid).is_err() {
        return;
    }
    let _ = crate::sys::kill(pid, libc::SIGKILL);
    let _ = crate::sys::waitpid(pid, true);
}

/// The pid in a message from the server.
fn pid_in(message: &[u8; REPLY_BYTES]) -> u32 {
    u32::from_le_bytes(message[1..5].try_into().expect("4 bytes"))
}
