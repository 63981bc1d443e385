//! WR: W1 with `max_tasks_per_child(1)`, a fresh worker for every task;
//! tasks/s, per start method.

use std::time::{Duration, Instant};

use crate::methods::{self, PYTHON_START_METHODS, START_METHODS};
use crate::peers::python::Library;
use crate::peers::{self, PeerOutput};
use crate::remote::double;
use crate::row::{Row, System, Value, Workload};
use crate::suite::{Context, deadline};
use crate::workloads::{PoolConfig, measure, no_equivalent, shut_down};

/// Runs the recycling row on every system and start method.
pub async fn run(context: &Context) -> Vec<Row> {
    let n = context.scale.recycling_items;
    let limit = deadline(context, Duration::from_secs(180));
    let mut rows = Vec::new();
    for &method in START_METHODS {
        let name = methods::name(method);
        let config = PoolConfig {
            max_tasks_per_child: 1,
            method,
            ..PoolConfig::new(2, 16)
        };
        rows.push(Row::new(
            Workload::Recycling,
            System::Aiomp,
            Some(&name),
            format!("N={n}, {}", config.describe()),
            measure(limit, recycled(config, n)).await,
        ));
    }
    let options = [("n", n.to_string()), ("method", "spawn".to_owned())];
    let run = context
        .python
        .run(Library::Aiomultiprocess, "recycling", &options, limit)
        .await;
    rows.push(peers::row(
        Workload::Recycling,
        System::Aiomultiprocess,
        Some("spawn"),
        &format!("N={n}"),
        run,
        PeerOutput::rate,
    ));
    for &method in PYTHON_START_METHODS {
        let options = [("n", n.to_string()), ("method", method.to_owned())];
        let run = context
            .python
            .run(Library::Multiprocessing, "recycling", &options, limit)
            .await;
        rows.push(peers::row(
            Workload::Recycling,
            System::MpPool,
            Some(method),
            &format!("N={n}"),
            run,
            PeerOutput::rate,
        ));
    }
    rows.push(no_equivalent(
        Workload::Recycling,
        System::Procspawn,
        None,
        "its Pool has no max-tasks-per-child",
    ));
    rows
}

async fn recycled(config: PoolConfig, n: u64) -> Result<Value, String> {
    let pool = config.build().await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let doubled: Vec<u64> = pool.map(double, 0..n).await.map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    if doubled.len() as u64 != n {
        return Err("wrong results".into());
    }
    shut_down(pool).await?;
    Ok(Value::Rate {
        per_second: n as f64 / seconds,
    })
}
