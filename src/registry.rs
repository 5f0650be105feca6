//! The data under the pool's one lock: established sessions, creations in
//! flight, failure backoff, and why each key's last session ended. Plain data
//! only; nothing here awaits.

use std::{collections::HashMap, num::NonZeroUsize, sync::Arc, time::Duration};

use futures_util::future::{BoxFuture, Shared};
use lru::LruCache;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    CloseReason, Error,
    key::{KeyView, SessionKey},
    reason::ReasonCell,
    session::SessionInner,
    slots::{Grant, Slots},
};

/// The result of one creation, shared by every caller waiting for it.
pub(crate) type Ready = Shared<BoxFuture<'static, Result<Arc<SessionInner>, Error>>>;

/// How to reach an owner task: tell it to close (and why), and learn when it
/// is done.
#[derive(Clone)]
pub(crate) struct OwnerLink {
    pub(crate) generation: u64,
    pub(crate) close: CancellationToken,
    /// Cancelled by the owner once the session serves no more requests,
    /// after `reason` is recorded: requests in flight fail at once with it.
    pub(crate) ended: CancellationToken,
    pub(crate) done: CancellationToken,
    pub(crate) reason: Arc<ReasonCell>,
    /// Tripped by whoever learns first that the transport is gone: an HTTP
    /// server that forgot the session (ahead of the failing call's return,
    /// so no caller gets the dead session after that), or a request that
    /// failed to reach the server.
    pub(crate) lost: Arc<Lost>,
}

/// A session's transport has lost it. An atomic for the `get_session` hit
/// path, which must not take locks, and a token for tasks to wait on.
#[derive(Debug, Default)]
pub(crate) struct Lost {
    flag: std::sync::atomic::AtomicBool,
    token: CancellationToken,
}

impl Lost {
    pub(crate) fn trip(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        self.token.cancel();
    }

    pub(crate) fn is_tripped(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) async fn tripped(&self) {
        self.token.cancelled().await;
    }
}

impl OwnerLink {
    pub(crate) fn new(generation: u64, close: CancellationToken) -> Self {
        Self {
            generation,
            close,
            ended: CancellationToken::new(),
            done: CancellationToken::new(),
            reason: Default::default(),
            lost: Default::default(),
        }
    }

    /// Tells the owner to close; call after unlocking.
    pub(crate) fn signal(&self) {
        self.close.cancel();
    }
}

pub(crate) struct Live {
    pub(crate) session: Arc<SessionInner>,
    pub(crate) link: OwnerLink,
}

impl Live {
    /// False once the transport is known to be gone. Being told to close or
    /// having ended need no check: every such session is taken out of the
    /// registry, under its lock, before its owner is signalled or ends.
    /// Lock-free: this runs on every `get_session` hit.
    pub(crate) fn is_usable(&self) -> bool {
        !self.link.lost.is_tripped() && !self.session.peer.is_transport_closed()
    }
}

pub(crate) struct Pending {
    pub(crate) ready: Ready,
    pub(crate) link: OwnerLink,
    /// Callers waiting for this creation: the new session is leased to each
    /// of them before anybody else can see it idle, so it reaches them
    /// before it can be evicted.
    pub(crate) waiters: usize,
}

/// A key whose last creation failed: no new attempt before `until`.
pub(crate) struct Backoff {
    pub(crate) until: Instant,
    pub(crate) delay: Duration,
    pub(crate) error: Error,
}

pub(crate) struct Registry {
    /// Established sessions, least recently used first out.
    pub(crate) live: LruCache<SessionKey, Live>,
    pub(crate) inflight: HashMap<SessionKey, Pending>,
    pub(crate) backoff: HashMap<SessionKey, Backoff>,
    /// Why each key's last established session ended; bounded, so a pool
    /// that sees endless scopes does not grow without end.
    pub(crate) gone: LruCache<SessionKey, CloseReason>,
    /// Sessions taken out whose owners are still tearing them down, by
    /// generation: they still hold a server process, so they count toward
    /// the bound, and a new session for the same key waits for them.
    pub(crate) closing: HashMap<u64, (SessionKey, CancellationToken)>,
    /// Slots handed to waiting callers that have not used them yet.
    pub(crate) reserved: usize,
    pub(crate) closed: bool,
}

impl Registry {
    pub(crate) fn new(memory: NonZeroUsize) -> Self {
        Self {
            live: LruCache::unbounded(),
            inflight: HashMap::new(),
            backoff: HashMap::new(),
            gone: LruCache::new(memory),
            closing: HashMap::new(),
            reserved: 0,
            closed: false,
        }
    }

    /// Sessions that hold (or may hold) a server process.
    pub(crate) fn len(&self) -> usize {
        self.live.len() + self.inflight.len() + self.closing.len()
    }

    /// Whether a caller may take a slot without evicting anything.
    pub(crate) fn has_free_slot(&self, max: usize) -> bool {
        self.len() + self.reserved < max
    }

