//! The fork server's own loop: one thread, no runtime; fork a spare and
//! announce it, wait for a request, hand it to the spare, report its pid.
//!
//! Each worker is forked as a sibling of the server (`CLONE_PARENT`): a
//! child of the parent itself, which reaps it and reads its exit status
//! directly, as for any other start method. The server never waits for a
//! worker, and a server that dies leaves its workers nothing to lose.
//!
//! A worker is forked ahead of need: the spare readies itself (its runtime
//! built, the pages it writes copied) and waits for the server to hand it a
//! request's channel and token. A request then waits for neither the fork
//! nor that start-up: the server forks the next spare after it replies.
//! Requests sent together (a pool's workers) find no spare after the first:
//! each of the others gets a worker forked for it, which greets the parent
//! before it builds its runtime, where a spare would build it first; and
//! none is forked after them, until a lone request comes. The server
//! announces each spare's pid to the parent, so that the parent can reap a
//! spare left behind by a server that died.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use sendfd::{RecvWithFd, SendWithFd};

use super::{FAILED, FORK, FORK_BATCH, FORKED, REPLY_BYTES, REQUEST_BYTES, SPARE};
use crate::child::{self, EXIT_HANDSHAKE, ParentWatch};
use crate::launch::TOKEN_BYTES;
use crate::launch::Token;
use crate::panic;
use crate::registry::Registry;
use crate::sys::{self, Forked};

/// The server's name in `ps` and `/proc/PID/comm` (a worker takes back the
/// program's own).
const SERVER_NAME: &[u8; 16] = b"aiomp-forksrv\0\0\0";

/// A spare's name until it is handed a request.
const SPARE_NAME: &[u8; 16] = b"aiomp-spare\0\0\0\0\0";

/// How long a fork waits for the server's other threads, if any, to sleep.
const QUIET_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves fork requests on `control` until the parent closes it, then exits.
///
/// Whichever thread of the parent started this server, it is its workers'
/// parent in the kernel's eyes too (they are forked with `CLONE_PARENT`):
/// they watch the parent's pidfd.
///
/// A worker keeps no fd but its channel and stdio, and those in `kept` (in
/// ascending order; the server's own channel is left out).
pub(crate) fn serve_fork_requests(mut control: UnixStream, token: &Token, kept: Vec<RawFd>) -> ! {
    child::authenticate(&mut control, token);
    serve(control, ParentWatch::Pidfd, kept)
}

/// Serves fork requests on an already trusted `control` (the server was
/// forked, not executed), then exits; its workers watch their parent as
/// `watch` says, and keep the fds in `kept` as
/// [`serve_fork_requests`] says.
pub(super) fn serve(mut control: UnixStream, watch: ParentWatch, mut kept: Vec<RawFd>) -> ! {
    kept.retain(|&fd| fd != control.as_raw_fd());
    // Workers watch the server's parent, not the server: a crashed server
    // must not take the pool's workers with it.
    let parent = std::os::unix::process::parent_id();
    // What forked children read first is made ready once, here.
    if let Err(error) = Registry::get() {
        child::die(EXIT_HANDSHAKE, &format!("fork server: {error}"));
    }
    panic::install_hook();
    let program_name = sys::thread_name();
    sys::set_thread_name(SERVER_NAME);
    // The server starts no thread: one that is alone now stays alone.
    let forker = Forker {
        parent,
        watch,
        program_name,
        shared: sys::has_other_threads(),
        kept,
    };
    let mut spare = None;
    let mut spare_wanted = true;
    loop {
        // A request already waiting is better served by a worker forked for
        // it: that one greets the parent before it builds its runtime, where
        // a spare forked now would build it first.
        if spare.is_none() && spare_wanted && !sys::readable_now(control.as_raw_fd()) {
            spare = forker.spare();
            announce(&mut control, spare.as_ref());
        }
        spare_wanted = serve_request(&mut control, &forker, &mut spare);
    }
}

/// Tells the parent the pid of the spare that will take its next request.
fn announce(control: &mut UnixStream, spare: Option<&Spare>) {
    let Some(spare) = spare else { return };
    let mut message = [0; REPLY_BYTES];
    message[0] = SPARE;
    message[1..5].copy_from_slice(&spare.pid.to_le_bytes());
    if control.write_all(&message).is_err() {
        sys::exit_now(0);
    }
}

/// How the server forks: whom its workers serve and how they watch it.
struct Forker {
    parent: u32,
    watch: ParentWatch,
    program_name: [u8; 16],
    /// The server is not alone in its process (see [`Forker::fork`]).
    shared: bool,
    /// Fds its workers keep besides their channel (ascending).
    kept: Vec<RawFd>,
}

/// A worker forked ahead of need, waiting for a request.
struct Spare {
    pid: u32,
    /// Where the server hands it a request's token and channel.
    handoff: UnixStream,
}

