//! The fork server's own loop: one thread, no runtime; wait for a request or
//! a child's exit, fork or report.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use sendfd::RecvWithFd;

use super::{EXITED, FAILED, FORK, FORKED, REPLY_BYTES, REQUEST_BYTES};
use crate::child::{self, EXIT_HANDSHAKE};
use crate::exit::ExitStatus;
use crate::launch::Token;
use crate::panic;
use crate::registry::Registry;
use crate::sys::{self, Forked};

/// Serves fork requests on `control` until the parent closes it, then exits.
pub(crate) fn serve_fork_requests(mut control: UnixStream, token: &Token) -> ! {
    child::authenticate(&mut control, token);
    // Workers watch the server's parent, not the server: a crashed server
    // must not take the pool's workers with it.
    let parent = std::os::unix::process::parent_id();
    // What forked children read first is made ready once, here.
    if let Err(error) = Registry::get() {
        child::die(EXIT_HANDSHAKE, &format!("fork server: {error}"));
    }
    panic::install_hook();
    let mut children: Vec<(u32, OwnedFd)> = Vec::new();
    loop {
        let mut fds = vec![control.as_raw_fd()];
        fds.extend(children.iter().map(|(_, pidfd)| pidfd.as_raw_fd()));
        let ready =
            sys::wait_readable(&fds).unwrap_or_else(|e| child::die(EXIT_HANDSHAKE, &format!("fork server: {e}")));
        if ready[0] {
            serve_request(&mut control, &mut children, parent);
        }
        let mut ready = ready.into_iter().skip(1);
        children.retain(|(pid, _)| {
            let exited = ready.next().unwrap_or(false);
            if !exited {
                return true;
            }
            match sys::waitpid(*pid, false) {
                Ok(Some(raw)) => {
                    report(&mut control, EXITED, *pid, Some(ExitStatus::from_wait_status(raw)));
                    false
                }
                Ok(None) => true,
                Err(_) => false,
            }
        });
    }
}

fn serve_request(control: &mut UnixStream, children: &mut Vec<(u32, OwnedFd)>, parent: u32) {
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
    match sys::fork() {
        Ok(Forked::Child) => {
            // The server never started a runtime: every other fd can go.
            sys::reset_signals();
            if sys::close_fds_except(channel.as_raw_fd()).is_err() {
                sys::exit_now(EXIT_HANDSHAKE);
            }
            // Their fds were closed with the others: forget them rather than close them twice.
            std::mem::forget(std::mem::take(children));
            child::serve_forked(UnixStream::from(channel), &token, parent)
        }
        Ok(Forked::Parent(pid)) => {
            drop(channel);
            report(control, FORKED, pid, None);
            if let Ok(pidfd) = sys::pidfd_open(pid) {
                children.push((pid, pidfd));
            } else {
                // Cannot watch it: wait for it now rather than leak a zombie.
                let status = sys::waitpid(pid, true).ok().flatten().map(ExitStatus::from_wait_status);
                report(control, EXITED, pid, status);
            }
        }
        Err(error) => {
            drop(channel);
            let mut reply = [0; REPLY_BYTES];
            reply[0] = FAILED;
            reply[6..10].copy_from_slice(&error.raw_os_error().unwrap_or(0).to_le_bytes());
            if control.write_all(&reply).is_err() {
                sys::exit_now(0);
            }
        }
    }
}

fn report(control: &mut UnixStream, tag: u8, pid: u32, status: Option<ExitStatus>) {
    let mut reply = [0; REPLY_BYTES];
    reply[0] = tag;
    reply[1..5].copy_from_slice(&pid.to_le_bytes());
    let (kind, value) = match status {
        Some(ExitStatus::Signal(signal)) => (1, signal),
        Some(status) => (0, status.code()),
        None => (0, 0),
    };
    reply[5] = kind;
    reply[6..10].copy_from_slice(&value.to_le_bytes());
    if control.write_all(&reply).is_err() {
        sys::exit_now(0);
    }
}
