//! Entering worker mode: `init()`, and what `#[aiomp::main]` and
//! `#[aiomp::test]` expand to.
//!
//! A spawned child re-executes the current binary. Nothing runs before `main`
//! (no constructor reads the registry or starts tokio): the program's first
//! statement, [`init`], finds the channel the parent left in the environment
//! and serves tasks until the parent closes it. In the parent, `init` only
//! records that the binary can host workers, and returns.

use std::future::Future;
use std::sync::OnceLock;

use crate::child;

/// How a spawned child finds its way back to the worker entry.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// `main` calls [`init`] first: re-executing the binary with no arguments reaches it.
    Main,
    /// An integration test binary: re-executing it with this test's exact name
    /// runs only that test, whose `#[aiomp::test]` wrapper enters worker mode.
    Test(String),
}

static ENTRY: OnceLock<Entry> = OnceLock::new();

/// The entry a spawned child of this process will take, if the program set one.
pub(crate) fn entry() -> Option<&'static Entry> {
    ENTRY.get()
}

/// Enters worker mode if this process is an aiomp child; returns at once otherwise.
///
/// Call it first thing in a hand-written `main`, before any other code runs:
/// a spawned worker re-executes the binary, and whatever `main` does before
/// `init` it does again in every worker. `#[aiomp::main]` does this for you.
/// Called first thing inside a `#[tokio::main]` it works too, under every
/// start method (a worker serves on a thread of its own), but each spawned
/// worker builds that runtime again first, and keeps it idle.
///
/// ```no_run
/// fn main() {
///     aiomp::init();
///     // ... build a runtime, create pools ...
/// }
/// ```
///
/// In the parent it also reads `AIOMP_START_METHOD` ([`START_METHOD_ENV`](crate::START_METHOD_ENV)),
/// if set: `spawn`, `fork` or `forkserver` becomes the default start method,
/// as with [`set_start_method`](crate::set_start_method). With
/// `forkserver`, the fork server starts right here, by forking this process
/// while it is still single-threaded (as it is at the top of `main`): it is a
/// copy of the program as `main` starts, and the first pool's workers are
/// forked from it without re-executing the binary. (When other threads
/// exist already, it starts on first use instead, by re-executing the binary.)
///
/// # Panics
///
/// In the parent, if `AIOMP_START_METHOD` holds anything but a start
/// method's name. In a child, it does not return: it serves tasks and
/// exits the process.
#[allow(clippy::needless_doctest_main)] // the point is a hand-written `main`
pub fn init() {
    let _ = ENTRY.set(Entry::Main);
    child::serve_if_child();
    crate::launch::apply_environment();
}

/// The runtime flavors `#[aiomp::main]` and `#[aiomp::test]` accept.
// Not public API. Used by generated code.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Flavor {
    /// `flavor = "current_thread"`.
    CurrentThread,
    /// `flavor = "multi_thread"`, with an optional `worker_threads = N`.
    MultiThread {
        /// Worker threads; tokio's default when `None`.
        worker_threads: Option<usize>,
    },
}

// Not public API. Used by generated code.
#[doc(hidden)]
pub fn enter_main() {
    init();
}

// Not public API. Used by generated code.
#[doc(hidden)]
pub fn main_runtime(flavor: Flavor) -> tokio::runtime::Runtime {
    build_runtime(flavor).expect("failed to build the tokio runtime for main")
}

// Not public API. Used by generated code.
#[doc(hidden)]
pub fn run_test<F: Future>(module_path: &'static str, name: &'static str, flavor: Flavor, body: F) -> F::Output {
    // libtest names a test by its path without the crate's name.
    let path = match module_path.split_once("::") {
        Some((_, rest)) => format!("{rest}::{name}"),
        None => name.to_owned(),
    };
    let _ = ENTRY.set(Entry::Test(path));
    child::serve_if_child();
    build_runtime(flavor)
        .expect("failed to build the tokio runtime for the test")
        .block_on(body)
}

fn build_runtime(flavor: Flavor) -> std::io::Result<tokio::runtime::Runtime> {
    match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Flavor::MultiThread { worker_threads } => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = worker_threads {
                builder.worker_threads(n);
            }
            builder.enable_all().build()
        }
    }
}
