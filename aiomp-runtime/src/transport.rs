//! One framed channel to one child, and the handshake that opens it.
//!
//! The channel is one end of a socketpair that the child inherited: nothing
//! listens, so nothing else can connect. The handshake checks that both
//! ends were built from the same registry.

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::buffers::Buffers;
use crate::chunk::encode_into;
use crate::codec::frame_codec;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::os_child::OsChild;
use crate::protocol::{Request, Welcome};
use crate::sys;

/// The reading half of a channel: typed messages out of frames.
#[derive(Debug)]
pub(crate) struct FrameReader {
    frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    max_frame: usize,
}

/// The writing half of a channel: typed messages into frames.
///
/// A frame is a 4-byte length, a postcard message, and the message's
/// payload (argument or result buffers). Payloads are written from where
/// they lie, with vectored writes: a large buffer is never copied into a
/// frame buffer.
#[derive(Debug)]
pub(crate) struct FrameWriter {
    stream: OwnedWriteHalf,
    /// Fed and not yet written, in order.
    queue: VecDeque<Bytes>,
    /// Length prefixes, messages and small payloads gather here, to be
    /// queued as one piece.
    small: Vec<u8>,
    max_frame: usize,
    /// Where written-out payloads go for reuse, if anywhere.
    recycle: Option<Arc<Buffers>>,
}

/// A payload up to this size is copied next to its message rather than
/// written as a piece of its own.
const COPY_BELOW: usize = 16 * 1024;

/// The send buffer each end of a channel asks for. With the kernel's
/// default (about 208 KiB) a 1 MiB argument crosses in five or more writes,
/// each waking the reader; with this, usually in one. The kernel charges
/// only what is queued, not what is allowed.
const SEND_BUFFER: usize = 1 << 20;

/// The most pieces one vectored write takes.
const MAX_PIECES: usize = 64;

/// Why a channel stopped delivering messages.
#[derive(Debug)]
pub(crate) enum ChannelError {
    /// The peer closed its end.
    Closed,
    /// A read or write failed, or a frame was over the limit.
    Io(std::io::Error),
    /// A frame did not decode into the expected message.
    Malformed(postcard::Error),
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelError::Closed => f.write_str("the peer closed the channel"),
            ChannelError::Io(e) => write!(f, "{e}"),
            ChannelError::Malformed(e) => write!(f, "malformed frame: {e}"),
        }
    }
}

/// Splits a connected stream into its two framed halves.
pub(crate) fn channel(stream: StdUnixStream, max_frame: usize) -> std::io::Result<(FrameReader, FrameWriter)> {
    stream.set_nonblocking(true)?;
    // Best effort: a smaller buffer still works, with more wake-ups.
    let _ = sys::set_send_buffer(stream.as_fd(), SEND_BUFFER);
    let (read, write) = UnixStream::from_std(stream)?.into_split();
    Ok((
        FrameReader {
            frames: FramedRead::new(read, frame_codec(max_frame)),
            max_frame,
        },
        FrameWriter {
            stream: write,
            queue: VecDeque::new(),
            small: Vec::new(),
            max_frame,
            recycle: None,
        },
    ))
}

impl FrameReader {
    /// The next message, which carries no payload; `Err(Closed)` at a clean end of stream.
    pub(crate) async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, ChannelError> {
        match self.recv_with_payload().await? {
            (message, payload) if payload.is_empty() => Ok(message),
            _ => Err(ChannelError::Malformed(postcard::Error::DeserializeBadEncoding)),
        }
    }

    /// The next message and the payload after it in its frame.
    pub(crate) async fn recv_with_payload<T: DeserializeOwned>(&mut self) -> Result<(T, Bytes), ChannelError> {
        match self.frames.next().await {
            Some(Ok(frame)) => split_message(&frame.freeze()),
            Some(Err(e)) => Err(read_error(e, self.max_frame)),
            None => Err(ChannelError::Closed),
        }
    }

    /// The socket, the bytes read from it and not yet framed, and the frame
    /// limit: for a reader that frames by itself. The codec holds nothing
    /// of its own between frames: a frame is decoded only when it is asked
    /// for, and it is then returned whole, so the bytes start a frame.
    pub(crate) fn into_parts(self) -> (OwnedReadHalf, BytesMut, usize) {
        let parts = self.frames.into_parts();
        (parts.io, parts.read_buf, self.max_frame)
    }
}

