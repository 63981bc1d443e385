//! A started child process: its pid, signals, and its exit status, awaited
//! through a pidfd (no polling, no SIGCHLD handler, no pid-reuse race).
//!
//! Every worker is this process's own child, reaped here with `waitpid`:
//! spawned, forked, or forked by the fork server as this process's child
//! (`CLONE_PARENT`).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::exit::ExitStatus;
use crate::sys;

/// A child this process started (directly or through the fork server).
#[derive(Debug)]
pub(crate) struct OsChild {
    pid: u32,
    pidfd: Option<OwnedFd>,
    /// `Some` once the status is known; whoever learns it first stores it.
    status: Mutex<Option<ExitStatus>>,
    exited: watch::Sender<Option<ExitStatus>>,
}

impl OsChild {
    /// Adopts a child this process started, and starts watching for its exit.
    pub(crate) fn adopt(pid: u32) -> Arc<OsChild> {
        let child = OsChild::adopt_unwatched(pid);
        child.watch();
        child
    }

    /// Adopts a child this process did not start itself (the fork server
    /// did, as this process's child); call [`watch`](Self::watch) next, on
    /// the runtime that is to watch it.
    pub(crate) fn adopt_unwatched(pid: u32) -> Arc<OsChild> {
        Arc::new(OsChild {
            pid,
            pidfd: sys::pidfd_open(pid).ok(),
            status: Mutex::new(None),
            exited: watch::Sender::new(None),
        })
    }

    /// Starts watching for the exit: on the current tokio runtime when there
    /// is one (a pidfd is just another readable fd), else on a thread.
    pub(crate) fn watch(self: &Arc<Self>) {
        let watcher = Arc::clone(self);
        let registered = self
            .pidfd
            .as_ref()
            .filter(|_| tokio::runtime::Handle::try_current().is_ok())
            .and_then(|pidfd| sys::async_readable(pidfd).ok());
        if let Some(pidfd) = registered {
            tokio::spawn(async move {
                let _ = pidfd.readable().await;
                drop(pidfd);
                watcher.exited();
            });
        } else {
            std::thread::Builder::new()
                .name(format!("aiomp-reap-{}", self.pid))
                .spawn(move || {
                    watcher.wait_blocking();
                })
                .expect("failed to start a reaper thread");
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Collects the status of a child whose pidfd says it exited.
    fn exited(&self) {
        self.wait_blocking();
    }

    /// Stores the exit status, unless one is already known; returns the known one.
    pub(crate) fn record(&self, status: ExitStatus) -> ExitStatus {
        let mut slot = crate::lock(&self.status);
        let status = *slot.get_or_insert(status);
        drop(slot);
        self.exited.send_replace(Some(status));
        status
    }

    /// The exit status if the child has exited (reaping it), `None` while it runs.
    pub(crate) fn try_wait(&self) -> Option<ExitStatus> {
        let slot = crate::lock(&self.status);
        if slot.is_some() {
            return *slot;
        }
        match sys::waitpid(self.pid, false) {
            Ok(Some(raw)) => {
                drop(slot);
                Some(self.record(ExitStatus::from_wait_status(raw)))
            }
            Ok(None) => None,
            // ECHILD: someone else reaped it; the watcher records the status.
            Err(_) => *slot,
        }
    }

    /// Blocks until the child exits, and reaps it (or learns its status).
    pub(crate) fn wait_blocking(&self) -> ExitStatus {
        if let Some(status) = self.try_wait() {
            return status;
        }
        match sys::waitpid(self.pid, true) {
            Ok(Some(raw)) => self.record(ExitStatus::from_wait_status(raw)),
            _ => self.try_wait().unwrap_or(ExitStatus::Unknown),
        }
    }

    /// Waits for the child to exit, without blocking a thread.
    pub(crate) async fn wait(&self) -> ExitStatus {
        let mut exited = self.exited.subscribe();
        loop {
            if let Some(status) = *exited.borrow_and_update() {
                return status;
            }
            if exited.changed().await.is_err() {
                return self.wait_blocking();
            }
        }
    }

    /// Sends `signal`, unless the child is known to have exited.
    pub(crate) fn signal(&self, signal: i32) -> std::io::Result<()> {
        let slot = crate::lock(&self.status);
        if slot.is_some() {
            return Ok(());
        }
        match &self.pidfd {
            Some(fd) => sys::pidfd_send_signal(fd.as_raw_fd(), signal),
            // Holding the lock: the pid cannot be reaped, so cannot be reused.
            None => sys::kill(self.pid, signal),
        }
    }

    /// Kills the child and waits until it is gone before returning.
    pub(crate) fn kill_and_reap(&self) -> ExitStatus {
        let _ = self.signal(libc::SIGKILL);
        self.wait_blocking()
    }
}
