//! Fork: the child is a copy of the caller at the time of the call.
//!
//! Only the forking thread exists in the child. It never touches the
//! inherited tokio runtime (whose threads are gone; it is leaked, never
//! dropped) and takes no lock another parent thread may have held before it
//! builds a fresh runtime: everything it reads first (the registry, the
//! panic hook) is made ready here, before the fork.
//!
//! The child keeps the fds it inherited, as after any fork (tokio's
//! process-wide ones among them, which its fresh runtime needs), except its
//! own copy of the parent's end of its channel. It does not rely on that
//! channel's EOF to learn of the parent's death (a sibling forked later may
//! hold the parent's end too): it watches the parent's pidfd.

use std::os::unix::net::UnixStream;

use crate::child::{self, ParentWatch};
use crate::error::Error;
use crate::launch::{Launched, greet, random_token};
use crate::os_child::OsChild;
use crate::panic;
use crate::registry::Registry;
use crate::sys::{self, Forked};

/// Forks a worker from the calling process, its channel greeted with `greeting`.
pub(super) fn fork_worker(greeting: &[u8]) -> Result<Launched, Error> {
    Registry::get()?;
    panic::install_hook();
    let token = random_token()?;
    let parent = std::process::id();
    let (parent_end, child_end) = UnixStream::pair().map_err(Error::Spawn)?;
    let unsent = greet(&parent_end, &token, greeting)?;
    match sys::fork().map_err(Error::Spawn)? {
        Forked::Child => {
            sys::reset_signals();
            drop(parent_end);
            // Any thread may have forked it: only a pidfd is a safe watch.
            child::serve_forked(child_end, &token, parent, ParentWatch::Pidfd)
        }
        Forked::Parent(pid) => {
            drop(child_end);
            Ok(Launched {
                child: OsChild::adopt(pid),
                stream: parent_end,
                unsent,
            })
        }
    }
}
