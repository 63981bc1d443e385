//! One worker slot: start a worker, feed it from its queue while it has free
//! task slots, and replace it when it dies or is recycled.
//!
//! A slot whose worker fails to start [`MAX_START_ATTEMPTS`] times in a row
//! fails the pool instead of spinning.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::launch::{Launched, launch, launch_many};
use crate::link::{Job, Link, LinkConfig, LinkEnd};
use crate::pool::Shared;
use crate::pool::standby::{self, Room, Taken};

/// Consecutive failed starts after which a slot gives up and fails the pool.
pub(crate) const MAX_START_ATTEMPTS: u32 = 3;

/// Why a slot stopped feeding its worker.
pub(super) enum Stop {
    /// The queue is closed and empty: the pool is closing.
    QueueClosed,
    /// The worker was given `max_tasks_per_child` tasks.
    Recycle,
    /// The worker's link ended; `None` if its reader task itself failed.
    Died(Option<LinkEnd>),
}

type Opened = (Arc<Link>, JoinHandle<LinkEnd>);

impl Shared {
    /// Starts every worker and waits until all are ready.
    pub(crate) async fn start_slots(self: &Arc<Self>) -> Result<()> {
        let greeting = Link::greeting(&self.link, None)?;
        let launched = launch_many(self.link.method, self.processes, &greeting.bytes);
        let opened = futures_util::future::join_all(
            launched
                .into_iter()
                .enumerate()
                .map(|(slot, launched)| self.open_with_retries(slot, Some(launched))),
        )
        .await;
        let mut links = Vec::with_capacity(opened.len());
        let mut first_error = None;
        for result in opened {
            match result {
                Ok(link) => links.push(link),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            self.terminate(libc::SIGKILL, Some(&format!("the pool could not start: {error}")));
            for (link, _) in &links {
                link.child().kill_and_reap();
            }
            return Err(error);
        }
        tracing::info!(
            processes = self.processes,
            queues = self.queue_count,
            "aiomp pool started"
        );
        for (slot, (link, end)) in links.into_iter().enumerate() {
            let span = tracing::info_span!("aiomp_worker_slot", slot);
            self.tracker
                .spawn(Arc::clone(self).run_slot(slot, link, end).instrument(span));
        }
        Ok(())
    }

    /// Opens `slot` with a new worker (the `launched` one first, if any),
    /// trying again a few times if it fails to start.
    async fn open_with_retries(
        self: &Arc<Self>,
        slot: usize,
        mut launched: Option<Result<Launched>>,
    ) -> Result<Opened> {
        let mut attempt = 1;
        loop {
            match self.open(slot, launched.take()).await {
                Ok(opened) => return Ok(opened),
                Err(error) if attempt >= MAX_START_ATTEMPTS || self.is_stopping() => return Err(error),
                Err(error) => {
                    tracing::warn!(slot, attempt, %error, "aiomp worker failed to start; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn open(self: &Arc<Self>, slot: usize, launched: Option<Result<Launched>>) -> Result<Opened> {
        let launched = match launched {
            Some(launched) => launched?,
            None => launch(self.link.method, &Link::greeting(&self.link, None)?.bytes)?,
        };
        let child = Arc::clone(&launched.child);
        let pid = child.pid();
        crate::lock(&self.children).insert(pid, child);
        if self.is_stopping() {
            // A terminate raced this start: do not hand out a new worker.
            crate::lock(&self.children).remove(&pid);
            launched.child.kill_and_reap();
            return Err(self.stopped_error());
        }
        match Link::connect(&self.link_config(), launched, None, false).await {
            Ok((link, end)) => {
                let link = Arc::new(link);
                crate::lock(&self.links).insert(pid, Arc::clone(&link));
                tracing::debug!(slot, pid, "aiomp worker started");
                Ok((link, end))
            }
            Err(error) => {
                crate::lock(&self.children).remove(&pid);
                Err(error)
            }
        }
    }

    /// The link configuration, with the scheduler's completion hook.
    fn link_config(self: &Arc<Self>) -> LinkConfig {
        let shared: Weak<Shared> = Arc::downgrade(self);
        LinkConfig {
            on_complete: Some(Arc::new(move |ids: std::ops::Range<u64>| {
                if let Some(shared) = shared.upgrade() {
                    shared.complete(ids);
                }
            })),
            ..self.link.clone()
        }
    }

    fn forget(&self, end: &LinkEnd) {
        if crate::lock(&self.links).remove(&end.pid).is_some() {
            self.retired_completed.fetch_add(end.completed, Ordering::Relaxed);
            self.retired_failed.fetch_add(end.failed, Ordering::Relaxed);
        }
        crate::lock(&self.children).remove(&end.pid);
    }

    async fn run_slot(self: Arc<Self>, slot: usize, mut link: Arc<Link>, mut end: JoinHandle<LinkEnd>) {
        let queue_index = slot % self.queue_count;
        let queue = self.receivers[queue_index].clone();
        let mut carried = None;
        loop {
            match self.feed(slot, &link, &mut end, &mut carried).await {
                Stop::QueueClosed => {
                    link.drain();
                    if let Ok(ended) = end.await {
                        self.resend_unstarted(&link, queue_index, &ended);
                        self.forget(&ended);
                        tracing::debug!(slot, pid = ended.pid, status = %ended.status, "aiomp worker exited");
                    }
                    return;
                }
                Stop::Recycle => {
                    link.drain();
                    self.recycles.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::clone(&self);
                    let link = Arc::clone(&link);
                    self.tracker.spawn(async move {
                        if let Ok(ended) = end.await {
                            shared.resend_unstarted(&link, queue_index, &ended);
                            shared.forget(&ended);
                            tracing::debug!(
                                slot,
                                pid = ended.pid,
                                completed = ended.completed,
                                "aiomp worker recycled"
                            );
                        }
                    });
                }
                Stop::Died(ended) => {
                    if !self.is_stopping() {
                        self.restarts.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(ended) = ended {
                        self.resend_unstarted(&link, queue_index, &ended);
                        self.forget(&ended);
                        if !self.is_stopping() {
                            tracing::warn!(
                                slot, pid = ended.pid, status = %ended.status, lost = ended.lost,
                                "aiomp worker died; replacing it"
                            );
                        }
                    }
                }
            }
            if self.is_stopping() || (queue.is_closed() && queue.is_empty() && carried.is_none()) {
                if let Some(job) = carried.take() {
                    let _ = job.reply.send(Err(self.stopped_error()));
                }
                return;
            }
            match self.open_with_retries(slot, None).await {
                Ok((next, next_end)) => {
                    link = next;
                    end = next_end;
                }
                Err(error) => {
                    if let Some(job) = carried.take() {
                        let _ = job.reply.send(Err(error.duplicate()));
                    }
                    if !self.is_stopping() {
                        let reason =
                            format!("worker slot {slot} failed to start {MAX_START_ATTEMPTS} times in a row: {error}");
                        tracing::error!(slot, %error, "aiomp pool failed");
                        self.terminate(libc::SIGKILL, Some(&reason));
                    }
                    return;
                }
            }
        }
    }

    /// Hands jobs from `queue` to `link` while the worker has free slots.
    ///
    /// A job taken from the queue but not yet sent (no slots were free for
    /// it) waits in `carried`, for this worker or the next.
    async fn feed(
        &self,
        slot: usize,
        link: &Arc<Link>,
        end: &mut JoinHandle<LinkEnd>,
        carried: &mut Option<Job>,
    ) -> Stop {
        let queue_index = slot % self.queue_count;
        let queue = &self.receivers[queue_index];
        let sharers = self.slots_serving(queue_index);
        // One slot per call: a chunk of calls takes as many slots as it holds.
        // The worker runs `child_concurrency` of them; the prefetched ones wait in it.
        let slots = Arc::new(Semaphore::new(
            self.child_concurrency
                .saturating_add(self.prefetch)
                .min(Semaphore::MAX_PERMITS),
        ));
        // One plain fn's job more may wait in the worker (see `standby`).
        let standby = Arc::new(Semaphore::new(1));
        // Callers may hand tasks to the worker directly meanwhile.
        let _feeding = self.start_feeding(slot, link, &slots);
        let limit = self.max_tasks_per_child;
        let mut sent = 0;
        // Whether the last job sent was a plain fn's: only then is the
        // standby offered, since the job it takes is not known until taken.
        let mut plain = false;
        loop {
            let (job, permit) = if let Some(job) = carried.take() {
                match acquire(&slots, job.slots, end).await {
                    Ok(permit) => (job, permit),
                    Err(stop) => {
                        // The worker died first: the job waits for the next one.
                        *carried = Some(job);
                        return stop;
                    }
                }
            } else {
                // A free slot first, then a job: a busy worker leaves queued
                // jobs to the others. While the queue is long, a plain fn's
                // job may also wait in the worker on standby.
                let offer = plain && standby::wanted(queue.len(), sharers);
                match standby::room(&slots, offer.then_some(&standby), end).await {
                    Err(stop) => return stop,
                    Ok(Room::Standby(permit)) => match standby::take(queue, sharers, &slots, permit) {
                        Taken::Job(job, permit) => (job, permit),
                        Taken::Carried(job) => {
                            *carried = Some(job);
                            continue;
                        }
                        Taken::Nothing => continue,
                    },
                    Ok(Room::Slot(mut permit)) => {
                        let job = tokio::select! {
                            job = queue.recv() => match job {
                                Ok(job) => job,
                                Err(_) => return Stop::QueueClosed,
                            },
                            ended = &mut *end => return Stop::Died(ended.ok()),
                        };
                        if job.slots > 1 {
                            match acquire(&slots, job.slots - 1, end).await {
                                Ok(more) => permit.merge(more),
                                Err(stop) => {
                                    *carried = Some(job);
                                    return stop;
                                }
                            }
                        }
                        (job, permit)
                    }
                }
            };
            // Take no more than a fair share of what is queued, so that the
            // workers sharing this queue split a burst evenly instead of the
            // first one awake taking it all.
            let share = (queue.len() + 1).div_ceil(sharers).max(1);
            let mut calls = job.calls();
            let mut batch = vec![(job, Some(permit))];
            while batch.len() < share && (limit == 0 || sent + calls < limit) && slots.available_permits() > 0 {
                let Ok(job) = queue.try_recv() else { break };
                if let Ok(permit) = Arc::clone(&slots).try_acquire_many_owned(job.slots as u32) {
                    calls += job.calls();
                    batch.push((job, Some(permit)));
                } else {
                    *carried = Some(job);
                    break;
                }
            }
            sent += calls;
            plain = batch.last().is_some_and(|(job, _)| job.blocking);
            let refused = link.dispatch(batch);
            if !refused.is_empty() {
                // The worker died between taking these jobs and sending them:
                // they never reached it, so they go back to the queue.
                let ended = (&mut *end).await.ok();
                for (job, _) in refused {
                    self.requeue(job, queue_index, ended.as_ref());
                }
                return Stop::Died(ended);
            }
            if limit > 0 && sent >= limit {
                return Stop::Recycle;
            }
        }
    }

    /// Queues again the tasks on standby that `link`'s worker, now ended,
    /// never started.
    fn resend_unstarted(&self, link: &Link, queue_index: usize, ended: &LinkEnd) {
        let unstarted = link.take_unstarted();
        if !unstarted.is_empty() {
            tracing::debug!(
                pid = ended.pid,
                tasks = unstarted.len(),
                "aiomp resends tasks its worker never started"
            );
        }
        for job in unstarted {
            self.requeue(job, queue_index, Some(ended));
        }
    }

    fn requeue(&self, job: Job, queue_index: usize, ended: Option<&LinkEnd>) {
        let sender = self
            .senders
            .lock()
            .unwrap()
            .as_ref()
            .map(|senders| senders[queue_index].clone());
        let job = match sender {
            Some(sender) => match sender.try_send(job) {
                Ok(()) => return,
                Err(refused) => refused.into_inner(),
            },
            None => job,
        };
        let error = match ended {
            Some(end) if !self.is_stopping() => Error::WorkerDied {
                pid: end.pid,
                status: end.status,
            },
            _ => self.stopped_error(),
        };
        let _ = job.reply.send(Err(error));
    }
}

/// Waits for `calls` free slots, or for the worker's end.
async fn acquire(
    slots: &Arc<Semaphore>,
    calls: usize,
    end: &mut JoinHandle<LinkEnd>,
) -> Result<tokio::sync::OwnedSemaphorePermit, Stop> {
    tokio::select! {
        permit = Arc::clone(slots).acquire_many_owned(calls as u32) => Ok(permit.expect("the semaphore is never closed")),
        ended = &mut *end => Err(Stop::Died(ended.ok())),
    }
}
