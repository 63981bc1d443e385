//! The systems aiomp is compared with, each run as a child process that
//! prints one JSON object: Python's aiomultiprocess and `multiprocessing`
//! ([`python`]), and the `procspawn` crate ([`procspawn`]).

pub mod procspawn;
pub mod python;

use serde::Deserialize;

use crate::row::{Outcome, Row, System, Value, Workload};
use crate::stats;
use crate::subprocess::RunError;

/// What a peer's run prints: the fields its workload fills in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PeerOutput {
    /// Items processed.
    pub n: Option<u64>,
    /// Wall time of the measured part, seconds.
    pub seconds: Option<f64>,
    /// Per-call times, µs.
    pub samples_us: Vec<f64>,
    /// W4: the calls serially in one process, seconds.
    pub serial_seconds: Option<f64>,
    /// W4: the calls on the pool, seconds.
    pub pool_seconds: Option<f64>,
    /// W6: bytes sent + received.
    pub bytes: Option<u64>,
    /// W8: peak RSS of the parent, KiB.
    pub vm_hwm_kib: Option<u64>,
    /// How the peer ran it (chunksize, concurrency, ...).
    pub config: Option<String>,
}

fn missing(field: &str) -> RunError {
    RunError::BadOutput(format!("the peer's output has no `{field}`"))
}

impl PeerOutput {
    /// Items per second (`n / seconds`).
    pub fn rate(&self) -> Result<Value, RunError> {
        let n = self.n.ok_or_else(|| missing("n"))?;
        let seconds = self.seconds.ok_or_else(|| missing("seconds"))?;
        Ok(Value::Rate {
            per_second: n as f64 / seconds,
        })
    }

    /// Median and p99 of the samples.
    pub fn latency(&self) -> Result<Value, RunError> {
        let summary = stats::summarize(&self.samples_us).ok_or_else(|| missing("samples_us"))?;
        Ok(Value::Latency {
            median_us: summary.median,
            p99_us: summary.p99,
        })
    }

    /// Median of the samples.
    pub fn median_duration(&self) -> Result<Value, RunError> {
        let median_us = stats::median(&self.samples_us).ok_or_else(|| missing("samples_us"))?;
        Ok(Value::Duration {
            median_us,
            samples: self.samples_us.len(),
        })
    }

    /// Serial time over pool time.
    pub fn speedup(&self) -> Result<Value, RunError> {
        Ok(Value::Speedup {
            serial: self.serial_seconds.ok_or_else(|| missing("serial_seconds"))?,
            pool: self.pool_seconds.ok_or_else(|| missing("pool_seconds"))?,
        })
    }

    /// Seconds against an ideal.
    pub fn versus_ideal(&self, ideal: f64) -> Result<Value, RunError> {
        Ok(Value::VersusIdeal {
            seconds: self.seconds.ok_or_else(|| missing("seconds"))?,
            ideal,
        })
    }

    /// MB/s (bytes / seconds / 10⁶).
    pub fn throughput(&self) -> Result<Value, RunError> {
        let bytes = self.bytes.ok_or_else(|| missing("bytes"))?;
        let seconds = self.seconds.ok_or_else(|| missing("seconds"))?;
        Ok(Value::Throughput {
            mb_per_second: bytes as f64 / seconds / 1e6,
        })
    }

    /// Peak RSS.
    pub fn memory(&self) -> Result<Value, RunError> {
        Ok(Value::Memory {
            peak_kib: self.vm_hwm_kib.ok_or_else(|| missing("vm_hwm_kib"))?,
        })
    }

    /// The peer's own description of its configuration, after `base`.
    pub fn config(&self, base: &str) -> String {
        match &self.config {
            Some(config) if base.is_empty() => config.clone(),
            Some(config) => format!("{base}; {config}"),
            None => base.to_owned(),
        }
    }
}

/// The outcome of a peer run turned into a figure by `figure`.
pub fn outcome(
    run: Result<PeerOutput, RunError>,
    figure: impl FnOnce(&PeerOutput) -> Result<Value, RunError>,
) -> Outcome {
    match run.and_then(|output| figure(&output)) {
        Ok(value) => Outcome::Measured(value),
        Err(error) => error.into(),
    }
}

/// A peer's row: its configuration (`base`, then what the peer said) and the
/// figure `figure` makes of its output.
pub fn row(
    workload: Workload,
    system: System,
    variant: Option<&str>,
    base: &str,
    run: Result<PeerOutput, RunError>,
    figure: impl FnOnce(&PeerOutput) -> Result<Value, RunError>,
) -> Row {
    let config = run
        .as_ref()
        .map_or_else(|_| base.to_owned(), |output| output.config(base));
    Row::new(workload, system, variant, config, outcome(run, figure))
}