impl Forker {
    /// Forks a worker as the parent's child, named `name` from its first
    /// instruction on (it is not taken for the server); in the child, runs
    /// `then` with `keep`, the only fd left open (here, `keep` is closed).
    fn fork(&self, name: &[u8; 16], keep: OwnedFd, then: impl FnOnce(OwnedFd)) -> std::io::Result<u32> {
        // A server is alone in its process when `main` starts it, but not
        // under a test harness, whose main thread lives on: a raw clone
        // taken while that thread holds an allocator lock leaves the worker
        // deadlocked on it (glibc's fork would have taken the locks first; a
        // raw clone cannot).
        if self.shared {
            sys::wait_for_other_threads_to_sleep(QUIET_WAIT);
        }
        match sys::fork_sibling()? {
            Forked::Child => {
                sys::set_thread_name(name);
                sys::reset_signals();
                if sys::close_fds_except(keep.as_raw_fd(), &self.kept).is_err() {
                    sys::exit_now(EXIT_HANDSHAKE);
                }
                then(keep);
                sys::exit_now(EXIT_HANDSHAKE)
            }
            Forked::Parent(pid) => Ok(pid),
        }
    }

    /// Forks the next spare; `None` if the fork fails (a request then forks its own worker).
    fn spare(&self) -> Option<Spare> {
        let (handoff, theirs) = UnixStream::pair().ok()?;
        let pid = self
            .fork(SPARE_NAME, theirs.into(), |theirs| {
                let prepared = child::prepare();
                let (channel, token) = wait_for_request(theirs.into());
                sys::set_thread_name(&self.program_name);
                child::serve(channel, &token, self.parent, self.watch, prepared)
            })
            .ok()?;
        Some(Spare { pid, handoff })
    }

    /// Forks a worker for a request now (no spare could take it).
    fn worker(&self, channel: OwnedFd, token: &Token) -> std::io::Result<u32> {
        self.fork(&self.program_name, channel, |channel| {
            child::serve_forked(channel.into(), token, self.parent, self.watch)
        })
    }
}

/// In a spare: waits for the server to hand it a request's channel and
/// token; exits if the server goes away first.
fn wait_for_request(mut handoff: UnixStream) -> (UnixStream, Token) {
    let mut token = [0; TOKEN_BYTES];
    let mut fds = [-1; 1];
    let (read, received) = match handoff.recv_with_fd(&mut token, &mut fds) {
        Ok((0, _)) | Err(_) => sys::exit_now(0),
        Ok(got) => got,
    };
    let channel = (received == 1).then(|| sys::own_received_fd(fds[0]));
    let Some(channel) = channel.filter(|_| handoff.read_exact(&mut token[read..]).is_ok()) else {
        sys::exit_now(0);
    };
    (UnixStream::from(channel), token)
}

/// Reads one request (its first bytes carry the worker's channel), hands
/// it to the spare (or forks a worker for it), and reports its pid. Returns
/// whether the request wants a spare forked after it (it is no `FORK_BATCH`).
fn serve_request(control: &mut UnixStream, forker: &Forker, spare: &mut Option<Spare>) -> bool {
    let mut request = [0; REQUEST_BYTES];
    let mut fds = [-1; 1];
    let (read, received) = match control.recv_with_fd(&mut request, &mut fds) {
        Ok((0, _)) | Err(_) => sys::exit_now(0), // the parent went away
        Ok(got) => got,
    };
    let channel = (received == 1).then(|| sys::own_received_fd(fds[0]));
    if control.read_exact(&mut request[read..]).is_err() {
        sys::exit_now(0);
    }
    let Some(channel) = channel.filter(|_| matches!(request[0], FORK | FORK_BATCH)) else {
        child::die(EXIT_HANDSHAKE, "fork server: malformed request from the parent");
    };
    let token: Token = request[1..].try_into().expect("token length");
    // A spare that died meanwhile cannot take it (the parent reaps it:
    // the reply names another worker).
    let handed = spare.take().filter(|spare| {
        spare
            .handoff
            .send_with_fd(&token, &[channel.as_raw_fd()])
            .is_ok_and(|sent| sent == TOKEN_BYTES)
    });
    let worker = match handed {
        Some(spare) => Ok(spare.pid),
        None => forker.worker(channel, &token),
    };
    let mut reply = [0; REPLY_BYTES];
    match worker {
        Ok(pid) => {
            reply[0] = FORKED;
            reply[1..5].copy_from_slice(&pid.to_le_bytes());
        }
        Err(error) => {
            reply[0] = FAILED;
            reply[5..9].copy_from_slice(&error.raw_os_error().unwrap_or(0).to_le_bytes());
        }
    }
    if control.write_all(&reply).is_err() {
        sys::exit_now(0);
    }
    request[0] == FORK
}
