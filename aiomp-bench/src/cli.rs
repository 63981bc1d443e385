//! The command line: `all [--quick] [--output PATH] [--chart PATH]
//! [--python PATH] [--only W1,W2,...]`, and the hidden subcommands the suite
//! runs this binary with as a fresh process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::row::{Outcome, System, Workload};
use crate::suite::{self, Options};
use crate::{limits, methods, workloads};

const USAGE: &str = "\
usage: aiomp-bench all [--quick] [--output PATH] [--chart PATH] [--python PATH] [--only W1,W2,...]

  all             run every workload on aiomp, its peers and the limits; write the report
  --quick         a seconds-long smoke run (small N, fewer repetitions)
  --output PATH   the markdown report (default: BENCHMARKS.md at the repository root)
  --chart PATH    the SVG chart (default: bench/chart.svg beside the default report,
                  or the report's path with .svg otherwise)
  --python PATH   the interpreter that makes bench/.venv (default: python3)
  --only LIST     only these workloads (W1..W9, WR, W1x16, W3x16, W4x16); the x16
                  rows run on 16 processes, by default only where there are 16 CPUs
";

/// Runs the command line `args` (without the program name); `started` is
/// when the process entered `main`.
pub async fn main(args: Vec<String>, started: Instant) -> ExitCode {
    let Some(first) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    match first.as_str() {
        "all" => match parse_all(&args[1..]) {
            Ok(options) => run_all(options).await,
            Err(message) => {
                eprintln!("aiomp-bench: {message}\n\n{USAGE}");
                ExitCode::from(2)
            }
        },
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        hidden if hidden.starts_with("__") => run_hidden(started, hidden, &args[1..]).await,
        other => {
            eprintln!("aiomp-bench: unknown command {other:?}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse_all(args: &[String]) -> Result<Options, String> {
    let repo = suite::repo_root();
    let mut options = Options {
        quick: false,
        output: repo.join("BENCHMARKS.md"),
        chart: repo.join("bench/chart.svg"),
        python: "python3".into(),
        only: Vec::new(),
    };
    let mut chart = None;
    let mut output_given = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--output" => {
                options.output = PathBuf::from(value()?);
                output_given = true;
            }
            "--chart" => chart = Some(PathBuf::from(value()?)),
            "--python" => options.python = value()?,
            "--only" => {
                for id in value()?.split(',') {
                    let workload = Workload::ALL
                        .into_iter()
                        .find(|w| w.id().eq_ignore_ascii_case(id.trim()))
                        .ok_or_else(|| format!("no workload {id:?}"))?;
                    options.only.push(workload);
                }
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    options.chart = match chart {
        Some(chart) => chart,
        // Never overwrite the committed chart from a report written elsewhere.
        None if output_given => options.output.with_extension("svg"),
        None => options.chart,
    };
    Ok(options)
}

async fn run_all(options: Options) -> ExitCode {
    match suite::run(options).await {
        Ok(rows) => {
            // Peers depend on the machine (Python, network for pip); aiomp and the limits must run.
            let broken: Vec<String> = rows
                .iter()
                .filter(|r| matches!(r.system, System::Aiomp | System::Limit))
                .filter(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::TimedOut(_)))
                .map(|r| format!("{} {}: {}", r.workload.id(), r.label(), r.outcome))
                .collect();
            if broken.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("aiomp-bench: these rows of aiomp or the limits did not run:");
                for line in broken {
                    eprintln!("  {line}");
                }
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("aiomp-bench: could not write the report: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The subcommands the suite runs as fresh processes; not in the usage.
async fn run_hidden(started: Instant, name: &str, args: &[String]) -> ExitCode {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let result: Result<Option<serde_json::Value>, String> = match name {
        "__w5" => match methods::parse(arg(0)) {
            Some(method) => workloads::w5::child(started, method).await.map(Some),
            None => Err(format!("unknown start method {:?}", arg(0))),
        },
        "__w8" => match arg(0).parse() {
            Ok(n) => workloads::w8::child(n).await.map(Some),
            Err(e) => Err(format!("__w8 N: {e}")),
        },
        "__w9" => workloads::w9::child().await.map(Some),
        "__echo" => limits::serve_echo().map(|()| None).map_err(|e| e.to_string()),
        "__sink" => limits::serve_sink().map(|()| None).map_err(|e| e.to_string()),
        other => Err(format!("unknown command {other:?}")),
    };
    match result {
        Ok(Some(json)) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("aiomp-bench {name}: {reason}");
            ExitCode::FAILURE
        }
    }
}
