//! A snapshot of a pool, for dashboards and logs.

/// A snapshot of a pool's state, from [`Pool::stats`](crate::Pool::stats).
///
/// `queued` and `in_flight` count tasks as they travel: one call each, or,
/// for a `map` or `starmap` of many small calls, a chunk of its calls sent
/// as one. `completed` and `failed` count calls. A `map` submits its input a
/// window at a time, so the items it has not pulled yet appear nowhere.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Tasks submitted and waiting in the pool's queues for a free worker slot.
    pub queued: usize,
    /// Workers replaced after they died (not counting those the pool stopped).
    pub restarts: u64,
    /// Workers replaced after `max_tasks_per_child` tasks.
    pub recycles: u64,
    /// Calls completed, by every worker the pool has had. A call whose
    /// function returned `Err` completed: only the function knows it failed.
    pub completed: u64,
    /// Calls that failed (panicked, could not be encoded, were cancelled, or
    /// were lost with their worker), by every worker the pool has had.
    pub failed: u64,
    /// The live workers, by pid.
    pub workers: Vec<WorkerStats>,
}

/// One live worker, in a [`PoolStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Its process ID.
    pub pid: u32,
    /// Tasks it holds now: sent to it and not yet answered.
    pub in_flight: usize,
    /// Calls it completed.
    pub completed: u64,
    /// Calls of it that failed.
    pub failed: u64,
}
