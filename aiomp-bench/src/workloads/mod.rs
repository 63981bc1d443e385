//! The workloads, one module each. Every module runs its workload on aiomp
//! and, with the same definition, on each peer and limit that has an
//! equivalent; a peer without one gets a row that says so.

pub mod recycling;
pub mod w1;
pub mod w2;
pub mod w3;
pub mod w4;
pub mod w5;
pub mod w6;
pub mod w7;
pub mod w8;
pub mod w9;

use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aiomp::{Pool, StartMethod};

use crate::peers::PeerOutput;
use crate::row::{Outcome, Row, System, Value, Workload};
use crate::subprocess::{RunError, command, run_json};
use crate::suite::Context;

/// Runs `workload` on every system; its rows.
pub async fn run(workload: Workload, context: &Context) -> Vec<Row> {
    match workload {
        Workload::W1 | Workload::W1Wide => w1::run(context, workload).await,
        Workload::W2 => w2::run(context).await,
        Workload::W3 | Workload::W3Wide => w3::run(context, workload).await,
        Workload::W4 | Workload::W4Wide => w4::run(context, workload).await,
        Workload::W5 => w5::run(context).await,
        Workload::W6 => w6::run(context).await,
        Workload::W7 => w7::run(context).await,
        Workload::W8 => w8::run(context).await,
        Workload::W9 => w9::run(context).await,
        Workload::Recycling => recycling::run(context).await,
    }
}

/// `n`, the size of a workload on its 2 processes, scaled to `workload`'s
/// processes: the same work per process.
pub fn per_process(workload: Workload, n: u64) -> u64 {
    n * workload.processes() as u64 / 2
}

/// How an aiomp pool of a workload is configured.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Worker processes.
    pub processes: usize,
    /// Tasks in flight per worker.
    pub child_concurrency: usize,
    /// Calls a worker holds beyond `child_concurrency` (0 = none, the default).
    pub prefetch: usize,
    /// Recycle after this many tasks (0 = never).
    pub max_tasks_per_child: u64,
    /// How workers start.
    pub method: StartMethod,
    /// Whether `block_on` callers spin briefly for an answer before they
    /// sleep (aiomp's default); `false` sets `block_on_spin` and
    /// `worker_spin` to zero.
    pub spin: bool,
    /// `worker_spin`, where not aiomp's default (none).
    pub worker_spin: Option<Duration>,
}

impl PoolConfig {
    /// `processes` workers with `child_concurrency` tasks each, spawned, never recycled.
    pub fn new(processes: usize, child_concurrency: usize) -> PoolConfig {
        PoolConfig {
            processes,
            child_concurrency,
            prefetch: 0,
            max_tasks_per_child: 0,
            method: StartMethod::Spawn,
            spin: true,
            worker_spin: None,
        }
    }

    /// Starts the pool.
    pub async fn build(self) -> aiomp::Result<Pool> {
        let builder = Pool::builder()
            .processes(self.processes)
            .child_concurrency(self.child_concurrency)
            .prefetch(self.prefetch)
            .max_tasks_per_child(self.max_tasks_per_child)
            .start_method(self.method);
        let builder = match self.worker_spin {
            Some(spin) => builder.worker_spin(spin),
            None => builder,
        };
        if self.spin {
            builder.build().await
        } else {
            builder
                .block_on_spin(Duration::ZERO)
                .worker_spin(Duration::ZERO)
                .build()
                .await
        }
    }

    /// Whether aiomp's workers watch their channel here without being
    /// told to: where the machine has more than twice as many CPUs as the
    /// pool has processes (`PoolBuilder::worker_spin`'s default).
    fn watches_by_default(self) -> bool {
        std::thread::available_parallelism().is_ok_and(|cpus| cpus.get() > 2 * self.processes)
    }

    /// The configuration as the report shows it.
    pub fn describe(self) -> String {
        let mut text = format!(
            "{} processes × {} concurrency, {}",
            self.processes,
            self.child_concurrency,
            crate::methods::name(self.method)
        );
        if self.prefetch > 0 {
            let _ = write!(text, ", prefetch({})", self.prefetch);
        }
        if self.max_tasks_per_child > 0 {
            let _ = write!(text, ", max_tasks_per_child({})", self.max_tasks_per_child);
        }
        if let Some(spin) = self.worker_spin.filter(|_| self.spin) {
            let _ = write!(text, ", worker_spin({spin:?})");
        } else if self.spin && self.watches_by_default() {
            text.push_str(", worker_spin(50µs) by default on this machine");
        }
        if !self.spin {
            text.push_str(", block_on_spin(0), worker_spin(0)");
        }
        text
    }
}

/// Closes and joins `pool`, within a deadline.
pub async fn shut_down(pool: Pool) -> Result<(), String> {
    pool.close();
    tokio::time::timeout(Duration::from_secs(30), pool.join())
        .await
        .map_err(|_| "the pool did not join within 30 s".to_owned())?
        .map_err(|e| e.to_string())
}

