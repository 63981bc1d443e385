//! Hostile peers on both ends of a worker's channel, with real processes and
//! real sockets: each bad frame is refused with a clear error, nothing hangs,
//! and nothing else breaks.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aiomp::{Error, Pool, Worker, remote};
use futures_util::StreamExt;

/// The worker's exit code when its channel or handshake fails.
const EXIT_HANDSHAKE: i32 = 87;

/// Starts this test binary as an aiomp child (through the `#[aiomp::test]`
/// named `entry`), with `theirs` as its channel and `token` in its
/// environment, and plays its parent on the returned end.
fn fake_parent(entry: &str, token: &str) -> (std::process::Child, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([entry, "--exact", "--nocapture", "--quiet"])
        .env("AIOMP_WORKER", format!("spawn:0:{token}"))
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, ours)
}

/// Waits (bounded) for the child to exit; returns its exit code and stderr.
fn refused(mut child: std::process::Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the child did not refuse the channel in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code().unwrap_or(-1), stderr)
}

const TOKEN: &str = "00112233445566778899aabbccddeeff";
const TOKEN_BYTES: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];

#[aiomp::test]
async fn child_refuses_a_parent_with_the_wrong_token() {
    let (child, mut parent) = fake_parent("child_refuses_a_parent_with_the_wrong_token", TOKEN);
    parent.write_all(&[0; 16]).unwrap();
    let (code, stderr) = refused(child);
    assert_eq!(code, EXIT_HANDSHAKE, "{stderr}");
    assert!(stderr.contains("wrong token"), "{stderr}");
}

#[aiomp::test]
async fn child_refuses_a_parent_that_sends_no_token() {
    let (child, parent) = fake_parent("child_refuses_a_parent_that_sends_no_token", TOKEN);
    drop(parent);
    let (code, stderr) = refused(child);
    assert_eq!(code, EXIT_HANDSHAKE, "{stderr}");
    assert!(stderr.contains("no token"), "{stderr}");
}

#[aiomp::test]
async fn child_refuses_a_corrupted_hello_frame() {
    let (child, mut parent) = fake_parent("child_refuses_a_corrupted_hello_frame", TOKEN);
    parent.write_all(&TOKEN_BYTES).unwrap();
    parent.write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]).unwrap();
    let (code, stderr) = refused(child);
    assert_eq!(code, EXIT_HANDSHAKE, "{stderr}");
    assert!(stderr.contains("no valid hello"), "{stderr}");
}

#[aiomp::test]
async fn child_refuses_an_oversized_length_prefix_before_allocating() {
    let (child, mut parent) = fake_parent("child_refuses_an_oversized_length_prefix_before_allocating", TOKEN);
    parent.write_all(&TOKEN_BYTES).unwrap();
    parent.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    let (code, stderr) = refused(child);
    assert_eq!(code, EXIT_HANDSHAKE, "{stderr}");
    assert!(stderr.contains("exceeds the limit"), "{stderr}");
}

/// Runs in a real worker and writes `bytes` straight into the worker's own
/// channel to the parent, as a compromised or buggy worker would; then stays
/// in flight.
#[remote]
async fn write_to_parent(bytes: Vec<u8>) {
    let value = std::env::var("AIOMP_WORKER").unwrap();
    let fd: i32 = value.split(':').nth(1).unwrap().parse().unwrap();
    // SAFETY: `fd` is this worker's open channel; the buffer is valid for its length.
    let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(written, bytes.len() as isize);
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

#[remote]
async fn slow_double(x: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(300)).await;
    x * 2
}

/// Sends `garbage` from one worker of a two-worker pool while the other
/// runs tasks; returns the error of the hostile task.
async fn hostile_worker(garbage: Vec<u8>) -> Error {
    let pool = Pool::builder().processes(2).child_concurrency(4).build().await.unwrap();
    let before = pool.worker_pids();
    let siblings = pool.map(slow_double, 0..8u64);
    let hostile = pool.apply(write_to_parent, (garbage,)).timeout(Duration::from_secs(30));
    let (siblings, hostile): (Vec<aiomp::Result<u64>>, _) = tokio::join!(siblings.collect(), hostile.into_future());
    let error = hostile.expect_err("a task on a worker that sent garbage must fail");
    match error {
        Error::Transport { pid, .. } => assert!(before.contains(&pid), "{error}"),
        ref other => panic!("expected a transport error naming the worker, got {other:?}"),
    }
    // Tasks on the hostile worker failed with the same error; all others succeeded.
    for (i, result) in siblings.into_iter().enumerate() {
        if let Err(e) = result {
            assert!(matches!(e, Error::Transport { .. }), "sibling {i} failed with {e:?}");
        }
    }
    // The pool replaced the worker and still serves.
    assert_eq!(pool.apply(double, (21,)).await.unwrap(), 42);
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool.worker_pids().len() < 2 {
        assert!(Instant::now() < deadline, "the worker was not replaced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(pool.worker_pids(), before);
    error
}

#[aiomp::test]
async fn parent_refuses_a_corrupted_frame_from_a_worker() {
    let error = hostile_worker(vec![0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
    assert!(error.to_string().contains("malformed frame"), "{error}");
}

#[aiomp::test]
async fn parent_refuses_an_oversized_length_prefix_from_a_worker() {
    let error = hostile_worker(vec![0xff, 0xff, 0xff, 0xff]).await;
    assert!(error.to_string().contains("exceeds the limit"), "{error}");
}

#[aiomp::test]
async fn a_one_shot_worker_that_sends_garbage_fails_its_call() {
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        Worker::with_args(write_to_parent, (vec![0, 0, 0, 2, 0xff, 0xff],)).into_future(),
    )
    .await
    .expect("no hang");
    let error = result.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
}
