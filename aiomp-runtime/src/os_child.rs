//! A started child process: its pid, signals, and its exit status, awaited
//! through a pidfd (no polling, no SIGCHLD handler, no pid-reuse race).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::exit::ExitStatus;
use crate::sys;

/// A child this process started and must reap.
#[derive(Debug)]
pub(crate) struct OsChild {
    pid: u32,
    pidfd: Option<OwnedFd>,
    /// `Some` once reaped; whoever reaps first stores the status here.
    status: Mutex<Option<ExitStatus>>,
    exited: watch::Sender<Option<ExitStatus>>,
}

impl OsChild {
    /// Adopts a freshly started child and starts watching for its exit.
    pub(crate) fn adopt(pid: u32) -> Arc<OsChild> {
        let child = Arc::new(OsChild {
            pid,
            pidfd: sys::pidfd_open(pid).ok(),
            status: Mutex::new(None),
            exited: watch::Sender::new(None),
        });
        let watcher = Arc::clone(&child);
        if tokio::runtime::Handle::try_current().is_ok() && child.pidfd.is_some() {
            tokio::spawn(async move { watcher.watch_pidfd().await });
        } else {
            std::thread::Builder::new()
                .name(format!("aiomp-reap-{pid}"))
                .spawn(move || {
                    watcher.wait_blocking();
                })
                .expect("failed to start a reaper thread");
        }
        child
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    async fn watch_pidfd(&self) {
        let Some(pidfd) = &self.pidfd else { return };
        match sys::async_readable(pidfd) {
            Ok(fd) => {
                let _ = fd.readable().await;
                drop(fd);
                self.wait_blocking();
            }
            Err(_) => self.wait_blocking_on_thread().await,
        }
    }

    async fn wait_blocking_on_thread(&self) {
        let pid = self.pid;
        let raw = tokio::task::spawn_blocking(move || sys::waitpid(pid, true)).await;
        if let Ok(Ok(Some(raw))) = raw {
            self.record(ExitStatus::from_wait_status(raw));
        } else {
            self.try_wait();
        }
    }

    fn record(&self, status: ExitStatus) -> ExitStatus {
        let mut slot = crate::lock(&self.status);
        let status = *slot.get_or_insert(status);
        self.exited.send_replace(Some(status));
        status
    }

    /// The exit status if the child has exited (reaping it), `None` while it runs.
    pub(crate) fn try_wait(&self) -> Option<ExitStatus> {
        let mut slot = crate::lock(&self.status);
        if let Some(status) = *slot {
            return Some(status);
        }
        match sys::waitpid(self.pid, false) {
            Ok(Some(raw)) => {
                let status = ExitStatus::from_wait_status(raw);
                *slot = Some(status);
                drop(slot);
                self.exited.send_replace(Some(status));
                Some(status)
            }
            Ok(None) => None,
            // ECHILD: someone else reaped it; the watcher records the status.
            Err(_) => *slot,
        }
    }

    /// Blocks until the child exits, and reaps it.
    pub(crate) fn wait_blocking(&self) -> ExitStatus {
        if let Some(status) = self.try_wait() {
            return status;
        }
        match sys::waitpid(self.pid, true) {
            Ok(Some(raw)) => self.record(ExitStatus::from_wait_status(raw)),
            _ => self.try_wait().unwrap_or(ExitStatus::Code(-1)),
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

    /// Sends `signal`, unless the child was already reaped.
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

    /// Kills the child and reaps it before returning.
    pub(crate) fn kill_and_reap(&self) -> ExitStatus {
        let _ = self.signal(libc::SIGKILL);
        self.wait_blocking()
    }
}
