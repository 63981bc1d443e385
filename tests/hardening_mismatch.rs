//! Mismatches, played at the wire level against a real child: this test
//! binary re-executed as an aiomp worker (as `fake_parent` does in
//! `transport_hostile_peer.rs`), with the test as its parent speaking the
//! protocol byte by byte: the 16 token bytes, then frames of a 4-byte
//! big-endian length and a postcard message.
//!
//! - A parent built from a different binary (another registry fingerprint)
//!   is refused with a Welcome that says why, and the child exits 87.
//! - A task naming a function the worker lacks fails alone, with
//!   `UnknownFunction`; the worker keeps serving, and drains on request.
//!
//! This file must keep exactly one `#[remote]` fn: the registry is sorted by
//! ID, so it is function 0.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aiomp::{RemoteErrorKind, remote};

/// The worker's exit code when its channel or handshake fails (child.rs).
const EXIT_HANDSHAKE: i32 = 87;

/// The only remote function of this binary: index 0.
#[remote]
async fn double(x: u64) -> u64 {
    x * 2
}

/// The wire messages, mirrored from `aiomp-runtime/src/protocol.rs` on purpose:
/// same names, same field order, same types, so that postcard lays them out
/// identically. This is a wire-compatibility test: if protocol.rs changes,
/// this copy must change with it, and a change that breaks old peers shows
/// up here.
mod wire {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Hello {
        pub(crate) fingerprint: u64,
        pub(crate) settings: Settings,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Settings {
        pub(crate) runtime: RuntimeFlavor,
        pub(crate) initializer: Option<Call>,
        pub(crate) exception_handler: Option<u32>,
        pub(crate) abort_on_parent_exit: bool,
        pub(crate) max_frame: usize,
        pub(crate) slots: Option<u32>,
        pub(crate) idle_spin: std::time::Duration,
    }

