//! The limits of the machine, what no process pool can beat: a Unix-socket
//! round trip of a small message, a one-way stream of 1 MiB frames, the exec
//! of a minimal tokio binary, and W1 on tokio tasks inside one process.
//!
//! The socket limits run this binary as the other process (hidden
//! subcommands `__echo` and `__sink`, whose stdin is the socket), with plain
//! blocking reads and writes: no framing library, no serialization.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::row::{Outcome, Value};
use crate::stats;
use crate::subprocess::{GroupGuard, command};

/// The size of the ping-pong message, bytes.
pub const PING_BYTES: usize = 16;

/// The size of a stream frame's payload: 1 MiB.
pub const FRAME_BYTES: usize = 1 << 20;

/// Any single socket read or write of the limits gives up after this long.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The Unix-socket round trip of a [`PING_BYTES`] message between two processes, `rounds` times.
pub async fn ping_pong(rounds: usize, deadline: Duration) -> Outcome {
    with_peer("__echo", deadline, move |mut socket| {
        let mut message = [7u8; PING_BYTES];
        let mut round = |message: &mut [u8; PING_BYTES]| -> std::io::Result<f64> {
            let started = Instant::now();
            socket.write_all(message)?;
            socket.read_exact(message)?;
            Ok(started.elapsed().as_secs_f64() * 1e6)
        };
        for _ in 0..rounds.min(1000) {
            round(&mut message)?;
        }
        let samples = (0..rounds)
            .map(|_| round(&mut message))
            .collect::<std::io::Result<Vec<f64>>>()?;
        let summary = stats::summarize(&samples).ok_or_else(|| std::io::Error::other("no rounds"))?;
        Ok(Value::Latency {
            median_us: summary.median,
            p99_us: summary.p99,
        })
    })
    .await
}

/// Passes of the one-way stream; the median is reported.
pub const STREAM_PASSES: usize = 5;

/// A one-way stream of `frames` frames of [`FRAME_BYTES`] (4-byte length + payload) between two
/// processes, the median of [`STREAM_PASSES`] passes.
pub async fn one_way_stream(frames: usize, deadline: Duration) -> Outcome {
    with_peer("__sink", deadline, move |mut socket| {
        let payload = vec![0x5a_u8; FRAME_BYTES];
        let length = (FRAME_BYTES as u32).to_be_bytes();
        // The median of a few passes: one pass swings (1 to 9 GB/s here)
        // with where the scheduler puts the two processes.
        let mut passes = Vec::with_capacity(STREAM_PASSES);
        for pass in 0..STREAM_PASSES {
            let started = Instant::now();
            for _ in 0..frames {
                socket.write_all(&length)?;
                socket.write_all(&payload)?;
            }
            if pass + 1 == STREAM_PASSES {
                socket.write_all(&0u32.to_be_bytes())?;
                let mut ack = [0u8; 1];
                socket.read_exact(&mut ack)?;
            }
            passes.push(started.elapsed().as_secs_f64());
        }
        let seconds = stats::median(&passes).ok_or_else(|| std::io::Error::other("no passes"))?;
        Ok(Value::Throughput {
            mb_per_second: (frames * FRAME_BYTES) as f64 / seconds / 1e6,
        })
    })
    .await
}

/// Runs this binary's `subcommand` with one end of a socketpair as its stdin,
/// and `body` on the other end on a blocking thread, all within `deadline`.
async fn with_peer(
    subcommand: &str,
    deadline: Duration,
    body: impl FnOnce(UnixStream) -> std::io::Result<Value> + Send + 'static,
) -> Outcome {
    let run = async {
        let exe = std::env::current_exe()?;
        let (ours, theirs) = UnixStream::pair()?;
        ours.set_read_timeout(Some(IO_TIMEOUT))?;
        ours.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut child = command(exe, [subcommand])
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .spawn()?;
        let _group = GroupGuard::new(&child);
        let value = tokio::task::spawn_blocking(move || body(ours))
            .await
            .map_err(std::io::Error::other)??;
        tokio::time::timeout(IO_TIMEOUT, child.wait())
            .await
            .map_err(|_| std::io::Error::other("the peer did not exit"))??;
        Ok::<Value, std::io::Error>(value)
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(Ok(value)) => Outcome::Measured(value),
        Ok(Err(error)) => Outcome::Failed(error.to_string()),
        Err(_) => Outcome::TimedOut(deadline),
    }
}

/// The stdin of this process as a Unix stream (the hidden subcommands' socket).
fn stdin_socket() -> std::io::Result<UnixStream> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let socket = UnixStream::from(fd);
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    socket.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(socket)
}

