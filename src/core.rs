//! State shared by the pool handles and the owner tasks. Owner tasks hold it
//! strongly; it has no `Drop` logic, so an owner can never be the one that
//! shuts the pool down.

use std::{
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use parking_lot::{Condvar, Mutex};
use tokio::{sync::oneshot, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    CloseReason, Error,
    builder::PoolConfig,
    catalogue::Catalogue,
    key::{KeyView, SessionKey},
    lifecycle::Eras,
    metrics::{self, Gauge},
    registry::{Live, OwnerLink, Registry, is_spare},
    session::SessionInner,
    slots::Slots,
    stats::Stats,
    watchdog::Watchdog,
};

pub(crate) struct Core {
    pub(crate) registry: Mutex<Registry>,
    pub(crate) config: PoolConfig,
    /// Callers waiting for a slot, in order.
    pub(crate) slots: Arc<Slots>,
    /// Parent of every session's close signal: cancelled when the pool drops.
    pub(crate) root: CancellationToken,
    pub(crate) owners: OwnerCount,
    pub(crate) stats: Stats,
    /// Each server's tools, shared by every scope.
    pub(crate) catalogue: Arc<Catalogue>,
    /// What each server answered to the protocol probe.
    pub(crate) eras: Eras,
    /// Kills the servers' process groups if the host dies.
    pub(crate) watchdog: Option<Arc<Watchdog>>,
    /// Bounds creations running at once, if the pool has such a bound.
    pub(crate) connecting: Option<Arc<tokio::sync::Semaphore>>,
    /// Origin of the sessions' last-use timestamps.
    pub(crate) epoch: Instant,
    next_generation: AtomicU64,
}

impl Core {
    pub(crate) fn new(config: PoolConfig) -> Self {
        let watchdog = config.watchdog.then(Arc::default);
        let connecting = config
            .max_connecting
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n.get())));
        let memory = NonZeroUsize::new(config.max_sessions.saturating_mul(4).max(1024))
            .unwrap_or(NonZeroUsize::MIN);
        Self {
            registry: Mutex::new(Registry::new(memory)),
            config,
            slots: Arc::default(),
            root: CancellationToken::new(),
            owners: OwnerCount::default(),
            stats: Stats::default(),
            catalogue: Arc::default(),
            eras: Eras::default(),
            connecting,
            watchdog,
            epoch: Instant::now(),
            next_generation: AtomicU64::new(1),
        }
    }

    pub(crate) fn next_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// Moves a finished creation from in-flight to live, leased to every
    /// caller waiting for it, unless it was closed meanwhile (its slot is
    /// gone or belongs to a later generation).
    pub(crate) fn promote(
        &self,
        key: &SessionKey,
        session: Arc<SessionInner>,
        link: OwnerLink,
    ) -> bool {
        let (promoted, evicted) = {
            let mut reg = self.registry.lock();
            let k: &dyn KeyView = key;
            match reg.inflight.get(k) {
                Some(p) if p.link.generation == link.generation => {
                    let (waiters, made) = (p.waiters, p.made.clone());
                    reg.inflight.remove(k);
                    // Set with the leases, under the lock: a waiter that
                    // gives up finds them here.
                    let _ = made.set(session.clone());
                    reg.backoff.remove(k);
                    reg.gone.pop(k);
                    session.reserve(waiters);
                    reg.live.push(key.clone(), Live { session, link });
                    metrics::gauge(Gauge::Creating, &key.server, -1.0);
                    metrics::gauge(Gauge::Live, &key.server, 1.0);
                    if is_spare(key) {
                        // The first to go when room is needed.
                        reg.live.demote(k);
                    }
                    // Nobody waits for it any more: it is idle, and a caller
                    // waiting for a slot may take it.
                    let evicted = if waiters == 0 {
                        reg.pump(&self.slots, self.config.max_sessions)
                    } else {
                        Vec::new()
                    };
                    (true, evicted)
                }
                _ => (false, Vec::new()),
            }
        };
        signal_all(&evicted);
        if promoted {
            Stats::bump(&self.stats.created);
        }
        promoted
    }

    /// Removes `key`'s slot if it still belongs to `generation`.
    ///
    /// The slot still counts toward the bound until the owner is done; its
    /// `OwnerGuard` then frees it and wakes waiting callers.
    /// `key` is the one the session was made under: a warm spare's current
    /// key is read under the lock, where adoption changes it.
    pub(crate) fn remove(&self, key: &SessionKey, link: &OwnerLink, reason: CloseReason) {
        let mut reg = self.registry.lock();
        reg.remove_generation(&link.current_key(key), link.generation, reason);
    }

    /// Removes an established session for `reason` if nobody is using it.
    /// Decided under the lock, where sessions are handed out, so a session is
    /// never expired just as a caller gets it.
    pub(crate) fn expire(&self, key: &SessionKey, link: &OwnerLink, reason: CloseReason) -> bool {
        let mut reg = self.registry.lock();
        let key = link.current_key(key);
        let k: &dyn KeyView = &key;
        // Busy first: no lease is taken under this lock, so a release since
        // the owner's look has its `used` flag seen after it.
        let idle = reg.live.peek(k).is_some_and(|l| {
            l.link.generation == link.generation
                && l.session.busy() == 0
                && (reason != CloseReason::IdleTimeout || !l.session.used_since_stamp())
        });
        idle && reg.remove_live(k, reason).is_some()
    }

    /// A creation failed: free its slot, and hold further attempts off.
    pub(crate) fn fail(&self, key: &SessionKey, generation: u64, error: &Error) {
        Stats::bump(&self.stats.creation_failures);
        metrics::creation_failed(&key.server);
        let evicted = {
            let mut reg = self.registry.lock();
            // Closing until its process is gone: the slot frees when the
            // owner is done, and a retry of the key waits for it.
            // No backoff where the server is not at fault.
            if reg.retire_inflight(key, generation)
                && !matches!(
                    error,
                    Error::ClosedWhileConnecting { .. }
                        | Error::Runtime { .. }
                        | Error::BlockingNotAllowed { .. }
                )
            {
                let (initial, max) = self.config.failure_backoff;
                // A spare's key is used once: its server's spares back off.
                let backoff = if key.spare {
                    SessionKey::spares_of(&key.server)
                } else {
                    key.clone()
                };
                reg.record_failure(&backoff, error.clone(), initial, max);
            }
            // Its waiters may have queued callers of the same key behind them.
            reg.pump(&self.slots, self.config.max_sessions)
        };
        signal_all(&evicted);
    }
}

