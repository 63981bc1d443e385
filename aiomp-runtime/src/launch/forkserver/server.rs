//! The fork server's own loop: one thread, no runtime; wait for a request,
//! fork, report the pid.
//!
//! Each worker is forked as a sibling of the server (`CLONE_PARENT`): a
//! child of the parent itself, which reaps it and reads its exit status
//! directly, as for any other start method. The server never waits for a
//! worker, and a server that dies leaves its workers nothing to lose.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use sendfd::RecvWithFd;

use super::{FAILED, FORK, FORKED, REPLY_BYTES, REQUEST_BYTES};
use crate::child::{self, EXIT_HANDSHAKE, ParentWatch};
use crate::launch::Token;
use crate::panic;
use crate::registry::Registry;
use crate::sys::{self, Forked};

/// The server's name in `ps` and `/proc/PID/comm` (a worker takes back the
/// program's own).
const SERVER_NAME: &[u8; 16] = b"aiomp-forksrv\0\0\0";

/// How long a fork waits for the server's other threads, if any, to sleep.
const QUIET_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves fork requests on `control` until the parent closes it, then exits.
///
/// Whichever thread of the parent started this server, it is its workers'
/// parent in the kernel's eyes too (they are forked with `CLONE_PARENT`):
/// they watch the parent's pidfd.
pub(crate) fn serve_fork_requests(mut control: UnixStream, token: &Token) -> ! {
    child::authenticate(&mut control, token);
    serve(control, ParentWatch::Pidfd)
}

/// Serves fork requests on an already trusted `control` (the server was
/// forked, not executed), then exits; its workers watch their parent as
/// `watch` says.
pub(super) fn serve(mut control: UnixStream, watch: ParentWatch) -> ! {
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
    let shared = sys::has_other_threads();
    loop {
        serve_request(&mut control, parent, watch, &program_name, shared);
    }
}

/// Reads one request (its first bytes carry the worker's channel), forks,
/// and reports the new worker's pid; `shared`: the server is not alone in
/// its process.
fn serve_request(control: &mut UnixStream, parent: u32, watch: ParentWatch, program_name: &[u8; 16], shared: bool) {
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
    let Some(channel) = channel.filter(|_| request[0] == FORK) else {
        child::die(EXIT_HANDSHAKE, "fork server: malformed request from the parent");
    };
    let token: Token = request[1..].try_into().expect("token length");
    let mut reply = [0; REPLY_BYTES];
    // A server is alone in its process when `main` starts it, but not under
    // a test harness, whose main thread lives on: a raw clone taken while
    // that thread holds an allocator lock leaves the worker deadlocked on
    // it (glibc's fork would have taken the locks first; a raw clone cannot).
    if shared {
        sys::wait_for_other_threads_to_sleep(QUIET_WAIT);
    }
    match sys::fork_sibling() {
        Ok(Forked::Child) => {
            sys::set_thread_name(program_name);
            sys::reset_signals();
            if sys::close_fds_except(channel.as_raw_fd()).is_err() {
                sys::exit_now(EXIT_HANDSHAKE);
            }
            child::serve_forked(UnixStream::from(channel), &token, parent, watch)
        }
        Ok(Forked::Parent(pid)) => {
            reply[0] = FORKED;
            reply[1..5].copy_from_slice(&pid.to_le_bytes());
        }
        Err(error) => {
            reply[0] = FAILED;
            reply[5..9].copy_from_slice(&error.raw_os_error().unwrap_or(0).to_le_bytes());
        }
    }
    drop(channel);
    if control.write_all(&reply).is_err() {
        sys::exit_now(0);
    }
}