/// A frame's message and the payload after it.
pub(crate) fn split_message<T: DeserializeOwned>(frame: &Bytes) -> Result<(T, Bytes), ChannelError> {
    let (message, rest) = postcard::take_from_bytes::<T>(frame).map_err(ChannelError::Malformed)?;
    let payload = frame.slice(frame.len() - rest.len()..);
    Ok((message, payload))
}

/// Why a read from a channel whose frames are at most `max_frame` bytes failed.
pub(crate) fn read_error(error: std::io::Error, max_frame: usize) -> ChannelError {
    match error.kind() {
        // The codec refuses an oversized length prefix before allocating.
        ErrorKind::InvalidData => ChannelError::Io(std::io::Error::new(
            error.kind(),
            format!("a frame's length prefix exceeds the limit of {max_frame} bytes"),
        )),
        // A peer that died with data unread resets the connection: it is gone, not hostile.
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => ChannelError::Closed,
        _ => ChannelError::Io(error),
    }
}

impl FrameWriter {
    /// Hands each payload, once written out, to `buffers` for reuse.
    pub(crate) fn recycle_into(&mut self, buffers: Arc<Buffers>) {
        self.recycle = Some(buffers);
    }

    /// Queues a message without writing: several fed messages go out together.
    pub(crate) fn feed<T: Serialize>(&mut self, message: &T) -> Result<(), ChannelError> {
        self.feed_with_payload(message, Vec::new())
    }

    /// Queues a message followed by `payload` in one frame, without writing.
    pub(crate) fn feed_with_payload<T: Serialize>(
        &mut self,
        message: &T,
        payload: Vec<Bytes>,
    ) -> Result<(), ChannelError> {
        let payload_len = payload.iter().map(Bytes::len).sum();
        push_head(&mut self.small, message, payload_len, self.max_frame)?;
        for piece in payload {
            if piece.len() < COPY_BELOW {
                self.small.extend_from_slice(&piece);
            } else {
                self.queue_small();
                self.queue.push_back(piece);
            }
        }
        Ok(())
    }

    /// Queues bytes already framed (the unwritten end of a frame written in
    /// part elsewhere), after everything fed before them.
    pub(crate) fn feed_framed(&mut self, bytes: Bytes) {
        self.queue_small();
        self.queue.push_back(bytes);
    }

    /// A second descriptor of the channel's socket, for writes that do not
    /// go through this writer (see [`Outbox`](crate::outbox::Outbox)).
    pub(crate) fn socket(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.stream.as_ref().as_fd().try_clone_to_owned()
    }

    fn queue_small(&mut self) {
        if !self.small.is_empty() {
            self.queue.push_back(Bytes::from(std::mem::take(&mut self.small)));
        }
    }

    /// Writes out everything fed so far.
    ///
    /// Each write is first tried at once, and waits for the socket to be
    /// writable only if it takes nothing: tokio learns that a fresh channel
    /// is writable only when its reactor next turns, which can be a thread
    /// hop away, or behind whatever holds up the calling thread.
    pub(crate) async fn flush(&mut self) -> Result<(), ChannelError> {
        self.queue_small();
        while !self.queue.is_empty() {
            let written = {
                let pieces: Vec<IoSlice<'_>> = self.queue.iter().take(MAX_PIECES).map(|b| IoSlice::new(b)).collect();
                match sys::send_now(self.stream.as_ref().as_fd(), &pieces) {
                    Ok(written) => written,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        self.stream.write_vectored(&pieces).await.map_err(ChannelError::Io)?
                    }
                    Err(e) => return Err(ChannelError::Io(e)),
                }
            };
            if written == 0 {
                return Err(ChannelError::Io(ErrorKind::WriteZero.into()));
            }
            self.advance(written);
        }
        Ok(())
    }

    /// Drops the first `written` bytes of the queue.
    fn advance(&mut self, mut written: usize) {
        while written > 0 {
            let front = self.queue.front_mut().expect("wrote no more than was queued");
            if written < front.len() {
                bytes::Buf::advance(front, written);
                return;
            }
            written -= front.len();
            if let (Some(piece), Some(recycle)) = (self.queue.pop_front(), &self.recycle) {
                recycle.give(piece);
            }
        }
    }
}

