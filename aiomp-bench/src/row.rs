//! One line of the report: a workload run on one system, its outcome, and
//! how it compares with its target.

use std::fmt;
use std::time::Duration;

/// The workloads, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// Map `double` over N items on 2 processes: tasks/s.
    W1,
    /// Sequential `apply(double, (x,))` calls: median and p99 µs per call.
    W2,
    /// Map a 10 ms sleep over 10,000 items, 2 processes × 256: time / ideal.
    W3,
    /// A CPU-bound fn of ~20 ms over 100 items on 2 processes: speedup over serial.
    W4,
    /// From nothing to a pool of 2 ready, one `apply`, `close` + `join`: median of fresh processes.
    W5,
    /// Identity over 1 MiB byte buffers on 2 processes: MB/s sent + received.
    W6,
    /// One-shot `Worker::with_args(double, (1,))`: median.
    W7,
    /// Map over 10,000,000 items, streamed: peak RSS of the parent.
    W8,
    /// An idle pool of 2: CPU time of all its processes.
    W9,
    /// W1 with `max_tasks_per_child(1)`: a fresh worker per task.
    Recycling,
    /// W1 on [`WIDE`] processes, with N scaled to match.
    W1Wide,
    /// W3 on [`WIDE`] processes, with the items scaled so that the ideal stays 0.195 s.
    W3Wide,
    /// W4 on [`WIDE`] processes, ten calls per process.
    W4Wide,
}

/// The processes of the wide rows: W1, W3 and W4 again on a machine with
/// at least this many CPUs.
pub const WIDE: usize = 16;

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 13] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
        Workload::W6,
        Workload::W7,
        Workload::W8,
        Workload::W9,
        Workload::Recycling,
        Workload::W1Wide,
        Workload::W3Wide,
        Workload::W4Wide,
    ];

    /// The short ID (`W1`, ..., `WR`).
    pub fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::W6 => "W6",
            Workload::W7 => "W7",
            Workload::W8 => "W8",
            Workload::W9 => "W9",
            Workload::Recycling => "WR",
            Workload::W1Wide => "W1x16",
            Workload::W3Wide => "W3x16",
            Workload::W4Wide => "W4x16",
        }
    }

    /// The workload this one repeats on more processes (itself if none).
    pub fn base(self) -> Workload {
        match self {
            Workload::W1Wide => Workload::W1,
            Workload::W3Wide => Workload::W3,
            Workload::W4Wide => Workload::W4,
            other => other,
        }
    }

    /// Whether this is one of the rows on [`WIDE`] processes.
    pub fn is_wide(self) -> bool {
        self.base() != self
    }

    /// The worker processes of its pools: 2, or [`WIDE`].
    pub fn processes(self) -> usize {
        if self.is_wide() { WIDE } else { 2 }
    }

    /// What the workload does, and the figure it reports.
    pub fn title(self) -> &'static str {
        match self {
            Workload::W1 => "map `double` over N items, 2 processes: tasks/s",
            Workload::W2 => "2,000 sequential `apply(double, (x,))` on a pool of 2: µs per call",
            Workload::W3 => "map a 10 ms sleep over 10,000 items, 2 processes × 256: time / ideal (0.195 s)",
            Workload::W4 => "map a ~20 ms CPU-bound fn over 100 items, 2 processes: speedup over serial",
            Workload::W5 => "nothing → pool of 2 ready, one `apply`, `close` + `join`: median of fresh processes",
            Workload::W6 => "identity over 200 buffers of 1 MiB, 2 processes: MB/s sent + received",
            Workload::W7 => "one-shot `Worker::with_args(double, (1,)).await`: median",
            Workload::W8 => "map over 10,000,000 items, streamed: peak RSS of the parent (VmHWM)",
            Workload::W9 => "an idle pool of 2: CPU time of all its processes, % of one core",
            Workload::Recycling => "map `double` with `max_tasks_per_child(1)`, 2 processes: tasks/s",
            Workload::W1Wide => "W1 on 16 processes, N × 8: tasks/s",
            Workload::W3Wide => "W3 on 16 processes × 256, 80,000 items: time / ideal (0.195 s)",
            Workload::W4Wide => "W4 on 16 processes, 160 calls: speedup over serial",
        }
    }
}

