//! Fuzzing the decoders on both sides of a channel with proptest: whatever
//! bytes a peer sends, decoding them returns an error or a message, never
//! panics, and never allocates in proportion to a length read from the wire
//! rather than to the bytes actually received (or, for frames, beyond the
//! frame limit).
//!
//! Allocation is measured with a counting global allocator that records the
//! largest single request made on the current thread while a measurement is
//! on (everything else in this test binary passes straight through to the
//! system allocator).

#![allow(unsafe_code)] // the counting allocator

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use proptest::collection::vec;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::FramedRead;

use crate::chunk::{ArgsReader, Encoded, ResultsWriter, push_args, read_results};
use crate::codec::{self, DEFAULT_MAX_FRAME};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::protocol::{
    Call, CodecAction, Hello, Outcome, Reply, Request, RuntimeFlavor, Settings, Task, TaskError, Welcome,
};

// ---------------------------------------------------------------------------
// The counting allocator.

/// Passes every request to [`System`], noting the largest one made on a
/// thread inside [`largest_allocation`].
struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // Const-initialised cells without destructors: no allocation, no
    // registration, usable at any point of a thread's life.
    let _ = MEASURING.try_with(|measuring| {
        if measuring.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: every request goes to the system allocator unchanged; `note`
// neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Ends a measurement even if the measured code panics.
struct Measuring;

impl Drop for Measuring {
    fn drop(&mut self) {
        MEASURING.with(|m| m.set(false));
    }
}

/// Runs `f`, returning its result and the largest single allocation it made
/// on this thread (0 if none).
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    MEASURING.with(|m| m.set(true));
    let guard = Measuring;
    let result = f();
    drop(guard);
    (result, LARGEST.with(Cell::get))
}

#[test]
fn the_counting_allocator_sees_allocations() {
    // Without this, a broken allocator hook would make every bound below hold trivially.
    let (v, largest) = largest_allocation(|| std::hint::black_box(vec![0u8; 123_456]));
    assert_eq!(v.len(), 123_456);
    assert_eq!(largest, 123_456);
    let ((), none) = largest_allocation(|| ());
    assert_eq!(none, 0);
}

/// proptest's default number of cases, without writing regression files
/// into the source tree (a failure prints its minimal input).
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// postcard decoding of every wire message.

/// What a decode may allocate at most for `input` bytes: a little, plus room
/// in proportion to the input (a sequence's elements are larger than the
/// bytes they decode from). A decoder that trusted a length prefix, e.g.
/// preallocating serde's cautious 1 MiB for a `Vec` whose claimed length the
/// input cannot hold, fails this.
fn decode_bound(input: usize) -> usize {
    4096 + 256 * input
}

/// Decodes `bytes` as `T`, checking the allocation bound; returns whether it decoded.
fn decode_checked<T: DeserializeOwned>(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let (decoded, largest) = largest_allocation(|| codec::decode::<T>(bytes));
    prop_assert!(
        largest <= decode_bound(bytes.len()),
        "decoding {} bytes as {} allocated {largest} bytes at once",
        bytes.len(),
        std::any::type_name::<T>()
    );
    Ok(decoded.is_ok())
}

/// Decodes `bytes` as every message type either side reads.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    decode_checked::<Hello>(bytes)?;
    decode_checked::<Welcome>(bytes)?;
    decode_checked::<Request>(bytes)?;
    decode_checked::<Reply>(bytes)?;
    Ok(())
}

fn call() -> impl Strategy<Value = Call> {
    (any::<u32>(), vec(any::<u8>(), 0..48)).prop_map(|(function, args)| Call { function, args })
}

fn hello() -> impl Strategy<Value = Hello> {
    let runtime = prop_oneof![
        Just(RuntimeFlavor::CurrentThread),
        any::<usize>().prop_map(RuntimeFlavor::MultiThread)
    ];
    (
        any::<u64>(),
        runtime,
        proptest::option::of(call()),
        proptest::option::of(any::<u32>()),
        any::<bool>(),
        any::<usize>(),
        proptest::option::of(any::<u32>()),
        any::<u64>(),
    )
        .prop_map(
            |(
                fingerprint,
                runtime,
                initializer,
                exception_handler,
                abort_on_parent_exit,
                max_frame,
                slots,
                idle_spin,
            )| Hello {
                fingerprint,
                settings: Settings {
                    runtime,
                    initializer,
                    exception_handler,
                    abort_on_parent_exit,
                    max_frame,
                    slots,
                    idle_spin: std::time::Duration::from_nanos(idle_spin),
                },
            },
        )
}

