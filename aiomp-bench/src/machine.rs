//! The description of the machine a run happened on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::subprocess::{command, run};

/// What the report says about the machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub nproc: usize,
    /// The CPU model, from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Total memory, from `/proc/meminfo`.
    pub memory: String,
    /// The kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The Python interpreter the peers ran on.
    pub python: String,
    /// The load average when the run started.
    pub load: String,
    /// The UTC date and time the run started.
    pub date: String,
    /// The repository's commit (`AIOMP_BENCH_COMMIT`, or `git describe --always --dirty`).
    pub commit: String,
}

impl Machine {
    /// Describes this machine; `python` is the peers' interpreter version, if any.
    pub async fn describe(python: Option<String>) -> Machine {
        let rustc_program = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let rustc = run(command(rustc_program, ["--version"]), Duration::from_secs(30))
            .await
            .map_or_else(|e| format!("unknown ({e})"), |v| v.trim().to_owned());
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, m)| m.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory = read("/proc/meminfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .map_or_else(
                || "unknown".into(),
                |kib| format!("{:.1} GiB", kib as f64 / f64::from(1u32 << 20)),
            );
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            rustc,
            python: python.unwrap_or_else(|| "none".into()),
            load: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            date: utc_now(),
            commit: commit().await,
        }
    }
}

/// The repository's commit: `AIOMP_BENCH_COMMIT` where it is set (a binary
/// copied to another machine, beside a copy of the tree whose git, if any,
/// need not be this build's), else what git describes.
async fn commit() -> String {
    if let Ok(commit) = std::env::var("AIOMP_BENCH_COMMIT") {
        return commit;
    }
    let repo = crate::suite::repo_root();
    let describe = command(
        "git",
        [
            "-C".as_ref(),
            repo.as_os_str(),
            "describe".as_ref(),
            "--always".as_ref(),
            "--dirty".as_ref(),
        ],
    );
    run(describe, Duration::from_secs(30))
        .await
        .map_or_else(|_| "unknown".into(), |commit| commit.trim().to_owned())
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format_utc(seconds)
}

/// `seconds` since the epoch as `YYYY-MM-DD HH:MM UTC` (Howard Hinnant's civil-from-days).
pub fn format_utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::format_utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
