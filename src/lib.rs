//! Helpers shared by aiomp's examples, helper programs and integration tests
//! (not published): looking at processes through `/proc`.

use std::time::{Duration, Instant};

/// The direct children of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children: Vec<u32> = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    children.sort_unstable();
    children.dedup();
    children
}

/// Whether `pid` is an aiomp fork server (from its name: `aiomp-forksrv`).
pub fn is_forkserver(pid: u32) -> bool {
    has_thread_named(pid, "aiomp-forksrv")
}

/// Whether `pid` is a fork server's spare, a worker forked ahead of need
/// that waits for a request (from its name: `aiomp-spare`).
pub fn is_spare(pid: u32) -> bool {
    has_thread_named(pid, "aiomp-spare")
}

/// Whether a thread of `pid` has that name. A fork server's name is its
/// serving thread's: in a test binary, not the main thread.
fn has_thread_named(pid: u32, name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks
        .flatten()
        .any(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name))
}

/// The fork servers' spares among the children of `pid`.
pub fn spares_of(pid: u32) -> Vec<u32> {
    children_of(pid).into_iter().filter(|&child| is_spare(child)).collect()
}

/// The spares of `pid`'s fork server, once there are any (the server forks
/// the next one just after it answers a request), or none after 5 s.
pub fn settled_spares_of(pid: u32) -> Vec<u32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let spares = spares_of(pid);
        if !spares.is_empty() || std::time::Instant::now() > deadline {
            return spares;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The fork servers among the children of `pid`. A worker the server just
/// forked bears its name for the instant before it takes its own: only
/// those still so named 20 ms later count.
pub fn forkservers_of(pid: u32) -> Vec<u32> {
    let named: Vec<u32> = children_of(pid)
        .into_iter()
        .filter(|&child| is_forkserver(child))
        .collect();
    if named.is_empty() {
        return named;
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    named.into_iter().filter(|&child| is_forkserver(child)).collect()
}

/// Whether `pid` has exited: it no longer exists, or it is a zombie
/// (exited, waiting to be reaped by whoever adopted it).
pub fn has_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Waits until every one of `pids` has exited; returns those still running
/// after `timeout`.
pub fn wait_all_exited(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let running: Vec<u32> = pids.iter().copied().filter(|&pid| !has_exited(pid)).collect();
        if running.is_empty() || Instant::now() >= deadline {
            return running;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// This process's resident memory (`VmRSS`), in KiB.
///
/// # Panics
///
/// If `/proc/self/status` cannot be read or has no `VmRSS` line.
pub fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// This process's open file descriptors.
///
/// # Panics
///
/// If `/proc/self/fd` cannot be listed.
pub fn open_fds() -> usize {
    // The directory's own fd, open while it is listed, is not counted.
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count() - 1
}

/// Children of this process that exited but were not reaped.
pub fn zombies() -> Vec<u32> {
    children_of(std::process::id())
        .into_iter()
        .filter(|&pid| has_exited(pid))
        .collect()
}

/// After a run with `max_tasks_per_child`, waits (at most 10 s) until the
/// last recycled worker has exited and been reaped: `workers` live workers,
/// no more open fds than `fds_before`, and no zombie.
pub async fn settle(pool: &aiomp::Pool, workers: usize, fds_before: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while (pool.worker_pids().len() != workers || open_fds() > fds_before || !zombies().is_empty())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