fn welcome() -> impl Strategy<Value = Welcome> {
    (
        any::<u32>(),
        any::<u64>(),
        proptest::result::maybe_ok(Just(()), "\\PC{0,40}"),
    )
        .prop_map(|(pid, fingerprint, accepted)| Welcome {
            pid,
            fingerprint,
            accepted,
        })
}

fn request() -> impl Strategy<Value = Request> {
    let task = (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(|(id, function, concurrency, slots, args_len, standby)| Task {
            id,
            function,
            concurrency,
            slots,
            args_len,
            standby,
        });
    prop_oneof![
        vec(task, 0..6).prop_map(Request::Tasks),
        vec(any::<u64>(), 0..6).prop_map(Request::Cancel),
        Just(Request::Drain),
    ]
}

fn remote_error() -> impl Strategy<Value = RemoteError> {
    let kind = prop::sample::select(vec![
        RemoteErrorKind::Panic,
        RemoteErrorKind::UnknownFunction,
        RemoteErrorKind::Cancelled,
        RemoteErrorKind::Codec,
    ]);
    (
        kind,
        "\\PC{0,32}",
        proptest::option::of("\\PC{0,16}"),
        "\\PC{0,16}",
        any::<u32>(),
        proptest::option::of("\\PC{0,32}"),
    )
        .prop_map(|(kind, message, location, function, pid, backtrace)| RemoteError {
            kind,
            message,
            location,
            function,
            pid,
            backtrace,
        })
}

fn task_error() -> impl Strategy<Value = TaskError> {
    let codec_error = (
        prop::sample::select(vec![CodecAction::DecodeArguments, CodecAction::EncodeResult]),
        prop::sample::select(vec![
            postcard::Error::DeserializeUnexpectedEnd,
            postcard::Error::DeserializeBadVarint,
            postcard::Error::DeserializeBadUtf8,
            postcard::Error::SerdeSerCustom,
            postcard::Error::SerdeDeCustom,
        ]),
    )
        .prop_map(|(action, error)| TaskError::Codec { action, error });
    prop_oneof![remote_error().prop_map(TaskError::Remote), codec_error]
}

fn reply() -> impl Strategy<Value = Reply> {
    let outcome = (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(id, failed, results_len)| Outcome {
        id,
        failed,
        results_len,
    });
    prop_oneof![
        Just(Reply::Ready),
        remote_error().prop_map(Reply::InitFailed),
        vec(outcome, 0..6).prop_map(Reply::Outcomes),
        any::<u64>().prop_map(Reply::Started),
    ]
}

/// One valid message of any kind, encoded, and whether it re-encodes to the
/// same bytes after a decode as its own type.
#[derive(Debug, Clone)]
enum Message {
    Hello(Hello),
    Welcome(Welcome),
    Request(Request),
    Reply(Reply),
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::Hello(m) => codec::encode(m),
            Message::Welcome(m) => codec::encode(m),
            Message::Request(m) => codec::encode(m),
            Message::Reply(m) => codec::encode(m),
        }
        .expect("every generated message encodes")
    }

    /// Decodes `bytes` as this message's own type and encodes it again.
    fn round_trip(&self, bytes: &[u8]) -> Result<Vec<u8>, postcard::Error> {
        match self {
            Message::Hello(_) => codec::encode(&codec::decode::<Hello>(bytes)?),
            Message::Welcome(_) => codec::encode(&codec::decode::<Welcome>(bytes)?),
            Message::Request(_) => codec::encode(&codec::decode::<Request>(bytes)?),
            Message::Reply(_) => codec::encode(&codec::decode::<Reply>(bytes)?),
        }
    }
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        hello().prop_map(Message::Hello),
        welcome().prop_map(Message::Welcome),
        request().prop_map(Message::Request),
        reply().prop_map(Message::Reply),
    ]
}

