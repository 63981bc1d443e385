//! W1: map `double` over N items on 2 processes; tasks/s.

use std::time::{Duration, Instant};

use crate::limits;
use crate::peers::python::Library;
use crate::peers::{self, PeerOutput};
use crate::remote::double;
use crate::row::{Row, System, Value, Workload};
use crate::suite::{Context, deadline};
use crate::workloads::{PoolConfig, measure, shut_down};

/// aiomp's tasks in flight per worker for W1. A worker holds at most this
/// many calls, so it bounds a chunk (a quarter of it): tiny calls need
/// thousands in flight for each round trip to carry enough of them.
pub const CHILD_CONCURRENCY: usize = 4096;

/// aiomultiprocess's `childconcurrency` for W1.
const AIOMULTIPROCESS_CONCURRENCY: usize = 256;

/// Runs W1 on every system.
pub async fn run(context: &Context) -> Vec<Row> {
    let scale = context.scale;
    let n = scale.w1_items;
    let limit = deadline(context, Duration::from_secs(300));
    let config = PoolConfig::new(2, CHILD_CONCURRENCY);
    let mut rows = vec![Row::new(
        Workload::W1,
        System::Aiomp,
        None,
        format!("N={n}, {}, awaited as a Vec", config.describe()),
        measure(limit, aiomp_map(config, n)).await,
    )];

    let python = &context.python;
    let options = [
        ("n", scale.w1_aiomultiprocess_items.to_string()),
        ("concurrency", AIOMULTIPROCESS_CONCURRENCY.to_string()),
    ];
    let run = python.run(Library::Aiomultiprocess, "w1", &options, limit).await;
    let base = format!("N={}", scale.w1_aiomultiprocess_items);
    rows.push(peers::row(
        Workload::W1,
        System::Aiomultiprocess,
        None,
        &base,
        run,
        PeerOutput::rate,
    ));

    let run = python
        .run(Library::Multiprocessing, "w1", &[("n", n.to_string())], limit)
        .await;
    rows.push(peers::row(
        Workload::W1,
        System::MpPool,
        None,
        "",
        run,
        PeerOutput::rate,
    ));

    let items = scale.w1_procspawn_items;
    let run = context.procspawn.run("w1", &[items], limit).await;
    rows.push(peers::row(
        Workload::W1,
        System::Procspawn,
        None,
        &format!("N={items}"),
        run,
        PeerOutput::rate,
    ));

    rows.push(Row::new(
        Workload::W1,
        System::Limit,
        Some("tokio tasks, one process"),
        format!("N={n}: tokio::spawn each, await all, on the 2-thread runtime"),
        limits::tokio_tasks(n, limit).await,
    ));
    rows
}

async fn aiomp_map(config: PoolConfig, n: u64) -> Result<Value, String> {
    let pool = config.build().await.map_err(|e| e.to_string())?;
    pool.apply(double, (1,)).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let doubled: Vec<u64> = pool.map(double, 0..n).await.map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    if doubled.len() as u64 != n || doubled.last() != Some(&((n - 1) * 2)) {
        return Err("wrong results".into());
    }
    shut_down(pool).await?;
    Ok(Value::Rate {
        per_second: n as f64 / seconds,
    })
}
