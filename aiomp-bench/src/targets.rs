//! The targets, judged on the aiomp rows against the other rows of
//! the same run.

use crate::row::{Row, System, Value, Verdict, Workload};
use crate::workloads::w2::NO_SPIN as W2_NO_SPIN;

/// W1: aiomp at least this many times aiomultiprocess.
pub const W1_OVER_AIOMULTIPROCESS: f64 = 100.0;
/// W2: aiomp's median at most this many times the raw ping-pong.
pub const W2_OVER_PING_PONG: f64 = 1.3;
/// W3: at most this many times the ideal.
pub const W3_OVER_IDEAL: f64 = 1.05;
/// W4: at least this speedup per process (1.9 on 2 processes).
pub const W4_SPEEDUP_PER_PROCESS: f64 = 0.95;
/// W5: forkserver at most this fraction of procspawn.
pub const W5_FORKSERVER_OVER_PROCSPAWN: f64 = 0.5;
/// W6: at least this fraction of the one-way socket stream.
pub const W6_OVER_STREAM: f64 = 0.6;
/// W7: spawn at most this many times the exec of a minimal tokio binary.
pub const W7_SPAWN_OVER_EXEC: f64 = 1.5;
/// W7: forkserver at most this many µs.
pub const W7_FORKSERVER_US: f64 = 500.0;
/// W8: peak RSS at most this many MiB.
pub const W8_MIB: f64 = 64.0;
/// W9: under this percentage of one core.
pub const W9_PERCENT: f64 = 0.1;

/// Sets the verdict of every aiomp row that has a target.
pub fn judge(rows: &mut [Row]) {
    let verdicts: Vec<(usize, Verdict)> = rows
        .iter()
        .enumerate()
        .filter(|(_, row)| row.system == System::Aiomp)
        .filter_map(|(i, row)| verdict(row, rows).map(|v| (i, v)))
        .collect();
    for (i, verdict) in verdicts {
        rows[i].verdict = Some(verdict);
    }
}

fn value(rows: &[Row], workload: Workload, system: System) -> Option<&Value> {
    rows.iter()
        .find(|r| r.workload == workload && r.system == system)
        .and_then(Row::value)
}

/// The verdict when `reference` (the number the target is relative to) may be missing.
fn relative(goal: String, reference: Option<f64>, judge: impl FnOnce(f64) -> (String, bool)) -> Verdict {
    match reference {
        Some(reference) => {
            let (comparison, met) = judge(reference);
            Verdict {
                goal,
                comparison,
                met: Some(met),
            }
        }
        None => Verdict {
            goal,
            comparison: "no reference row was measured".into(),
            met: None,
        },
    }
}

fn absolute(goal: String, comparison: String, met: bool) -> Verdict {
    Verdict {
        goal,
        comparison,
        met: Some(met),
    }
}

fn verdict(row: &Row, rows: &[Row]) -> Option<Verdict> {
    let mine = row.value()?.primary();
    let variant = row.variant.as_deref();
    // The wide rows have their base's targets, against rows of their own workload.
    Some(match row.workload.base() {
        Workload::W1 => w1(mine, row.workload, rows),
        // The target is for the defaults; this row shows what the spin gains.
        Workload::W2 if variant == Some(W2_NO_SPIN) => return None,
        Workload::W2 => {
            let ping = rows
                .iter()
                .find(|r| r.workload == Workload::W2 && r.system == System::Limit)
                .and_then(Row::value)
                .map(Value::primary);
            relative(format!("median ≤ {W2_OVER_PING_PONG}× ping-pong"), ping, |ping| {
                (
                    format!("{:.2}× ping-pong ({ping:.1} µs)", mine / ping),
                    mine <= W2_OVER_PING_PONG * ping,
                )
            })
        }
        Workload::W3 => absolute(
            format!("≤ {W3_OVER_IDEAL}× ideal"),
            format!("{mine:.3}× ideal"),
            mine <= W3_OVER_IDEAL,
        ),
        Workload::W4 => {
            let goal = W4_SPEEDUP_PER_PROCESS * row.workload.processes() as f64;
            absolute(format!("≥ {goal:.1}× serial"), format!("{mine:.2}×"), mine >= goal)
        }
        Workload::W5 => {
            let procspawn = value(rows, Workload::W5, System::Procspawn).map(Value::primary);
            match variant {
                Some("spawn") => relative("≤ procspawn".into(), procspawn, |p| {
                    (format!("{:.2}× procspawn ({:.1} ms)", mine / p, p / 1000.0), mine <= p)
                }),
                Some("forkserver") => relative("≤ ½ procspawn".into(), procspawn, |p| {
                    (
                        format!("{:.2}× procspawn ({:.1} ms)", mine / p, p / 1000.0),
                        mine <= W5_FORKSERVER_OVER_PROCSPAWN * p,
                    )
                }),
                _ => return None,
            }
        }
        // The target is for the byte-buffer type the README recommends
        // (aiomp::Buffer); ByteBuf shows the serde-portable choice and the
        // plain Vec<u8> row the trap the README warns about.
        Workload::W6 if matches!(variant, Some("Vec<u8>" | "ByteBuf")) => return None,
        Workload::W6 => {
            let stream = value(rows, Workload::W6, System::Limit).map(Value::primary);
            relative(
                format!("≥ {:.0}% of the one-way stream", 100.0 * W6_OVER_STREAM),
                stream,
                |s| {
                    (
                        format!("{:.0}% of {s:.0} MB/s", 100.0 * mine / s),
                        mine >= W6_OVER_STREAM * s,
                    )
                },
            )
        }
        Workload::W7 => {
            let exec = value(rows, Workload::W7, System::Limit).map(Value::primary);
            match variant {
                Some("spawn") => relative(format!("≤ {W7_SPAWN_OVER_EXEC}× tokio-binary exec"), exec, |e| {
                    (
                        format!("{:.2}× exec ({:.2} ms)", mine / e, e / 1000.0),
                        mine <= W7_SPAWN_OVER_EXEC * e,
                    )
                }),
                Some("forkserver") => absolute(
                    format!("≤ {:.1} ms", W7_FORKSERVER_US / 1000.0),
                    format!("{:.2} ms", mine / 1000.0),
                    mine <= W7_FORKSERVER_US,
                ),
                _ => return None,
            }
        }
        Workload::W8 => absolute(format!("≤ {W8_MIB:.0} MiB"), format!("{mine:.1} MiB"), mine <= W8_MIB),
        Workload::W9 => absolute(
            format!("< {W9_PERCENT}% of a core"),
            format!("{mine:.3}%"),
            mine < W9_PERCENT,
        ),
        // (`base` is never one of the wide ones.)
        Workload::Recycling | Workload::W1Wide | Workload::W3Wide | Workload::W4Wide => return None,
    })
}