/// A change to a valid encoding: what a corrupting or hostile peer sends.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(prop::sample::Index),
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), 1..=u8::MAX).prop_map(|(at, x)| Mutation::Flip(at, x)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Remove),
        vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
    ]
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>) {
        if bytes.is_empty() {
            bytes.push(0xff);
        }
        match self {
            Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
            Mutation::Flip(at, x) => {
                let i = at.index(bytes.len());
                bytes[i] ^= x;
            }
            Mutation::Insert(at, b) => bytes.insert(at.index(bytes.len() + 1), *b),
            Mutation::Remove(at) => {
                bytes.remove(at.index(bytes.len()));
            }
            Mutation::Append(more) => bytes.extend_from_slice(more),
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_message_decoder_survives_arbitrary_bytes(bytes in vec(any::<u8>(), 0..512)) {
        decode_all(&bytes)?;
    }

    #[test]
    fn every_message_round_trips_and_survives_corruption(
        message in message(),
        mutations in vec(mutation(), 1..4),
    ) {
        let encoded = message.encode();
        prop_assert_eq!(message.round_trip(&encoded), Ok(encoded.clone()));
        let mut corrupted = encoded.clone();
        for mutation in &mutations {
            mutation.apply(&mut corrupted);
        }
        decode_all(&corrupted)?;
        // A corrupted message that still decodes is a well-formed message,
        // whose own encoding decodes to it again. (Not always to the bytes
        // received: postcard accepts over-long varints, e.g. `80 00` for 0.)
        if let Ok(again) = message.round_trip(&corrupted) {
            prop_assert_eq!(message.round_trip(&again), Ok(again));
        }
    }
}

// ---------------------------------------------------------------------------
// The chunk buffers inside frames: arguments and results.

/// One call of a chunk: its argument bytes, and its result (a value or a failure).
type ChunkCall = (Vec<u8>, Result<Vec<u8>, TaskError>);

/// A chunk's calls.
fn chunk_calls() -> impl Strategy<Value = Vec<ChunkCall>> {
    vec(
        (
            vec(any::<u8>(), 0..24),
            proptest::result::maybe_ok(vec(any::<u8>(), 0..24), task_error()),
        ),
        0..8,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn chunk_readers_survive_arbitrary_bytes(bytes in vec(any::<u8>(), 0..512), calls in 0usize..8) {
        let (counted, largest) = largest_allocation(|| ArgsReader::count(&bytes));
        prop_assert_eq!(largest, 0);
        let mut reader = ArgsReader::new(&bytes);
        let mut seen = 0;
        while let Some(call) = reader.next_call() {
            if call.is_err() {
                break;
            }
            seen += 1;
        }
        prop_assert!(counted.is_err() || counted == Ok(seen));
        // Only the entry table, sized by what the parent sent, not by the bytes.
        let (_, largest) = largest_allocation(|| read_results(&bytes, calls));
        prop_assert!(largest <= calls * 16);
    }

    #[test]
    fn chunks_round_trip_and_survive_corruption(
        calls in chunk_calls(),
        order in any::<prop::sample::Index>(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut args = Encoded::default();
        for (arg, _) in &calls {
            push_args(arg, &mut args).unwrap();
        }
        let args = args.into_contiguous();
        let mut reader = ArgsReader::new(&args);
        for (arg, _) in &calls {
            let bytes = reader.next_call().unwrap().unwrap();
            prop_assert_eq!(&postcard::from_bytes::<Vec<u8>>(bytes).unwrap(), arg);
        }
        prop_assert!(reader.next_call().is_none());

        // Results are written in completion order: here, rotated.
        let mut writer = ResultsWriter::default();
        let n = calls.len();
        let shift = if n == 0 { 0 } else { order.index(n) };
        for i in (0..n).map(|i| (i + shift) % n.max(1)) {
            let index = u32::try_from(i).unwrap();
            match &calls[i].1 {
                Ok(value) => {
                    let mark = writer.begin(index);
                    writer.out().extend_from_slice(value);
                    writer.finish(mark);
                }
                Err(error) => writer.push_failed(index, error),
            }
        }
        let results = writer.into_encoded().into_contiguous();
        let entries = read_results(&results, n).unwrap();
        for ((_, expected), entry) in calls.iter().zip(&entries) {
            let bytes = &results[entry.start as usize..][..entry.len as usize];
            match expected {
                Ok(value) => prop_assert!(entry.ok && bytes == value.as_slice()),
                Err(error) => prop_assert!(
                    !entry.ok && codec::encode(&codec::decode::<TaskError>(bytes).unwrap()) == codec::encode(error)
                ),
            }
        }

        for buffer in [args, results] {
            let mut corrupted = buffer.clone();
            for mutation in &mutations {
                mutation.apply(&mut corrupted);
            }
            let _ = ArgsReader::count(&corrupted);
            if let Ok(entries) = read_results(&corrupted, n) {
                for entry in entries {
                    prop_assert!(entry.start as usize + entry.len as usize <= corrupted.len());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Framing: the blocking reader (the child's handshake) and the async codec
// (every channel after it).

/// A byte stream as a peer may send it: frames whose length prefix is either
/// honest or arbitrary, then maybe a cut.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let frame = (prop::option::weighted(0.7, any::<u32>()), vec(any::<u8>(), 0..64)).prop_map(|(claimed, payload)| {
        let len = claimed.unwrap_or(payload.len() as u32);
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        bytes
    });
    (vec(frame, 0..6), any::<prop::sample::Index>(), any::<bool>()).prop_map(|(frames, cut, cut_it)| {
        let mut bytes = frames.concat();
        if cut_it {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes
    })
}

fn max_frame() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..80, 0usize..(64 << 10)]
}

/// How a sequence of frame reads ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The stream ended between frames.
    Clean,
    /// The stream ended inside a frame.
    Cut,
    /// The stream ended right after a frame's length prefix (a non-zero one).
    CutAfterPrefix,
    /// A length prefix exceeded the limit.
    Oversized,
}

/// Reads frames with the blocking reader until it stops; checks every
/// allocation against `max_frame`.
fn blocking_frames(bytes: &[u8], max_frame: usize) -> Result<(Vec<Vec<u8>>, End), TestCaseError> {
    let mut reader = bytes;
    let mut frames = Vec::new();
    loop {
        let remaining = reader.len();
        let (read, largest) = largest_allocation(|| codec::read_frame(&mut reader, max_frame));
        // The frame itself, or the error's few bytes of text.
        prop_assert!(
            largest <= max_frame.max(1024),
            "read_frame with a limit of {max_frame} allocated {largest} bytes at once"
        );
        match read {
            Ok(frame) => {
                prop_assert!(frame.len() <= max_frame);
                frames.push(frame);
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                let end = match remaining {
                    0 => End::Clean,
                    4 => End::CutAfterPrefix,
                    _ => End::Cut,
                };
                return Ok((frames, end));
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                prop_assert!(e.to_string().contains("exceeds the limit"), "{}", e);
                return Ok((frames, End::Oversized));
            }
        }
    }
}

/// Yields its bytes in the given chunk sizes, and is pending (after waking
/// itself) before every other chunk: a socket that delivers in dribbles.
struct Dribble<'a> {
    bytes: &'a [u8],
    chunks: Vec<usize>,
    next: usize,
    pending: bool,
}

impl AsyncRead for Dribble<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.pending = !this.pending;
        if this.pending {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let chunk = this
            .chunks
            .get(this.next % this.chunks.len().max(1))
            .copied()
            .unwrap_or(1);
        this.next += 1;
        let n = chunk.clamp(1, 97).min(this.bytes.len()).min(buf.remaining());
        buf.put_slice(&this.bytes[..n]);
        this.bytes = &this.bytes[n..];
        Poll::Ready(Ok(()))
    }
}

/// What the async frame reader may allocate at most with a limit of
/// `max_frame`: its buffer, grown to hold the largest frame allowed.
fn framed_bound(max_frame: usize) -> usize {
    2 * (max_frame + 4) + (64 << 10)
}

/// Reads frames with `FramedRead` and the channel's codec until it stops;
/// checks every allocation against `max_frame`.
fn async_frames(bytes: &[u8], chunks: Vec<usize>, max_frame: usize) -> Result<(Vec<Vec<u8>>, End), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let ((frames, end), largest) = largest_allocation(|| {
        runtime.block_on(async {
            let reader = Dribble {
                bytes,
                chunks,
                next: 0,
                pending: false,
            };
            let mut stream = FramedRead::new(reader, codec::frame_codec(max_frame));
            let mut frames = Vec::new();
            loop {
                match stream.next().await {
                    Some(Ok(frame)) => frames.push(frame.to_vec()),
                    None => return (frames, Ok(End::Clean)),
                    Some(Err(e)) => {
                        let end = match e.kind() {
                            io::ErrorKind::InvalidData => Ok(End::Oversized),
                            // "bytes remaining on stream" at EOF inside a frame.
                            io::ErrorKind::Other if e.to_string().contains("bytes remaining") => Ok(End::Cut),
                            _ => Err(e.to_string()),
                        };
                        return (frames, end);
                    }
                }
            }
        })
    });
    prop_assert!(
        largest <= framed_bound(max_frame),
        "FramedRead with a limit of {max_frame} allocated {largest} bytes at once"
    );
    let end = end.map_err(|e| TestCaseError::fail(format!("unexpected frame error: {e}")))?;
    for frame in &frames {
        prop_assert!(frame.len() <= max_frame);
    }
    Ok((frames, end))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn read_frame_survives_arbitrary_streams(bytes in vec(any::<u8>(), 0..256), max_frame in max_frame()) {
        blocking_frames(&bytes, max_frame)?;
    }

    #[test]
    fn the_async_frame_reader_survives_arbitrary_streams(
        bytes in vec(any::<u8>(), 0..256),
        chunks in vec(1usize..32, 1..8),
        max_frame in max_frame(),
    ) {
        async_frames(&bytes, chunks, max_frame)?;
    }

    /// Both readers see the same frames in the same stream, and stop the same
    /// way: the handshake and the channel after it cannot disagree on framing.
    #[test]
    fn blocking_and_async_readers_agree(
        bytes in stream(),
        chunks in vec(1usize..32, 1..8),
        max_frame in max_frame(),
    ) {
        let (frames, end) = blocking_frames(&bytes, max_frame)?;
        // tokio-util's LengthDelimitedCodec consumes a length prefix before
        // its payload arrives, so a stream cut right there leaves its buffer
        // empty and reads as a clean end: aiomp's async reader reports that
        // peer as having closed the channel (`ChannelError::Closed`), the
        // blocking reader as a cut frame. Either way the channel ends and no
        // message comes of it; everywhere else the two agree exactly.
        let end = if end == End::CutAfterPrefix { End::Clean } else { end };
        let framed = async_frames(&bytes, chunks, max_frame)?;
        prop_assert_eq!((frames, end), framed);
    }
}

/// A length prefix of 4 GiB - 1 against a limit of 16 bytes: both readers
/// refuse it before allocating for it. (Without the bound, the blocking reader
/// would allocate the 4 GiB and fail only on the missing bytes, and the
/// codec would reserve 4 GiB of buffer: the allocation checks catch both.)
#[test]
fn a_huge_prefix_is_refused_before_allocating() {
    let wire = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
    let (read, largest) = largest_allocation(|| codec::read_frame(&mut &wire[..], 16));
    let error = read.expect_err("a 4 GiB frame against a 16-byte limit");
    assert!(error.to_string().contains("exceeds the limit of 16 bytes"), "{error}");
    assert!(
        largest < 1024,
        "read_frame allocated {largest} bytes for a refused frame"
    );

    let outcome = async_frames(&wire, vec![1], 16).expect("no allocation beyond the bound");
    assert_eq!(outcome, (Vec::new(), End::Oversized));

    // The default limit refuses a prefix just above it, the same way.
    let wire = ((DEFAULT_MAX_FRAME + 1) as u32).to_be_bytes();
    let (read, largest) = largest_allocation(|| codec::read_frame(&mut &wire[..], DEFAULT_MAX_FRAME));
    let error = read.expect_err("a frame over the default limit");
    assert!(error.to_string().contains("exceeds the limit"), "{error}");
    assert!(
        largest < 1024,
        "read_frame allocated {largest} bytes for a refused frame"
    );
}

/// The one place the two readers differ (see `blocking_and_async_readers_agree`),
/// pinned down: a stream cut right after a length prefix.
#[test]
fn a_stream_cut_after_a_length_prefix() {
    let wire = 21u32.to_be_bytes();
    let blocking = blocking_frames(&wire, 64).expect("within bounds");
    assert_eq!(blocking, (Vec::new(), End::CutAfterPrefix));
    let framed = async_frames(&wire, vec![4], 64).expect("within bounds");
    assert_eq!(framed, (Vec::new(), End::Clean));
    // One byte of payload more, and the async reader reports the cut too.
    let wire = [0, 0, 0, 21, 7];
    assert_eq!(blocking_frames(&wire, 64).expect("within bounds").1, End::Cut);
    assert_eq!(async_frames(&wire, vec![5], 64).expect("within bounds").1, End::Cut);
}
