//! Running a peer, a fresh copy of this binary or a helper as a child
//! process, always under a deadline: a child that hangs is killed with its
//! whole process group and reported as timed out.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::process::{Child, Command};

use crate::row::Outcome;

/// Why a child's run produced no result.
#[derive(Debug)]
pub enum RunError {
    /// What it needs is not there (no Python, no venv, a helper not built): a skip, not a failure.
    Unavailable(String),
    /// It could not be started.
    Spawn(String),
    /// It did not finish in time; it was killed.
    TimedOut(Duration),
    /// It exited unsuccessfully: its status and the end of its stderr.
    Failed(String),
    /// It exited successfully but its output was not what was expected.
    BadOutput(String),
}

impl From<RunError> for Outcome {
    fn from(error: RunError) -> Outcome {
        match error {
            RunError::Unavailable(reason) => Outcome::Skipped(reason),
            RunError::TimedOut(after) => Outcome::TimedOut(after),
            other @ RunError::Spawn(_) => Outcome::Failed(other.to_string()),
            RunError::Failed(reason) | RunError::BadOutput(reason) => Outcome::Failed(reason),
        }
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn(reason) => write!(f, "could not start: {reason}"),
            RunError::TimedOut(after) => write!(f, "timed out after {after:?}"),
            RunError::Unavailable(reason) | RunError::Failed(reason) | RunError::BadOutput(reason) => {
                f.write_str(reason)
            }
        }
    }
}

/// Kills a child's whole process group when dropped (a peer's pool workers too).
#[derive(Debug)]
pub struct GroupGuard {
    pgid: i32,
}

impl GroupGuard {
    /// Guards the process group led by `child`.
    pub fn new(child: &Child) -> Option<GroupGuard> {
        child.id().map(|pid| GroupGuard { pgid: pid as i32 })
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; a group that is gone is ESRCH.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
    }
}

/// A command for `program args...` in its own process group, killed if dropped.
pub fn command<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: impl IntoIterator<Item = S>) -> Command {
    let mut command = Command::new(program);
    command.args(args).kill_on_drop(true).process_group(0);
    command
}

/// Runs `command` to completion within `timeout`; its stdout on success.
pub async fn run(mut command: Command, timeout: Duration) -> Result<String, RunError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().map_err(|e| RunError::Spawn(e.to_string()))?;
    let _group = GroupGuard::new(&child);
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| RunError::TimedOut(timeout))?
        .map_err(|e| RunError::Failed(format!("waiting for it: {e}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(RunError::Failed(format!(
            "{} ({})",
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr))
        )))
    }
}

/// Runs `command` within `timeout` and parses the last line of its stdout as JSON.
pub async fn run_json<T: DeserializeOwned>(command: Command, timeout: Duration) -> Result<T, RunError> {
    let stdout = run(command, timeout).await?;
    parse_last_line(&stdout)
}

/// Parses the last non-empty line of `stdout` as JSON.
pub fn parse_last_line<T: DeserializeOwned>(stdout: &str) -> Result<T, RunError> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| RunError::BadOutput("no output".into()))?;
    serde_json::from_str(line).map_err(|e| RunError::BadOutput(format!("unexpected output {line:?}: {e}")))
}

/// What `text` (a stderr) ends with, shortened, for a reason column: a Rust
/// panic's message, or else its last line that says something.
pub fn tail(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    // A Rust panic's message is the line after its first "panicked at"; the
    // last line is the backtrace's note.
    let panic = text
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .nth(1)
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let line = panic.or_else(|| lines.next_back()).unwrap_or("no stderr");
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_told_by_its_message() {
        let stderr = "\nthread 'main' panicked at src/x.rs:1:2:\nToo many open files\nstack backtrace:\nnote: Some details are omitted\n";
        assert_eq!(tail(stderr), "Too many open files");
        assert_eq!(tail("one\ntwo\n\n"), "two");
        assert_eq!(tail(""), "no stderr");
    }

    #[tokio::test]
    async fn a_hung_child_times_out() {
        let started = std::time::Instant::now();
        let error = run(command("sleep", ["30"]), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(error, RunError::TimedOut(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn json_from_the_last_line() {
        let value: serde_json::Value = run_json(command("echo", ["noise\n{\"a\": 1}"]), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(value["a"], 1);
        let error = run(command("false", Vec::<&str>::new()), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(error, RunError::Failed(_)), "{error}");
    }
}
