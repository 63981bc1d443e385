//! The markdown report: the machine, the targets at a glance, the chart,
//! and one table per workload.

use std::fmt::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::machine::Machine;
use crate::row::{Row, System, Workload};
use crate::suite::Options;

/// Everything the report is made from.
#[derive(Debug)]
pub struct Report<'a> {
    /// The rows, judged.
    pub rows: &'a [Row],
    /// The machine.
    pub machine: &'a Machine,
    /// The options of the run.
    pub options: &'a Options,
    /// How long the whole run took.
    pub elapsed: Duration,
    /// Where the chart was written.
    pub chart: &'a Path,
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "✅ met",
        Some(false) => "❌ missed",
        None => "❔ not judged",
    }
}

/// The report as markdown.
pub fn render(report: &Report<'_>) -> String {
    let Report {
        rows,
        machine,
        options,
        elapsed,
        chart,
    } = report;
    let mut md = String::new();
    let mut command = String::from("cargo run --release -p aiomp-bench -- all");
    if options.quick {
        command.push_str(" --quick");
    }
    if !options.only.is_empty() {
        let ids: Vec<&str> = options.only.iter().map(|w| w.id()).collect();
        let _ = write!(command, " --only {}", ids.join(","));
    }
    let _ = writeln!(md, "# aiomp benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `{command}` (the `aiomp-bench` crate) on {}, in {:.0} s. aiomp, its peers and the limits of \
         the machine ran in the same run, one after the other, with the same workload definitions.{}\n",
        machine.date,
        elapsed.as_secs_f64(),
        if options.quick {
            " **Quick smoke run: small N, few repetitions; the numbers are not meaningful.**"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "| | |\n| --- | --- |");
    for (key, value) in [
        ("nproc", machine.nproc.to_string()),
        ("CPU", machine.cpu_model.clone()),
        ("memory", machine.memory.clone()),
        ("kernel", machine.kernel.clone()),
        ("rustc", machine.rustc.clone()),
        ("Python", machine.python.clone()),
        ("load average at start", machine.load.clone()),
        ("date", machine.date.clone()),
        ("aiomp commit", machine.commit.clone()),
    ] {
        let _ = writeln!(md, "| {key} | {} |", cell(&value));
    }
    let _ = writeln!(md, "\n## Targets\n");
    let _ = writeln!(
        md,
        "| workload | aiomp | measured | target | against it | |\n| --- | --- | --- | --- | --- | --- |"
    );
    for row in rows.iter().filter(|r| r.system == System::Aiomp) {
        let (goal, comparison, met) = match &row.verdict {
            Some(v) => (v.goal.as_str(), v.comparison.as_str(), mark(v.met)),
            None => ("—", "", ""),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {met} |",
            row.workload.id(),
            cell(&row.label()),
            cell(&row.outcome.to_string()),
            cell(goal),
            cell(comparison)
        );
    }
    md.push('\n');
    let _ = writeln!(md, "## Chart\n");
    let _ = writeln!(
        md,
        "![bar chart of every measured row]({})\n",
        relative_link(&options.output, chart)
    );
    results(&mut md, rows);
    md.push_str(NOTES);
    md
}

/// One table per workload.
fn results(md: &mut String, rows: &[Row]) {
    let _ = writeln!(md, "## Results\n");
    for workload in Workload::ALL {
        let of_workload: Vec<&Row> = rows.iter().filter(|r| r.workload == workload).collect();
        if of_workload.is_empty() {
            continue;
        }
        let _ = writeln!(md, "### {} — {}\n", workload.id(), workload.title());
        let _ = writeln!(
            md,
            "| system | result | target | configuration |\n| --- | --- | --- | --- |"
        );
        for row in of_workload {
            let target = row.verdict.as_ref().map_or(String::new(), |v| {
                format!("{} {}: {}", mark(v.met), v.goal, v.comparison)
            });
            let name = if row.system == System::Aiomp {
                format!("**{}**", row.label())
            } else {
                row.label()
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                cell(&name),
                cell(&row.outcome.to_string()),
                cell(&target),
                cell(&row.config)
            );
        }
        md.push('\n');
    }
}

const NOTES: &str = "## How the numbers are taken\n\n\
- **Systems.** aiomp (this repository, release build); Python's aiomultiprocess 0.9.1 and \
`multiprocessing` in `bench/.venv` (made once by the suite with `python3 -m venv` and \
`pip install aiomultiprocess==0.9.1`; scripts in `bench/python/`); the `procspawn` crate's `Pool` \
in its own binary (`aiomp-bench/src/bin/procspawn_peer.rs`); and the limits of the machine \
(`aiomp-bench/src/limits.rs`). A system without an equivalent gets a row that says so.\n\
- **W1** times the map only, on a pool that already answered one call; multiprocessing.Pool is \
given several chunksizes and the best is reported. aiomultiprocess and procspawn run fewer items \
(a rate does not depend on N once N is large), as their configuration column says. aiomp runs \
with `child_concurrency(4096)`: a worker holds at most that many calls, and a chunk is a quarter \
of it.\n\
- **W2** runs aiomp five times: on tokio's default multi-thread runtime with the calls in \
`block_on` (what `#[tokio::main]`'s body does), where the `block_on` thread spins for the reply \
(up to 150 µs, with a `sched_yield` on each turn: `block_on_spin`), reading the worker's channel \
itself, rather than parking until a runtime thread, itself woken, reads the reply and wakes it; \
the same with `block_on_spin(0)` (this row shows what the spin gains and has no target); on the \
same runtime with the calls in a spawned task, which runs on a runtime thread and crosses only \
when a reply wakes another; the same with `worker_spin(50µs)`, where a worker with no call \
running watches its channel before it sleeps, so that the next call needs no wake-up (by \
default only where the machine has more than twice as many CPUs as the pool has processes, and \
then in every row but the one without spin, as their configuration says); and on a \
current-thread runtime, where no wake-up crosses a thread. The request is \
written by the calling thread in all five.\n\
- **W3**'s ideal assumes sleeps of exactly 10 ms. `tokio::time::sleep` rounds every deadline up \
to its next 1 ms tick (tokio alone, in one process, stays ~15% above the ideal), so W3 also runs \
with a sleep that lasts 10 ms to a few µs (a timerfd per thread that fires 300 µs early, and a spin \
for the rest, `aiomp-bench/src/timer.rs`), on \
aiomp and in one process alike. Each runs on the default pool and with `prefetch(256)`, where a \
worker holds a second wave of calls that starts as the first completes, without a round trip to \
the parent. The ideal itself is out of reach: 10,000 sleeps 512 at a time take 20 waves, not 19.5 \
(1.024×); the last limit row, 20 sleeps back to back in one task, is that floor.\n\
- **W4** runs every system five times as a pair: the calls serially in one process, then on a \
pool that stays up across the pairs. It reports the pair with the median speedup and lists all \
five (with three, one run's pairs spread from 1.70 to 2.23): the serial time of the same work \
moved between 1.2 and 2.1 s within minutes on this shared machine, and a pair measured back to \
back shares its mood of the moment. The limit row runs the same pairs on two threads of one \
process: how much parallelism the machine gave at the time (its two vCPUs sometimes run two busy \
threads no faster than one).\n\
- **W1x16, W3x16, W4x16** repeat W1, W3 and W4 on 16 processes, on a machine with at least 16 \
CPUs (elsewhere they are skipped unless `--only` names them): W1 with every N × 8; W3 with 80,000 \
items, 16 × 256 at a time, for the same ideal (0.195 s); W4 with 160 calls, ten per process (100 \
calls would take 7 rounds where the work is 6.25), three pairs each. Their limits run on a runtime \
of 16 threads, as the 2-process rows' run on one of 2. The targets are the base workloads' (W4: \
0.95 × 16 = 15.2×).\n\
- **W5** runs a fresh process per sample (`aiomp-bench __w5 METHOD`), which times itself from the \
first line of `main`, before `aiomp::init` (Python: after its imports), to the end of `join`. The \
forkserver sample runs with `AIOMP_START_METHOD=forkserver`, so `init` forks the fork server (inside \
the time). aiomp's start methods and procspawn take turns, one fresh process each per round, so \
that the ratios compare runs made in the same minutes.\n\
- **W6** counts every byte twice (sent and received); MB = 10⁶ bytes. The target applies to \
`aiomp::Buffer`, the type the README recommends, which crosses without a copy in user space; \
`serde_bytes::ByteBuf` is copied into and out of each frame on both sides. aiomp and procspawn are timed \
on the second of two identical passes (the first warms the allocators); Python's peers run once. \
The limit is one direction of one socket, the median of five passes (single passes ranged from \
1 to 9.5 GB/s here).\n\
- **W7** runs in the suite's own process, after W1–W6 have grown it. That costs fork alone: the \
kernel copies the parent's page tables, so a fork one-shot that takes 0.9 ms from a small parent \
takes 2–9 ms here (12.5 ms with 100 MiB resident, in a probe); spawn re-executes the binary and \
the fork server is a small process of its own, whatever the parent holds. Each spawn one-shot is \
followed by its share of the limit's execs of the minimal tokio binary (three each), so that the \
ratio compares the two over the same minutes.\n\
- **W8** runs in a fresh process (`aiomp-bench __w8 N`) that consumes `pool.map(...)` as a stream \
and reads `VmHWM` from `/proc/self/status` at the end.\n\
- **W9** is measured from outside for every system: the program starts its pool, makes one call, \
says it is ready and idles; the suite sums `utime + stime` of `/proc/PID/stat` over the program's \
whole process tree (parent, workers, helpers) across the window. The schedstat figure is the same \
from `/proc/PID/task/*/schedstat`, to the nanosecond.\n\
- Every wait has a deadline: a peer that hangs is killed with its process group and reported as \
timed out.\n\
- The machine is shared: the load average at start is in the machine table. Rerun with \
`cargo run --release -p aiomp-bench -- all` (or `-- all --only W1,W2`; `-- all --quick` for a smoke run).\n";

/// A link from the markdown file at `from` to `to`, relative when they share a prefix.
fn relative_link(from: &Path, to: &Path) -> String {
    let absolute = |p: &Path| -> PathBuf {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        joined
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect()
    };
    let from_dir = absolute(from).parent().map(Path::to_path_buf).unwrap_or_default();
    let to = absolute(to);
    let common = from_dir
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut link = PathBuf::new();
    for _ in common..from_dir.components().count() {
        link.push("..");
    }
    for component in to.components().skip(common) {
        link.push(component);
    }
    link.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative() {
        assert_eq!(
            relative_link(Path::new("/r/BENCHMARKS.md"), Path::new("/r/bench/chart.svg")),
            "bench/chart.svg"
        );
        assert_eq!(
            relative_link(Path::new("/r/target/B.md"), Path::new("/r/target/B.svg")),
            "B.svg"
        );
        assert_eq!(
            relative_link(Path::new("/r/a/B.md"), Path::new("/r/c/x.svg")),
            "../c/x.svg"
        );
    }
}
