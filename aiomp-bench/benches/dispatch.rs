//! Criterion micro-benchmarks of aiomp's dispatch path: one `apply` round
//! trip and a small `map` on a pool of 2 real worker processes.
//!
//! A hand-written `main`: `aiomp::init()` comes first, because the pool's
//! workers re-execute this bench binary.

use std::hint::black_box;

use aiomp::{Pool, remote};
use criterion::{Criterion, Throughput};

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

fn dispatch(c: &mut Criterion, runtime: &tokio::runtime::Runtime, pool: &Pool) {
    let mut group = c.benchmark_group("dispatch");
    group.bench_function("apply round trip", |b| {
        b.iter(|| {
            runtime
                .block_on(pool.apply(double, (black_box(21),)).into_future())
                .expect("apply")
        });
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function("map of 100", |b| {
        b.iter(|| {
            let doubled: Vec<u64> = runtime
                .block_on(pool.map(double, 0..100u64).into_future())
                .expect("map");
            doubled
        });
    });
    group.finish();
}

fn main() {
    aiomp::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let pool = runtime
        .block_on(Pool::builder().processes(2).build())
        .expect("a pool of 2");
    let mut criterion = Criterion::default().configure_from_args();
    dispatch(&mut criterion, &runtime, &pool);
    pool.close();
    runtime.block_on(pool.join()).expect("join");
    criterion.final_summary();
}
