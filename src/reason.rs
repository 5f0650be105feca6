//! Why a session ended.

use std::sync::atomic::{AtomicU8, Ordering};

/// Why a session was closed. A new session for the same key reports its
/// predecessor's reason through [`Session::replaced`](crate::Session::replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// A `close_*` call, or [`SessionPool::close`](crate::SessionPool::close).
    Explicit,
    /// Made room at the `max_sessions` bound as the least recently used idle session.
    Evicted,
    /// Unused for longer than the idle timeout.
    IdleTimeout,
    /// Older than the maximum lifetime.
    MaxLifetime,
    /// The server exited or closed its end of the transport.
    Died,
    /// The server failed a health check (no reply to `ping` in time).
    HealthCheck,
    /// The last pool handle was dropped.
    PoolDropped,
    /// The runtime hosting the session shut down (only with
    /// [`OwnerRuntime::Caller`](crate::OwnerRuntime::Caller) or
    /// [`OwnerRuntime::Handle`](crate::OwnerRuntime::Handle)).
    RuntimeGone,
    /// The key was asked for with a different server config; the session
    /// was replaced once the calls in progress on it were done.
    ConfigChanged,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CloseReason::Explicit => "closed by the host",
            CloseReason::Evicted => "evicted to make room",
            CloseReason::IdleTimeout => "closed after its idle timeout",
            CloseReason::MaxLifetime => "closed at its maximum lifetime",
            CloseReason::Died => "the server exited or its transport failed",
            CloseReason::HealthCheck => "the server failed a health check",
            CloseReason::PoolDropped => "the pool was dropped",
            CloseReason::RuntimeGone => "the runtime hosting it shut down",
            CloseReason::ConfigChanged => "replaced because its server config changed",
        })
    }
}

impl CloseReason {
    pub(crate) const ALL: [CloseReason; 9] = [
        CloseReason::Explicit,
        CloseReason::Evicted,
        CloseReason::IdleTimeout,
        CloseReason::MaxLifetime,
        CloseReason::Died,
        CloseReason::HealthCheck,
        CloseReason::PoolDropped,
        CloseReason::RuntimeGone,
        CloseReason::ConfigChanged,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn from_index(i: u8) -> Option<Self> {
        Self::ALL.get(usize::from(i).checked_sub(1)?).copied()
    }
}

/// A reason set once, by whoever first decides a session must end.
#[derive(Debug, Default)]
pub(crate) struct ReasonCell(AtomicU8);

impl ReasonCell {
    /// Records `reason` unless one was recorded already.
    pub(crate) fn set(&self, reason: CloseReason) {
        let _ = self.0.compare_exchange(
            0,
            reason.index() as u8 + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    pub(crate) fn get(&self) -> Option<CloseReason> {
        CloseReason::from_index(self.0.load(Ordering::Acquire))
    }
}
