//! W2: sequential `apply(double, (x,))` calls on a pool of 2; median and p99 µs per call.

use std::time::{Duration, Instant};

use crate::limits;
use crate::peers::python::Library;
use crate::peers::{self, PeerOutput};
use crate::remote::double;
use crate::row::{Row, System, Value, Workload};
use crate::stats;
use crate::suite::{Context, deadline};
use crate::workloads::{PoolConfig, measure, shut_down};

/// The variant of the row whose pool never spins: neither its caller for an
/// answer nor its workers for a call.
pub const NO_SPIN: &str = "multi-thread parent, no spin";

/// The `worker_spin` of the row that shows it: about the parent's turnaround
/// between a reply and the next call.
const WORKER_SPIN: Duration = Duration::from_micros(50);

/// Runs W2 on every system.
pub async fn run(context: &Context) -> Vec<Row> {
    let calls = context.scale.w2_calls;
    let limit = deadline(context, Duration::from_secs(120));
    let config = PoolConfig::new(2, 16);
    let no_spin = PoolConfig { spin: false, ..config };
    let watching = PoolConfig {
        worker_spin: Some(WORKER_SPIN),
        ..config
    };
    let base = format!("{calls} calls, one at a time");
    let mut rows = vec![
        Row::new(
            Workload::W2,
            System::Aiomp,
            Some("multi-thread parent"),
            format!("{base}, {}, the parent on tokio's default runtime", config.describe()),
            measure(limit, aiomp_applies(config, calls)).await,
        ),
        Row::new(
            Workload::W2,
            System::Aiomp,
            Some(NO_SPIN),
            format!(
                "{base}, {}, the parent on tokio's default runtime, sleeping at once for each answer",
                no_spin.describe()
            ),
            measure(limit, aiomp_applies(no_spin, calls)).await,
        ),
        Row::new(
            Workload::W2,
            System::Aiomp,
            Some("multi-thread parent, spawned task"),
            format!(
                "{base}, {}, the parent on tokio's default runtime, the calls from a spawned task",
                config.describe()
            ),
            measure(limit, in_spawned_task(aiomp_applies(config, calls))).await,
        ),
        Row::new(
            Workload::W2,
            System::Aiomp,
            Some("multi-thread parent, spawned task, worker_spin"),
            format!(
                "{base}, {}, the parent on tokio's default runtime, the calls from a spawned task, \
                 each worker watching its channel before it sleeps",
                watching.describe()
            ),
            measure(limit, in_spawned_task(aiomp_applies(watching, calls))).await,
        ),
        Row::new(
            Workload::W2,
            System::Aiomp,
            Some("current-thread parent"),
            format!(
                "{base}, {}, the parent on a current-thread runtime (no wake-up crosses a thread)",
                config.describe()
            ),
            measure(limit, on_current_thread(move || aiomp_applies(config, calls))).await,
        ),
    ];
    let options = [("n", calls.to_string())];
    for (system, library) in [
        (System::Aiomultiprocess, Library::Aiomultiprocess),
        (System::MpPool, Library::Multiprocessing),
    ] {
        let run = context.python.run(library, "w2", &options, limit).await;
        rows.push(peers::row(Workload::W2, system, None, &base, run, PeerOutput::latency));
    }
    let run = context.procspawn.run("w2", &[calls], limit).await;
    rows.push(peers::row(
        Workload::W2,
        System::Procspawn,
        None,
        &format!("{base}, Pool::spawn + join"),
        run,
        PeerOutput::latency,
    ));
    let rounds = context.scale.ping_pong_rounds;
    rows.push(Row::new(
        Workload::W2,
        System::Limit,
        Some("Unix-socket ping-pong"),
        format!(
            "{rounds} round trips of a {}-byte message, blocking std I/O, two processes",
            limits::PING_BYTES
        ),
        limits::ping_pong(rounds, limit).await,
    ));
    rows
}

/// Runs `body` as a task of the current runtime, on one of its worker threads.
async fn in_spawned_task<F>(body: F) -> Result<Value, String>
where
    F: std::future::Future<Output = Result<Value, String>> + Send + 'static,
{
    tokio::spawn(body).await.map_err(|e| e.to_string())?
}

/// Runs `body` on a current-thread runtime of its own, on a thread of its own.
async fn on_current_thread<F, Fut>(body: F) -> Result<Value, String>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Value, String>>,
{
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(body())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn aiomp_applies(config: PoolConfig, calls: u64) -> Result<Value, String> {
    let pool = config.build().await.map_err(|e| e.to_string())?;
    pool.apply(double, (1,)).await.map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(calls as usize);
    for x in 0..calls {
        let started = Instant::now();
        let doubled = pool.apply(double, (x,)).await.map_err(|e| e.to_string())?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        if doubled != 2 * x {
            return Err("wrong result".into());
        }
    }
    shut_down(pool).await?;
    let summary = stats::summarize(&samples).ok_or("no calls")?;
    Ok(Value::Latency {
        median_us: summary.median,
        p99_us: summary.p99,
    })
}