    #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
    #[allow(dead_code)] // mirrored for the layout; only CurrentThread is sent
    pub(crate) enum RuntimeFlavor {
        CurrentThread,
        MultiThread(usize),
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Call {
        pub(crate) function: u32,
        pub(crate) args: Vec<u8>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Welcome {
        pub(crate) pid: u32,
        pub(crate) fingerprint: u64,
        pub(crate) accepted: Result<(), String>,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Task {
        pub(crate) id: u64,
        pub(crate) function: u32,
        pub(crate) concurrency: u32,
        pub(crate) slots: u32,
        pub(crate) args_len: u32,
        pub(crate) standby: bool,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[allow(dead_code)] // mirrored for the layout; Cancel is not sent here
    pub(crate) enum Request {
        Tasks(Vec<Task>),
        Cancel(Vec<u64>),
        Drain,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[allow(dead_code)] // mirrored for the layout; Started is not asked for here
    pub(crate) enum Reply {
        Ready,
        InitFailed(aiomp::RemoteError),
        Outcomes(Vec<Outcome>),
        Started(u64),
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) struct Outcome {
        pub(crate) id: u64,
        pub(crate) failed: u32,
        pub(crate) results_len: u32,
    }

    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub(crate) enum TaskError {
        Remote(aiomp::RemoteError),
        Codec {
            action: CodecAction,
            error: postcard::Error,
        },
    }

    #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
    pub(crate) enum CodecAction {
        DecodeArguments,
        EncodeResult,
    }
}

use wire::{Hello, Reply, Request, RuntimeFlavor, Settings, Task, TaskError, Welcome};

/// How long any one read from the child may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A child started from this test binary, and our end of its channel.
struct FakeParent {
    child: Child,
    channel: UnixStream,
}

impl FakeParent {
    /// Starts this binary as an aiomp child through the `#[aiomp::test]`
    /// named `entry`, and sends it its token.
    fn start(entry: &str) -> FakeParent {
        let mut token = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut token))
            .unwrap();
        let hex = token.iter().fold(String::new(), |mut hex, b| {
            use std::fmt::Write;
            let _ = write!(hex, "{b:02x}");
            hex
        });
        let (ours, theirs) = UnixStream::pair().unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([entry, "--exact", "--nocapture", "--quiet"])
            .env("AIOMP_WORKER", format!("spawn:0:{hex}"))
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        ours.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut parent = FakeParent { child, channel: ours };
        parent.channel.write_all(&token).unwrap();
        parent
    }

    fn send<T: serde::Serialize>(&mut self, message: &T) {
        self.send_with_payload(message, &[]);
    }

    /// Sends a frame: the message, then `payload`.
    fn send_with_payload<T: serde::Serialize>(&mut self, message: &T, payload: &[u8]) {
        let mut frame = postcard::to_stdvec(message).unwrap();
        frame.extend_from_slice(payload);
        self.channel
            .write_all(&u32::try_from(frame.len()).unwrap().to_be_bytes())
            .unwrap();
        self.channel.write_all(&frame).unwrap();
    }

    fn recv<T: serde::de::DeserializeOwned>(&mut self) -> T {
        let (message, payload) = self.recv_with_payload();
        assert!(payload.is_empty(), "{} trailing bytes after the message", payload.len());
        message
    }

    /// Reads a frame: the message, and the payload after it.
    fn recv_with_payload<T: serde::de::DeserializeOwned>(&mut self) -> (T, Vec<u8>) {
        let mut prefix = [0; 4];
        self.channel
            .read_exact(&mut prefix)
            .expect("a frame from the child within the timeout");
        let mut frame = vec![0; u32::from_be_bytes(prefix) as usize];
        self.channel.read_exact(&mut frame).unwrap();
        let (message, rest) = postcard::take_from_bytes(&frame).unwrap();
        (message, rest.to_vec())
    }

    /// Sends a Hello carrying `fingerprint`, and returns the child's Welcome.
    fn hello(&mut self, fingerprint: u64) -> Welcome {
        self.send(&Hello {
            fingerprint,
            settings: Settings {
                runtime: RuntimeFlavor::CurrentThread,
                initializer: None,
                exception_handler: None,
                abort_on_parent_exit: false,
                max_frame: 1 << 20,
                slots: Some(16),
                idle_spin: std::time::Duration::ZERO,
            },
        });
        self.recv()
    }

    /// Runs one task of `function`, a call per argument tuple, and returns
    /// its results in call order. The chunk layout (aiomp-runtime's chunk.rs)
    /// is written and read here independently: `(u32 len | args)` per call;
    /// `(u32 index | u8 tag | u32 len | bytes)` per result, 0 for a value.
    fn run(&mut self, id: u64, function: u32, calls: &[Vec<u8>]) -> Vec<Result<Vec<u8>, TaskError>> {
        let mut payload = Vec::new();
        for args in calls {
            payload.extend_from_slice(&u32::try_from(args.len()).unwrap().to_le_bytes());
            payload.extend_from_slice(args);
        }
        let task = Task {
            id,
            function,
            concurrency: 1,
            slots: 1,
            args_len: u32::try_from(payload.len()).unwrap(),
            standby: false,
        };
        self.send_with_payload(&Request::Tasks(vec![task]), &payload);
        let (Reply::Outcomes(outcomes), results) = self.recv_with_payload() else {
            panic!("expected outcomes");
        };
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        assert_eq!(outcomes[0].id, id);
        assert_eq!(outcomes[0].results_len as usize, results.len());
        let mut by_index: Vec<Option<Result<Vec<u8>, TaskError>>> = vec![None; calls.len()];
        let mut rest = results.as_slice();
        while !rest.is_empty() {
            let index = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let tag = rest[4];
            let len = u32::from_le_bytes(rest[5..9].try_into().unwrap()) as usize;
            let bytes = rest[9..9 + len].to_vec();
            rest = &rest[9 + len..];
            by_index[index] = Some(if tag == 0 {
                Ok(bytes)
            } else {
                Err(postcard::from_bytes(&bytes).unwrap())
            });
        }
        let failed = by_index.iter().filter(|r| matches!(r, Some(Err(_)))).count();
        assert_eq!(outcomes[0].failed as usize, failed);
        by_index
            .into_iter()
            .map(|r| r.expect("a result for every call"))
            .collect()
    }

    /// Waits (bounded) for the child to exit; returns its exit code and stderr.
    fn exit(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the child did not exit within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        (status.code().unwrap_or(-1), stderr)
    }
}

/// A fingerprint no registry of this binary has (FNV-1a of anything real
/// landing on it is as likely as guessing a 64-bit key).
const FOREIGN_FINGERPRINT: u64 = 0x0123_4567_89ab_cdef;

/// Starts a child from `entry`, offers it a foreign fingerprint, checks the
/// refusal, and returns the fingerprint the child reported.
fn refused_fingerprint(entry: &str) -> u64 {
    let mut parent = FakeParent::start(entry);
    let pid = parent.child.id();
    let welcome = parent.hello(FOREIGN_FINGERPRINT);
    assert_eq!(welcome.pid, pid, "{welcome:?}");
    assert_ne!(welcome.fingerprint, FOREIGN_FINGERPRINT);
    let reason = welcome.accepted.expect_err("a foreign registry must be refused");
    assert!(
        reason.contains("registry") && reason.contains("differs"),
        "the refusal must name the registry mismatch: {reason}"
    );
    // Nothing more comes: the child closes its end and exits.
    let mut rest = Vec::new();
    parent.channel.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    let (code, stderr) = parent.exit();
    assert_eq!(code, EXIT_HANDSHAKE, "{stderr}");
    assert!(stderr.contains("handshake failed"), "{stderr}");
    welcome.fingerprint
}

fn args(x: u64) -> Vec<u8> {
    postcard::to_stdvec(&(x,)).unwrap()
}

fn value(result: &Result<Vec<u8>, TaskError>) -> u64 {
    let bytes = result.as_ref().expect("the call succeeded");
    postcard::from_bytes(bytes).unwrap()
}

/// Opens an accepted session with a child started from `entry`.
fn accepted(entry: &str) -> FakeParent {
    let fingerprint = refused_fingerprint(entry);
    let mut parent = FakeParent::start(entry);
    let welcome = parent.hello(fingerprint);
    assert_eq!(welcome.accepted, Ok(()), "the child's own fingerprint must be accepted");
    assert_eq!(welcome.fingerprint, fingerprint);
    assert!(matches!(parent.recv(), Reply::Ready));
    parent
}

#[aiomp::test]
async fn a_parent_with_another_registry_is_refused_with_the_reason() {
    refused_fingerprint("a_parent_with_another_registry_is_refused_with_the_reason");
}

#[aiomp::test]
async fn an_unknown_function_fails_its_task_and_the_worker_keeps_serving() {
    let mut parent = accepted("an_unknown_function_fails_its_task_and_the_worker_keeps_serving");
    let pid = parent.child.id();

    let results = parent.run(1, 9999, &[args(21)]);
    assert_eq!(results.len(), 1, "{results:?}");
    let Err(TaskError::Remote(error)) = &results[0] else {
        panic!("expected a remote error, got {results:?}");
    };
    assert_eq!(error.kind, RemoteErrorKind::UnknownFunction, "{error}");
    assert!(error.message.contains("9999"), "{error}");
    assert_eq!(error.pid, pid);

    // The worker still serves: one call, then a chunk of three.
    let results = parent.run(2, 0, &[args(21)]);
    assert_eq!(results.iter().map(value).collect::<Vec<_>>(), [42]);
    let results = parent.run(3, 0, &[args(1), args(2), args(3)]);
    assert_eq!(results.iter().map(value).collect::<Vec<_>>(), [2, 4, 6]);

    parent.send(&Request::Drain);
    let (code, stderr) = parent.exit();
    // A worker one of whose tasks failed exits 1, as a Python process whose
    // target raised does (child.rs: the exit code says whether any task failed).
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[aiomp::test]
async fn a_drained_worker_whose_tasks_all_succeeded_exits_0() {
    let mut parent = accepted("a_drained_worker_whose_tasks_all_succeeded_exits_0");
    let results = parent.run(7, 0, &[args(50)]);
    assert_eq!(results.iter().map(value).collect::<Vec<_>>(), [100]);
    parent.send(&Request::Drain);
    // The child closes its end once drained.
    let mut rest = Vec::new();
    parent.channel.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    let (code, stderr) = parent.exit();
    assert_eq!(code, 0, "{stderr}");
}
