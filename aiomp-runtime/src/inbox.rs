//! A link's incoming frames, read by its reader task, or by a caller that
//! spins for an answer in the meantime.
//!
//! A runtime thread parked in the I/O driver takes a wake-up to read an
//! answer, which costs about as much as the worker took to send it. A call
//! awaited in `block_on` already spins for its answer on a running thread
//! (`pool/spin.rs`), so that thread reads the socket itself: the answer is
//! in its hands as soon as it is in the socket.
//!
//! Both read under one lock, and hand each frame on under it, so that
//! frames are handled one at a time and in order, and the end of the
//! channel is seen after the last frame before it was handled. A spinning
//! caller takes only the frames its handler accepts; the first one it does
//! not (a malformed frame, one that ends the link) stays for the reader task,
//! with everything after it, as does the end of the stream or an error, and
//! the caller wakes the reader task for it. The socket cannot: epoll reports
//! a socket as readable only if it still is when the waiting thread collects
//! the event, and by then the caller may have emptied it.

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::sync::Mutex;

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::Notify;

use crate::codec::LENGTH_BYTES;
use crate::sys;
use crate::transport::{self, ChannelError, FrameReader};

/// The reading half of a link's channel, shared by its reader task and
/// spinning callers.
#[derive(Debug)]
pub(crate) struct Inbox {
    socket: OwnedReadHalf,
    max_frame: usize,
    read: Mutex<Read>,
    /// Wakes the reader task for what a spinning caller left to it.
    left_to_reader: Notify,
}

/// What has been read and not yet handed on.
#[derive(Debug)]
struct Read {
    bytes: BytesMut,
    /// What a spinning caller read and left for the reader task, to be
    /// handed on before `bytes`: a frame its handler refused, or how the
    /// channel ended. Callers read nothing more until the reader took it.
    left: Option<Result<Bytes, ChannelError>>,
    /// Set once the reader task has returned: nothing more is read.
    ended: bool,
}

/// What a handler returns for a frame it refuses: why.
pub(crate) type Refused = String;

impl Inbox {
    /// The inbox of `reader`'s channel, with whatever it read ahead.
    pub(crate) fn new(reader: FrameReader) -> Inbox {
        let (socket, bytes, max_frame) = reader.into_parts();
        Inbox {
            socket,
            max_frame,
            read: Mutex::new(Read {
                bytes,
                left: None,
                ended: false,
            }),
            left_to_reader: Notify::new(),
        }
    }

    /// Hands each frame to `handle`, in order, waiting for more as needed,
    /// until the channel ends: `None` at a clean end of stream, else why it
    /// failed (a refused frame's reason, a malformed or oversized frame, a
    /// read error). Meant for the link's one reader task.
    pub(crate) async fn read(&self, mut handle: impl FnMut(&Bytes) -> Result<(), Refused>) -> Option<String> {
        loop {
            match self.read_available(&mut handle) {
                Available::Ended(end) => return end,
                // Other tasks of this runtime thread get their turn.
                Available::More => tokio::task::yield_now().await,
                Available::Drained => {
                    tokio::select! {
                        readable = self.socket.readable() => if let Err(error) = readable {
                            crate::lock(&self.read).ended = true;
                            return Some(error.to_string());
                        },
                        () = self.left_to_reader.notified() => {}
                    }
                }
            }
        }
    }

    /// Hands on the frames there are now, reading the socket until it is
    /// empty or [`READS_AT_ONCE`] reads were made.
    fn read_available(&self, handle: &mut impl FnMut(&Bytes) -> Result<(), Refused>) -> Available {
        let mut read = crate::lock(&self.read);
        let mut reads = 0;
        let end = loop {
            let frame = if let Some(frame) = read.left.take().or_else(|| read.next_frame(self.max_frame)) {
                frame
            } else if reads == READS_AT_ONCE {
                return Available::More;
            } else {
                reads += 1;
                read.bytes.reserve(1);
                match self.socket.try_read_buf(&mut read.bytes) {
                    Ok(0) => Err(end_of_stream(&read.bytes)),
                    Ok(_) => continue,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => return Available::Drained,
                    Err(error) => Err(transport::read_error(error, self.max_frame)),
                }
            };
            match frame.map(|frame| handle(&frame)) {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => break Some(refused),
                Err(ChannelError::Closed) => break None,
                Err(error) => break Some(error.to_string()),
            }
        };
        read.ended = true;
        Available::Ended(end)
    }