/// W1 (or its wide rows, `workload`): at least the best peer, and at least
/// 100× aiomultiprocess.
fn w1(mine: f64, workload: Workload, rows: &[Row]) -> Verdict {
    let best = rows
        .iter()
        .filter(|r| r.workload == workload && r.system.is_peer())
        .filter_map(|r| Some((r.value()?.primary(), r.system.name())))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let aiomultiprocess = value(rows, workload, System::Aiomultiprocess).map(Value::primary);
    let goal = format!("≥ best peer and ≥ {W1_OVER_AIOMULTIPROCESS:.0}× aiomultiprocess");
    match (best, aiomultiprocess) {
        (Some((best, name)), Some(amp)) => absolute(
            goal,
            format!(
                "{:.2}× best peer ({name}); {:.0}× aiomultiprocess",
                mine / best,
                mine / amp
            ),
            mine >= best && mine >= W1_OVER_AIOMULTIPROCESS * amp,
        ),
        _ => relative(goal, None, |_| unreachable!()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::Outcome;

    fn row(workload: Workload, system: System, variant: Option<&str>, value: Value) -> Row {
        Row::new(workload, system, variant, String::new(), Outcome::Measured(value))
    }

    #[test]
    fn w1_needs_both_the_best_peer_and_100x_aiomultiprocess() {
        let mut rows = vec![
            row(Workload::W1, System::Aiomp, None, Value::Rate { per_second: 2e6 }),
            row(
                Workload::W1,
                System::Aiomultiprocess,
                None,
                Value::Rate { per_second: 1e4 },
            ),
            row(Workload::W1, System::MpPool, None, Value::Rate { per_second: 3e6 }),
            row(Workload::W1, System::Limit, None, Value::Rate { per_second: 9e9 }),
        ];
        judge(&mut rows);
        let verdict = rows[0].verdict.as_ref().unwrap();
        assert_eq!(verdict.met, Some(false), "{verdict:?}");
        assert!(verdict.comparison.contains("0.67× best peer"), "{verdict:?}");
        assert!(rows[1].verdict.is_none());
    }

    #[test]
    fn wide_rows_are_judged_against_their_own_workload_and_processes() {
        let rate = |per_second: f64| Value::Rate { per_second };
        let speedup = |pool: f64| Value::Speedup { serial: 16.0, pool };
        let mut rows = vec![
            row(Workload::W1, System::MpPool, None, rate(1e6)),
            row(Workload::W1Wide, System::Aiomp, None, rate(2e7)),
            row(Workload::W1Wide, System::Aiomultiprocess, None, rate(1e5)),
            row(Workload::W1Wide, System::MpPool, None, rate(3e7)),
            row(Workload::W4, System::Aiomp, None, speedup(8.0)),
            row(Workload::W4Wide, System::Aiomp, None, speedup(1.1)),
        ];
        judge(&mut rows);
        let w1 = rows[1].verdict.as_ref().unwrap();
        assert_eq!(w1.met, Some(false), "{w1:?}");
        assert!(w1.comparison.contains("0.67× best peer"), "{w1:?}");
        let w4 = rows[4].verdict.as_ref().unwrap();
        assert_eq!((w4.goal.as_str(), w4.met), ("≥ 1.9× serial", Some(true)));
        let wide = rows[5].verdict.as_ref().unwrap();
        assert_eq!((wide.goal.as_str(), wide.met), ("≥ 15.2× serial", Some(false)));
    }

    #[test]
    fn w5_spawn_is_judged_against_procspawn() {
        let duration = |ms: f64| Value::Duration {
            median_us: ms * 1000.0,
            samples: 15,
        };
        let mut rows = vec![
            row(Workload::W5, System::Aiomp, Some("spawn"), duration(10.0)),
            row(Workload::W5, System::Aiomp, Some("forkserver"), duration(6.0)),
            row(Workload::W5, System::Procspawn, Some("spawn"), duration(11.0)),
        ];
        judge(&mut rows);
        assert_eq!(rows[0].verdict.as_ref().unwrap().met, Some(true));
        assert_eq!(rows[1].verdict.as_ref().unwrap().met, Some(false));
    }

    #[test]
    fn a_missing_reference_cannot_be_judged() {
        let mut rows = vec![row(
            Workload::W2,
            System::Aiomp,
            None,
            Value::Latency {
                median_us: 30.0,
                p99_us: 50.0,
            },
        )];
        judge(&mut rows);
        assert_eq!(rows[0].verdict.as_ref().unwrap().met, None);
    }
}
