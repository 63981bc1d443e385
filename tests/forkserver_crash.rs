//! A fork server that dies is replaced on the next start, and the workers it
//! had forked keep serving (its own test binary: the server is per process).

use std::time::{Duration, Instant};

use aiomp::{Pool, StartMethod, Worker, remote};

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote]
async fn pid() -> u32 {
    std::process::id()
}

/// A pool of two workers forked by the fork server.
async fn forkserver_pool() -> Pool {
    Pool::builder()
        .processes(2)
        .start_method(StartMethod::Forkserver)
        .build()
        .await
        .unwrap()
}

#[aiomp::test]
async fn a_crashed_fork_server_is_restarted_and_its_workers_keep_serving() {
    let me = std::process::id();
    let pool = forkserver_pool().await;
    let workers = pool.worker_pids();
    let [server] = aiomp_suite::forkservers_of(me)[..] else {
        panic!("expected one fork server");
    };
    // A lone start leaves a spare waiting (a pool's start does not).
    let lone = Worker::new(pid).start_method(StartMethod::Forkserver).await.unwrap();
    assert!(!workers.contains(&lone));
    let [spare] = aiomp_suite::settled_spares_of(me)[..] else {
        panic!("expected the server's spare");
    };
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(server as i32, libc::SIGKILL) }, 0);
    assert!(aiomp_suite::wait_all_exited(&[server], Duration::from_secs(10)).is_empty());

    // The pool's workers do not depend on the server: they keep serving.
    let results: Vec<u64> = pool.map(double, 0..50u64).await.unwrap();
    assert_eq!(results[49], 98);
    assert_eq!(pool.worker_pids(), workers);

    // The next start launches a new server.
    let deadline = Instant::now() + Duration::from_secs(20);
    let child = loop {
        match Worker::new(pid).start_method(StartMethod::Forkserver).await {
            Ok(child) => break child,
            Err(error) => assert!(Instant::now() < deadline, "no restart: {error}"),
        }
    };
    assert!(!workers.contains(&child));
    let servers = aiomp_suite::forkservers_of(me);
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_ne!(servers[0], server);
    // The dead server's spare, our child, was reaped, not left a zombie.
    assert!(
        !std::path::Path::new(&format!("/proc/{spare}")).exists(),
        "the dead server's spare {spare} is still there"
    );
    assert_eq!(aiomp_suite::settled_spares_of(me).len(), 1, "the new server's spare");

    // A worker of the dead server that dies is still noticed (it is our own
    // child, whoever forked it) and replaced through the new server.
    let orphan = workers[0];
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(orphan as i32, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool.worker_pids().contains(&orphan) {
        assert!(Instant::now() < deadline, "the orphan's death was never noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pool.apply(double, (5,)).await.unwrap(), 10);

    // A new pool asks for its workers all at once; a server that died
    // unnoticed is replaced for them too.
    let [second] = aiomp_suite::forkservers_of(me)[..] else {
        panic!("expected one fork server");
    };
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(second as i32, libc::SIGKILL) }, 0);
    assert!(aiomp_suite::wait_all_exited(&[second], Duration::from_secs(10)).is_empty());
    let fresh = forkserver_pool().await;
    let results: Vec<u64> = fresh.map(double, 0..20u64).await.unwrap();
    assert_eq!(results[19], 38);
    let servers = aiomp_suite::forkservers_of(me);
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_ne!(servers[0], second);
}
