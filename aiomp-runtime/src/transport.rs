//! One framed channel to one child, and the handshake that opens it.
//!
//! The channel is one end of a socketpair that the child inherited: nothing
//! listens, so nothing else can connect. The handshake checks that both
//! ends were built from the same registry.

use std::io::ErrorKind;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::codec::{decode, encode, frame_codec};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::launch::Token;
use crate::os_child::OsChild;
use crate::protocol::{Hello, Welcome};

/// The reading half of a channel: typed messages out of frames.
#[derive(Debug)]
pub(crate) struct FrameReader {
    frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    max_frame: usize,
}

/// The writing half of a channel: typed messages into frames.
#[derive(Debug)]
pub(crate) struct FrameWriter {
    frames: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
}

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
    let (read, write) = UnixStream::from_std(stream)?.into_split();
    Ok((
        FrameReader {
            frames: FramedRead::new(read, frame_codec(max_frame)),
            max_frame,
        },
        FrameWriter {
            frames: FramedWrite::new(write, frame_codec(max_frame)),
        },
    ))
}

impl FrameReader {
    /// The next message; `Err(Closed)` at a clean end of stream.
    pub(crate) async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, ChannelError> {
        match self.frames.next().await {
            Some(Ok(frame)) => decode(&frame).map_err(ChannelError::Malformed),
            // The codec refuses an oversized length prefix before allocating.
            Some(Err(e)) if e.kind() == ErrorKind::InvalidData => Err(ChannelError::Io(std::io::Error::new(
                e.kind(),
                format!("a frame's length prefix exceeds the limit of {} bytes", self.max_frame),
            ))),
            // A peer that died with data unread resets the connection: it is gone, not hostile.
            Some(Err(e)) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                Err(ChannelError::Closed)
            }
            Some(Err(e)) => Err(ChannelError::Io(e)),
            None => Err(ChannelError::Closed),
        }
    }
}

impl FrameWriter {
    /// Queues a message without flushing: several fed messages go out in one write.
    pub(crate) async fn feed<T: Serialize>(&mut self, message: &T) -> Result<(), ChannelError> {
        let frame = encode(message).map_err(ChannelError::Malformed)?;
        self.frames.feed(Bytes::from(frame)).await.map_err(ChannelError::Io)
    }

    /// Writes out everything fed so far.
    pub(crate) async fn flush(&mut self) -> Result<(), ChannelError> {
        SinkExt::<Bytes>::flush(&mut self.frames)
            .await
            .map_err(ChannelError::Io)
    }

    /// Sends one message and flushes.
    pub(crate) async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), ChannelError> {
        self.feed(message).await?;
        self.flush().await
    }
}

/// Sends the token and `hello`, and waits for the child's [`Welcome`], racing the child's exit
/// and `deadline`: a child that dies or hangs before answering is an error.
pub(crate) async fn handshake(
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    child: &OsChild,
    token: &Token,
    hello: &Hello,
    deadline: Duration,
) -> Result<(), Error> {
    let pid = child.pid();
    let exchange = async {
        // The token goes first, raw, before any frame.
        writer
            .frames
            .get_mut()
            .write_all(token)
            .await
            .map_err(ChannelError::Io)?;
        writer.send(hello).await?;
        reader.recv::<Welcome>().await
    };
    let welcome = tokio::select! {
        // A child that answers and then exits has its answer read first.
        biased;
        welcome = exchange => welcome,
        status = child.wait() => return Err(ended_before_answering(pid, status)),
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
    if welcome.fingerprint != hello.fingerprint {
        return Err(Error::Handshake {
            pid,
            reason: "its registry of remote functions differs from the parent's (a different binary)".into(),
        });
    }
    Ok(())
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
