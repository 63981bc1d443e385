//! A case-by-case port of aiomultiprocess `tests/core.py` (the `Process` and
//! `Worker` cases) to the Rust API. Where the Rust contract differs from
//! Python's, a one-line comment says so.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aiomp::{Error, Process, RemoteErrorKind, Worker, remote};

mod common;
use common::each_start_method;

static DUMMY_CONSTANT: AtomicU64 = AtomicU64::new(0);

#[remote]
async fn sleepy() -> u32 {
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::process::id()
}

#[remote]
async fn sleep_secs(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[remote]
fn initializer(value: u64) {
    DUMMY_CONSTANT.store(value, Ordering::SeqCst);
}

#[remote]
fn get_dummy_constant() -> u64 {
    DUMMY_CONSTANT.load(Ordering::SeqCst)
}

#[remote]
fn do_nothing() {}

/// The line of the `panic!` in `raise_fn`, to check the reported location.
const RAISE_LINE: u32 = line!() + 3;
#[remote]
async fn raise_fn() {
    panic!("raising");
}

each_start_method! {
    async fn test_process(method) {
        let mut p = Process::new(sleepy).name("test_process").start_method(method);
        p.start().unwrap();
        // Rust: the name is set with `.name(..)` and read with `.get_name()`.
        assert_eq!(p.get_name(), "test_process");
        let pid = p.pid().expect("a started process has a pid");
        assert_ne!(pid, 0);
        assert_ne!(pid, std::process::id(), "the target must run in another process");
        assert!(p.is_alive());
        p.join().await.unwrap();
        assert!(!p.is_alive());
        assert_eq!(p.exitcode(), Some(0));
    }
}

each_start_method! {
    async fn test_process_await(method) {
        // Rust: awaiting consumes the handle, so the exit code cannot be read afterwards; the await's result is
        // checked.
        Process::new(sleepy)
            .name("test_process")
            .start_method(method)
            .await
            .unwrap();

        let mut p = Process::new(sleepy).name("test_process").start_method(method);
        p.start().unwrap();
        p.await.unwrap();

        // Awaiting really runs the target: a panicking one reports it, started or not.
        let err = Process::new(raise_fn).start_method(method).await.unwrap_err();
        assert!(err.is_panic(), "expected a remote panic, got {err:?}");
        let mut p = Process::new(raise_fn).start_method(method);
        p.start().unwrap();
        let err = p.await.unwrap_err();
        assert!(err.is_panic(), "expected a remote panic, got {err:?}");
    }
}

each_start_method! {
    async fn test_process_join(method) {
        let mut p = Process::new(sleepy).name("test_process").start_method(method);
        // Rust: `join` on an unstarted process starts it (API.md) instead of raising "must start process".
        assert_eq!(p.pid(), None);
        assert_eq!(p.exitcode(), None);
        p.join().await.unwrap();
        assert!(p.pid().is_some(), "join must have started the process");
        assert_eq!(p.exitcode(), Some(0));

        let mut p = Process::new(sleepy).name("test_process").start_method(method);
        p.start().unwrap();
        p.join().await.unwrap();
        assert_eq!(p.exitcode(), Some(0));
        // Rust: a second start is refused rather than silently re-running the target.
        assert!(matches!(p.start(), Err(Error::InvalidState(_))));
    }
}

#[aiomp::test]
async fn test_process_daemon() {
    // Rust: the flag is the builder `.daemon(bool)` read with `.is_daemon()`; "setting" it again rebuilds the handle.
    assert!(!Process::new(do_nothing).is_daemon(), "not a daemon by default");

    let p = Process::new(do_nothing).daemon(false);
    assert!(!p.is_daemon());
    let p = p.daemon(true);
    assert!(p.is_daemon());

    let p = Process::new(do_nothing).daemon(true);
    assert!(p.is_daemon());
    let p = p.daemon(false);
    assert!(!p.is_daemon());

    let w = Worker::new(do_nothing).daemon(true);
    assert!(w.is_daemon());
}

each_start_method! {
    async fn test_process_terminate(method) {
        let start = Instant::now();
        // Rust: a 10 s sleep (Python: 1 s) and a 5 s bound (Python: 0.6 s), for a loaded machine.
        let mut p = Process::with_args(sleep_secs, (10,))
            .name("test_process")
            .start_method(method);
        p.start().unwrap();
        p.terminate().unwrap();
        // Rust: `join` after our own `terminate` is Ok, and the exit code says SIGTERM.
        p.join().await.unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM));
        assert!(!p.is_alive());
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(5), "terminate took {elapsed:?}");
    }
}

each_start_method! {
    async fn test_process_kill(method) {
        // Rust: a long sleep instead of `sleepy`, so the kill always lands before the target could finish.
        let mut p = Process::with_args(sleep_secs, (10,)).start_method(method);
        p.start().unwrap();
        p.kill().unwrap();
        // Rust: `join` after our own `kill` is Ok, and the exit code says SIGKILL.
        p.join().await.unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGKILL));
        assert!(!p.is_alive());
    }
}

