//! How the parent writes requests to one worker: on the sender's own thread
//! when nothing waits ahead, otherwise through the link's writer task.
//!
//! A request written on the spot is one `sendmsg` from the thread that sent
//! it. Handing it to the writer task instead costs a wake-up of another
//! thread, which is most of what a call costs on a multi-thread runtime whose
//! caller is not one of its workers (`block_on`, `#[tokio::main]`): the
//! worker answers in tens of microseconds, and waking a parked thread takes
//! about as long.
//!
//! A request goes to the writer task when it is large (the writer sends
//! large argument buffers from where they lie, uncopied), when the socket is
//! full, and while anything sent before it is still queued there, so that
//! requests leave in the order they were sent. The writer merges what queued
//! up into as few frames as the frame limit allows.

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::protocol::Request;
use crate::sys;
use crate::transport::{self, FrameWriter};

/// The largest frame written on the spot: larger ones go to the writer task,
/// which does not copy their argument buffers.
const ON_THE_SPOT_MAX: usize = 16 * 1024;

/// The most requests the writer task takes from its queue at once.
const BATCH: usize = 256;

/// Where a link's requests go out.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// A descriptor of the channel's socket for writes on the spot; its lock
    /// orders every send.
    socket: Mutex<OwnedFd>,
    /// Requests handed to the writer task and not yet written out. A request
    /// is written on the spot only while it is zero.
    queued: Arc<AtomicUsize>,
    requests: mpsc::UnboundedSender<Outgoing>,
    max_frame: usize,
}

/// What the writer task writes.
#[derive(Debug)]
enum Outgoing {
    Request(Request, Vec<Bytes>),
    /// The unwritten end of a frame begun on the spot.
    Rest(Bytes),
}

impl Outbox {
    /// The outbox of `writer`'s channel, whose frames are at most
    /// `max_frame` bytes; spawns its writer task.
    pub(crate) fn spawn(writer: FrameWriter, max_frame: usize) -> std::io::Result<Outbox> {
        let socket = writer.socket()?;
        let queued = Arc::new(AtomicUsize::new(0));
        let (requests, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_requests(writer, max_frame, queue, Arc::clone(&queued)));
        Ok(Outbox {
            socket: Mutex::new(socket),
            queued,
            requests,
            max_frame,
        })
    }

    /// Sends `request`, its argument buffers `payload` after it. A request
    /// the socket refuses goes to the writer task, which meets the same
    /// error and ends, shutting the channel: the worker then exits, and the
    /// link's reader fails what it held.
    pub(crate) fn send(&self, request: Request, payload: Vec<Bytes>) {
        let socket = crate::lock(&self.socket);
        let size: usize = payload.iter().map(Bytes::len).sum();
        let outgoing = if self.queued.load(Ordering::Acquire) == 0 && size < ON_THE_SPOT_MAX {
            match self.write_on_the_spot(socket.as_fd(), &request, &payload) {
                Ok(None) => return,
                Ok(Some(rest)) => Outgoing::Rest(rest),
                Err(()) => Outgoing::Request(request, payload),
            }
        } else {
            Outgoing::Request(request, payload)
        };
        self.queued.fetch_add(1, Ordering::AcqRel);
        let _ = self.requests.send(outgoing);
    }

    /// Frames `request` and writes it without waiting: `None` once it is all
    /// written, else the part left for the writer task (all of it, if the
    /// socket refused it); `Err` if it could not be framed (the request then
    /// goes to the writer task as it is, which fails the same way and ends
    /// the link, as it always did).
    fn write_on_the_spot(
        &self,
        socket: std::os::fd::BorrowedFd<'_>,
        request: &Request,
        payload: &[Bytes],
    ) -> Result<Option<Bytes>, ()> {
        let mut frame = Vec::new();
        transport::push_frame(&mut frame, request, payload, self.max_frame).map_err(|_| ())?;
        match sys::send_now(socket, &[IoSlice::new(&frame)]) {
            Ok(written) if written == frame.len() => Ok(None),
            Ok(written) => Ok(Some(Bytes::from(frame).slice(written..))),
            // A full socket, or an error the writer task meets again.
            Err(_) => Ok(Some(Bytes::from(frame))),
        }
    }
}

/// Writes requests as they come, merging queued-up task batches into one
/// frame (bounded by the frame limit); counts each one off `queued` once it
/// is written out.
async fn write_requests(
    mut writer: FrameWriter,
    max_frame: usize,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    queued: Arc<AtomicUsize>,
) {
    // Room for the message around the argument buffers.
    let limit = max_frame.saturating_sub(max_frame / 16 + 1024);
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        let taken = batch.len();
        let mut tasks = Vec::new();
        let mut payload = Vec::new();
        let mut size = 0;
        for outgoing in batch.drain(..) {
            let (request, more) = match outgoing {
                Outgoing::Request(request, more) => (request, more),
                Outgoing::Rest(rest) => {
                    // Whatever was queued before it goes first.
                    if take_tasks(&mut writer, &mut tasks, &mut payload, &mut size).is_err() {
                        return;
                    }
                    writer.feed_framed(rest);
                    continue;
                }
            };
            let fed = match request {
                Request::Tasks(more_tasks) => {
                    let len: usize = more.iter().map(Bytes::len).sum::<usize>() + 32 * more_tasks.len();
                    let mut fed = Ok(());
                    if size + len > limit && !tasks.is_empty() {
                        fed = take_tasks(&mut writer, &mut tasks, &mut payload, &mut size);
                    }
                    size += len;
                    tasks.extend(more_tasks);
                    payload.extend(more);
                    fed
                }
                // Tasks queued before it go first: a cancel must not overtake its task.
                other => {
                    take_tasks(&mut writer, &mut tasks, &mut payload, &mut size).and_then(|()| writer.feed(&other))
                }
            };
            if fed.is_err() {
                return;
            }
        }
        if take_tasks(&mut writer, &mut tasks, &mut payload, &mut size).is_err() || writer.flush().await.is_err() {
            return;
        }
        queued.fetch_sub(taken, Ordering::AcqRel);
    }
}

/// Feeds the tasks gathered so far to `writer` as one frame, if there are any.
fn take_tasks(
    writer: &mut FrameWriter,
    tasks: &mut Vec<crate::protocol::Task>,
    payload: &mut Vec<Bytes>,
    size: &mut usize,
) -> Result<(), transport::ChannelError> {
    *size = 0;
    if tasks.is_empty() {
        return Ok(());
    }
    writer.feed_with_payload(&Request::Tasks(std::mem::take(tasks)), std::mem::take(payload))
}
