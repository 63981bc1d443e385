//! Which queue a task goes to: a pure decision, no I/O.

/// A task's ID, unique within its pool: `TaskId::from(7u64)`, and back with
/// `u64::from(id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

/// A queue's ID: `0..queue_count`, in the order the pool registered them:
/// `QueueId::from(0usize)`, and back with `usize::from(id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(usize);

impl From<u64> for TaskId {
    fn from(id: u64) -> TaskId {
        TaskId(id)
    }
}

impl From<TaskId> for u64 {
    fn from(id: TaskId) -> u64 {
        id.0
    }
}

impl From<usize> for QueueId {
    fn from(id: usize) -> QueueId {
        QueueId(id)
    }
}

impl From<QueueId> for usize {
    fn from(id: QueueId) -> usize {
        id.0
    }
}

/// Decides which queue each task goes to.
///
/// The pool creates `queue_count` queues and calls [`register_queue`] for each,
/// then maps process `i` to queue `i % queue_count` and calls
/// [`register_process`] for each (the initial mapping only: a recycled or
/// replaced worker takes its predecessor's queue). Every task is routed with
/// [`schedule_task`]; [`complete_task`] follows when it finished, failed or
/// was cancelled. The workers of one queue share it: a task goes to whichever
/// has a free slot.
///
/// The pool calls these methods under a lock, from whichever thread submits
/// or completes a task: keep them quick.
///
/// A scheduler that keeps one function's tasks on a queue of their own, so
/// that slow reports never hold up the quick lookups:
///
/// ```
/// use aiomp::{Pool, QueueId, Scheduler, TaskId, remote};
///
/// #[remote]
/// async fn lookup(key: u32) -> u32 {
///     key
/// }
///
/// #[remote]
/// async fn report(day: u32) -> String {
///     format!("report for day {day}")
/// }
///
/// /// Queue 1 for `report`, queue 0 for everything else.
/// #[derive(Debug, Default)]
/// struct ReportsApart {
///     queues: Vec<QueueId>,
/// }
///
/// impl Scheduler for ReportsApart {
///     fn register_queue(&mut self) -> QueueId {
///         let id = QueueId::from(self.queues.len());
///         self.queues.push(id);
///         id
///     }
///
///     fn register_process(&mut self, _queue: QueueId) {}
///
///     fn schedule_task(&mut self, _task: TaskId, function: &str, _args: &[u8]) -> QueueId {
///         // `function` is the remote function's ID: its module path and name.
///         if function.ends_with("::report") { self.queues[1] } else { self.queues[0] }
///     }
///
///     fn complete_task(&mut self, _task: TaskId) {}
/// }
///
/// #[aiomp::main]
/// async fn main() -> aiomp::Result<()> {
///     let pool = Pool::builder()
///         .processes(2)
///         .queue_count(2) // process 0 serves queue 0, process 1 queue 1
///         .scheduler(ReportsApart::default())
///         .build()
///         .await?;
///     assert_eq!(pool.map(lookup, 0..10).await?.len(), 10);
///     assert_eq!(pool.apply(report, (1,)).await?, "report for day 1");
///     Ok(())
/// }
/// ```
///
/// [`register_queue`]: Scheduler::register_queue
/// [`register_process`]: Scheduler::register_process
/// [`schedule_task`]: Scheduler::schedule_task
/// [`complete_task`]: Scheduler::complete_task
pub trait Scheduler: Send + 'static {
    /// The pool created a queue; returns its ID.
    fn register_queue(&mut self) -> QueueId;

    /// A process was assigned to `queue` (initial mapping only).
    fn register_process(&mut self, queue: QueueId);

    /// Picks the queue for a task, given its function's ID and encoded arguments.
    /// A queue the pool does not have fails that task with [`Error::InvalidConfig`](crate::Error::InvalidConfig).
    fn schedule_task(&mut self, task: TaskId, function: &str, args: &[u8]) -> QueueId;

    /// The task completed (or failed, or was cancelled).
    ///
    /// It is called on whichever thread took the task's outcome: a thread
    /// of the pool's runtime, or the thread of a caller that waits for an
    /// answer in `block_on` (see
    /// [`PoolBuilder::block_on_spin`](crate::PoolBuilder::block_on_spin)),
    /// while that worker's replies wait. Keep it short, and do not panic in it.
    fn complete_task(&mut self, task: TaskId);
}

/// The default scheduler: queues in round-robin order, weighted by the number
/// of processes assigned to each (12 processes over 8 queues: four queues get
/// twice the tasks of the other four).
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    queues: Vec<QueueId>,
    processes: Vec<QueueId>,
    next: usize,
}

impl RoundRobin {
    /// A round-robin scheduler with no queues yet.
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }

    fn cycle(&self) -> &[QueueId] {
        if self.processes.is_empty() {
            &self.queues
        } else {
            &self.processes
        }
    }
}

impl Scheduler for RoundRobin {
    fn register_queue(&mut self) -> QueueId {
        let id = QueueId(self.queues.len());
        self.queues.push(id);
        id
    }

    fn register_process(&mut self, queue: QueueId) {
        // Interleave: keep the cycle sorted by how many times each queue already
        // appears, so twice-weighted queues alternate with the others.
        self.processes.push(queue);
        let mut seen = std::collections::HashMap::new();
        let mut ranked: Vec<(usize, QueueId)> = self
            .processes
            .iter()
            .map(|&q| {
                let round = seen.entry(q).or_insert(0);
                *round += 1;
                (*round, q)
            })
            .collect();
        ranked.sort();
        self.processes = ranked.into_iter().map(|(_, q)| q).collect();
    }

    fn schedule_task(&mut self, _task: TaskId, _function: &str, _args: &[u8]) -> QueueId {
        let cycle = self.cycle();
        if cycle.is_empty() {
            return QueueId(0);
        }
        let queue = cycle[self.next % cycle.len()];
        self.next = (self.next + 1) % cycle.len();
        queue
    }

    fn complete_task(&mut self, _task: TaskId) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(processes: usize, queues: usize, tasks: u64) -> Vec<usize> {
        let mut scheduler = RoundRobin::new();
        let ids: Vec<QueueId> = (0..queues).map(|_| scheduler.register_queue()).collect();
        for i in 0..processes {
            scheduler.register_process(ids[i % queues]);
        }
        let mut counts = vec![0; queues];
        for task in 0..tasks {
            counts[usize::from(scheduler.schedule_task(TaskId::from(task), "f", &[]))] += 1;
        }
        counts
    }

    #[test]
    fn twelve_processes_over_eight_queues_weights_four_double() {
        assert_eq!(counts(12, 8, 1200), [200, 200, 200, 200, 100, 100, 100, 100]);
    }

    #[test]
    fn even_mapping_is_plain_round_robin() {
        assert_eq!(counts(4, 2, 10), [5, 5]);
    }

    #[test]
    fn ids_convert_both_ways() {
        assert_eq!(u64::from(TaskId::from(7u64)), 7);
        assert_eq!(usize::from(QueueId::from(3usize)), 3);
    }
}
