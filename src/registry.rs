//! The data under the pool's one lock: established sessions, creations in
//! flight, failure backoff, and why each key's last session ended. Plain data
//! only; nothing here awaits.

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::{Arc, OnceLock},
    time::Duration,
};

use futures_util::future::{BoxFuture, Shared};
use lru::LruCache;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    CloseReason, Error, Session,
    key::{KeyView, SessionKey},
    metrics::{self, Gauge},
    reason::ReasonCell,
    session::SessionInner,
    slots::{Grant, Serve, Slots},
};

/// The result of one creation, shared by every caller waiting for it.
pub(crate) type Ready = Shared<BoxFuture<'static, Result<Arc<SessionInner>, Error>>>;

/// How to reach an owner task: tell it to close (and why), and learn when it
/// is done.
#[derive(Clone)]
pub(crate) struct OwnerLink {
    pub(crate) generation: u64,
    pub(crate) close: CancellationToken,
    /// Tells the owner to close once nobody uses the session any more (its
    /// config changed: current callers finish their work first).
    pub(crate) retire: CancellationToken,
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
    /// A warm spare's new key: the scope that took it, and why that scope's
    /// previous session ended. Set once, under the registry lock.
    pub(crate) adopted: Arc<OnceLock<Adoption>>,
}

/// What a warm spare learns when a scope takes it.
#[derive(Debug)]
pub(crate) struct Adoption {
    pub(crate) scope: Arc<str>,
    pub(crate) previous: Option<CloseReason>,
}

pub(crate) fn is_spare(key: &SessionKey) -> bool {
    key.spare
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
            retire: CancellationToken::new(),
            ended: CancellationToken::new(),
            done: CancellationToken::new(),
            reason: Default::default(),
            lost: Default::default(),
            adopted: Default::default(),
        }
    }

    /// The key of the session this link belongs to, made under `key`: a
    /// spare moves to the key of the scope that took it.
    pub(crate) fn current_key(&self, key: &SessionKey) -> SessionKey {
        match self.adopted.get() {
            Some(adoption) => SessionKey {
                server: key.server.clone(),
                scope: adoption.scope.clone(),
                spare: false,
            },
            None => key.clone(),
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
    /// The session, once promoted with a lease for each waiter: a waiter
    /// that does not take it gives its lease back here, wherever the
    /// session has gone since.
    pub(crate) made: Made,
}

/// Where a creation's waiters find the session their leases are on.
pub(crate) type Made = Arc<OnceLock<Arc<SessionInner>>>;

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
    pub(crate) closing: HashMap<u64, (SessionKey, OwnerLink)>,
    /// Slots handed to waiting callers that have not used them yet, by the
    /// server each is for.
    pub(crate) reserved: Vec<SessionKey>,
    /// Sessions evicted for callers that then did not use the slot: their
    /// slots go to the next caller, once they are gone.
    pub(crate) orphans: Vec<u64>,
    pub(crate) closed: bool,
    /// `get_session` calls answered by an established session: counted
    /// here, under the lock the hit takes anyway, not with another atomic.
    pub(crate) hits: u64,
}

impl Registry {
    pub(crate) fn new(memory: NonZeroUsize) -> Self {
        Self {
            live: LruCache::unbounded(),
            inflight: HashMap::new(),
            backoff: HashMap::new(),
            gone: LruCache::new(memory),
            closing: HashMap::new(),
            reserved: Vec::new(),
            orphans: Vec::new(),
            closed: false,
            hits: 0,
        }
    }

    /// Sessions that hold (or may hold) a server process.
    pub(crate) fn len(&self) -> usize {
        self.live.len() + self.inflight.len() + self.closing.len()
    }

    /// Sessions of `server` that hold (or may hold) a process, and slots
    /// reserved for it. A scan: only for servers with a bound of their own,
    /// and only when a session is to be created.
    fn server_len(&self, server: &str) -> usize {
        self.live
            .iter()
            .filter(|(k, _)| &*k.server == server)
            .count()
            + self
                .inflight
                .keys()
                .filter(|k| &*k.server == server)
                .count()
            + self
                .closing
                .values()
                .filter(|(k, _)| &*k.server == server)
                .count()
            + self
                .reserved
                .iter()
                .filter(|k| &*k.server == server)
                .count()
    }

