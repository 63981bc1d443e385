//! A case-by-case port of aiomultiprocess's `tests/pool.py`.
//!
//! The Python `PoolWorker` tests (`test_pool_worker_*`) drive one worker by
//! hand through its queues; here the same behaviour is shown through a real
//! pool: `max_tasks_per_child` recycles workers, a panicking task comes back
//! as `Error::Remote`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aiomp::{Error, Pool, RemoteError, RemoteErrorKind, StartMethod, remote};

mod common;
use common::{each_start_method, eventually, process_exists, remove_if_exists, within};

#[remote]
async fn mapper(value: u64) -> u64 {
    value * 2
}

#[remote]
async fn starmapper(values: Vec<u64>) -> Vec<u64> {
    values.into_iter().map(|v| v * 2).collect()
}

#[remote]
async fn raise_fn() {
    panic!("raising");
}

/// Panics with the path the exception handler should write to in the message.
#[remote]
async fn raise_with_report(path: String) {
    panic!("raising|{path}");
}

#[remote]
async fn two() -> u64 {
    2
}

#[remote]
async fn whoami() -> u32 {
    std::process::id()
}

/// The exception handler: appends one line describing the failure to the
/// file named after the `|` in the panic message.
#[remote]
async fn report_failure(error: RemoteError) {
    let Some((_, path)) = error.message.split_once('|') else {
        return;
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the report file");
    writeln!(
        file,
        "handler_pid={} error_pid={} kind={:?} function={} message={}",
        std::process::id(),
        error.pid,
        error.kind,
        error.function,
        error.message
    )
    .expect("write the report file");
}

fn expected_doubles(values: &[u64]) -> Vec<u64> {
    values.iter().map(|v| v * 2).collect()
}

/// A path unique to this test process, `name` and `method`.
fn temp_path(name: &str, method: StartMethod) -> PathBuf {
    std::env::temp_dir().join(format!("aiomp-pool-core-{name}-{method}-{}", std::process::id()))
}

each_start_method! {
    /// `PoolWorker(maxtasks=1)`: after one task the worker is gone. Here every
    /// task of a `max_tasks_per_child(1)` pool runs in a fresh worker, the
    /// recycled one exits and is reaped, and the pool keeps serving.
    async fn test_pool_worker_max_tasks(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .max_tasks_per_child(1)
                .build()
                .await
                .unwrap();
            let initial = pool.worker_pids();
            assert_eq!(initial.len(), 1, "one live worker at start: {initial:?}");

            let first: u32 = pool.apply(whoami, ()).await.unwrap();
            assert_eq!(first, initial[0], "the first task runs on the initial worker");
            assert!(
                eventually(Duration::from_secs(10), || !pool.worker_pids().contains(&first)).await,
                "the worker that ran its one task is still listed: {:?}",
                pool.worker_pids()
            );
            assert!(
                eventually(Duration::from_secs(10), || !process_exists(first)).await,
                "the recycled worker {first} still exists (not exited or not reaped)"
            );

            // The pool keeps serving, each task on a new worker.
            let mut pids = vec![first];
            for _ in 0..3 {
                let pid: u32 = pool.apply(whoami, ()).await.unwrap();
                assert!(
                    !pids.contains(&pid),
                    "pid {pid} served twice under max_tasks_per_child(1): {pids:?}"
                );
                pids.push(pid);
            }
            let values: Vec<u64> = (0..10).collect();
            assert_eq!(
                pool.map(mapper, values.clone()).await.unwrap(),
                expected_doubles(&values)
            );

            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// `PoolWorker(maxtasks=2)`: after one task the worker is still alive; when
    /// told to stop it exits promptly.
    async fn test_pool_worker_stop(method) {
        within(async {
            let pool = Pool::builder()
                .start_method(method)
                .processes(1)
                .max_tasks_per_child(2)
                .build()
                .await
                .unwrap();

            let first: u32 = pool.apply(whoami, ()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                pool.worker_pids(),
                vec![first],
                "the worker is kept after one of its two tasks"
            );
            assert!(
                process_exists(first),
                "worker {first} exited after one of its two tasks"
            );

            let second: u32 = pool.apply(whoami, ()).await.unwrap();
            assert_eq!(second, first, "the second task runs on the same worker");

            // Its two tasks done, the worker is recycled and the pool keeps serving.
            let third: u32 = pool.apply(whoami, ()).await.unwrap();
            assert_ne!(third, first, "a worker ran a third task under max_tasks_per_child(2)");
            assert_eq!(pool.apply(two, ()).await.unwrap(), 2);

            // Stopping: close + join returns quickly and the worker is gone.
            let live = pool.worker_pids();
            let start = Instant::now();
            pool.close();
            pool.join().await.unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "join took {:?}",
                start.elapsed()
            );
            assert!(
                pool.worker_pids().is_empty(),
                "workers still listed after join: {:?}",
                pool.worker_pids()
            );
            for pid in live.into_iter().chain([first]) {
                assert!(!process_exists(pid), "worker {pid} still exists after join");
            }
        })
        .await;
    }
}

each_start_method! {
    /// A task that raises comes back as an error carrying "raising".
    async fn test_pool_worker_exceptions(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(1).build().await.unwrap();
            let workers = pool.worker_pids();
            let error = pool.apply(raise_fn, ()).await.unwrap_err();
            let Error::Remote(remote) = &error else {
                panic!("expected Error::Remote, got {error:?}");
            };
            assert_eq!(remote.kind, RemoteErrorKind::Panic);
            assert!(remote.message.contains("raising"), "message: {:?}", remote.message);
            assert!(remote.function.contains("raise_fn"), "function: {:?}", remote.function);
            assert!(
                workers.contains(&remote.pid),
                "pid {} is not a worker of {workers:?}",
                remote.pid
            );
            assert!(error.is_panic());
            assert!(error.to_string().contains("raising"), "display: {error}");

            // The worker survives its task's panic.
            assert_eq!(pool.apply(two, ()).await.unwrap(), 2);
            assert_eq!(pool.worker_pids(), workers);
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    async fn test_pool(method) {
        within(async {
            let values: Vec<u64> = (0..10).collect();
            let mut results = Vec::new();
            for &value in &values {
                results.push(mapper(value).await);
            }

            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .max_tasks_per_child(5)
                .build()
                .await
                .unwrap();
            assert_eq!(pool.process_count(), 2);
            assert_eq!(pool.worker_pids().len(), 2);

            assert_eq!(pool.apply(mapper, (values[0],)).await.unwrap(), results[0]);
            assert_eq!(pool.map(mapper, values.clone()).await.unwrap(), results);
            assert_eq!(
                pool.starmap(starmapper, vec![(values[..4].to_vec(),), (values[4..].to_vec(),)])
                    .await
                    .unwrap(),
                vec![results[..4].to_vec(), results[4..].to_vec()]
            );
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    async fn test_pool_map(method) {
        within(async {
            let values: Vec<u64> = (0..20).step_by(2).collect();
            let expected = expected_doubles(&values);

            let pool = Pool::builder().start_method(method).processes(2).build().await.unwrap();
            let results: Vec<u64> = pool.map(mapper, values.clone()).await.unwrap();
            assert_eq!(results, expected);

            let mut stream = pool.map(mapper, values.clone());
            let mut idx = 0;
            while let Some(result) = stream.next().await {
                assert_eq!(result.unwrap(), expected[idx], "streamed result {idx}");
                idx += 1;
            }
            assert_eq!(idx, expected.len());
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    async fn test_pool_starmap(method) {
        within(async {
            let values: Vec<u64> = (0..20).step_by(2).collect();
            let expected = expected_doubles(&values);

            let pool = Pool::builder().start_method(method).processes(2).build().await.unwrap();
            let results: Vec<Vec<u64>> = pool.starmap(starmapper, vec![(values.clone(),); 5]).await.unwrap();
            assert_eq!(results, vec![expected.clone(); 5]);

            let mut stream = pool.starmap(starmapper, vec![(values.clone(),); 5]);
            let mut count = 0;
            while let Some(result) = stream.next().await {
                assert_eq!(result.unwrap(), expected, "streamed result {count}");
                count += 1;
            }
            assert_eq!(count, 5);
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    async fn test_pool_exception(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(2).build().await.unwrap();
            let error = pool.apply(raise_fn, ()).await.unwrap_err();
            assert!(
                matches!(&error, Error::Remote(remote) if remote.kind == RemoteErrorKind::Panic),
                "expected a remote panic, got {error:?}"
            );
            assert!(error.as_remote().unwrap().message.contains("raising"));
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    /// The handler runs in the worker, with the failure: it writes a report
    /// file that the test reads back.
    async fn test_pool_exception_handler(method) {
        within(async {
            let path = temp_path("exception-handler", method);
            remove_if_exists(&path);
            let pool = Pool::builder()
                .start_method(method)
                .processes(2)
                .exception_handler(report_failure)
                .build()
                .await
                .unwrap();
            let workers = pool.worker_pids();

            let error = pool
                .apply(raise_with_report, (path.to_str().unwrap().to_owned(),))
                .await
                .unwrap_err();
            let Error::Remote(remote) = &error else {
                panic!("expected Error::Remote, got {error:?}");
            };
            assert!(remote.message.starts_with("raising"), "message: {:?}", remote.message);

            // A successful task does not call the handler.
            assert_eq!(pool.apply(two, ()).await.unwrap(), 2);

            assert!(
                eventually(Duration::from_secs(10), || path.exists()).await,
                "the exception handler never wrote {}",
                path.display()
            );
            let report = std::fs::read_to_string(&path).unwrap();
            remove_if_exists(&path);
            let lines: Vec<&str> = report.lines().collect();
            assert_eq!(lines.len(), 1, "one failure, one report: {report:?}");
            let line = lines[0];
            let expected_pid = format!("handler_pid={} error_pid={} ", remote.pid, remote.pid);
            assert!(
                line.starts_with(&expected_pid),
                "report {line:?} should start with {expected_pid:?}"
            );
            assert!(
                workers.contains(&remote.pid),
                "pid {} is not a worker of {workers:?}",
                remote.pid
            );
            assert_ne!(remote.pid, std::process::id(), "the handler ran in the parent");
            assert!(line.contains("kind=Panic"), "report: {line:?}");
            assert!(line.contains("raise_with_report"), "report: {line:?}");
            assert!(line.contains("message=raising|"), "report: {line:?}");

            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}

#[aiomp::test]
async fn test_pool_args() {
    within(async {
        let result = Pool::builder().processes(4).queue_count(9).build().await;
        match result {
            Err(Error::InvalidConfig(message)) => {
                assert!(message.contains("queue count"), "message: {message:?}");
            }
            Err(other) => panic!("expected Error::InvalidConfig, got {other:?}"),
            Ok(pool) => panic!("a pool with 9 queues over 4 processes was built: {pool:?}"),
        }
    })
    .await;
}

each_start_method! {
    async fn test_pool_closed(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(2).build().await.unwrap();
            pool.close();

            let error = pool.apply(two, ()).await.unwrap_err();
            assert!(matches!(error, Error::PoolClosed), "apply: {error:?}");
            assert_eq!(error.to_string(), "pool is closed");

            let error = pool.map(mapper, [1, 2]).await.unwrap_err();
            assert!(matches!(error, Error::PoolClosed), "map: {error:?}");

            let error = pool.starmap(starmapper, vec![(vec![1],)]).await.unwrap_err();
            assert!(matches!(error, Error::PoolClosed), "starmap: {error:?}");

            let mut stream = pool.map(mapper, [1, 2]);
            assert!(matches!(stream.next().await, Some(Err(Error::PoolClosed))));
            assert!(
                stream.next().await.is_none(),
                "a stream on a closed pool ends after its error"
            );

            pool.terminate();
            pool.join().await.unwrap();
        })
        .await;
    }
}

each_start_method! {
    async fn test_pool_early_join(method) {
        within(async {
            let pool = Pool::builder().start_method(method).processes(2).build().await.unwrap();
            let error = pool.join().await.unwrap_err();
            assert!(matches!(error, Error::PoolStillOpen), "join before close: {error:?}");
            assert!(error.to_string().contains("pool is still open"), "display: {error}");

            // Still usable afterwards, and joins once closed.
            assert_eq!(pool.apply(two, ()).await.unwrap(), 2);
            pool.close();
            pool.join().await.unwrap();
        })
        .await;
    }
}
