//! W7: one-shot `Worker::with_args(double, (1,)).await`; the median of 10, per start method.

use std::time::{Duration, Instant};

use aiomp::{StartMethod, Worker};

use crate::limits;
use crate::methods::{self, PYTHON_START_METHODS, START_METHODS};
use crate::peers::python::Library;
use crate::peers::{self, PeerOutput};
use crate::remote::double;
use crate::row::{Outcome, Row, System, Value, Workload};
use crate::stats;
use crate::suite::{Context, deadline};
use crate::workloads::measure;

/// Runs W7 on every system and start method.
pub async fn run(context: &Context) -> Vec<Row> {
    let runs = context.scale.w7_runs;
    let limit = deadline(context, Duration::from_secs(120));
    let base = format!("median of {runs} after one warm-up, in one parent");
    let mut rows = Vec::new();
    for &method in START_METHODS {
        let name = methods::name(method);
        rows.push(Row::new(
            Workload::W7,
            System::Aiomp,
            Some(&name),
            base.clone(),
            measure(limit, one_shots(method, runs)).await,
        ));
    }
    for (system, library) in [
        (System::Aiomultiprocess, Library::Aiomultiprocess),
        (System::MpProcess, Library::Multiprocessing),
    ] {
        for &method in PYTHON_START_METHODS {
            let options = [("reps", runs.to_string()), ("method", method.to_owned())];
            let run = context.python.run(library, "w7", &options, limit).await;
            rows.push(peers::row(
                Workload::W7,
                system,
                Some(method),
                &base,
                run,
                PeerOutput::median_duration,
            ));
        }
    }
    let run = context.procspawn.run("w7", &[runs as u64], limit).await;
    rows.push(peers::row(
        Workload::W7,
        System::Procspawn,
        Some("spawn"),
        &base,
        run,
        PeerOutput::median_duration,
    ));
    let exec_runs = context.scale.exec_runs;
    let outcome = match &context.companions.tokio_exec {
        Ok(binary) => limits::tokio_exec(binary, exec_runs, limit).await,
        Err(reason) => Outcome::Skipped(reason.clone()),
    };
    rows.push(Row::new(
        Workload::W7,
        System::Limit,
        Some("exec of a minimal tokio binary"),
        format!("fork + exec + wait (std::process::Command::status), median of {exec_runs}"),
        outcome,
    ));
    rows
}

async fn one_shots(method: StartMethod, runs: usize) -> Result<Value, String> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..=runs {
        let started = Instant::now();
        let doubled: u64 = Worker::with_args(double, (1,))
            .start_method(method)
            .await
            .map_err(|e| e.to_string())?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        if doubled != 2 {
            return Err("wrong result".into());
        }
    }
    samples.remove(0);
    Ok(Value::Duration {
        median_us: stats::median(&samples).ok_or("no runs")?,
        samples: samples.len(),
    })
}