/// Runs an aiomp measurement within `deadline`.
pub async fn measure(deadline: Duration, body: impl Future<Output = Result<Value, String>>) -> Outcome {
    match tokio::time::timeout(deadline, body).await {
        Ok(Ok(value)) => Outcome::Measured(value),
        Ok(Err(reason)) => Outcome::Failed(reason),
        Err(_) => Outcome::TimedOut(deadline),
    }
}

/// Runs a hidden subcommand of this binary as a fresh process; its JSON output.
pub async fn fresh(args: &[String], env: &[(&str, &str)], deadline: Duration) -> Result<PeerOutput, RunError> {
    let exe = std::env::current_exe().map_err(|e| RunError::Spawn(e.to_string()))?;
    let mut command = command(exe, args);
    command.envs(env.iter().copied());
    run_json(command, deadline).await
}

/// A row that says a system has no equivalent of the workload.
pub fn no_equivalent(workload: Workload, system: System, variant: Option<&str>, reason: &str) -> Row {
    Row::new(
        workload,
        system,
        variant,
        String::new(),
        Outcome::Skipped(format!("no equivalent: {reason}")),
    )
}

/// One fresh run of a system: a future for its output.
pub type FreshRun<'a> = Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Result<PeerOutput, RunError>> + 'a>> + 'a>;

/// The median of `runs` fresh runs' `seconds`, run one after the other, as a [`Value::Duration`].
pub async fn median_of_fresh_runs<'a, F, Fut>(runs: usize, mut one: F) -> Outcome
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = Result<PeerOutput, RunError>> + 'a,
{
    let run: FreshRun<'a> = Box::new(move || Box::pin(one()));
    let mut outcomes = medians_of_fresh_runs_in_turns(runs, vec![run]).await;
    outcomes.pop().unwrap_or_else(|| Outcome::Skipped("no runs".into()))
}

/// For each system, the median of `runs` fresh runs' `seconds`, taken in
/// turns: one run of each system, then the next round. The machine's speed
/// drifts over minutes, and this way the drift weighs on every system alike:
/// a ratio between two of them compares runs made in the same minutes. A
/// system whose run fails is not run again; its outcome says why.
pub async fn medians_of_fresh_runs_in_turns(runs: usize, mut systems: Vec<FreshRun<'_>>) -> Vec<Outcome> {
    let mut taken: Vec<Result<Vec<f64>, Outcome>> = systems.iter().map(|_| Ok(Vec::with_capacity(runs))).collect();
    for _ in 0..runs {
        for (one, taken) in systems.iter_mut().zip(&mut taken) {
            let Ok(samples) = taken else { continue };
            match one().await {
                Ok(PeerOutput {
                    seconds: Some(seconds), ..
                }) => samples.push(seconds * 1e6),
                Ok(_) => *taken = Err(Outcome::Failed("a run printed no `seconds`".into())),
                Err(error) => *taken = Err(error.into()),
            }
        }
    }
    taken
        .into_iter()
        .map(|taken| match taken {
            Ok(samples) => match crate::stats::median(&samples) {
                Some(median_us) => Outcome::Measured(Value::Duration {
                    median_us,
                    samples: samples.len(),
                }),
                None => Outcome::Skipped("no runs".into()),
            },
            Err(outcome) => outcome,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn seconds(seconds: f64) -> PeerOutput {
        PeerOutput {
            seconds: Some(seconds),
            ..PeerOutput::default()
        }
    }

    #[tokio::test]
    async fn fresh_runs_in_turns_take_one_run_of_each_system_per_round() {
        let order = RefCell::new(Vec::new());
        let system = |name: char, took: f64| -> FreshRun<'_> {
            let order = &order;
            Box::new(move || {
                order.borrow_mut().push(name);
                Box::pin(async move { Ok(seconds(took)) })
            })
        };
        let outcomes = medians_of_fresh_runs_in_turns(3, vec![system('a', 0.001), system('b', 0.002)]).await;
        assert_eq!(order.into_inner(), ['a', 'b', 'a', 'b', 'a', 'b']);
        let medians: Vec<Option<f64>> = outcomes.iter().map(|o| o.value().map(Value::primary)).collect();
        assert_eq!(medians, [Some(1000.0), Some(2000.0)]);
    }

    #[tokio::test]
    async fn a_system_whose_run_fails_is_not_run_again_and_the_others_go_on() {
        let runs = RefCell::new(0);
        let failing: FreshRun<'_> = Box::new(|| {
            *runs.borrow_mut() += 1;
            Box::pin(async { Err(RunError::Failed("it broke".into())) })
        });
        let working: FreshRun<'_> = Box::new(|| Box::pin(async { Ok(seconds(0.5)) }));
        let outcomes = medians_of_fresh_runs_in_turns(4, vec![failing, working]).await;
        assert_eq!(runs.into_inner(), 1);
        assert_eq!(outcomes[0], Outcome::Failed("it broke".into()));
        assert_eq!(outcomes[1].value().map(Value::primary), Some(500_000.0));
    }
}
