//! W5: from nothing to a pool of 2 ready, one `apply`, `close` + `join`;
//! the median of fresh processes, per start method.
//!
//! Each run is a fresh process (this binary's hidden `__w5 METHOD`), which
//! measures from the first line of its `main` and prints the seconds.

use std::time::{Duration, Instant};

use aiomp::StartMethod;
use serde_json::json;

use crate::methods::{self, PYTHON_START_METHODS, START_METHODS};
use crate::peers::python::Library;
use crate::remote::double;
use crate::row::{Outcome, Row, System, Workload};
use crate::subprocess::{RunError, run_json};
use crate::suite::{Context, deadline};
use crate::workloads::{FreshRun, PoolConfig, fresh, median_of_fresh_runs, medians_of_fresh_runs_in_turns, shut_down};

/// Runs W5 on every system and start method.
pub async fn run(context: &Context) -> Vec<Row> {
    let runs = context.scale.w5_runs;
    let each = deadline(context, Duration::from_secs(60));
    let base = format!(
        "{runs} fresh processes, timed inside each from the start of main (before aiomp::init); \
         aiomp's start methods and procspawn in turns"
    );
    // aiomp under each start method and procspawn, in turns: the targets
    // are ratios between them.
    let mut systems: Vec<FreshRun<'_>> = START_METHODS
        .iter()
        .map(|&method| {
            let args = ["__w5".to_owned(), methods::name(method)];
            let run: FreshRun<'_> = Box::new(move || {
                let args = args.clone();
                Box::pin(async move { fresh(&args, &environment(method), each).await })
            });
            run
        })
        .collect();
    systems.push(Box::new(|| {
        Box::pin(async {
            let command = context.procspawn.command("w5", &[]).map_err(RunError::Unavailable)?;
            run_json(command, each).await
        })
    }));
    let mut outcomes = medians_of_fresh_runs_in_turns(runs, systems).await.into_iter();
    let mut rows = Vec::new();
    for &method in START_METHODS {
        let configuration = if method == StartMethod::Forkserver {
            format!("{base}; AIOMP_START_METHOD=forkserver: init forks the server")
        } else {
            base.clone()
        };
        rows.push(Row::new(
            Workload::W5,
            System::Aiomp,
            Some(&methods::name(method)),
            configuration,
            outcomes.next().unwrap_or_else(|| Outcome::Skipped("not run".into())),
        ));
    }
    let procspawn = outcomes.next().unwrap_or_else(|| Outcome::Skipped("not run".into()));
    let python_base = format!("{runs} fresh interpreters, timed inside each after the imports");
    for (system, library) in [
        (System::Aiomultiprocess, Library::Aiomultiprocess),
        (System::MpPool, Library::Multiprocessing),
    ] {
        for &method in PYTHON_START_METHODS {
            let options = [("method", method.to_owned())];
            let outcome = median_of_fresh_runs(runs, || async {
                let command = context
                    .python
                    .command(library, "w5", &options)
                    .map_err(RunError::Unavailable)?;
                run_json(command, each).await
            })
            .await;
            rows.push(Row::new(
                Workload::W5,
                system,
                Some(method),
                python_base.clone(),
                outcome,
            ));
        }
    }
    rows.push(Row::new(
        Workload::W5,
        System::Procspawn,
        Some("spawn"),
        format!("{base}; Pool::new(2), spawn + join, shutdown"),
        procspawn,
    ));
    rows
}

/// The environment of a fresh W5 process: with forkserver, the setting
/// that has `aiomp::init` preload the fork server (its start is timed).
fn environment(method: StartMethod) -> Vec<(&'static str, &'static str)> {
    match method {
        StartMethod::Forkserver => vec![(aiomp::START_METHOD_ENV, "forkserver")],
        _ => Vec::new(),
    }
}

/// `__w5 METHOD`: pool of 2, one `apply`, `close` + `join`; prints `{"seconds": ...}`.
pub async fn child(started: Instant, method: StartMethod) -> Result<serde_json::Value, String> {
    let mut config = PoolConfig::new(2, 16);
    config.method = method;
    let pool = config.build().await.map_err(|e| e.to_string())?;
    let doubled = pool.apply(double, (21,)).await.map_err(|e| e.to_string())?;
    if doubled != 42 {
        return Err("wrong result".into());
    }
    shut_down(pool).await?;
    Ok(json!({ "seconds": started.elapsed().as_secs_f64() }))
}
