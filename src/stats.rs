//! Counters, kept as atomics outside the registry lock (hits excepted: the
//! registry counts them), and the status snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::CloseReason;

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) created: AtomicU64,
    pub(crate) joined: AtomicU64,
    pub(crate) creation_failures: AtomicU64,
    pub(crate) teardown_failures: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        Self::bump(&self.closed[reason.index()]);
    }

    pub(crate) fn snapshot(
        &self,
        (live, in_flight, closing, hits): (usize, usize, usize, u64),
        waiting: usize,
    ) -> PoolStatus {
        PoolStatus {
            live,
            in_flight,
            closing,
            waiting,
            created: self.created.load(Relaxed),
            hits,
            joined: self.joined.load(Relaxed),
            creation_failures: self.creation_failures.load(Relaxed),
            teardown_failures: self.teardown_failures.load(Relaxed),
            closed: std::array::from_fn(|i| self.closed[i].load(Relaxed)),
        }
    }
}

/// A snapshot of a pool's state and counters.
///
/// `live`, `in_flight` and `closing` are read together under the pool's lock,
/// `waiting` just after; the
/// counters are read one by one afterwards, so under load they are **not**
/// an atomic snapshot: a session may show in `created` but not yet in `live`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Established sessions.
    pub live: usize,
    /// Sessions being created.
    pub in_flight: usize,
    /// Sessions taken out of the pool whose owners have not finished tearing
    /// them down; they still count toward `max_sessions`.
    pub closing: usize,
    /// Callers waiting for a slot at the `max_sessions` bound.
    pub waiting: usize,
    /// Sessions created successfully, ever.
    pub created: u64,
    /// `get_session` calls answered by an established session.
    pub hits: u64,
    /// `get_session` calls that waited on a creation another call started.
    pub joined: u64,
    /// Creations that failed (spawn, connect, timeout, closed while connecting).
    pub creation_failures: u64,
    /// Teardowns that needed `SIGKILL` or did not finish within the close timeout.
    pub teardown_failures: u64,
    closed: [u64; CloseReason::ALL.len()],
}

impl PoolStatus {
    /// Established sessions closed for `reason`, ever.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed[reason.index()]
    }

    /// Established sessions closed for any reason, ever.
    pub fn closed_total(&self) -> u64 {
        self.closed.iter().sum()
    }
}