    /// Hands slots to queued callers, first come, first served: a free slot
    /// while there is one, else the slot of the least recently used idle
    /// session, which is evicted. Returns the evicted sessions' owners, to
    /// be signalled after unlocking.
    pub(crate) fn pump(&mut self, slots: &Slots, max: usize) -> Vec<OwnerLink> {
        let mut evicted = Vec::new();
        while slots.waiting() {
            let grant = if self.has_free_slot(max) {
                Grant::Free
            } else if let Some((key, link)) = self.evict_idle() {
                tracing::debug!(server = %key.server, scope = %key.scope, "evicting the least recently used idle session for a waiting caller");
                let done = link.done.clone();
                evicted.push(link);
                Grant::Evicted(done)
            } else {
                break;
            };
            // Held for the caller until it uses or returns it: a slot freed
            // when the evicted server ends is already this caller's.
            self.reserved += 1;
            if slots.grant_head(grant).is_err() {
                self.reserved -= 1;
            }
        }
        evicted
    }

    /// Takes a grant a caller did not use back.
    pub(crate) fn return_grant(&mut self, _grant: Grant) {
        self.reserved -= 1;
    }

    fn retire(&mut self, key: SessionKey, link: &OwnerLink) {
        self.closing
            .insert(link.generation, (key, link.done.clone()));
    }

    /// The done signals of `key`'s sessions still being torn down.
    pub(crate) fn closing_of(&self, k: &dyn KeyView) -> Vec<CancellationToken> {
        let parts = k.parts();
        self.closing
            .values()
            .filter(|(key, _)| key.parts() == parts)
            .map(|(_, done)| done.clone())
            .collect()
    }

    /// Takes an established session out for `reason`. Every removal of a live
    /// session goes through here, so its successor learns why it is new.
    pub(crate) fn remove_live(
        &mut self,
        k: &dyn KeyView,
        reason: CloseReason,
    ) -> Option<OwnerLink> {
        let (key, live) = self.live.pop_entry(k)?;
        live.link.reason.set(reason);
        self.gone.put(key.clone(), reason);
        self.retire(key, &live.link);
        Some(live.link)
    }

    /// Takes `key`'s established session out if it still is `generation`.
    pub(crate) fn remove_live_generation(
        &mut self,
        key: &SessionKey,
        generation: u64,
        reason: CloseReason,
    ) -> Option<OwnerLink> {
        let k: &dyn KeyView = key;
        if self
            .live
            .peek(k)
            .is_some_and(|l| l.link.generation == generation)
        {
            return self.remove_live(k, reason);
        }
        None
    }

    /// Removes `key`'s slot if it still belongs to `generation`, so an owner
    /// never removes its successor.
    pub(crate) fn remove_generation(
        &mut self,
        key: &SessionKey,
        generation: u64,
        reason: CloseReason,
    ) -> bool {
        if self
            .remove_live_generation(key, generation, reason)
            .is_some()
        {
            return true;
        }
        let k: &dyn KeyView = key;
        if self
            .inflight
            .get(k)
            .is_some_and(|p| p.link.generation == generation)
        {
            self.inflight.remove(k);
            return true;
        }
        false
    }

    /// The least recently used session that nobody is using, taken out.
    pub(crate) fn evict_idle(&mut self) -> Option<(SessionKey, OwnerLink)> {
        let key = self
            .live
            .iter()
            .rev()
            .find(|(_, l)| l.session.busy() == 0)
            .map(|(k, _)| k.clone())?;
        let link = self.remove_live(&key as &dyn KeyView, CloseReason::Evicted)?;
        Some((key, link))
    }

    /// Takes every live and in-flight session whose key matches out of the
    /// registry and returns their owners, to be signalled after unlocking,
    /// and the done signals of matching sessions already closing.
    pub(crate) fn take_matching(
        &mut self,
        matches: impl Fn(&SessionKey) -> bool,
    ) -> (Vec<OwnerLink>, Vec<CancellationToken>) {
        let already: Vec<CancellationToken> = self
            .closing
            .values()
            .filter(|(key, _)| matches(key))
            .map(|(_, done)| done.clone())
            .collect();
        let keys: Vec<SessionKey> = self
            .live
            .iter()
            .filter(|(k, _)| matches(k))
            .map(|(k, _)| k.clone())
            .collect();
        let mut taken: Vec<OwnerLink> = keys
            .iter()
            .filter_map(|k| self.remove_live(k as &dyn KeyView, CloseReason::Explicit))
            .collect();
        let pending: Vec<SessionKey> = self
            .inflight
            .keys()
            .filter(|k| matches(k))
            .cloned()
            .collect();
        for key in pending {
            if let Some((key, p)) = self.inflight.remove_entry(&key as &dyn KeyView) {
                p.link.reason.set(CloseReason::Explicit);
                self.retire(key, &p.link);
                taken.push(p.link);
            }
        }
        (taken, already)
    }

    /// Records a failed creation: the next attempt waits twice as long as
    /// the last, from `initial` up to `max`.
    pub(crate) fn record_failure(
        &mut self,
        key: &SessionKey,
        error: Error,
        initial: Duration,
        max: Duration,
    ) {
        if initial.is_zero() {
            return;
        }
        let now = Instant::now();
        if self.backoff.len() >= self.gone.cap().get() {
            self.backoff.retain(|_, b| b.until > now);
        }
        let k: &dyn KeyView = key;
        let delay = match self.backoff.get(k) {
            Some(b) => (b.delay * 2).min(max),
            None => initial.min(max),
        };
        self.backoff.insert(
            key.clone(),
            Backoff {
                until: now + delay,
                delay,
                error,
            },
        );
    }
}
