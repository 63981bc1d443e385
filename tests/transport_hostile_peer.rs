//! Hostile peers on both ends of a worker's channel, with real processes and
//! real sockets: each bad frame is refused with a clear error, nothing hangs,
//! and nothing else breaks.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aiomp::{Error, Pool, StartMethod, Worker, remote};
use futures_util::StreamExt;

mod common;
use common::each_start_method;

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
/// channel to `parent` (this test process), as a compromised or buggy worker
/// would; then stays in flight.
#[remote]
async fn write_to_parent(parent: u32, bytes: Vec<u8>) {
    let fd = channel_to(parent);
    // SAFETY: `fd` is this worker's open channel; the buffer is valid for its length.
    let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(written, bytes.len() as isize);
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// The fd of this worker's channel to `parent`, found the same way under
/// every start method (only a spawned worker's environment names it): the
/// one socket whose peer `parent` holds, that `parent` does not hold itself
/// (unlike the parent's sockets a forked child inherits), and that this
/// process polls (unlike a sibling's channel that leaked into a fork made at
/// the same time).
///
/// A worker whose call came with its greeting can run before the parent,
/// back from the fork, has closed its copy of the worker's end: the search
/// is repeated until the parent has.
fn channel_to(parent: u32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ours = channels_to(parent);
        if ours.len() == 1 || Instant::now() > deadline {
            assert_eq!(ours.len(), 1, "not one channel to {parent} among (fd, inode) {ours:?}");
            return ours[0].0;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The candidates for [`channel_to`], as (fd, inode).
fn channels_to(parent: u32) -> Vec<(i32, u32)> {
    let theirs: HashSet<u32> = sockets(&format!("/proc/{parent}/fd"))
        .into_iter()
        .map(|(_, ino)| ino)
        .collect();
    let polled = polled_inodes();
    sockets("/proc/self/fd")
        .into_iter()
        .filter(|(_, ino)| !theirs.contains(ino) && polled.contains(ino))
        .filter(|&(_, ino)| unix_peer(ino).is_some_and(|peer| theirs.contains(&peer)))
        .collect()
}

/// The (fd, inode) of each socket in a `/proc/<pid>/fd` directory.
fn sockets(dir: &str) -> Vec<(i32, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // closed meanwhile
        };
        let target = target.to_string_lossy();
        let inode = target.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']'));
        if let (Ok(fd), Some(Ok(inode))) = (entry.file_name().to_string_lossy().parse(), inode.map(str::parse)) {
            found.push((fd, inode));
        }
    }
    found
}

/// The inodes of the files that this process's epoll instances watch (its
/// tokio runtime's among them), from the `tfd: ... ino:<hex>` lines of
/// `/proc/self/fdinfo`.
fn polled_inodes() -> HashSet<u32> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in info.lines().filter(|line| line.starts_with("tfd:")) {
            let hex = line.split_whitespace().find_map(|field| field.strip_prefix("ino:"));
            if let Some(Ok(inode)) = hex.map(|hex| u32::from_str_radix(hex, 16)) {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

/// The inode of the peer of the Unix socket with inode `inode`, asked of the
/// kernel with a `NETLINK_SOCK_DIAG` request (what `ss -x` shows as "Peer").
fn unix_peer(inode: u32) -> Option<u32> {
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_PEER: u32 = 4;
    const UNIX_DIAG_PEER: u16 = 2;
    const HEADER: usize = 16; // struct nlmsghdr
    const DIAG_MSG: usize = 16; // struct unix_diag_msg
    // struct nlmsghdr, then struct unix_diag_req.
    let mut request = Vec::with_capacity(40);
    request.extend_from_slice(&40u32.to_ne_bytes());
    request.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    request.extend_from_slice(&[0; 8]); // sequence number, port id
    request.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]); // family, protocol, padding
    request.extend_from_slice(&u32::MAX.to_ne_bytes()); // any state
    request.extend_from_slice(&inode.to_ne_bytes());
    request.extend_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes());
    request.extend_from_slice(&[0xff; 8]); // no cookie
    // SAFETY: `socket` takes plain integers; a non-negative result is a new fd that only we own.
    let diag = unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        assert!(fd >= 0, "NETLINK_SOCK_DIAG: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(fd)
    };
    let mut diag = std::fs::File::from(diag);
    diag.write_all(&request).unwrap();
    let mut reply = vec![0; 8192];
    let len = diag.read(&mut reply).unwrap();
    let u16_at = |at: usize| u16::from_ne_bytes(reply[at..at + 2].try_into().unwrap());
    let u32_at = |at: usize| u32::from_ne_bytes(reply[at..at + 4].try_into().unwrap());
    // One reply: a struct unix_diag_msg and its attributes, or an error for a socket that is gone.
    if len < HEADER + DIAG_MSG || u16_at(4) != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    let end = (u32_at(0) as usize).min(len);
    let mut at = HEADER + DIAG_MSG;
    while at + 4 <= end {
        let (attr_len, attr_type) = (usize::from(u16_at(at)), u16_at(at + 2));
        if attr_type == UNIX_DIAG_PEER && attr_len >= 8 {
            return Some(u32_at(at + 4));
        }
        at += attr_len.max(4).next_multiple_of(4);
    }
    None
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

/// Sends `garbage` from one worker of a two-worker pool (started with
/// `method`) while the other runs tasks; returns the error of the hostile task.
async fn hostile_worker(method: StartMethod, garbage: Vec<u8>) -> Error {
    let pool = Pool::builder()
        .processes(2)
        .child_concurrency(4)
        .start_method(method)
        .build()
        .await
        .unwrap();
    let before = pool.worker_pids();
    let siblings = pool.map(slow_double, 0..8u64);
    let hostile = pool
        .apply(write_to_parent, (std::process::id(), garbage))
        .timeout(Duration::from_secs(30));
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

each_start_method! {
    async fn parent_refuses_a_corrupted_frame_from_a_worker(method) {
        let error = hostile_worker(method, vec![0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
        assert!(error.to_string().contains("malformed frame"), "{error}");
    }
}

each_start_method! {
    async fn parent_refuses_an_oversized_length_prefix_from_a_worker(method) {
        let error = hostile_worker(method, vec![0xff, 0xff, 0xff, 0xff]).await;
        assert!(error.to_string().contains("exceeds the limit"), "{error}");
    }
}

each_start_method! {
    async fn a_one_shot_worker_that_sends_garbage_fails_its_call(method) {
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            Worker::with_args(write_to_parent, (std::process::id(), vec![0, 0, 0, 2, 0xff, 0xff]))
                .start_method(method)
                .into_future(),
        )
        .await
        .expect("no hang");
        let error = result.unwrap_err();
        assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    }
}