    /// A slot for a new session of `server`, under the pool's bound `max`
    /// and the server's own `server_max`: a free one; else that of a
    /// session already evicted for a caller that did not use it; else the
    /// slot of the least recently used idle session that makes room (of
    /// this server, if the server is at its own bound; never one a caller
    /// in line waits for), which is taken out and returned to be signalled
    /// after unlocking. `None` if every slot is busy.
    pub(crate) fn slot_for(
        &mut self,
        server: &str,
        server_max: Option<usize>,
        max: usize,
        wanted: &[(Arc<str>, Arc<str>)],
    ) -> Option<(Grant, Option<OwnerLink>)> {
        let pool_free = self.len() + self.reserved.len() < max;
        let server_free = server_max.is_none_or(|m| self.server_len(server) < m);
        if pool_free && server_free {
            return Some((Grant::Free, None));
        }
        let orphan = self.orphans.iter().copied().find(|g| {
            server_free
                || self
                    .closing
                    .get(g)
                    .is_some_and(|(k, _)| &*k.server == server)
        });
        if let Some(generation) = orphan
            && let Some((_, link)) = self.closing.get(&generation)
        {
            let done = link.done.clone();
            self.orphans.retain(|g| *g != generation);
            return Some((Grant::Evicted(generation, done), None));
        }
        let unwanted = |k: &SessionKey| {
            !wanted
                .iter()
                .any(|(s, c)| **s == *k.server && **c == *k.scope)
        };
        let (key, link) = if server_free {
            self.evict_idle_where(unwanted)
        } else {
            self.evict_idle_where(|k| &*k.server == server && unwanted(k))
        }?;
        tracing::debug!(server = %key.server, scope = %key.scope, "evicting the least recently used idle session to make room");
        Some((
            Grant::Evicted(link.generation, link.done.clone()),
            Some(link),
        ))
    }

    /// Whether a session of `server` may start in a free slot, evicting
    /// nothing.
    pub(crate) fn has_free_slot_for(
        &self,
        server: &str,
        server_max: Option<usize>,
        max: usize,
    ) -> bool {
        self.len() + self.reserved.len() < max
            && server_max.is_none_or(|m| self.server_len(server) < m)
    }

    /// Takes out `server`'s ready spares made from another config than the
    /// one with `fingerprint`; returns their owners, to be signalled.
    pub(crate) fn drop_stale_spares(&mut self, server: &str, fingerprint: u64) -> Vec<OwnerLink> {
        let stale: Vec<SessionKey> = self
            .live
            .iter()
            .filter(|(k, l)| {
                k.spare && &*k.server == server && l.session.fingerprint != fingerprint
            })
            .map(|(k, _)| k.clone())
            .collect();
        stale
            .iter()
            .filter_map(|k| self.remove_live(k as &dyn KeyView, CloseReason::ConfigChanged))
            .collect()
    }

    /// Warm spares of `server`, ready or being made.
    pub(crate) fn spares_of(&self, server: &str) -> usize {
        let spare = |k: &SessionKey| &*k.server == server && is_spare(k);
        self.live.iter().filter(|(k, _)| spare(k)).count()
            + self.inflight.keys().filter(|k| spare(k)).count()
    }

    /// Moves a ready warm spare of `k`'s server, made from the config with
    /// `fingerprint`, to `k` and leases it.
    pub(crate) fn adopt_spare(&mut self, k: &dyn KeyView, fingerprint: u64) -> Option<Session> {
        let (server, scope) = k.parts();
        let spare = self
            .live
            .iter()
            .find(|(key, l)| {
                &*key.server == server
                    && is_spare(key)
                    && l.session.fingerprint == fingerprint
                    && l.session.busy() == 0
                    && l.is_usable()
            })
            .map(|(key, _)| key.clone())?;
        let (key, live) = self.live.pop_entry(&spare as &dyn KeyView)?;
        let adoption = Adoption {
            scope: scope.into(),
            previous: self.gone.peek(k).copied(),
        };
        // Set once: a spare is taken by one scope, never two.
        let _ = live.link.adopted.set(adoption);
        let session = live.session.lease();
        self.live.push(live.link.current_key(&key), live);
        Some(session)
    }

