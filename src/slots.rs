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

/// A slot handed to a waiting caller.
#[derive(Debug)]
pub(crate) enum Grant {
    /// A free slot, held for the caller (counted as reserved).
    Free,
    /// The slot of a session evicted for the caller; its server is gone
    /// once this is cancelled.
    Evicted(CancellationToken),
}

/// The queue of callers waiting for a slot.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    queue: Mutex<VecDeque<Arc<Waiter>>>,
    /// The queue's length, readable without its lock.
    waiting: AtomicUsize,
}

#[derive(Debug, Default)]
pub(crate) struct Waiter {
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

    /// A session went idle (its busy count fell to 0, with `SeqCst`): wake
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
    pub(crate) fn enqueue(&self) -> Arc<Waiter> {
        let waiter = Arc::new(Waiter::default());
        let mut queue = self.queue.lock();
        queue.push_back(waiter.clone());
        self.waiting.store(queue.len(), Ordering::SeqCst);
        waiter
    }

    /// Takes `waiter` out of the queue if it is still there. Call under the
    /// registry lock.
    pub(crate) fn remove(&self, waiter: &Arc<Waiter>) {
        let mut queue = self.queue.lock();
        if let Some(i) = queue.iter().position(|w| Arc::ptr_eq(w, waiter)) {
            queue.remove(i);
            self.waiting.store(queue.len(), Ordering::SeqCst);
        }
    }

    /// Hands `grant` to the caller at the head and wakes it; gives the grant
    /// back if nobody waits. Call under the registry lock.
    pub(crate) fn grant_head(&self, grant: Grant) -> Result<(), Grant> {
        let mut queue = self.queue.lock();
        let Some(head) = queue.pop_front() else {
            return Err(grant);
        };
        self.waiting.store(queue.len(), Ordering::SeqCst);
        drop(queue);
        *head.grant.lock() = Some(grant);
        head.notify.notify_one();
        Ok(())
    }
}

impl Waiter {
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
