//! W7: one-shot `Worker::with_args(double, (1,)).await`; the median of 10, per start method.

use std::path::{Path, PathBuf};
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
    let exec_runs = context.scale.exec_runs;
    let limit = deadline(context, Duration::from_secs(120));
    let base = format!("median of {runs} after one warm-up, in one parent");
    let mut rows = Vec::new();
    let mut exec = Outcome::Skipped("not run".into());
    for &method in START_METHODS {
        let name = methods::name(method);
        let (outcome, configuration) = match (method, &context.companions.tokio_exec) {
            (StartMethod::Spawn, Ok(binary)) => {
                let (mine, limit_row) = spawn_against_exec(binary, runs, exec_runs, limit).await;
                exec = limit_row;
                (mine, format!("{base}; each followed by its share of the limit's execs"))
            }
            (StartMethod::Spawn, Err(reason)) => {
                exec = Outcome::Skipped(reason.clone());
                (measure(limit, one_shots(method, runs)).await, base.clone())
            }
            _ => (measure(limit, one_shots(method, runs)).await, base.clone()),
        };
        rows.push(Row::new(
            Workload::W7,
            System::Aiomp,
            Some(&name),
            configuration,
            outcome,
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
    rows.push(Row::new(
        Workload::W7,
        System::Limit,
        Some("exec of a minimal tokio binary"),
        format!(
            "fork + exec + wait (std::process::Command::status), median of {exec_runs}, \
             taken in turns with aiomp's spawn one-shots"
        ),
        exec,
    ));
    rows
}

/// `runs` one-shots under `method`, after one warm-up: their median.
async fn one_shots(method: StartMethod, runs: usize) -> Result<Value, String> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..=runs {
        samples.push(one_shot(method).await?);
    }
    samples.remove(0);
    median(&samples)
}

/// Spawn one-shots, each followed by its share of `exec_runs` execs of the
/// minimal tokio binary: the limit is measured in the same minutes as the
/// one-shots it limits (the machine's speed drifts by up to 2× over
/// minutes). The outcomes of the aiomp row and of the limit's row.
async fn spawn_against_exec(binary: &Path, runs: usize, exec_runs: usize, deadline: Duration) -> (Outcome, Outcome) {
    let measured = tokio::time::timeout(deadline, async {
        let mut mine = Vec::with_capacity(runs + 1);
        let mut execs: Result<Vec<f64>, String> = Ok(Vec::with_capacity(exec_runs + 1));
        // Round 0 warms both up.
        for round in 0..=runs {
            mine.push(one_shot(StartMethod::Spawn).await?);
            if let Ok(taken) = &mut execs {
                let due = 1 + exec_runs * round / runs.max(1);
                match exec_times(binary.to_owned(), due.saturating_sub(taken.len())).await {
                    Ok(more) => taken.extend(more),
                    Err(reason) => execs = Err(reason),
                }
            }
        }
        mine.remove(0);
        let execs = execs.and_then(|mut taken| {
            taken.remove(0);
            median(&taken)
        });
        Ok::<_, String>((median(&mine), execs))
    })
    .await;
    let outcome = |result: Result<Value, String>| match result {
        Ok(value) => Outcome::Measured(value),
        Err(reason) => Outcome::Failed(reason),
    };
    match measured {
        Ok(Ok((mine, execs))) => (outcome(mine), outcome(execs)),
        Ok(Err(reason)) => (
            Outcome::Failed(reason),
            Outcome::Skipped("not run: aiomp's spawn one-shots failed".into()),
        ),
        Err(_) => (Outcome::TimedOut(deadline), Outcome::TimedOut(deadline)),
    }
}

/// One one-shot under `method`: the µs it took.
async fn one_shot(method: StartMethod) -> Result<f64, String> {
    let started = Instant::now();
    let doubled: u64 = Worker::with_args(double, (1,))
        .start_method(method)
        .await
        .map_err(|e| e.to_string())?;
    let took = started.elapsed().as_secs_f64() * 1e6;
    if doubled == 2 {
        Ok(took)
    } else {
        Err("wrong result".into())
    }
}

/// `count` execs of the minimal tokio binary, one after the other on a
/// blocking thread: the µs each took.
async fn exec_times(binary: PathBuf, count: usize) -> Result<Vec<f64>, String> {
    tokio::task::spawn_blocking(move || {
        (0..count)
            .map(|_| limits::exec_once(&binary))
            .collect::<std::io::Result<Vec<f64>>>()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

fn median(samples: &[f64]) -> Result<Value, String> {
    Ok(Value::Duration {
        median_us: stats::median(samples).ok_or("no runs")?,
        samples: samples.len(),
    })
}
