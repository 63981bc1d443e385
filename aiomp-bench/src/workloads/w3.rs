//! W3: map an async fn that sleeps 10 ms over 10,000 items, 2 processes ×
//! 256 concurrency; wall time against the ideal (items / 512 × 10 ms = 0.195 s).
//! The wide rows run 80,000 items on 16 processes: the same ideal.

use std::time::{Duration, Instant};

use crate::limits;
use crate::limits::Timer;
use crate::peers;
use crate::peers::python::Library;
use crate::remote::{sleep_ms, sleep_precisely_ms};
use crate::row::{Row, System, Value, Workload};
use crate::suite::{Context, deadline};
use crate::workloads::{PoolConfig, measure, no_equivalent, per_process, shut_down};

/// Sleeps in flight per worker.
pub const CONCURRENCY: usize = 256;
/// How long each task sleeps.
pub const SLEEP_MS: u64 = 10;

/// The ideal wall time of `items` sleeps on `processes` processes,
/// [`CONCURRENCY`] at a time each.
pub fn ideal_seconds(items: u64, processes: usize) -> f64 {
    items as f64 / (processes * CONCURRENCY) as f64 * SLEEP_MS as f64 / 1000.0
}

/// Runs `workload` (W3, or its wide rows) on every system.
pub async fn run(context: &Context, workload: Workload) -> Vec<Row> {
    let processes = workload.processes();
    let at_once = processes * CONCURRENCY;
    let items = per_process(workload, context.scale.w3_items);
    let ideal = ideal_seconds(items, processes);
    let limit = deadline(context, Duration::from_secs(120));
    let base = format!("{items} sleeps of {SLEEP_MS} ms");
    let mut rows = Vec::new();
    // Each timer on the default pool, then with a worker holding a second
    // wave of calls, which starts as the first completes, with no round trip.
    for prefetch in [0, CONCURRENCY] {
        let config = PoolConfig {
            prefetch,
            ..PoolConfig::new(processes, CONCURRENCY)
        };
        for (timer, label, how) in TIMERS {
            let label = if prefetch > 0 {
                format!("{label}, prefetch {prefetch}")
            } else {
                label.to_owned()
            };
            rows.push(Row::new(
                workload,
                System::Aiomp,
                Some(&label),
                format!("{base} ({how}), {}", config.describe()),
                measure(limit, aiomp_sleeps(config, items, timer, ideal)).await,
            ));
        }
    }
    let options = [
        ("n", items.to_string()),
        ("concurrency", CONCURRENCY.to_string()),
        ("sleep-ms", SLEEP_MS.to_string()),
        ("processes", processes.to_string()),
    ];
    let run = context
        .python
        .run(Library::Aiomultiprocess, "w3", &options, limit)
        .await;
    rows.push(peers::row(
        workload,
        System::Aiomultiprocess,
        None,
        &format!("{base}, {processes} processes"),
        run,
        |o| o.versus_ideal(ideal),
    ));
    let blocking = "its workers run one task at a time (no async concurrency inside a worker)";
    rows.push(no_equivalent(workload, System::MpPool, None, blocking));
    rows.push(no_equivalent(workload, System::Procspawn, None, blocking));
    for (timer, label, how) in TIMERS {
        rows.push(Row::new(
            workload,
            System::Limit,
            Some(&format!("{label}, one process")),
            format!("{base} ({how}), {at_once} at a time on a runtime of {processes} threads"),
            limits::tokio_sleeps(items, at_once, processes, SLEEP_MS, timer, ideal, limit).await,
        ));
    }
    // The floor under every row: the waves W3 takes, one sleep each, back to
    // back, with nothing else to do (the ideal counts 19.5 waves).
    let waves = items.div_ceil(at_once as u64);
    rows.push(Row::new(
        workload,
        System::Limit,
        Some("exact sleep, one wave at a time"),
        format!("{waves} sleeps of {SLEEP_MS} ms one after another (the {waves} waves of {items} sleeps {at_once} at a time), the exact sleep"),
        limits::tokio_sleeps(waves, 1, 1, SLEEP_MS, Timer::Precise, ideal, limit).await,
    ));
    rows
}

/// The two sleeps W3 runs with, each on aiomp and in one process.
const TIMERS: [(Timer, &str, &str); 2] = [
    (
        Timer::Tokio,
        "tokio sleep",
        "tokio::time::sleep: rounded up to its 1 ms ticks",
    ),
    (
        Timer::Precise,
        "exact sleep",
        "a timerfd per thread, and a spin for its last 300 µs: 10 ms to a few µs, as the ideal assumes",
    ),
];

async fn aiomp_sleeps(config: PoolConfig, items: u64, timer: Timer, ideal: f64) -> Result<Value, String> {
    let pool = config.build().await.map_err(|e| e.to_string())?;
    pool.apply(sleep_ms, (0, 0)).await.map_err(|e| e.to_string())?;
    pool.apply(sleep_precisely_ms, (0, 1))
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let calls = (0..items).map(|x| (x, SLEEP_MS));
    let slept: Vec<u64> = match timer {
        Timer::Tokio => pool.starmap(sleep_ms, calls).await,
        Timer::Precise => pool.starmap(sleep_precisely_ms, calls).await,
    }
    .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    if slept.len() as u64 != items {
        return Err("wrong results".into());
    }
    shut_down(pool).await?;
    Ok(Value::VersusIdeal { seconds, ideal })
}

#[cfg(test)]
mod tests {
    use crate::row::Workload;
    use crate::workloads::per_process;

    #[test]
    fn the_issue_s_ideal() {
        assert!((super::ideal_seconds(10_000, 2) - 0.195).abs() < 0.001);
    }

    #[test]
    fn the_wide_rows_keep_the_ideal() {
        let items = per_process(Workload::W3Wide, 10_000);
        assert_eq!(items, 80_000);
        assert!((super::ideal_seconds(items, Workload::W3Wide.processes()) - 0.195).abs() < 0.001);
    }
}
