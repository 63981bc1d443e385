//! The whole run: set up the peers, run every workload on every system,
//! judge the targets, write the report and the chart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::companions::Companions;
use crate::machine::Machine;
use crate::peers::procspawn::Procspawn;
use crate::peers::python::Python;
use crate::row::{Outcome, Row, System, WIDE, Workload};
use crate::{chart, report, targets, workloads};

/// What `all` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// A seconds-long smoke run: small N, fewer repetitions.
    pub quick: bool,
    /// Where the markdown report goes.
    pub output: PathBuf,
    /// Where the SVG chart goes.
    pub chart: PathBuf,
    /// The Python interpreter that makes the venv (default `python3`).
    pub python: String,
    /// Only these workloads (all when empty).
    pub only: Vec<Workload>,
}

/// How big each workload is: the sizes, or the smoke run's.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)] // each field is named after its workload and what it counts
pub struct Scale {
    pub w1_items: u64,
    pub w1_aiomultiprocess_items: u64,
    pub w1_procspawn_items: u64,
    pub w2_calls: u64,
    pub w3_items: u64,
    pub w4_items: u64,
    pub w4_pairs: usize,
    pub w4_wide_calls_per_process: u64,
    pub w4_wide_pairs: usize,
    pub w5_runs: usize,
    pub w6_buffers: u64,
    pub w7_runs: usize,
    pub w8_items: u64,
    pub w8_aiomultiprocess_items: u64,
    pub w9_seconds: f64,
    pub recycling_items: u64,
    pub ping_pong_rounds: usize,
    pub stream_frames: usize,
    pub exec_runs: usize,
}

impl Scale {
    /// The sizes the issue defines.
    pub const FULL: Scale = Scale {
        w1_items: 2_000_000,
        w1_aiomultiprocess_items: 20_000,
        w1_procspawn_items: 2_000,
        w2_calls: 2_000,
        w3_items: 10_000,
        w4_items: 100,
        w4_pairs: 5,
        w4_wide_calls_per_process: 10,
        w4_wide_pairs: 3,
        w5_runs: 15,
        w6_buffers: 200,
        w7_runs: 10,
        w8_items: 10_000_000,
        w8_aiomultiprocess_items: 200_000,
        w9_seconds: 10.0,
        recycling_items: 100,
        ping_pong_rounds: 20_000,
        stream_frames: 1_000,
        exec_runs: 30,
    };

    /// The smoke run's sizes: every path runs, in seconds.
    pub const QUICK: Scale = Scale {
        w1_items: 20_000,
        w1_aiomultiprocess_items: 2_000,
        w1_procspawn_items: 100,
        w2_calls: 200,
        w3_items: 1_000,
        w4_items: 10,
        w4_pairs: 1,
        w4_wide_calls_per_process: 1,
        w4_wide_pairs: 1,
        w5_runs: 2,
        w6_buffers: 20,
        w7_runs: 2,
        w8_items: 100_000,
        w8_aiomultiprocess_items: 5_000,
        w9_seconds: 0.5,
        recycling_items: 6,
        ping_pong_rounds: 2_000,
        stream_frames: 50,
        exec_runs: 3,
    };
}

/// Everything a workload needs to run its rows.
#[derive(Debug)]
pub struct Context {
    /// The options of the run.
    pub options: Options,
    /// The sizes.
    pub scale: Scale,
    /// The Python peers.
    pub python: Python,
    /// The procspawn peer.
    pub procspawn: Procspawn,
    /// The helper binaries.
    pub companions: Companions,
}

/// The repository root: the workspace this binary was built in or, where
/// that is not on this machine (the binary was copied to another), the
/// current directory.
pub fn repo_root() -> PathBuf {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    if built_in.join("bench/python").is_dir() {
        built_in
    } else {
        std::env::current_dir().unwrap_or(built_in)
    }
}

/// Runs the suite and writes the report; the rows it wrote.
pub async fn run(options: Options) -> std::io::Result<Vec<Row>> {
    let started = Instant::now();
    let repo = repo_root();
    let scale = if options.quick { Scale::QUICK } else { Scale::FULL };
    let (python, companions) = tokio::join!(Python::setup(&repo, &options.python), Companions::build(&repo));
    let machine = Machine::describe(python.version.clone()).await;
    let context = Context {
        procspawn: Procspawn::new(companions.procspawn_peer.clone()),
        options,
        scale,
        python,
        companions,
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let mut rows = Vec::new();
    for workload in Workload::ALL {
        if !context.options.only.is_empty() && !context.options.only.contains(&workload) {
            continue;
        }
        let began = Instant::now();
        eprintln!("[{}] {}", workload.id(), workload.title());
        let new_rows = match too_few_cpus(workload, &context.options, cpus) {
            Some(reason) => vec![Row::new(
                workload,
                System::Aiomp,
                None,
                String::new(),
                Outcome::Skipped(reason),
            )],
            None => workloads::run(workload, &context).await,
        };
        for row in &new_rows {
            eprintln!("    {:<40} {}", row.label(), row.outcome);
        }
        eprintln!("    ({:.1} s)", began.elapsed().as_secs_f64());
        rows.extend(new_rows);
    }
    targets::judge(&mut rows);
    let elapsed = started.elapsed();
    let chart_svg = chart::render(&rows);
    write(&context.options.chart, &chart_svg)?;
    let markdown = report::render(&report::Report {
        rows: &rows,
        machine: &machine,
        options: &context.options,
        elapsed,
        chart: &context.options.chart,
    });
    write(&context.options.output, &markdown)?;
    eprintln!(
        "wrote {} and {} in {:.1} s",
        context.options.output.display(),
        context.options.chart.display(),
        elapsed.as_secs_f64()
    );
    Ok(rows)
}

/// Why the wide rows do not run on a machine of `cpus` CPUs, if they
/// don't: it has fewer than [`WIDE`], and they were neither named in
/// `--only` nor part of a smoke run (which runs them on any machine, to
/// keep them working).
fn too_few_cpus(workload: Workload, options: &Options, cpus: usize) -> Option<String> {
    let asked = options.quick || options.only.contains(&workload);
    (workload.is_wide() && !asked && cpus < WIDE).then(|| {
        format!(
            "this machine has {cpus} CPUs, fewer than the {WIDE} processes of these rows \
             (`--only {}` runs them anyway)",
            workload.id()
        )
    })
}

fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, contents)
}

/// A deadline that is generous for the full sizes and shorter for the smoke run.
pub fn deadline(context: &Context, full: Duration) -> Duration {
    if context.options.quick {
        full.min(Duration::from_secs(60))
    } else {
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(quick: bool, only: &[Workload]) -> Options {
        Options {
            quick,
            output: PathBuf::from("B.md"),
            chart: PathBuf::from("B.svg"),
            python: "python3".into(),
            only: only.to_vec(),
        }
    }

    #[test]
    fn the_wide_rows_run_where_there_are_16_cpus_or_where_asked() {
        let all = options(false, &[]);
        let reason = too_few_cpus(Workload::W4Wide, &all, 2).expect("skipped on 2 CPUs");
        assert!(reason.contains("2 CPUs") && reason.contains("--only W4x16"), "{reason}");
        assert_eq!(too_few_cpus(Workload::W4Wide, &all, 16), None);
        assert_eq!(too_few_cpus(Workload::W4, &all, 2), None);
        assert_eq!(too_few_cpus(Workload::W1Wide, &options(true, &[]), 2), None);
        assert_eq!(
            too_few_cpus(Workload::W3Wide, &options(false, &[Workload::W3Wide]), 2),
            None
        );
    }
}