/// Tells owners to close; after unlocking.
pub(crate) fn signal_all(links: &[OwnerLink]) {
    for link in links {
        link.signal();
    }
}

/// How many owner tasks exist, so that sync code can wait for all of them
/// to finish without a runtime.
#[derive(Default)]
pub(crate) struct OwnerCount {
    count: Mutex<usize>,
    zero: Condvar,
}

impl OwnerCount {
    pub(crate) fn add(&self) {
        *self.count.lock() += 1;
    }

    pub(crate) fn sub(&self) {
        let mut n = self.count.lock();
        *n -= 1;
        if *n == 0 {
            self.zero.notify_all();
        }
    }

    /// Blocks the thread until no owner task is left, or `limit` passes.
    /// Returns whether none is left.
    pub(crate) fn wait_zero(&self, limit: Duration) -> bool {
        let mut n = self.count.lock();
        let deadline = std::time::Instant::now() + limit;
        while *n > 0 {
            if self.zero.wait_until(&mut n, deadline).timed_out() {
                return *n == 0;
            }
        }
        true
    }
}

/// Lives inside an owner task's future. However the task ends, returning,
/// failing or dropped with its runtime, this frees the task's slot, counts it
/// out and tells closers it is done.
pub(crate) struct OwnerGuard {
    pub(crate) core: Arc<Core>,
    pub(crate) key: SessionKey,
    pub(crate) link: OwnerLink,
    /// Where the creation's result goes. Dropped unanswered (waiters then
    /// get `OwnerGone`) only after the slot is freed, so a waiter that
    /// retries at once starts a new creation rather than rejoining this one.
    ready: Option<oneshot::Sender<Result<Arc<SessionInner>, Error>>>,
    /// The session was handed out and its close not yet counted, so
    /// dropping the owner loses it.
    pub(crate) established: bool,
    finished: bool,
}

impl OwnerGuard {
    /// Counts a new owner in; call before spawning it.
    pub(crate) fn new(
        core: Arc<Core>,
        key: SessionKey,
        link: OwnerLink,
        ready: oneshot::Sender<Result<Arc<SessionInner>, Error>>,
    ) -> Self {
        core.owners.add();
        Self {
            core,
            key,
            link,
            ready: Some(ready),
            established: false,
            finished: false,
        }
    }

    /// Hands the creation's result to every caller waiting for it. Waiters
    /// may all be gone; the session stays for later callers.
    pub(crate) fn answer(&mut self, result: Result<Arc<SessionInner>, Error>) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(result);
        }
    }

    /// The owner ran to its end (as opposed to being dropped with its runtime).
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        if !self.finished {
            tracing::warn!(
                server = %self.key.server,
                scope = %self.key.scope,
                generation = self.link.generation,
                "session lost: its owner task ended early (it panicked, or the runtime \
                 hosting it shut down); the next call creates a new session"
            );
            self.core
                .remove(&self.key, &self.link, CloseReason::RuntimeGone);
            if self.established {
                self.core.stats.closed(CloseReason::RuntimeGone);
                metrics::closed(&self.key.server, CloseReason::RuntimeGone, None);
            }
            self.link.reason.set(CloseReason::RuntimeGone);
            self.link.ended.cancel();
        }
        // Its process is gone (or was never started): the slot is free.
        let evicted = {
            let mut reg = self.core.registry.lock();
            if reg.closing.remove(&self.link.generation).is_some() {
                metrics::gauge(Gauge::Closing, &self.key.server, -1.0);
            }
            reg.orphans.retain(|g| *g != self.link.generation);
            reg.pump(&self.core.slots, self.core.config.max_sessions)
        };
        signal_all(&evicted);
        self.link.done.cancel();
        self.core.owners.sub();
    }
}
