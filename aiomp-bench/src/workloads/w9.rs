//! W9: an idle pool of 2 for 10 s; the CPU time its processes use.
//!
//! Every system is measured the same way, from outside: its program starts
//! a pool, prints `{"ready": true}` and idles until its stdin closes; the
//! suite sums `utime + stime` (`/proc/PID/stat`) over the program's whole
//! process tree at the start and the end of the window.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::peers::python::Library;
use crate::proc_stat::{clock_ticks_per_second, cpu_time, process_tree};
use crate::remote::double;
use crate::row::{Outcome, Row, System, Value, Workload};
use crate::subprocess::{GroupGuard, command};
use crate::suite::Context;
use crate::workloads::{PoolConfig, shut_down};

/// How long a program may take to have its pool ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs W9 on every system.
pub async fn run(context: &Context) -> Vec<Row> {
    let window = Duration::from_secs_f64(context.scale.w9_seconds);
    let base = format!(
        "{:.1} s window, after one call; parent + every descendant",
        window.as_secs_f64()
    );
    let mut rows = Vec::new();
    let aiomp = std::env::current_exe()
        .map(|exe| command(exe, ["__w9"]))
        .map_err(|e| e.to_string());
    let candidates = [
        (System::Aiomp, aiomp),
        (
            System::Aiomultiprocess,
            context.python.command(Library::Aiomultiprocess, "w9", &[]),
        ),
        (
            System::MpPool,
            context.python.command(Library::Multiprocessing, "w9", &[]),
        ),
        (System::Procspawn, context.procspawn.command("w9", &[])),
    ];
    for (system, command) in candidates {
        let outcome = match command {
            Ok(command) => idle(command, window).await,
            Err(reason) => Outcome::Skipped(reason),
        };
        rows.push(Row::new(Workload::W9, system, None, base.clone(), outcome));
    }
    rows
}

/// Starts `command`, waits for its ready line, and measures its process tree over `window`.
async fn idle(mut command: Command, window: Duration) -> Outcome {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::Failed(format!("could not start: {e}")),
    };
    let _group = GroupGuard::new(&child);
    let Some(pid) = child.id() else {
        return Outcome::Failed("exited at once".into());
    };
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    match tokio::time::timeout(READY_TIMEOUT, stdout.read_line(&mut line)).await {
        Err(_) => return Outcome::TimedOut(READY_TIMEOUT),
        Ok(Ok(_)) if line.contains("ready") => {}
        Ok(_) => {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = tokio::time::timeout(Duration::from_secs(5), pipe.read_to_string(&mut stderr)).await;
            }
            return Outcome::Failed(format!("no ready line: {}", crate::subprocess::tail(&stderr)));
        }
    }
    // Let the start-up settle (a peer's last reply, its logging) before the window opens.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let processes = process_tree(pid);
    let before = cpu_time(&processes);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let used = cpu_time(&processes).since(before);
    let wall = started.elapsed().as_secs_f64();
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    Outcome::Measured(Value::CpuShare {
        ticks: used.ticks,
        ticks_per_second: clock_ticks_per_second(),
        schedstat_ns: used.schedstat_ns,
        wall,
        processes: processes.len(),
    })
}

/// `__w9`: a pool of 2, one call, `{"ready": true}`, idle until stdin closes.
pub async fn child() -> Result<serde_json::Value, String> {
    let pool = PoolConfig::new(2, 16).build().await.map_err(|e| e.to_string())?;
    pool.apply(double, (1,)).await.map_err(|e| e.to_string())?;
    println!("{}", json!({ "ready": true }));
    let mut rest = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut rest).await;
    shut_down(pool).await?;
    Ok(json!({ "idle": true }))
}
