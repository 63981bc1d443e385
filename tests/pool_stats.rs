//! `Pool::stats` reports what a dashboard needs: queued tasks, restarts,
//! recycles, totals, and each live worker.

use std::time::Duration;

use aiomp::{Pool, remote};

#[remote]
async fn nap(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[remote]
async fn fail() {
    panic!("failing on purpose");
}

#[remote]
async fn pid() -> u32 {
    std::process::id()
}

#[aiomp::test]
async fn stats_follow_the_pools_work() {
    let pool = Pool::builder().processes(2).child_concurrency(2).build().await.unwrap();
    let fresh = pool.stats();
    assert_eq!(fresh.workers.len(), 2);
    assert_eq!(
        (fresh.queued, fresh.completed, fresh.failed, fresh.restarts),
        (0, 0, 0, 0)
    );

    // 2 workers x 2 slots: 4 run, 6 wait.
    let naps = pool.map(nap, vec![500u64; 10]);
    let running = tokio::spawn(naps.into_future());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let busy = pool.stats();
    assert_eq!(busy.workers.iter().map(|w| w.in_flight).sum::<usize>(), 4, "{busy:?}");
    assert_eq!(busy.queued, 6, "{busy:?}");
    running.await.unwrap().unwrap();

    assert!(pool.apply(fail, ()).await.is_err());
    let done = pool.stats();
    assert_eq!((done.completed, done.failed, done.queued), (10, 1, 0), "{done:?}");

    // A killed worker is a restart; its counts stay in the totals.
    let victim = pool.apply(pid, ()).await.unwrap();
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pool.stats().restarts == 0 || pool.stats().workers.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", pool.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = pool.stats();
    assert_eq!((after.restarts, after.completed, after.failed), (1, 11, 1), "{after:?}");
    assert!(!after.workers.iter().any(|w| w.pid == victim));
}

#[aiomp::test]
async fn recycles_are_counted() {
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()
        .await
        .unwrap();
    let _: Vec<u32> = pool.starmap(pid, vec![(); 6]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pool.stats().recycles < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", pool.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pool.stats().completed, 6);
}
