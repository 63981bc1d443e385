//! Spawn: re-execute the current binary with the child's end of a socketpair
//! as its stdin (the child moves it off fd 0 at once), named in the
//! environment with the token. Its `main` (or its `#[aiomp::test]`) calls
//! [`init`](crate::init) first, which finds the fd and serves.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::entry::{Entry, entry};
use crate::error::Error;
use crate::launch::{Launched, WORKER_ENV, greet, random_token, token_hex};
use crate::os_child::OsChild;

/// The binary this process is running, whatever became of its path.
const RUNNING_BINARY: &str = "/proc/self/exe";

/// Spawns a worker, its channel greeted with `greeting`.
pub(super) fn spawn_worker(greeting: &[u8]) -> Result<Launched, Error> {
    spawn("spawn", greeting)
}

/// Spawns the current binary in `role` (`spawn` for a worker, `forkserver`
/// for the fork server), its channel greeted with `greeting`.
pub(super) fn spawn(role: &str, greeting: &[u8]) -> Result<Launched, Error> {
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
    let token = random_token()?;
    let (parent_end, child_end) = UnixStream::pair().map_err(Error::Spawn)?;
    let unsent = greet(&parent_end, &token, greeting)?;
    // The running binary itself, even if its file was replaced or deleted
    // since (a rebuild under a long-running service): a child can never be
    // a different build. Its argv[0] keeps the usual name for `ps`.
    let mut command = Command::new(RUNNING_BINARY);
    if let Ok(exe) = std::env::current_exe() {
        command.arg0(exe);
    }
    // The channel goes in as stdin: the child moves it off fd 0 (and puts
    // /dev/null there) before anything else runs. Passing it as a standard
    // stream rather than clearing its close-on-exec flag between fork and
    // exec lets std start the child with posix_spawn (vfork), whose cost
    // does not grow with the parent's memory as fork's does.
    command
        .args(args)
        .env(WORKER_ENV, format!("{role}:0:{}", token_hex(&token)))
        .stdin(Stdio::from(OwnedFd::from(child_end)));
    let child = command.spawn().map_err(Error::Spawn)?;
    drop(command);
    Ok(Launched {
        child: OsChild::adopt(child.id()),
        stream: parent_end,
        unsent,
    })
}
