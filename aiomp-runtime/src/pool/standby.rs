//! A busy worker's next plain `fn` job, sent ahead to wait in the worker.
//!
//! A current-thread worker runs one plain `fn` at a time, and its slots say
//! so: its feeding task sends the next job only once the running one is
//! answered. The worker then idles for a round trip (its answer to the
//! parent, the parent's next job back), 100–250 µs on a loaded 2-core
//! machine, about 1% of a 20 ms call. So each feeding task holds one standby
//! permit too: while the last job it sent was a plain `fn`'s and its queue
//! holds at least two jobs per worker sharing it, it sends one more job on
//! that permit, and the worker starts it the moment the running one returns.
//! With fewer queued, the last jobs of a map go to whichever worker frees
//! first, so that none waits behind a slow one. When the running job
//! returns, the one on standby takes the slots it freed, so that they go on
//! showing the worker busy (to the queue and to hand-overs), and the standby
//! is free for the next. Pools with `max_tasks_per_child` have none: their
//! workers drain their last jobs after their slot has moved on.
//!
//! A job sent on standby may never start: the link marks it so on the wire
//! and keeps its arguments until the worker says it started, and a worker
//! that dies first leaves it to its slot, which queues it again or, once
//! the pool is closed, starts a new worker for it (see [`Link`]).
//!
//! [`Link`]: crate::link::Link

use std::sync::Arc;

use async_channel::Receiver;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::link::{Job, LinkEnd};
use crate::pool::slot::Stop;

/// Room for the next job in a worker.
pub(super) enum Room {
    /// A free slot: the job may run as soon as it arrives.
    Slot(OwnedSemaphorePermit),
    /// The standby permit: the job waits behind the running one.
    Standby(OwnedSemaphorePermit),
}

/// What the standby took from the queue.
pub(super) enum Taken {
    /// A plain `fn`'s job, on the standby permit.
    OnStandby(Job, OwnedSemaphorePermit),
    /// A plain `fn`'s job that found its slots free meanwhile, with them.
    InSlots(Job, OwnedSemaphorePermit),
    /// A job that may not wait on standby.
    Other(Job),
    /// Nothing: the queue ran short meanwhile.
    Nothing,
}

/// Whether `queued` jobs leave one for every one of `sharers` workers after
/// one more waits on standby.
pub(super) fn wanted(queued: usize, sharers: usize) -> bool {
    queued >= 2 * sharers
}

/// Waits for a free slot, for the `standby` permit if offered, or for the
/// worker's end.
pub(super) async fn room(
    slots: &Arc<Semaphore>,
    standby: Option<&Arc<Semaphore>>,
    end: &mut JoinHandle<LinkEnd>,
) -> Result<Room, Stop> {
    let standby_permit = async {
        match standby {
            Some(standby) => Arc::clone(standby).acquire_owned().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        permit = Arc::clone(slots).acquire_owned() => Ok(Room::Slot(permit.expect("the semaphore is never closed"))),
        permit = standby_permit => Ok(Room::Standby(permit.expect("the semaphore is never closed"))),
        ended = &mut *end => Err(Stop::Died(ended.ok())),
    }
}

/// Takes the next job from `queue` on the `standby` permit, if the queue is
/// still long; a job that finds its slots free meanwhile takes them instead.
pub(super) fn take(
    queue: &Receiver<Job>,
    sharers: usize,
    slots: &Arc<Semaphore>,
    standby: OwnedSemaphorePermit,
) -> Taken {
    if !wanted(queue.len(), sharers) {
        return Taken::Nothing;
    }
    let Ok(job) = queue.try_recv() else {
        return Taken::Nothing;
    };
    if !job.blocking {
        return Taken::Other(job);
    }
    let in_slots = u32::try_from(job.slots)
        .ok()
        .and_then(|needed| Arc::clone(slots).try_acquire_many_owned(needed).ok());
    match in_slots {
        Some(permit) => Taken::InSlots(job, permit),
        None => Taken::OnStandby(job, standby),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_while_every_sharer_finds_a_job_after_it() {
        assert!(!wanted(0, 1));
        assert!(!wanted(1, 1));
        assert!(wanted(2, 1));
        assert!(!wanted(3, 2));
        assert!(wanted(4, 2));
    }
}
