//! A snapshot of a pool, for dashboards and logs.

/// A snapshot of a pool's state, from [`Pool::stats`](crate::Pool::stats).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Tasks submitted and waiting for a free worker slot.
    pub queued: usize,
    /// Workers replaced after they died.
    pub restarts: u64,
    /// Workers replaced after `max_tasks_per_child` tasks.
    pub recycles: u64,
    /// Tasks completed, by every worker the pool has had.
    pub completed: u64,
    /// Tasks that failed (panicked, could not be encoded, or were lost with
    /// their worker), by every worker the pool has had.
    pub failed: u64,
    /// The live workers.
    pub workers: Vec<WorkerStats>,
}

/// One live worker, in a [`PoolStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Its process ID.
    pub pid: u32,
    /// Tasks it is running now.
    pub in_flight: usize,
    /// Tasks it completed.
    pub completed: u64,
    /// Tasks of it that failed.
    pub failed: u64,
}
