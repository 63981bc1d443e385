//! W4: map a CPU-bound fn calibrated to ~20 ms a call over 100 items on 2
//! processes; speedup over the same calls serially in one process. The wide
//! rows run ten calls per process on 16 processes, fewer pairs.

use std::time::{Duration, Instant};

use crate::limits;
use crate::peers::python::Library;
use crate::peers::{self, PeerOutput};
use crate::remote::spin;
use crate::row::{Outcome, Row, System, Value, Workload};
use crate::stats;
use crate::suite::{Context, deadline};
use crate::work;
use crate::workloads::{PoolConfig, measure, shut_down};

/// The wall time one call is calibrated to.
pub const CALL_TIME: Duration = Duration::from_millis(20);

/// Runs `workload` (W4, or its wide rows) on every system.
pub async fn run(context: &Context, workload: Workload) -> Vec<Row> {
    let processes = workload.processes();
    let scale = context.scale;
    // 100 calls on 16 processes would take 7 rounds where 6.25 are the
    // work: ten per process keeps the rounds whole.
    let (items, pairs) = if workload.is_wide() {
        (scale.w4_wide_calls_per_process * processes as u64, scale.w4_wide_pairs)
    } else {
        (scale.w4_items, scale.w4_pairs)
    };
    let limit = deadline(context, Duration::from_secs(180));
    let iters = tokio::task::spawn_blocking(|| work::calibrate(CALL_TIME))
        .await
        .unwrap_or(1_000_000);
    let base = format!("{items} calls of ~{} ms", CALL_TIME.as_millis());
    let mut rows = Vec::new();
    // The default concurrency, and one task at a time per worker (the usual setting for CPU-bound work).
    for (variant, concurrency) in [("concurrency 16, the default", 16), ("concurrency 1", 1)] {
        let config = PoolConfig::new(processes, concurrency);
        let mut note = String::new();
        let outcome = measure(limit, async {
            let (value, pairs_note) = aiomp_speedup(config, items, iters, pairs).await?;
            note = format!("; {pairs_note}");
            Ok(value)
        })
        .await;
        rows.push(Row::new(
            workload,
            System::Aiomp,
            Some(variant),
            format!("{base}: spin({iters}), a plain fn; {}{note}", config.describe()),
            outcome,
        ));
    }
    let options = [
        ("n", items.to_string()),
        ("target-ms", CALL_TIME.as_millis().to_string()),
        ("reps", pairs.to_string()),
        ("processes", processes.to_string()),
    ];
    for (system, library) in [
        (System::Aiomultiprocess, Library::Aiomultiprocess),
        (System::MpPool, Library::Multiprocessing),
    ] {
        let run = context.python.run(library, "w4", &options, limit).await;
        let base = format!("{base} (calibrated in Python), {processes} processes");
        rows.push(peers::row(workload, system, None, &base, run, PeerOutput::speedup));
    }
    let args = [items, iters, pairs as u64, processes as u64];
    let run = context.procspawn.run("w4", &args, limit).await;
    rows.push(peers::row(
        workload,
        System::Procspawn,
        None,
        &format!("{base}, {processes} processes"),
        run,
        PeerOutput::speedup,
    ));
    let ceiling = tokio::time::timeout(
        limit,
        tokio::task::spawn_blocking(move || limits::threads_speedup(items, iters, processes, pairs)),
    )
    .await;
    let (outcome, note) = match ceiling {
        Ok(Ok((value, note))) => (Outcome::Measured(value), format!("; {note}")),
        Ok(Err(error)) => (Outcome::Failed(error.to_string()), String::new()),
        Err(_) => (Outcome::TimedOut(limit), String::new()),
    };
    let threads = format!("{processes} threads");
    rows.push(Row::new(
        workload,
        System::Limit,
        Some(&format!("{threads}, one process")),
        format!("{base}: spin({iters}) on {threads} that take the calls one by one{note}"),
        outcome,
    ));
    rows
}

/// `pairs` pairs of a serial pass and a pass on one pool, back to back: the
/// median pair's speedup, and a note on all of them.
async fn aiomp_speedup(config: PoolConfig, items: u64, iters: u64, pairs: usize) -> Result<(Value, String), String> {
    let pool = config.build().await.map_err(|e| e.to_string())?;
    pool.apply(spin, (1,)).await.map_err(|e| e.to_string())?;
    let mut measured = Vec::with_capacity(pairs);
    for _ in 0..pairs.max(1) {
        let (serial, results) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let results: Vec<u64> = (0..items).map(|_| work::spin(iters)).collect();
            (started.elapsed().as_secs_f64(), results)
        })
        .await
        .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let parallel: Vec<u64> = pool
            .map(spin, std::iter::repeat_n(iters, items as usize))
            .await
            .map_err(|e| e.to_string())?;
        measured.push((serial, started.elapsed().as_secs_f64()));
        if parallel != results {
            return Err("the pool's results differ from the serial ones".into());
        }
    }
    shut_down(pool).await?;
    let ((serial, pool), note) = stats::median_pair(measured);
    Ok((Value::Speedup { serial, pool }, note))
}
