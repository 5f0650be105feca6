//! Waiting for a slot at the `max_sessions` bound. Callers that need a slot
//! and find none queue here, first come, first served; each slot that frees
//! up is handed to the caller at the head, as a grant, so a caller that
//! arrives later cannot take it first.
//!
//! The queue has its own lock, below the registry's: whoever holds both
//! takes the registry's first. A session's release takes only this one, and
//! only while somebody waits.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, Gauge};

/// A slot handed to a waiting caller.
#[derive(Debug)]
pub(crate) enum Grant {
    /// A free slot.
    Free,
    /// The slot of a session evicted for the caller (by generation); its
    /// server is gone once the token is cancelled.
    Evicted(u64, CancellationToken),
}

/// What the pump does for one caller in line.
pub(crate) enum Serve {
    /// Hand it this slot.
    Grant(Grant),
    /// Its key has a session now (or one being made): wake it to take that.
    Wake,
    /// Nothing for it yet.
    Pass,
}

/// The queue of callers waiting for a slot.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    queue: Mutex<VecDeque<Arc<Waiter>>>,
    /// The queue's length, readable without its lock.
    waiting: AtomicUsize,
}

#[derive(Debug)]
pub(crate) struct Waiter {
    /// The key the caller wants a session of, and its server's own bound.
    server: Arc<str>,
    scope: Arc<str>,
    server_max: Option<usize>,
    notify: Notify,
    grant: Mutex<Option<Grant>>,
}

impl Slots {
    /// Whether anybody waits. `SeqCst`: pairs with a session's busy count,
    /// see [`Slots::enqueue`].
    pub(crate) fn waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A session went idle (its last handle's release, a `SeqCst` count of
    /// releases that met its leases): wake
    /// the caller at the head, which may evict it. Costs one atomic load
    /// when nobody waits.
    pub(crate) fn released(&self) {
        if self.waiting() {
            self.wake_head();
        }
    }

    /// Wakes the caller at the head to look at the registry again.
    pub(crate) fn wake_head(&self) {
        if let Some(head) = self.queue.lock().front() {
            head.notify.notify_one();
        }
    }

    /// Queues a caller. Call under the registry lock, *before* reading any
    /// session's busy count: a release after that read then sees the
    /// waiter and wakes the head.
    pub(crate) fn enqueue(
        &self,
        server: Arc<str>,
        scope: Arc<str>,
        server_max: Option<usize>,
    ) -> Arc<Waiter> {
        let waiter = Arc::new(Waiter {
            server,
            scope,
            server_max,
            notify: Notify::new(),
            grant: Mutex::new(None),
        });
        let mut queue = self.queue.lock();
        queue.push_back(waiter.clone());
        self.waiting.store(queue.len(), Ordering::SeqCst);
        metrics::gauge(Gauge::Waiting, &waiter.server, 1.0);
        waiter
    }

    /// Takes `waiter` out of the queue if it is still there. Call under the
    /// registry lock.
    pub(crate) fn remove(&self, waiter: &Arc<Waiter>) {
        let mut queue = self.queue.lock();
        if let Some(i) = queue.iter().position(|w| Arc::ptr_eq(w, waiter)) {
            queue.remove(i);
            self.waiting.store(queue.len(), Ordering::SeqCst);
            metrics::gauge(Gauge::Waiting, &waiter.server, -1.0);
        }
    }

    /// The keys callers in line wait for: their idle sessions are theirs to
    /// take, not to be evicted for others.
    pub(crate) fn wanted(&self) -> Vec<(Arc<str>, Arc<str>)> {
        let queue = self.queue.lock();
        queue
            .iter()
            .map(|w| (w.server.clone(), w.scope.clone()))
            .collect()
    }

    /// Goes down the line in order and asks `serve` about each caller
    /// (given its key and its server's bound): wakes those told to look
    /// again, and hands the first slot found to its caller. Returns whether
    /// a slot was handed over. Call under the registry lock.
    pub(crate) fn serve_first(
        &self,
        mut serve: impl FnMut(&str, &str, Option<usize>) -> Serve,
    ) -> bool {
        let mut queue = self.queue.lock();
        for i in 0..queue.len() {
            let waiter = &queue[i];
            match serve(&waiter.server, &waiter.scope, waiter.server_max) {
                Serve::Pass => {}
                Serve::Wake => waiter.notify.notify_one(),
                Serve::Grant(grant) => {
                    let waiter = queue.remove(i).expect("index in range");
                    self.waiting.store(queue.len(), Ordering::SeqCst);
                    metrics::gauge(Gauge::Waiting, &waiter.server, -1.0);
                    drop(queue);
                    *waiter.grant.lock() = Some(grant);
                    waiter.notify.notify_one();
                    return true;
                }
            }
        }
        false
    }
}

impl Grant {
    /// The done signal of the session evicted for this slot, if one was.
    pub(crate) fn predecessor(self) -> Option<CancellationToken> {
        match self {
            Grant::Free => None,
            Grant::Evicted(_, done) => Some(done),
        }
    }
}

impl Waiter {
    /// The key this caller wants a session of.
    pub(crate) fn key(&self) -> (&str, &str) {
        (&self.server, &self.scope)
    }

    /// The slot handed to this caller, if one was.
    pub(crate) fn take_grant(&self) -> Option<Grant> {
        self.grant.lock().take()
    }

    /// Whether a slot was handed to this caller.
    pub(crate) fn granted(&self) -> bool {
        self.grant.lock().is_some()
    }

    /// Resolves once this caller is handed a slot or should look again.
    /// Cancel safe: a wake that comes while nobody awaits is kept.
    pub(crate) async fn woken(&self) {
        self.notify.notified().await;
    }
}