each_start_method! {
    async fn test_process_close(method) {
        let mut p = Process::new(sleepy).start_method(method);
        p.start().unwrap();
        assert_eq!(p.exitcode(), None);
        // Rust: `close` while running is `Err(Error::InvalidState(_))` (Python: ValueError).
        assert!(matches!(p.close(), Err(Error::InvalidState(_))));
        p.join().await.unwrap();
        assert_eq!(p.exitcode(), Some(0));
        p.close().unwrap();
        // Rust: after close the handle is spent: `exitcode()` is an Option, so it reads None, and other calls are
        // refused.
        assert_eq!(p.exitcode(), None);
        assert!(!p.is_alive());
        assert!(matches!(p.start(), Err(Error::InvalidState(_))));
        assert!(matches!(p.terminate(), Err(Error::InvalidState(_))));
        assert!(matches!(p.kill(), Err(Error::InvalidState(_))));
        assert!(matches!(p.join().await, Err(Error::InvalidState(_))));
    }
}

each_start_method! {
    async fn test_process_timeout(method) {
        let mut p = Process::new(sleepy).start_method(method);
        p.start().unwrap();
        // Rust: `join_timeout(Duration)` (Python: `join(timeout=...)`) gives `Err(Error::Timeout)`.
        assert!(matches!(
            p.join_timeout(Duration::from_millis(10)).await,
            Err(Error::Timeout)
        ));
        // The child keeps running, and a later join picks it up.
        assert!(p.is_alive());
        p.join().await.unwrap();
        assert_eq!(p.exitcode(), Some(0));
    }
}

each_start_method! {
    async fn test_worker(method) {
        let mut p = Worker::new(sleepy).start_method(method);
        p.start().unwrap();
        // Rust: `result()` is `Err(Error::NotCompleted)` (Python: ValueError "coroutine not completed").
        assert!(matches!(p.result(), Err(Error::NotCompleted)));
        let joined = p.join().await.unwrap();
        assert!(!p.is_alive());
        let pid = p.pid().unwrap();
        assert_eq!(p.result().unwrap(), &pid);
        assert_eq!(joined, pid);
    }
}

each_start_method! {
    async fn test_worker_join(method) {
        let mut p = Worker::new(sleepy).start_method(method);
        p.start().unwrap();
        let result = p.join().await.unwrap();
        assert_eq!(Some(result), p.pid());

        // Rust: awaiting consumes the worker, so its pid is read from the result, which must be another process.
        let result = Worker::new(sleepy).start_method(method).await.unwrap();
        assert_ne!(result, std::process::id());
        assert_ne!(result, 0);
    }
}

each_start_method! {
    async fn test_initializer(method) {
        let result = Worker::new(get_dummy_constant)
            .name("test_process")
            .start_method(method)
            .initializer(initializer, (10,))
            .await
            .unwrap();
        assert_eq!(result, 10);
        // The initializer ran in the child, not here.
        assert_eq!(DUMMY_CONSTANT.load(Ordering::SeqCst), 0);
    }
}

each_start_method! {
    async fn test_raise(method) {
        // Rust: a panicking target is `Err(Error::Remote(_))` (Python returns the RuntimeError as the result).
        let mut w = Worker::new(raise_fn)
            .name("test_process")
            .start_method(method)
            .initializer(do_nothing, ());
        let err = w.join().await.unwrap_err();
        let pid = w.pid().unwrap();
        let Error::Remote(remote) = &err else {
            panic!("expected Error::Remote, got {err:?}");
        };
        assert_eq!(remote.kind, RemoteErrorKind::Panic);
        assert_eq!(remote.message, "raising");
        assert_eq!(remote.function, "process_core::raise_fn");
        assert_eq!(remote.pid, pid);
        assert_ne!(remote.pid, std::process::id());
        let location = remote.location.as_deref().expect("a panic has a location");
        assert!(
            location.starts_with(&format!("{}:{RAISE_LINE}:", file!())),
            "location {location:?} is not {}:{RAISE_LINE}",
            file!()
        );
        assert!(matches!(w.result(), Err(Error::NotCompleted)));
        let message = err.to_string();
        assert!(message.contains("raising"), "{message}");
        assert!(message.contains("process_core::raise_fn"), "{message}");

        // Process reports the panic the same way.
        let mut p = Process::new(raise_fn).start_method(method).initializer(do_nothing, ());
        let err = p.join().await.unwrap_err();
        let remote = err.as_remote().expect("expected Error::Remote");
        assert_eq!(remote.kind, RemoteErrorKind::Panic);
        assert_eq!(remote.message, "raising");
        assert_eq!(Some(remote.pid), p.pid());
    }
}
