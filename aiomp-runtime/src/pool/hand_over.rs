//! A task whose queue is empty goes straight to a worker with free slots,
//! from the caller's own thread, instead of through its slot's feeding task.
//!
//! Nothing is gained by queueing a task that a worker could start now, and
//! queueing costs a wake-up of the feeding task; on a multi-thread runtime
//! whose caller is not one of its workers (`block_on`, `#[tokio::main]`)
//! that is a wake-up of another thread, which takes about as long as the
//! worker's answer. With the link writing small requests on the spot (see
//! [`Outbox`](crate::outbox::Outbox)), such a call crosses to another thread
//! only on its way back.
//!
//! A worker takes a task only while it has the slots free, as from its
//! queue. Its feeding task holds one slot while it waits for the queue, so a
//! worker whose tasks each take all its slots (`child_concurrency(1)`, or a
//! plain `fn` on a current-thread worker) takes them from its queue only,
//! as does a worker that counts its tasks for `max_tasks_per_child`. Ties
//! between workers rotate, so that calls one at a time spread over them.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::link::{Job, Link};
use crate::pool::Shared;

/// A worker slot's link while its feeding task runs, and the worker's free slots.
#[derive(Debug)]
pub(crate) struct Feeding {
    link: Arc<Link>,
    slots: Arc<Semaphore>,
}

/// Takes a slot's link out of hand-overs when its feeding stops, however it
/// stops: before the link is drained or replaced.
pub(super) struct FeedingGuard<'a> {
    feeding: &'a Mutex<Option<Feeding>>,
}

impl Drop for FeedingGuard<'_> {
    fn drop(&mut self) {
        crate::lock(self.feeding).take();
    }
}

impl Shared {
    /// Offers `slot`'s worker, fed from `slots`, to hand-overs until the
    /// guard is dropped; not if the pool has `max_tasks_per_child`.
    pub(super) fn start_feeding(&self, slot: usize, link: &Arc<Link>, slots: &Arc<Semaphore>) -> FeedingGuard<'_> {
        let feeding = &self.feeding[slot];
        if self.max_tasks_per_child == 0 {
            *crate::lock(feeding) = Some(Feeding {
                link: Arc::clone(link),
                slots: Arc::clone(slots),
            });
        }
        FeedingGuard { feeding }
    }

    /// Hands `job`, scheduled to `queue`, to the worker of that queue with the
    /// most free slots, if one has enough; otherwise hands it back.
    pub(super) fn hand_over(&self, queue: usize, job: Job) -> Option<Job> {
        let Ok(needed) = u32::try_from(job.slots) else {
            return Some(job);
        };
        let free = |slot: usize| {
            crate::lock(&self.feeding[slot])
                .as_ref()
                .map_or(0, |feeding| feeding.slots.available_permits())
        };
        let serving = self.slots_serving(queue);
        let first = self.next_hand_over.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, usize)> = None;
        for at in 0..serving {
            let slot = queue + (first.wrapping_add(at) % serving) * self.queue_count;
            let free = free(slot);
            if free >= job.slots && best.is_none_or(|(most, _)| free > most) {
                best = Some((free, slot));
            }
        }
        let Some((_, slot)) = best else {
            return Some(job);
        };
        // Dispatched under the lock, so that it cannot follow the drain that
        // comes after the feeding stops.
        let feeding = crate::lock(&self.feeding[slot]);
        let Some(feeding) = feeding.as_ref() else {
            return Some(job);
        };
        let Ok(permit) = Arc::clone(&feeding.slots).try_acquire_many_owned(needed) else {
            return Some(job);
        };
        feeding
            .link
            .dispatch([(job, Some(permit))])
            .pop()
            .map(|(job, _permit)| job)
    }
}
