//! Ctrl-C: a program running a long `map` on a pool is interrupted with
//! SIGINT, sent to its whole process group as a terminal does, or to the
//! program alone. It exits promptly, every worker and the fork server exit
//! within 2 s after it, and nothing panics on the way out.
//!
//! The program is `src/bin/map_until_interrupted.rs`, started in a process
//! group of its own so that the group signal reaches it and its workers,
//! and never this test.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running `map_until_interrupted`, killed with its group if the test fails.
struct Program {
    child: Child,
    /// The workers (and the fork server) it reported.
    pids: Vec<u32>,
    stderr: Option<JoinHandle<String>>,
}

impl Program {
    /// Starts the program with `method` in a new process group and waits
    /// (bounded) until its tasks are running.
    fn start(method: &str) -> Program {
        let mut child = Command::new(env!("CARGO_BIN_EXE_map_until_interrupted"))
            .arg(method)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let stdout = child.stdout.take().unwrap();
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = line_tx.send(line);
        });
        let mut program = Program {
            child,
            pids: Vec::new(),
            stderr: Some(stderr),
        };
        let line = line_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the program did not start its map within 60 s");
        let pids: Vec<u32> = line
            .strip_prefix("started ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {}", program.stderr()))
            .split_whitespace()
            .map(|pid| pid.parse().unwrap())
            .collect();
        // Two workers; for forkserver, the server and its spare too.
        let expected = if method == "forkserver" { 4 } else { 2 };
        assert_eq!(pids.len(), expected, "{line}");
        program.pids = pids;
        program
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits up to `timeout` for the program to exit.
    fn exited_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the program and its workers wrote to stderr (call once it exited).
    fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|reader| reader.join().unwrap())
            .unwrap_or_default()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // Whatever happened, leave nothing running.
        // SAFETY: kill takes plain integers; the group is the program's own.
        unsafe { libc::kill(-self.pgid(), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
        for &pid in &self.pids {
            if !aiomp_suite::has_exited(pid) {
                // SAFETY: as above; a pid the program reported as its worker.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// Interrupts a program running a map with `method`, sending SIGINT to its
/// whole group (`group`) or to it alone, and checks what remains.
fn interrupt(method: &str, group: bool) {
    let mut program = Program::start(method);
    let target = if group { -program.pgid() } else { program.pgid() };
    // SAFETY: kill takes plain integers; the target is the program (or its group).
    assert_eq!(unsafe { libc::kill(target, libc::SIGINT) }, 0);
    let status = program
        .exited_within(Duration::from_secs(5))
        .expect("the program did not exit within 5 s of SIGINT");
    assert!(
        status.signal() == Some(libc::SIGINT) || status.code() == Some(130),
        "the program ended with {status:?}, not by its SIGINT"
    );
    let survivors = aiomp_suite::wait_all_exited(&program.pids, Duration::from_secs(2));
    assert_eq!(
        survivors,
        Vec::<u32>::new(),
        "still running 2 s after the program exited (workers and fork server: {:?})",
        program.pids
    );
    // Every process that could write to the pipe has exited: this returns.
    let stderr = program.stderr();
    assert!(!stderr.contains("panicked"), "a panic on the way out:\n{stderr}");
}

#[test]
fn ctrl_c_stops_a_spawn_pool_and_its_workers() {
    interrupt("spawn", true);
}

#[test]
fn ctrl_c_stops_a_fork_pool_and_its_workers() {
    interrupt("fork", true);
}

#[test]
fn ctrl_c_stops_a_forkserver_pool_its_workers_and_the_fork_server() {
    interrupt("forkserver", true);
}

#[test]
fn sigint_to_the_parent_alone_still_stops_spawn_workers() {
    interrupt("spawn", false);
}

#[test]
fn sigint_to_the_parent_alone_still_stops_fork_workers() {
    interrupt("fork", false);
}

#[test]
fn sigint_to_the_parent_alone_still_stops_forkserver_workers_and_the_fork_server() {
    interrupt("forkserver", false);
}