/// Who ran a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum System {
    /// This project.
    Aiomp,
    /// Python's aiomultiprocess 0.9.1.
    Aiomultiprocess,
    /// Python's `multiprocessing.Pool`.
    MpPool,
    /// Python's `multiprocessing.Process` (one-shot rows).
    MpProcess,
    /// The `procspawn` crate.
    Procspawn,
    /// A limit of the machine: what no process pool can beat.
    Limit,
}

impl System {
    /// The name shown in the report.
    pub fn name(self) -> &'static str {
        match self {
            System::Aiomp => "aiomp",
            System::Aiomultiprocess => "aiomultiprocess 0.9.1",
            System::MpPool => "multiprocessing.Pool",
            System::MpProcess => "multiprocessing.Process",
            System::Procspawn => "procspawn 1.0",
            System::Limit => "limit",
        }
    }

    /// Whether this is one of the peers aiomp is compared with.
    pub fn is_peer(self) -> bool {
        !matches!(self, System::Aiomp | System::Limit)
    }
}

/// A measured figure.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Work items per second.
    Rate {
        /// Items per second.
        per_second: f64,
    },
    /// A per-call latency distribution, in µs.
    Latency {
        /// The median, µs.
        median_us: f64,
        /// The 99th percentile, µs.
        p99_us: f64,
    },
    /// A median duration, in µs, over `samples` runs.
    Duration {
        /// The median, µs.
        median_us: f64,
        /// How many runs.
        samples: usize,
    },
    /// Wall time against the ideal wall time.
    VersusIdeal {
        /// Measured seconds.
        seconds: f64,
        /// Ideal seconds.
        ideal: f64,
    },
    /// Serial time over pool time.
    Speedup {
        /// The calls one after the other in one process, seconds.
        serial: f64,
        /// The same calls on the pool, seconds.
        pool: f64,
    },
    /// Bytes per second (MB = 10⁶ bytes).
    Throughput {
        /// MB/s.
        mb_per_second: f64,
    },
    /// Peak resident set, KiB.
    Memory {
        /// `VmHWM` at the end, KiB.
        peak_kib: u64,
    },
    /// CPU time over a wall-clock window.
    CpuShare {
        /// `utime + stime` over the window, clock ticks.
        ticks: u64,
        /// Clock ticks per second.
        ticks_per_second: u64,
        /// Time on CPU of the live threads over the window (schedstat), ns.
        schedstat_ns: u64,
        /// The window, seconds.
        wall: f64,
        /// How many processes were measured.
        processes: usize,
    },
}

impl Value {
    /// The number the targets and the chart use.
    pub fn primary(&self) -> f64 {
        match *self {
            Value::Rate { per_second } => per_second,
            Value::Latency { median_us, .. } | Value::Duration { median_us, .. } => median_us,
            Value::VersusIdeal { seconds, ideal } => seconds / ideal,
            Value::Speedup { serial, pool } => serial / pool,
            Value::Throughput { mb_per_second } => mb_per_second,
            Value::Memory { peak_kib } => peak_kib as f64 / 1024.0,
            Value::CpuShare { .. } => self.cpu_percent().unwrap_or(0.0),
        }
    }

    /// For a CPU share: the percentage of one core (from `utime + stime`).
    pub fn cpu_percent(&self) -> Option<f64> {
        match *self {
            Value::CpuShare {
                ticks,
                ticks_per_second,
                wall,
                ..
            } => Some(100.0 * ticks as f64 / ticks_per_second as f64 / wall),
            _ => None,
        }
    }

    /// Whether a larger primary number is better.
    pub fn higher_is_better(&self) -> bool {
        matches!(
            self,
            Value::Rate { .. } | Value::Speedup { .. } | Value::Throughput { .. }
        )
    }

