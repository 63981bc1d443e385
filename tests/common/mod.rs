//! Helpers shared by the integration tests.
//!
//! Each test binary includes this module and uses only some of it.
#![allow(dead_code, unused_macros, unused_imports)]

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long one test may run before it fails instead of hanging.
pub(crate) const TEST_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `body`, failing the test if it takes longer than [`TEST_DEADLINE`].
pub(crate) async fn within<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_DEADLINE, body)
        .await
        .expect("the test did not finish within its deadline")
}

/// Waits up to `limit` for `condition` to hold; returns whether it did.
pub(crate) async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `pid` still exists (a zombie still does: this checks reaping).
pub(crate) fn process_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Calls of [`count_running`] running in this worker now.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
/// The most calls of [`count_running`] this worker ever ran at once.
static MOST_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Sleeps `ms` and returns the most calls of it this worker ran at once.
#[aiomp::remote]
pub(crate) async fn count_running(ms: u64) -> usize {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_RUNNING.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    MOST_RUNNING.load(Ordering::SeqCst)
}

/// How the threads whose `/proc/.../stat` files `stat_files` lists spent `span`,
/// sampled every millisecond: (samples where one of them was running or
/// runnable, samples where all slept).
///
/// # Panics
///
/// If a sample finds none of the files, so that a wrong or dead process
/// cannot pass for a sleeping one.
pub(crate) fn sample_running(span: Duration, stat_files: impl Fn() -> Vec<std::path::PathBuf>) -> (usize, usize) {
    let started = Instant::now();
    let (mut running, mut other) = (0, 0);
    while started.elapsed() < span {
        let states: Vec<String> = stat_files()
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .collect();
        assert!(!states.is_empty(), "no thread's state could be read");
        // The state follows the command name, which is in parentheses.
        let any_running = states.iter().any(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('R'))
        });
        if any_running {
            running += 1;
        } else {
            other += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (running, other)
}

/// Removes `path`, if it exists.
pub(crate) fn remove_if_exists(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("could not remove {}: {e}", path.display()),
    }
}

/// Defines a test once per start method: a module named after the test with
/// `spawn`, `fork` and `forkserver` tests, each an `#[aiomp::test]` that runs
/// the body with that method bound to the given name.
///
/// ```ignore
/// each_start_method! {
///     /// Attributes and doc comments go on each of the three tests.
///     async fn worker_returns(method) {
///         let v: u64 = Worker::with_args(double, (21,)).start_method(method).await.unwrap();
///         assert_eq!(v, 42);
///     }
/// }
/// ```
///
/// defines `worker_returns::spawn`, `worker_returns::fork` and
/// `worker_returns::forkserver`. The body sees the file's items through
/// `use super::*`; it may declare a return type (`-> aiomp::Result<()>`),
/// which the three tests then return. Each test passes its method to every
/// `Pool`, `Process` and `Worker` it builds: never set the global
/// `aiomp::set_start_method` in a test, since tests run in parallel threads
/// of one process.
macro_rules! each_start_method {
    ($(#[$attr:meta])* async fn $name:ident($method:ident) $(-> $ret:ty)? $body:block) => {
        mod $name {
            #[allow(unused_imports, clippy::wildcard_imports)]
            use super::*;

            async fn body($method: ::aiomp::StartMethod) $(-> $ret)? $body

            $(#[$attr])*
            #[::aiomp::test]
            async fn spawn() $(-> $ret)? {
                body(::aiomp::StartMethod::Spawn).await
            }

            $(#[$attr])*
            #[::aiomp::test]
            async fn fork() $(-> $ret)? {
                body(::aiomp::StartMethod::Fork).await
            }

            $(#[$attr])*
            #[::aiomp::test]
            async fn forkserver() $(-> $ret)? {
                body(::aiomp::StartMethod::Forkserver).await
            }
        }
    };
}
pub(crate) use each_start_method;