/// Appends a frame's length prefix and `message` to `out`, for a frame
/// whose payload of `payload_len` bytes follows; appends nothing on error.
fn push_head<T: Serialize>(
    out: &mut Vec<u8>,
    message: &T,
    payload_len: usize,
    max_frame: usize,
) -> Result<(), ChannelError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Err(e) = encode_into(message, out) {
        out.truncate(start);
        return Err(ChannelError::Malformed(e));
    }
    let len = out.len() - start - 4 + payload_len;
    let len = match u32::try_from(len) {
        Ok(len) if len as usize <= max_frame => len,
        _ => {
            out.truncate(start);
            return Err(ChannelError::Io(std::io::Error::new(
                ErrorKind::InvalidData,
                format!("a frame of {len} bytes exceeds the limit of {max_frame} bytes"),
            )));
        }
    };
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends a whole frame, `message` and then `payload`, to `out`: frames
/// to be written before the channel is open (a new worker's greeting).
pub(crate) fn push_frame<T: Serialize>(
    out: &mut Vec<u8>,
    message: &T,
    payload: &[Bytes],
    max_frame: usize,
) -> Result<(), ChannelError> {
    push_head(out, message, payload.iter().map(Bytes::len).sum(), max_frame)?;
    for piece in payload {
        out.extend_from_slice(piece);
    }
    Ok(())
}

/// Sends what the launch left `unsent` of the token and hello, then
/// `preface` (requests the child reads once it accepted: they cross while
/// it starts), all in one write, and waits for the child's [`Welcome`]
/// from the registry `fingerprint`, racing the child's exit and `deadline`:
/// a child that dies or hangs before answering is an error.
pub(crate) async fn handshake(
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    child: &OsChild,
    unsent: &[u8],
    fingerprint: u64,
    preface: Vec<(Request, Vec<Bytes>)>,
    deadline: Duration,
) -> Result<(), Error> {
    let pid = child.pid();
    let exchange = async {
        // What the launch left of the token and hello goes first.
        writer.small.extend_from_slice(unsent);
        for (request, payload) in preface {
            writer.feed_with_payload(&request, payload)?;
        }
        writer.flush().await?;
        reader.recv::<Welcome>().await
    };
    tokio::pin!(exchange);
    let welcome = tokio::select! {
        biased;
        welcome = &mut exchange => welcome,
        // A child that answered (a one-shot one may even be done) and then
        // exited left its answer in the channel: it is read first.
        status = child.wait() => match left_behind(exchange).await {
            Some(Ok(welcome)) => Ok(welcome),
            _ => return Err(ended_before_answering(pid, status)),
        },
        () = tokio::time::sleep(deadline) => {
            return Err(Error::Handshake { pid, reason: format!("no answer within {deadline:?}") });
        }
    };
    let welcome = match welcome {
        Ok(welcome) => welcome,
        Err(error) => {
            // A broken channel usually means the child died: say so if it did.
            if let Ok(status) = tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
                return Err(ended_before_answering(pid, status));
            }
            return Err(Error::Handshake {
                pid,
                reason: error.to_string(),
            });
        }
    };
    welcome.accepted.map_err(|reason| Error::Handshake { pid, reason })?;
    if welcome.fingerprint != fingerprint {
        return Err(Error::Handshake {
            pid,
            reason: "its registry of remote functions differs from the parent's (a different binary)".into(),
        });
    }
    Ok(())
}

/// How long reading what an exited child left in its channel may take: it
/// is there, or the end of the stream is (no other process holds the
/// child's end).
const LEFT_BEHIND_WAIT: Duration = Duration::from_secs(1);

/// What `read` gets from the channel of a child that has exited: what the
/// child wrote before it exited, or `None`.
pub(crate) async fn left_behind<T>(read: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(LEFT_BEHIND_WAIT, read).await.ok()
}

/// The error for a child that exited before completing the handshake.
fn ended_before_answering(pid: u32, status: ExitStatus) -> Error {
    let hint = if status == ExitStatus::Code(0) || status == ExitStatus::Code(crate::child::EXIT_STRAY_CHILD) {
        "; a program that spawns workers must start `main` with #[aiomp::main] or call aiomp::init() first, \
         and use #[aiomp::test] in tests"
    } else {
        ""
    };
    Error::Handshake {
        pid,
        reason: format!("it ended ({status}) before answering{hint}"),
    }
}
