//! W8: map over 10,000,000 items, consumed as a stream without collecting;
//! the peak RSS (`VmHWM`) of the parent, in a fresh process (`__w8 N`).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::peers::python::Library;
use crate::peers::{self, PeerOutput};
use crate::proc_stat::self_status_kib;
use crate::remote::double;
use crate::row::{Row, System, Workload};
use crate::suite::{Context, deadline};
use crate::workloads::{PoolConfig, fresh, no_equivalent, shut_down};

/// aiomp's pool for W8: the W1 configuration.
fn config() -> PoolConfig {
    PoolConfig::new(2, crate::workloads::w1::CHILD_CONCURRENCY)
}

/// Runs W8 on every system.
pub async fn run(context: &Context) -> Vec<Row> {
    let n = context.scale.w8_items;
    let limit = deadline(context, Duration::from_secs(300));
    let run = fresh(&["__w8".to_owned(), n.to_string()], &[], limit).await;
    let mut rows = vec![peers::row(
        Workload::W8,
        System::Aiomp,
        None,
        &format!("N={n}, {}, a fresh process", config().describe()),
        run,
        PeerOutput::memory,
    )];
    let run = context
        .python
        .run(Library::Multiprocessing, "w8", &[("n", n.to_string())], limit)
        .await;
    rows.push(peers::row(
        Workload::W8,
        System::MpPool,
        None,
        &format!("N={n}"),
        run,
        PeerOutput::memory,
    ));
    let small = context.scale.w8_aiomultiprocess_items;
    let run = context
        .python
        .run(Library::Aiomultiprocess, "w8", &[("n", small.to_string())], limit)
        .await;
    rows.push(peers::row(
        Workload::W8,
        System::Aiomultiprocess,
        None,
        &format!("N={small} only: it queues every task up front, and N={n} would take minutes"),
        run,
        PeerOutput::memory,
    ));
    rows.push(no_equivalent(
        Workload::W8,
        System::Procspawn,
        None,
        "no streaming map; a spawn with its own IPC channels per item",
    ));
    rows
}

/// `__w8 N`: streams `map(double, 0..N)`; prints the parent's `VmHWM` at the end.
pub async fn child(n: u64) -> Result<serde_json::Value, String> {
    let baseline = self_status_kib("VmHWM");
    let pool = config().build().await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut results = pool.map(double, 0..n);
    let mut count = 0u64;
    let mut sum = 0u64;
    while let Some(result) = results.next().await {
        sum = sum.wrapping_add(result.map_err(|e| e.to_string())?);
        count += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(results);
    if count != n || sum != n * n.saturating_sub(1) {
        return Err(format!("{count} of {n} results, sum {sum}"));
    }
    shut_down(pool).await?;
    let peak = self_status_kib("VmHWM").ok_or("no VmHWM in /proc/self/status")?;
    Ok(json!({
        "n": n,
        "seconds": seconds,
        "vm_hwm_kib": peak,
        "config": format!(
            "VmHWM {} KiB before the pool; {:.0} tasks/s",
            baseline.unwrap_or(0),
            n as f64 / seconds
        ),
    }))
}