    /// Hands slots to queued callers in order: each to the first caller that
    /// a slot can be found for (a caller blocked only by its server's bound
    /// lets the ones behind it through), and wakes callers whose key has a
    /// session now. Returns the owners of sessions evicted to make room, to
    /// be signalled after unlocking.
    pub(crate) fn pump(&mut self, slots: &Slots, max: usize) -> Vec<OwnerLink> {
        let mut evicted = Vec::new();
        while slots.waiting() {
            let wanted = slots.wanted();
            let granted = slots.serve_first(|server, scope, server_max| {
                let k: &dyn KeyView = &(server, scope);
                if self.live.contains(k) || self.inflight.contains_key(k) {
                    return Serve::Wake;
                }
                // Another caller of this key holds a slot for it: this one
                // joins that creation once it starts.
                if self.reserved.iter().any(|r| r.parts() == (server, scope)) {
                    return Serve::Pass;
                }
                let Some((grant, link)) = self.slot_for(server, server_max, max, &wanted) else {
                    return Serve::Pass;
                };
                evicted.extend(link);
                // Held for the caller until it uses or returns it: a slot
                // freed when the evicted server ends is already this caller's.
                self.reserved.push(SessionKey::new(server, scope));
                Serve::Grant(grant)
            });
            if !granted {
                break;
            }
        }
        evicted
    }

    /// A caller hands back a slot it did not use: a session evicted for it
    /// stays evicted, and its slot goes to the next caller that needs one.
    pub(crate) fn return_grant(&mut self, k: &dyn KeyView, grant: Grant) {
        self.unreserve(k);
        if let Grant::Evicted(generation, _) = grant
            && self.closing.contains_key(&generation)
        {
            self.orphans.push(generation);
        }
    }

    /// Takes a slot reserved for `k` back: used, or returned unused.
    pub(crate) fn unreserve(&mut self, k: &dyn KeyView) {
        if let Some(i) = self.reserved.iter().position(|r| r.parts() == k.parts()) {
            self.reserved.swap_remove(i);
        }
    }

    fn retire(&mut self, key: SessionKey, link: &OwnerLink) {
        metrics::gauge(Gauge::Closing, &key.server, 1.0);
        self.closing.insert(link.generation, (key, link.clone()));
    }

    /// The done signals of `key`'s sessions still being torn down.
    pub(crate) fn closing_of(&self, k: &dyn KeyView) -> Vec<CancellationToken> {
        let parts = k.parts();
        self.closing
            .values()
            .filter(|(key, _)| !key.spare && key.parts() == parts)
            .map(|(_, link)| link.done.clone())
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
        metrics::gauge(Gauge::Live, &key.server, -1.0);
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
            metrics::gauge(Gauge::Creating, &key.server, -1.0);
            return true;
        }
        false
    }

    /// Moves `key`'s creation, if it still is `generation`, to the closing
    /// sessions: its process still counts until its owner is done.
    pub(crate) fn retire_inflight(&mut self, key: &SessionKey, generation: u64) -> bool {
        let k: &dyn KeyView = key;
        if self
            .inflight
            .get(k)
            .is_none_or(|p| p.link.generation != generation)
        {
            return false;
        }
        if let Some((key, pending)) = self.inflight.remove_entry(k) {
            metrics::gauge(Gauge::Creating, &key.server, -1.0);
            self.retire(key, &pending.link);
        }
        true
    }

    /// The least recently used matching session that nobody is using,
    /// taken out.
    fn evict_idle_where(
        &mut self,
        matches: impl Fn(&SessionKey) -> bool,
    ) -> Option<(SessionKey, OwnerLink)> {
        let key = self
            .live
            .iter()
            .rev()
            .find(|(k, l)| l.session.busy() == 0 && matches(k))
            .map(|(k, _)| k.clone())?;
        let link = self.remove_live(&key as &dyn KeyView, CloseReason::Evicted)?;
        Some((key, link))
    }

    /// Takes every live and in-flight session whose key matches out of the
    /// registry and returns their owners, to be signalled after unlocking,
    /// and the owners of matching sessions already closing (a session
    /// waiting for its last caller to let go is told to close now).
    pub(crate) fn take_matching(
        &mut self,
        matches: impl Fn(&SessionKey) -> bool,
    ) -> (Vec<OwnerLink>, Vec<OwnerLink>) {
        let already: Vec<OwnerLink> = self
            .closing
            .values()
            .filter(|(key, _)| matches(key))
            .map(|(_, link)| link.clone())
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
                metrics::gauge(Gauge::Creating, &key.server, -1.0);
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
