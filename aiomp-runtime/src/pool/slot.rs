//! One worker slot: start a worker, feed it from its queue while it has free
//! task slots, and replace it when it dies or is recycled.
//!
//! A slot whose worker fails to start [`MAX_START_ATTEMPTS`] times in a row
//! fails the pool instead of spinning.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::Result;
use crate::launch::{Launched, launch, launch_many};
use crate::link::{Job, Link, LinkConfig, LinkEnd, OnComplete};
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

/// What the feeding task sends next.
enum Next {
    /// A job, the permit it holds in the worker, and whether that is the standby.
    Job(Job, OwnedSemaphorePermit, bool),
    /// Nothing yet: look again.
    Again,
    Stop(Stop),
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

    /// The link configuration, with the completion hook of a scheduler of
    /// the user's (the default one counts nothing).
    fn link_config(self: &Arc<Self>) -> LinkConfig {
        let shared: Weak<Shared> = Arc::downgrade(self);
        let on_complete = move |ids: std::ops::Range<u64>| {
            if let Some(shared) = shared.upgrade() {
                shared.complete(ids);
            }
        };
        LinkConfig {
            on_complete: self.custom_scheduler.then(|| Arc::new(on_complete) as OnComplete),
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
        let mut carried = VecDeque::new();
        // Recycled workers still draining; each leaves the jobs it never
        // started that the closed queue refused.
        let mut retiring: Vec<JoinHandle<VecDeque<Job>>> = Vec::new();
        loop {
            match self.feed(slot, &link, &mut end, &mut carried).await {
                Stop::QueueClosed => {
                    link.drain();
                    if let Ok(ended) = end.await {
                        self.hand_back(link.take_unstarted(), queue_index, &mut carried);
                        self.forget(&ended);
                        tracing::debug!(slot, pid = ended.pid, status = %ended.status, "aiomp worker exited");
                    }
                }
                Stop::Recycle => {
                    link.drain();
                    self.recycles.fetch_add(1, Ordering::Relaxed);
                    self.settle_retiring(&mut retiring, false, queue_index, &mut carried)
                        .await;
                    let retire = Arc::clone(&self).retire(slot, queue_index, Arc::clone(&link), end);
                    retiring.push(self.tracker.spawn(retire));
                }
                Stop::Died(ended) => {
                    if !self.is_stopping() {
                        self.restarts.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(ended) = ended {
                        self.hand_back(link.take_unstarted(), queue_index, &mut carried);
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
            let closed = queue.is_closed() && queue.is_empty();
            if self.is_stopping() || closed {
                // Nothing more comes from the queue: what the retiring
                // workers never started is all that may still need a worker.
                self.settle_retiring(&mut retiring, true, queue_index, &mut carried)
                    .await;
                if self.is_stopping() || carried.is_empty() {
                    for job in carried.drain(..) {
                        let _ = job.reply.send(Err(self.stopped_error()));
                    }
                    return;
                }
                // Workers died with calls they never started: a new one runs them.
            }
            match self.open_with_retries(slot, None).await {
                Ok((next, next_end)) => {
                    link = next;
                    end = next_end;
                }
                Err(error) => {
                    for retired in retiring.drain(..) {
                        carried.extend(retired.await.unwrap_or_default());
                    }
                    for job in carried.drain(..) {
                        let _ = job.reply.send(Err(error.duplicate()));
                    }
                    // A closing pool lets its other workers finish.
                    if !self.is_stopping() && !closed {
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

    /// Hands back what the retiring workers left that ended, or, with
    /// `wait`, of all of them once they end.
    async fn settle_retiring(
        &self,
        retiring: &mut Vec<JoinHandle<VecDeque<Job>>>,
        wait: bool,
        queue_index: usize,
        carried: &mut VecDeque<Job>,
    ) {
        let (ended, draining): (Vec<_>, Vec<_>) = std::mem::take(retiring)
            .into_iter()
            .partition(|retired| wait || retired.is_finished());
        *retiring = draining;
        for retired in ended {
            self.hand_back(retired.await.unwrap_or_default(), queue_index, carried);
        }
    }

    /// Waits for a recycled worker to drain and exit; returns the jobs it
    /// never started that could not go back to the queue (it is closed).
    async fn retire(
        self: Arc<Self>,
        slot: usize,
        queue_index: usize,
        link: Arc<Link>,
        end: JoinHandle<LinkEnd>,
    ) -> VecDeque<Job> {
        let mut refused = VecDeque::new();
        if let Ok(ended) = end.await {
            self.hand_back(link.take_unstarted(), queue_index, &mut refused);
            self.forget(&ended);
            tracing::debug!(
                slot,
                pid = ended.pid,
                completed = ended.completed,
                "aiomp worker recycled"
            );
        }
        refused
    }

    /// Hands jobs from `queue` to `link` while the worker has free slots.
    ///
    /// A job taken from the queue but not yet sent (no slots were free for
    /// it), or handed back unstarted by a worker that ended, waits in
    /// `carried`, for this worker or the next.
    async fn feed(
        &self,
        slot: usize,
        link: &Arc<Link>,
        end: &mut JoinHandle<LinkEnd>,
        carried: &mut VecDeque<Job>,
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
        // Not under `max_tasks_per_child`: a worker's last jobs would outlive
        // it in its drain.
        let mut plain = false;
        // The job on the standby permit, and the slots it takes.
        let mut on_standby: Option<(u64, usize)> = None;
        loop {
            if let Some((id, needed)) = on_standby.take() {
                // It starts when the running job returns: it takes the slots
                // that frees (so that they show the worker busy), and the
                // standby is free for the next.
                match acquire(&slots, needed, end).await {
                    Ok(permit) => link.promote(id, permit),
                    Err(stop) => return stop,
                }
                continue;
            }
            // While the queue is long, a plain fn's job may also wait in
            // the worker on standby.
            let offer = limit == 0 && plain && standby::wanted(queue.len(), sharers);
            let (job, permit, standing_by) = match self
                .next_job(queue_index, &slots, offer.then_some(&standby), end, carried)
                .await
            {
                Next::Job(job, permit, standing_by) => (job, permit, standing_by),
                Next::Again => continue,
                Next::Stop(stop) => return stop,
            };
            // Take no more than a fair share of what is queued, so that the
            // workers sharing this queue split a burst evenly instead of the
            // first one awake taking it all.
            let share = if standing_by {
                // It alone: the next job the worker holds is the one promoted.
                1
            } else {
                (queue.len() + 1).div_ceil(sharers).max(1)
            };
            let mut calls = job.calls();
            let mut batch = vec![(job, Some(permit))];
            while batch.len() < share && (limit == 0 || sent + calls < limit) && slots.available_permits() > 0 {
                let Ok(job) = queue.try_recv() else { break };
                if let Ok(permit) = Arc::clone(&slots).try_acquire_many_owned(job.slots as u32) {
                    calls += job.calls();
                    batch.push((job, Some(permit)));
                } else {
                    carried.push_back(job);
                    break;
                }
            }
            sent += calls;
            plain = batch.last().is_some_and(|(job, _)| job.blocking);
            // A job on standby goes alone (see `share`).
            let standing_by = standing_by.then(|| (batch[0].0.id(), batch[0].0.slots));
            let refused = link.dispatch(batch);
            // Unless it was dropped (its caller is gone) or refused.
            on_standby = standing_by.filter(|&(id, _)| link.holds(id));
            if !refused.is_empty() {
                // The worker died between taking these jobs and sending them:
                // they never reached it, so they go back.
                let ended = (&mut *end).await.ok();
                self.hand_back(refused.into_iter().map(|(job, _)| job), queue_index, carried);
                return Stop::Died(ended);
            }
            if limit > 0 && sent >= limit {
                return Stop::Recycle;
            }
        }
    }

    /// The next job for the worker, with its permit: a carried one once
    /// its slots are free; else, once a slot is free, one from the queue;
    /// or, on the `standby` permit if offered, a plain fn's from the queue.
    async fn next_job(
        &self,
        queue_index: usize,
        slots: &Arc<Semaphore>,
        standby: Option<&Arc<Semaphore>>,
        end: &mut JoinHandle<LinkEnd>,
        carried: &mut VecDeque<Job>,
    ) -> Next {
        let queue = &self.receivers[queue_index];
        if let Some(job) = carried.pop_front() {
            return match acquire(slots, job.slots, end).await {
                Ok(permit) => Next::Job(job, permit, false),
                Err(stop) => {
                    // The worker died first: the job waits for the next one.
                    carried.push_front(job);
                    Next::Stop(stop)
                }
            };
        }
        // A free slot first, then a job: a busy worker leaves queued jobs to the others.
        let mut permit = match standby::room(slots, standby, end).await {
            Err(stop) => return Next::Stop(stop),
            Ok(Room::Slot(permit)) => permit,
            Ok(Room::Standby(permit)) => {
                return match standby::take(queue, self.slots_serving(queue_index), slots, permit) {
                    Taken::OnStandby(job, permit) => Next::Job(job, permit, true),
                    Taken::InSlots(job, permit) => Next::Job(job, permit, false),
                    Taken::Other(job) => {
                        // Not one to wait here: to a worker with room, or it waits for room here.
                        if let Some(job) = self.hand_over(queue_index, job) {
                            carried.push_back(job);
                        }
                        Next::Again
                    }
                    Taken::Nothing => Next::Again,
                };
            }
        };
        let job = tokio::select! {
            job = queue.recv() => match job {
                Ok(job) => job,
                Err(_) => return Next::Stop(Stop::QueueClosed),
            },
            ended = &mut *end => return Next::Stop(Stop::Died(ended.ok())),
        };
        if job.slots > 1 {
            match acquire(slots, job.slots - 1, end).await {
                Ok(more) => permit.merge(more),
                Err(stop) => {
                    carried.push_front(job);
                    return Next::Stop(stop);
                }
            }
        }
        Next::Job(job, permit, false)
    }

    /// Sends again `jobs` that a worker never started: through the queue,
    /// or, once it is closed, through `carried` to this slot's next worker.
    /// Fails them if the pool is stopping.
    fn hand_back(&self, jobs: impl IntoIterator<Item = Job>, queue_index: usize, carried: &mut VecDeque<Job>) {
        for job in jobs {
            if job.reply.is_closed() {
                // Its caller is gone.
            } else if self.is_stopping() {
                let _ = job.reply.send(Err(self.stopped_error()));
            } else if let Err(job) = self.requeue(job, queue_index) {
                carried.push_back(job);
            }
        }
    }

    /// Puts `job` back in its queue, for any worker; hands it back if the
    /// queue is closed.
    fn requeue(&self, job: Job, queue_index: usize) -> Result<(), Job> {
        let sender = crate::lock(&self.senders)
            .as_ref()
            .map(|senders| senders[queue_index].clone());
        match sender {
            Some(sender) => sender.try_send(job).map_err(async_channel::TrySendError::into_inner),
            None => Err(job),
        }
    }
}

/// Waits for `calls` free slots, or for the worker's end.
async fn acquire(
    slots: &Arc<Semaphore>,
    calls: usize,
    end: &mut JoinHandle<LinkEnd>,
) -> Result<OwnedSemaphorePermit, Stop> {
    tokio::select! {
        permit = Arc::clone(slots).acquire_many_owned(calls as u32) => Ok(permit.expect("the semaphore is never closed")),
        ended = &mut *end => Err(Stop::Died(ended.ok())),
    }
}
