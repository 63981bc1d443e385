//! `Process` and `Worker` when things go wrong: a child that aborts, exits or
//! is killed from outside, values postcard cannot carry, unregistered
//! functions, and the API.md "Process and Worker" snippet run as written.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aiomp::{Error, ExitStatus, Process, RemoteErrorKind, StartMethod, Worker, remote};
use serde::{Deserialize, Serialize};

mod common;
use common::each_start_method;

/// How long a fault may take to surface before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(20);

async fn bounded<T>(what: &str, future: impl IntoFuture<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not resolve within {BOUND:?}"))
}

#[remote]
fn abort_now() {
    std::process::abort();
}

#[remote]
fn exit_with(code: i32) {
    std::process::exit(code);
}

/// Creates `marker` (so the parent knows the task is running), then sleeps.
#[remote]
async fn mark_then_sleep(marker: String, secs: u64) -> u64 {
    std::fs::write(&marker, b"running").unwrap();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    secs
}

#[remote]
async fn panics() -> u32 {
    panic!("boom");
}

#[derive(Debug, Serialize, Deserialize)]
struct Inner {
    a: u32,
}

/// postcard cannot carry `#[serde(flatten)]`.
#[derive(Debug, Serialize, Deserialize)]
struct Flat {
    #[serde(flatten)]
    inner: Inner,
    b: u32,
}

#[remote]
fn takes_flat(value: Flat) -> u32 {
    value.inner.a + value.b
}

#[remote]
async fn returns_flat() -> Flat {
    Flat {
        inner: Inner { a: 1 },
        b: 2,
    }
}

/// Not `#[remote]`.
async fn not_remote() -> u32 {
    1
}

/// A marker path unique to this test process, `name` and `method`.
fn marker(name: &str, method: StartMethod) -> PathBuf {
    let path = std::env::temp_dir().join(format!("aiomp-process-faults-{}-{name}-{method}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Waits until the child created `path`.
async fn wait_for(path: &Path) {
    bounded("waiting for the child's marker", async {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _ = std::fs::remove_file(path);
}

each_start_method! {
    async fn abort_is_worker_died_sigabrt(method) {
        let mut w = Worker::new(abort_now).start_method(method);
        w.start().unwrap();
        let pid = w.pid().unwrap();
        let err = bounded("join of an aborting worker", w.join()).await.unwrap_err();
        match err {
            Error::WorkerDied { pid: died, status } => {
                assert_eq!(died, pid);
                assert_eq!(status, ExitStatus::Signal(libc::SIGABRT));
            }
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        assert_eq!(w.exitcode(), Some(-libc::SIGABRT));
        assert!(!w.is_alive());
        assert!(matches!(w.result(), Err(Error::NotCompleted)));
    }
}

each_start_method! {
    async fn exit_is_worker_died_with_code(method) {
        let mut w = Worker::with_args(exit_with, (3,)).start_method(method);
        let err = bounded("join of an exiting worker", w.join()).await.unwrap_err();
        let pid = w.pid().unwrap();
        assert!(
            matches!(err, Error::WorkerDied { pid: died, status: ExitStatus::Code(3) } if died == pid),
            "expected WorkerDied with exit code 3, got {err:?}"
        );
        assert_eq!(w.exitcode(), Some(3));

        // Process reports it the same way.
        let mut p = Process::with_args(exit_with, (3,)).start_method(method);
        let err = bounded("join of an exiting process", p.join()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::WorkerDied {
                    status: ExitStatus::Code(3),
                    ..
                }
            ),
            "expected WorkerDied with exit code 3, got {err:?}"
        );
        assert_eq!(p.exitcode(), Some(3));
    }
}

each_start_method! {
    async fn sigkill_from_outside_is_worker_died_sigkill(method) {
        let path = marker("sigkill", method);
        let mut w = Worker::with_args(mark_then_sleep, (path.to_str().unwrap().to_owned(), 60)).start_method(method);
        w.start().unwrap();
        let pid = w.pid().unwrap();
        wait_for(&path).await;
        // SAFETY: `kill` has no memory-safety preconditions; `pid` is our unreaped child.
        let sent = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        assert_eq!(sent, 0, "kill failed: {}", std::io::Error::last_os_error());
        let err = bounded("join of a worker killed from outside", w.join())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::WorkerDied { pid: died, status: ExitStatus::Signal(9) } if died == pid),
            "expected WorkerDied by SIGKILL, got {err:?}"
        );
        assert_eq!(w.exitcode(), Some(-9));
        let message = err.to_string();
        assert!(message.contains(&pid.to_string()), "{message}");
        assert!(message.contains("SIGKILL"), "{message}");
    }
}

each_start_method! {
    async fn terminate_while_running_joins_ok(method) {
        // Unlike process_core::test_process_terminate, the target is surely running when SIGTERM lands.
        let path = marker("terminate", method);
        let mut p = Process::with_args(mark_then_sleep, (path.to_str().unwrap().to_owned(), 60)).start_method(method);
        p.start().unwrap();
        wait_for(&path).await;
        p.terminate().unwrap();
        bounded("join after terminate", p.join()).await.unwrap();
        assert_eq!(p.exitcode(), Some(-libc::SIGTERM));

        let path = marker("kill", method);
        let mut w = Worker::with_args(mark_then_sleep, (path.to_str().unwrap().to_owned(), 60)).start_method(method);
        w.start().unwrap();
        wait_for(&path).await;
        w.kill().unwrap();
        // A stopped worker has no result to give.
        let err = bounded("join after kill", w.join()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidState(_)), "got {err:?}");
        assert_eq!(w.exitcode(), Some(-libc::SIGKILL));
    }
}

each_start_method! {
    async fn daemon_child_is_killed_when_handle_dropped(method) {
        let path = marker("daemon", method);
        let mut p = Process::with_args(mark_then_sleep, (path.to_str().unwrap().to_owned(), 60))
            .daemon(true)
            .start_method(method);
        p.start().unwrap();
        let pid = p.pid().unwrap();
        wait_for(&path).await;
        drop(p);
        // SAFETY: signal 0 only checks that the process exists.
        let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        assert!(!exists, "daemon child {pid} outlived its handle");
    }
}

each_start_method! {
    async fn unencodable_argument_is_codec_error(method) {
        let value = Flat {
            inner: Inner { a: 1 },
            b: 2,
        };
        let mut w = Worker::with_args(takes_flat, (value,)).start_method(method);
        match w.start() {
            Err(Error::Codec { function, action, .. }) => {
                assert_eq!(function, "process_faults::takes_flat");
                assert!(action.contains("encode"), "{action}");
            }
            other => panic!("expected Error::Codec, got {other:?}"),
        }
        assert_eq!(w.pid(), None, "no child for a call that cannot be sent");
        let err = bounded("join of an unsendable call", w.join()).await.unwrap_err();
        assert!(
            matches!(&err, Error::Codec { function, .. } if function == "process_faults::takes_flat"),
            "got {err:?}"
        );
        assert!(err.to_string().contains("process_faults::takes_flat"), "{err}");
    }
}

each_start_method! {
    async fn unencodable_result_is_codec_error(method) {
        let mut w = Worker::new(returns_flat).start_method(method);
        let err = bounded("join of an unencodable result", w.join()).await.unwrap_err();
        match &err {
            Error::Codec { function, action, .. } => {
                assert_eq!(function, "process_faults::returns_flat");
                assert!(action.contains("encode"), "{action}");
            }
            other => panic!("expected Error::Codec, got {other:?}"),
        }
        assert!(matches!(w.result(), Err(Error::NotCompleted)));
    }
}

each_start_method! {
    async fn unregistered_function_is_not_registered(method) {
        let mut w = Worker::new(not_remote).start_method(method);
        match w.start() {
            Err(Error::NotRegistered { function }) => assert!(function.contains("not_remote"), "{function}"),
            other => panic!("expected Error::NotRegistered, got {other:?}"),
        }
        assert_eq!(w.pid(), None);

        let err = bounded(
            "join of an unregistered fn",
            Process::new(not_remote).start_method(method).join_timeout(BOUND),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, Error::NotRegistered { function } if function.contains("not_remote")),
            "got {err:?}"
        );
        assert!(
            Error::NotRegistered { function: "x" }
                .to_string()
                .contains("#[aiomp::remote]"),
            "the message says the fix"
        );
    }
}

each_start_method! {
    async fn remote_panic_backtrace_follows_env(method) {
        // The child inherits our environment, so it captures a backtrace exactly when we would.
        let expected = Backtrace::capture().status() == BacktraceStatus::Captured;
        let err = bounded("join of a panicking worker", Worker::new(panics).start_method(method))
            .await
            .unwrap_err();
        let remote = err.as_remote().expect("expected Error::Remote");
        assert_eq!(remote.kind, RemoteErrorKind::Panic);
        assert_eq!(remote.message, "boom");
        assert_eq!(remote.function, "process_faults::panics");
        assert_eq!(
            remote.backtrace.is_some(),
            expected,
            "backtrace {:?} with RUST_BACKTRACE={:?}",
            remote.backtrace,
            std::env::var("RUST_BACKTRACE")
        );
    }
}

#[remote]
async fn job() {}

#[remote]
async fn job_with(tenths: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(100 * tenths)).await;
    tenths
}