    /// Hands `handle` the frames there are now, without waiting, unless the
    /// reader task is reading: until a frame is refused (it is left for the
    /// reader task), the channel ends (left likewise), or nothing more is
    /// there. Meant for a caller spinning for an answer.
    pub(crate) fn read_now(&self, mut handle: impl FnMut(&Bytes) -> Result<(), Refused>) {
        let Ok(mut read) = self.read.try_lock() else {
            return;
        };
        if read.ended || read.left.is_some() {
            return;
        }
        loop {
            let frame = match read.next_frame(self.max_frame) {
                Some(frame) => frame,
                None => match sys::recv_now(self.socket.as_ref().as_fd(), &mut read.bytes) {
                    Ok(0) => Err(end_of_stream(&read.bytes)),
                    Ok(_) => continue,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                    Err(error) => Err(transport::read_error(error, self.max_frame)),
                },
            };
            let accepted = frame.as_ref().is_ok_and(|frame| handle(frame).is_ok());
            if !accepted {
                read.left = Some(frame);
                self.left_to_reader.notify_one();
                return;
            }
        }
    }
}

/// What the reader task's turn at the socket came to.
enum Available {
    /// It handed on every frame there was, and the socket is empty.
    Drained,
    /// It read as much as one turn may, and there may be more.
    More,
    /// The channel ended, as [`Inbox::read`] returns it.
    Ended(Option<String>),
}

/// The most reads from the socket in one turn of the reader task, so that
/// a worker that keeps it full does not keep the runtime thread.
const READS_AT_ONCE: usize = 32;

impl Read {
    /// The next whole frame in `bytes`, if there is one. A frame is left in
    /// `bytes` until all of it is there, with room reserved for the rest.
    fn next_frame(&mut self, max_frame: usize) -> Option<Result<Bytes, ChannelError>> {
        let head: [u8; LENGTH_BYTES] = self.bytes.get(..LENGTH_BYTES)?.try_into().ok()?;
        let len = u32::from_be_bytes(head) as usize;
        let Some(whole) = len.checked_add(LENGTH_BYTES).filter(|_| len <= max_frame) else {
            return Some(Err(transport::read_error(ErrorKind::InvalidData.into(), max_frame)));
        };
        let Some(missing) = whole.checked_sub(self.bytes.len()).filter(|&missing| missing > 0) else {
            self.bytes.advance(LENGTH_BYTES);
            return Some(Ok(self.bytes.split_to(len).freeze()));
        };
        self.bytes.reserve(missing);
        None
    }
}

