//! A worker slot that keeps dying at start fails the pool with the cause,
//! instead of respawning forever.

use std::path::PathBuf;
use std::time::Duration;

use aiomp::{Error, Pool, StartMethod, remote};

mod common;
use common::each_start_method;

/// Refuses to initialize a worker once `path` exists.
#[remote]
fn refuse_once_marked(path: String) {
    assert!(
        !std::path::Path::new(&path).exists(),
        "initializer refuses: {path} exists"
    );
}

#[remote]
async fn pid() -> u32 {
    std::process::id()
}

/// A path unique to this test process, `name` and `method`.
fn marker(name: &str, method: StartMethod) -> PathBuf {
    std::env::temp_dir().join(format!("aiomp-{name}-{method}-{}", std::process::id()))
}

each_start_method! {
    async fn a_slot_that_keeps_dying_at_start_fails_the_pool(method) {
        let path = marker("crash-loop", method);
        let _ = std::fs::remove_file(&path);
        let pool = Pool::builder()
            .start_method(method)
            .processes(1)
            .initializer(refuse_once_marked, (path.display().to_string(),))
            .build()
            .await
            .unwrap();
        let worker = pool.apply(pid, ()).await.unwrap();
        std::fs::write(&path, b"").unwrap();
        // SAFETY: kill takes plain integers.
        assert_eq!(unsafe { libc::kill(worker as i32, libc::SIGKILL) }, 0);
        // Let the pool notice (a task sent before that would fail with WorkerDied).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while pool.worker_pids().contains(&worker) {
            assert!(
                std::time::Instant::now() < deadline,
                "the dead worker was never noticed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let queued = tokio::time::timeout(Duration::from_secs(30), pool.apply(pid, ()).into_future())
            .await
            .expect("the queued task must resolve, not hang");
        let _ = std::fs::remove_file(&path);
        let Err(Error::PoolFailed { reason }) = queued else {
            panic!("expected PoolFailed, got {queued:?}");
        };
        assert!(reason.contains("failed to start 3 times in a row"), "{reason}");
        assert!(reason.contains("initializer refuses"), "{reason}");
        // Later calls fail the same way at once, and join reports it.
        assert!(matches!(pool.apply(pid, ()).await, Err(Error::PoolFailed { .. })));
        assert!(matches!(pool.join().await, Err(Error::PoolFailed { .. })));
        assert!(pool.worker_pids().is_empty());
    }
}
