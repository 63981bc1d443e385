//! The API.md "Pool" snippet, as written (no `StreamExt` import needed).

use aiomp::{Pool, RoundRobin, StartMethod, remote};

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote]
async fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[remote]
async fn setup(level: u8) {
    assert!(level > 0);
}

#[aiomp::test]
async fn api_snippet_pool() -> aiomp::Result<()> {
    let level = 3u8;
    let pool = Pool::new().await?; // processes = available cores
    assert!(pool.process_count() >= 1);
    drop(pool);
    let pool = Pool::builder()
        .processes(4)
        .child_concurrency(16)
        .max_tasks_per_child(1000)
        .queue_count(2)
        .scheduler(RoundRobin::new())
        .initializer(setup, (level,))
        .start_method(StartMethod::Forkserver)
        .build()
        .await?;
    assert_eq!((pool.process_count(), pool.queue_count()), (4, 2));

    let three: u64 = pool.apply(add, (1, 2)).await?;
    let doubled: Vec<u64> = pool.map(double, 0..1000).await?; // input order
    let sums: Vec<u64> = pool.starmap(add, vec![(1, 2), (3, 4)]).await?;
    assert_eq!(three, 3);
    assert_eq!(doubled, (0..1000).map(|x| x * 2).collect::<Vec<_>>());
    assert_eq!(sums, [3, 7]);

    let mut results = pool.map(double, 0..1000); // PoolResult is also a Stream
    let mut expected = 0;
    while let Some(r) = results.next().await {
        let v: u64 = r?;
        assert_eq!(v, expected * 2);
        expected += 1;
    }
    assert_eq!(expected, 1000);

    pool.close(); // no new work; running work finishes
    pool.join().await?;
    pool.terminate();
    Ok(())
}