    /// The primary number's unit, for the chart.
    pub fn unit(&self) -> &'static str {
        match self {
            Value::Rate { .. } => "tasks/s",
            Value::Latency { .. } | Value::Duration { .. } => "µs",
            Value::VersusIdeal { .. } => "× ideal",
            Value::Speedup { .. } => "× serial",
            Value::Throughput { .. } => "MB/s",
            Value::Memory { .. } => "MiB",
            Value::CpuShare { .. } => "% of a core",
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Rate { per_second } => write!(f, "{} tasks/s", thousands(per_second)),
            Value::Latency { median_us, p99_us } => {
                write!(f, "median {} µs, p99 {} µs", short(median_us), short(p99_us))
            }
            Value::Duration { median_us, samples } => {
                write!(f, "{} ms (median of {samples})", short(median_us / 1000.0))
            }
            Value::VersusIdeal { seconds, ideal } => {
                write!(f, "{seconds:.3} s = {:.3}× ideal ({ideal:.3} s)", seconds / ideal)
            }
            Value::Speedup { serial, pool } => {
                write!(f, "{:.2}× ({serial:.2} s serial, {pool:.2} s pool)", serial / pool)
            }
            Value::Throughput { mb_per_second } => write!(f, "{} MB/s", thousands(mb_per_second)),
            Value::Memory { peak_kib } => write!(f, "{:.1} MiB", peak_kib as f64 / 1024.0),
            Value::CpuShare {
                ticks,
                ticks_per_second,
                schedstat_ns,
                wall,
                processes,
            } => write!(
                f,
                "{:.3}% of a core ({ticks} ticks of 1/{ticks_per_second} s in {wall:.1} s; \
                 schedstat {:.3}%; {processes} processes)",
                self.cpu_percent().unwrap_or(0.0),
                100.0 * schedstat_ns as f64 / 1e9 / wall,
            ),
        }
    }
}

/// How a row's run went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It ran and produced a figure.
    Measured(Value),
    /// It was not run, for this reason.
    Skipped(String),
    /// It ran and failed, with this reason.
    Failed(String),
    /// It did not finish within this deadline and was stopped.
    TimedOut(Duration),
}

impl Outcome {
    /// The figure, if the row was measured.
    pub fn value(&self) -> Option<&Value> {
        match self {
            Outcome::Measured(value) => Some(value),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Measured(value) => write!(f, "{value}"),
            Outcome::Skipped(reason) => write!(f, "skipped: {reason}"),
            Outcome::Failed(reason) => write!(f, "failed: {reason}"),
            Outcome::TimedOut(after) => write!(f, "timed out after {after:?} (stopped)"),
        }
    }
}

/// A row's target and whether it was met.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The target, e.g. `≥ 1.9×`.
    pub goal: String,
    /// The comparison, e.g. `1.94× / 1.9 = 1.02`.
    pub comparison: String,
    /// `Some(true)` met, `Some(false)` missed, `None` cannot tell (a reference row is missing).
    pub met: Option<bool>,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Which workload.
    pub workload: Workload,
    /// Who ran it.
    pub system: System,
    /// What distinguishes rows of one system (a start method, a buffer type, a limit's name).
    pub variant: Option<String>,
    /// How it was run (N, concurrency, chunksize, ...).
    pub config: String,
    /// What came of it.
    pub outcome: Outcome,
    /// Its target, for the rows that have one (set by [`crate::targets`]).
    pub verdict: Option<Verdict>,
}

impl Row {
    /// A row without a verdict.
    pub fn new(workload: Workload, system: System, variant: Option<&str>, config: String, outcome: Outcome) -> Row {
        Row {
            workload,
            system,
            variant: variant.map(str::to_owned),
            config,
            outcome,
            verdict: None,
        }
    }

    /// The system's name and the variant, as the report shows them.
    pub fn label(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{} ({variant})", self.system.name()),
            None => self.system.name().to_owned(),
        }
    }

    /// The figure, if measured.
    pub fn value(&self) -> Option<&Value> {
        self.outcome.value()
    }
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let rounded = x.round() as i128;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0 { format!("-{out}") } else { out }
}

/// A number with three significant digits or so (`12.3`, `1.23`, `1,234`).
pub fn short(x: f64) -> String {
    if x.abs() >= 1000.0 {
        thousands(x)
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(short(12.345), "12.3");
        assert_eq!(short(0.5), "0.50");
        assert_eq!(short(123_456.0), "123,456");
    }

    #[test]
    fn cpu_share_is_a_percentage_of_one_core() {
        let v = Value::CpuShare {
            ticks: 1,
            ticks_per_second: 100,
            schedstat_ns: 0,
            wall: 10.0,
            processes: 3,
        };
        assert!((v.cpu_percent().unwrap() - 0.1).abs() < 1e-9);
    }
}
