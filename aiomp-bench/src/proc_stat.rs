//! Reading `/proc`: CPU time of a process tree, peak resident set, children.

use std::collections::HashMap;
use std::fs;

/// CPU time a set of processes used, two ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// `utime + stime` from `/proc/PID/stat`, in clock ticks (all threads, live or exited).
    pub ticks: u64,
    /// The sum over live threads of `/proc/PID/task/TID/schedstat`'s time on CPU, in ns.
    pub schedstat_ns: u64,
}

impl CpuTime {
    /// The CPU time used between `earlier` and `self`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            ticks: self.ticks.saturating_sub(earlier.ticks),
            schedstat_ns: self.schedstat_ns.saturating_sub(earlier.schedstat_ns),
        }
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The fields after the command name in `/proc/PID/stat` (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// `utime + stime` of one process, in clock ticks.
pub fn process_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    // Fields 14 and 15 of the file; the slice starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Time on CPU of the live threads of one process, in ns.
pub fn process_schedstat_ns(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time of the processes `pids`, summed.
pub fn cpu_time(pids: &[u32]) -> CpuTime {
    pids.iter().fold(CpuTime::default(), |total, &pid| CpuTime {
        ticks: total.ticks + process_ticks(pid).unwrap_or(0),
        schedstat_ns: total.schedstat_ns + process_schedstat_ns(pid),
    })
}

/// `root` and every process descending from it, root first.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.filter_map(Result::ok) {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        if let Some(kids) = children.get(&tree[next]) {
            tree.extend(kids);
        }
        next += 1;
    }
    tree
}

/// A `kB` field of `/proc/self/status` (`VmHWM`, `VmRSS`, ...), in KiB.
pub fn self_status_kib(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(process_ticks(me).is_some());
        assert!(process_tree(me).starts_with(&[me]));
        assert!(self_status_kib("VmHWM").unwrap() > 0);
        assert!(clock_ticks_per_second() > 0);
    }
}
