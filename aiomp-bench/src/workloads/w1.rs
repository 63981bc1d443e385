//! W1: map `double` over N items on 2 processes; tasks/s. The wide rows
//! run it on 16 processes, with every N scaled by 8.

use std::time::{Duration, Instant};

use crate::limits;
use crate::peers::python::Library;
use crate::peers::{self, PeerOutput};
use crate::remote::double;
use crate::row::{Row, System, Value, Workload};
use crate::suite::{Context, deadline};
use crate::workloads::{PoolConfig, measure, per_process, shut_down};

/// aiomp's tasks in flight per worker for W1. A worker holds at most this
/// many calls, so it bounds a chunk (a quarter of it): tiny calls need
/// thousands in flight for each round trip to carry enough of them.
pub const CHILD_CONCURRENCY: usize = 4096;

/// aiomultiprocess's `childconcurrency` for W1.
const AIOMULTIPROCESS_CONCURRENCY: usize = 256;

/// Runs `workload` (W1, or its wide rows) on every system.
pub async fn run(context: &Context, workload: Workload) -> Vec<Row> {
    let scale = context.scale;
    let processes = workload.processes();
    let n = per_process(workload, scale.w1_items);
    let limit = deadline(context, Duration::from_secs(300));
    let config = PoolConfig::new(processes, CHILD_CONCURRENCY);
    let mut rows = vec![Row::new(
        workload,
        System::Aiomp,
        None,
        format!("N={n}, {}, awaited as a Vec", config.describe()),
        measure(limit, aiomp_map(config, n)).await,
    )];

    let python = &context.python;
    let items = per_process(workload, scale.w1_aiomultiprocess_items);
    let options = [
        ("n", items.to_string()),
        ("concurrency", AIOMULTIPROCESS_CONCURRENCY.to_string()),
        ("processes", processes.to_string()),
    ];
    let run = python.run(Library::Aiomultiprocess, "w1", &options, limit).await;
    let base = format!("N={items}");
    rows.push(peers::row(
        workload,
        System::Aiomultiprocess,
        None,
        &base,
        run,
        PeerOutput::rate,
    ));

    let options = [("n", n.to_string()), ("processes", processes.to_string())];
    let run = python.run(Library::Multiprocessing, "w1", &options, limit).await;
    rows.push(peers::row(workload, System::MpPool, None, "", run, PeerOutput::rate));

    // Not scaled: each handle procspawn holds open takes file descriptors,
    // and 16,000 at once exceed the usual limit of open files.
    let items = scale.w1_procspawn_items;
    let run = context.procspawn.run("w1", &[items, processes as u64], limit).await;
    rows.push(peers::row(
        workload,
        System::Procspawn,
        None,
        &format!("N={items}"),
        run,
        PeerOutput::rate,
    ));

    rows.push(Row::new(
        workload,
        System::Limit,
        Some("tokio tasks, one process"),
        format!("N={n}: tokio::spawn each, await all, on a runtime of {processes} threads"),
        limits::tokio_tasks(n, processes, limit).await,
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