/// How a stream that ended with `unframed` bytes unhandled ended: cleanly,
/// or inside a frame.
fn end_of_stream(unframed: &BytesMut) -> ChannelError {
    if unframed.is_empty() {
        ChannelError::Closed
    } else {
        ChannelError::Io(std::io::Error::other("the channel ended inside a frame"))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::transport;

    const MAX_FRAME: usize = 1024;

    /// An inbox reading one end of a socketpair, and the other end.
    fn inbox() -> (Inbox, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (reader, _writer) = transport::channel(ours, MAX_FRAME).unwrap();
        (Inbox::new(reader), theirs)
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        frame
    }

    /// Takes frames that start with `a`, refuses the others.
    fn take_a(taken: &mut Vec<Bytes>) -> impl FnMut(&Bytes) -> Result<(), Refused> + '_ {
        |frame| {
            if frame.starts_with(b"a") {
                taken.push(frame.clone());
                Ok(())
            } else {
                Err(format!("refused {:?}", String::from_utf8_lossy(frame)))
            }
        }
    }

    /// What the reader task hands on, taking every frame, and how it ends.
    async fn read_all(inbox: &Inbox) -> (Vec<Bytes>, Option<String>) {
        let mut read = Vec::new();
        let end = inbox
            .read(|frame| {
                read.push(frame.clone());
                Ok(())
            })
            .await;
        (read, end)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_refused_frame_and_all_after_it_are_left_for_the_reader_in_order() {
        runtime().block_on(async {
            let (inbox, mut theirs) = inbox();
            for body in [&b"a1"[..], b"a2", b"b3", b"a4"] {
                theirs.write_all(&frame(body)).unwrap();
            }
            let mut now = Vec::new();
            inbox.read_now(take_a(&mut now));
            assert_eq!(now, [&b"a1"[..], b"a2"], "taken up to the first refused frame");
            inbox.read_now(take_a(&mut now));
            assert_eq!(now.len(), 2, "nothing more is taken while a refused frame waits");
            theirs.write_all(&frame(b"a5")).unwrap();
            drop(theirs);
            let (read, end) = read_all(&inbox).await;
            assert_eq!(read, [&b"b3"[..], b"a4", b"a5"]);
            assert_eq!(end, None, "a clean end of stream");
        });
    }

    /// A frame refused now, when nothing more arrives, still reaches a
    /// reader task that was already waiting: the socket it waits on is
    /// empty again, and epoll reports no readiness for it.
    #[test]
    fn a_waiting_reader_is_woken_for_a_frame_left_to_it() {
        runtime().block_on(async {
            let (inbox, mut theirs) = inbox();
            let inbox = std::sync::Arc::new(inbox);
            let reader = tokio::spawn({
                let inbox = std::sync::Arc::clone(&inbox);
                async move {
                    let mut read = Vec::new();
                    inbox.read(take_a(&mut read)).await
                }
            });
            // The reader task now waits for the socket.
            tokio::task::yield_now().await;
            theirs.write_all(&frame(b"b1")).unwrap();
            let mut now = Vec::new();
            inbox.read_now(take_a(&mut now));
            assert!(now.is_empty());
            let woken = tokio::time::timeout(std::time::Duration::from_secs(20), reader).await;
            let end = woken.expect("the reader task was not woken for the frame left to it");
            assert_eq!(end.unwrap().as_deref(), Some("refused \"b1\""));
            drop(theirs);
        });
    }

    #[test]
    fn the_end_of_the_stream_seen_now_is_left_for_the_reader() {
        runtime().block_on(async {
            let (inbox, mut theirs) = inbox();
            theirs.write_all(&frame(b"a1")).unwrap();
            drop(theirs);
            let mut now = Vec::new();
            inbox.read_now(take_a(&mut now));
            assert_eq!(now, [&b"a1"[..]]);
            let (read, end) = read_all(&inbox).await;
            assert!(read.is_empty(), "the frame was handed on once: {read:?}");
            assert_eq!(end, None);
            inbox.read_now(take_a(&mut now));
            assert_eq!(now.len(), 1, "nothing is read after the end");
        });
    }

    #[test]
    fn a_refusal_ends_the_reader_with_its_reason() {
        runtime().block_on(async {
            let (inbox, mut theirs) = inbox();
            theirs.write_all(&frame(b"a1")).unwrap();
            theirs.write_all(&frame(b"b2")).unwrap();
            let mut read = Vec::new();
            let end = inbox.read(take_a(&mut read)).await;
            assert_eq!(read, [&b"a1"[..]]);
            assert_eq!(end.as_deref(), Some("refused \"b2\""));
        });
    }

    #[test]
    fn a_stream_that_ends_inside_a_frame_or_oversized_fails() {
        runtime().block_on(async {
            for (bytes, reason) in [
                (frame(b"a1")[..4].to_vec(), "inside a frame"),
                ((MAX_FRAME as u32 + 1).to_be_bytes().to_vec(), "exceeds the limit"),
            ] {
                for read_now_first in [false, true] {
                    let (inbox, mut theirs) = inbox();
                    theirs.write_all(&bytes).unwrap();
                    drop(theirs);
                    let mut now = Vec::new();
                    if read_now_first {
                        inbox.read_now(take_a(&mut now));
                    }
                    let (_, end) = read_all(&inbox).await;
                    assert!(
                        end.as_deref().is_some_and(|end| end.contains(reason)),
                        "{reason}, read_now first: {read_now_first}: {end:?}"
                    );
                    assert!(now.is_empty());
                }
            }
        });
    }
}