/// `__echo`: sends back every [`PING_BYTES`] message until the stream ends.
pub fn serve_echo() -> std::io::Result<()> {
    let mut socket = stdin_socket()?;
    let mut message = [0u8; PING_BYTES];
    loop {
        match socket.read_exact(&mut message) {
            Ok(()) => socket.write_all(&message)?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// `__sink`: reads frames until a zero length, then answers one byte.
pub fn serve_sink() -> std::io::Result<()> {
    let mut socket = stdin_socket()?;
    let mut payload = vec![0u8; FRAME_BYTES];
    loop {
        let mut length = [0u8; 4];
        socket.read_exact(&mut length)?;
        let length = u32::from_be_bytes(length) as usize;
        if length == 0 {
            return socket.write_all(&[1]);
        }
        if length > payload.len() {
            payload.resize(length, 0);
        }
        socket.read_exact(&mut payload[..length])?;
    }
}

/// Forks, executes and waits for the minimal tokio binary `binary` once
/// (`std::process::Command::status`, blocking): the µs it took.
///
/// # Errors
///
/// If it could not be started, or exited with a failure.
pub fn exec_once(binary: &Path) -> std::io::Result<f64> {
    let started = Instant::now();
    let status = std::process::Command::new(binary)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    let took = started.elapsed().as_secs_f64() * 1e6;
    if status.success() {
        Ok(took)
    } else {
        Err(std::io::Error::other(format!(
            "{} exited with {status}",
            binary.display()
        )))
    }
}

/// W1 on tokio tasks in this process: spawn `n` tasks that double a
/// number, await them all, on a runtime of `threads` threads.
pub async fn tokio_tasks(n: u64, threads: usize, deadline: Duration) -> Outcome {
    let run = async move {
        let started = Instant::now();
        let handles: Vec<_> = (0..n).map(|x| tokio::spawn(async move { x * 2 })).collect();
        let mut last = 0;
        for handle in handles {
            last = handle.await.map_err(|e| e.to_string())?;
        }
        let seconds = started.elapsed().as_secs_f64();
        if last != (n - 1) * 2 {
            return Err("wrong result".to_owned());
        }
        Ok(Value::Rate {
            per_second: n as f64 / seconds,
        })
    };
    match on_threads(threads, deadline, run).await {
        Ok(Ok(value)) => Outcome::Measured(value),
        Ok(Err(reason)) => Outcome::Failed(reason),
        Err(outcome) => outcome,
    }
}

/// Runs `future` on a runtime of its own with `threads` worker threads, as
/// many as the pool it is compared with has processes, whatever this
/// machine's CPUs, within `deadline`. It runs as a task on those threads,
/// which end with the runtime (and the timers of [`crate::timer`] made on
/// them). `Err` holds the row's outcome when it did not finish: timed out,
/// or failed to run.
async fn on_threads<F>(threads: usize, deadline: Duration, future: F) -> Result<F::Output, Outcome>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let finished = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .map_err(|e| format!("could not build a runtime of {threads} threads: {e}"))?;
        let timed = runtime.spawn(async move { tokio::time::timeout(deadline, future).await });
        runtime.block_on(timed).map_err(|e| e.to_string())
    })
    .await;
    match finished {
        Ok(Ok(Ok(output))) => Ok(output),
        Ok(Ok(Err(_elapsed))) => Err(Outcome::TimedOut(deadline)),
        Ok(Err(reason)) => Err(Outcome::Failed(reason)),
        Err(error) => Err(Outcome::Failed(error.to_string())),
    }
}

/// W4's ceiling on this machine as it runs: `items` calls of
/// `spin(iters)` serially, then on `threads` threads of this process that
/// take them one by one, `pairs` times back to back. The median pair's
/// speedup, and a note on every pair's. A shared machine does not always
/// run two busy threads at once at full speed: this row says how much
/// parallelism it gave during W4.
pub fn threads_speedup(items: u64, iters: u64, threads: usize, pairs: usize) -> (Value, String) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut measured = Vec::with_capacity(pairs);
    for _ in 0..pairs.max(1) {
        let started = Instant::now();
        for _ in 0..items {
            crate::work::spin(iters);
        }
        let serial = started.elapsed().as_secs_f64();
        let taken = AtomicU64::new(0);
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while taken.fetch_add(1, Ordering::Relaxed) < items {
                        crate::work::spin(iters);
                    }
                });
            }
        });
        measured.push((serial, started.elapsed().as_secs_f64()));
    }
    let ((serial, pool), note) = stats::median_pair(measured);
    (Value::Speedup { serial, pool }, note)
}

/// Which sleep a W3 run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// `tokio::time::sleep`: millisecond ticks, every deadline rounded up.
    Tokio,
    /// [`crate::timer::sleep`]: a timerfd, to a few microseconds.
    Precise,
}

/// W3 on tokio in this process: `items` sleeps of `sleep_ms`, `at_once` at
/// a time, on a runtime of `threads` threads.
///
/// # Panics
///
/// With [`Timer::Precise`], if the kernel refuses a timerfd (never on Linux ≥ 2.6.25).
pub async fn tokio_sleeps(
    items: u64,
    at_once: usize,
    threads: usize,
    sleep_ms: u64,
    timer: Timer,
    ideal: f64,
    deadline: Duration,
) -> Outcome {
    use futures_util::StreamExt;
    let run = async move {
        let started = Instant::now();
        let done = futures_util::stream::iter(0..items)
            .map(|x| async move {
                let duration = Duration::from_millis(sleep_ms);
                match timer {
                    Timer::Tokio => tokio::time::sleep(duration).await,
                    Timer::Precise => crate::timer::sleep(duration).await.expect("a timerfd works on Linux"),
                }
                x
            })
            .buffer_unordered(at_once)
            .count()
            .await;
        (done, started.elapsed().as_secs_f64())
    };
    match on_threads(threads, deadline, run).await {
        Ok((done, seconds)) if done as u64 == items => Outcome::Measured(Value::VersusIdeal { seconds, ideal }),
        Ok(_) => Outcome::Failed("lost sleeps".into()),
        Err(outcome) => outcome,
    }
}