#[remote]
async fn answer() -> u64 {
    42
}

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

each_start_method! {
    async fn api_snippet_process_and_worker(method) -> aiomp::Result<()> {
        let mut p = Process::new(job).name("job-1").start_method(method); // zero-argument target
        assert_eq!(p.get_name(), "job-1");
        p.join().await?;
        let mut p = Process::with_args(job_with, (7,)).daemon(true).start_method(method);
        p.start()?;
        // Rust: `name()`/`daemon()` are the builders; the getters are `get_name()`/`is_daemon()`.
        assert_eq!(p.get_name(), "");
        assert!(p.pid().is_some());
        assert!(p.is_alive());
        assert!(p.is_daemon());
        assert_eq!(p.exitcode(), None, "None while running");
        p.join().await?;
        assert_eq!(p.exitcode(), Some(0));
        // Rust: on a finished process join_timeout returns at once (the Timeout case is
        // process_core::test_process_timeout).
        p.join_timeout(Duration::from_millis(10)).await?;
        // Signalling a process that has exited is a no-op.
        p.terminate()?;
        p.kill()?;
        assert_eq!(p.exitcode(), Some(0));
        p.close()?;

        let v: u64 = Worker::new(answer).start_method(method).join().await?; // one process, one result
        assert_eq!(v, 42);
        let v: u64 = Worker::with_args(double, (21,)).start_method(method).await?; // Worker and Process are IntoFuture
        assert_eq!(v, 42);
        let mut worker = Worker::with_args(double, (4,)).start_method(method);
        assert!(matches!(worker.result(), Err(Error::NotCompleted)));
        worker.join().await?;
        assert_eq!(worker.result()?, &8);
        Ok(())
    }
}
