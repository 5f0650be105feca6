//! Checking a session out of the registry, one look under its lock at a
//! time: a hit on a live session, a join of a creation in flight, or a slot
//! taken (or waited for, in order) and a creation started.

use std::sync::Arc;

use futures_util::FutureExt;
use tokio::{sync::oneshot, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    CloseReason, Error, HealthCheck, SHARED_SCOPE, ScopePolicy, ServerConfig, Session, SessionPool,
    core::{Core, OwnerGuard, signal_all},
    key::{KeyView, SessionKey},
    metrics::{self, Gauge},
    owner::OwnerTask,
    registry::{Made, OwnerLink, Pending, Ready, Registry},
    session::SessionInner,
    slots::Waiter,
    stats::Stats,
};

pub(crate) enum Step<'a> {
    Hit(Session),
    /// A hit that must pass a health check first.
    Check(Session),
    /// A creation to wait for, with this caller's lease on its result.
    Join(Ready, JoinTicket<'a>),
    /// No slot: wait in the queue until one is handed over; `None` for a
    /// caller already in it.
    Wait(Option<Queued<'a>>),
}

/// A caller's lease on a creation it waits for: the new session is leased
/// to it on arrival, so nobody can evict it before the caller takes it.
/// Dropped unclaimed (the caller gave up), it gives the lease back.
pub(crate) struct JoinTicket<'a> {
    core: &'a Core,
    key: SessionKey,
    generation: u64,
    made: Made,
    claimed: bool,
}

impl Drop for JoinTicket<'_> {
    fn drop(&mut self) {
        if self.claimed {
            return;
        }
        {
            let mut reg = self.core.registry.lock();
            let k: &dyn KeyView = &self.key;
            if let Some(p) = reg.inflight.get_mut(k)
                && p.link.generation == self.generation
            {
                p.waiters -= 1;
                return;
            }
        }
        // Promoted (with this caller's lease) or failed (without): `made`
        // is set under the lock that took it out of in-flight. Wherever the
        // session went since (replaced, closed), the lease goes back, else
        // it would stay busy for good. Outside the lock: the release may
        // wake a slot waiter.
        if let Some(session) = self.made.get() {
            session.release();
        }
    }
}

/// A caller's place in the queue for a slot. Dropped (the caller got a
/// session another way, gave up, or timed out), it leaves the queue and
/// hands an unused slot to the next caller.
pub(crate) struct Queued<'a> {
    core: &'a Core,
    waiter: Arc<Waiter>,
    pub(crate) since: Instant,
}

impl Queued<'_> {
    /// Resolves when a slot was handed to this caller, or it should look
    /// again. Cancel safe.
    pub(crate) async fn woken(&self) {
        self.waiter.woken().await;
    }

    /// Whether a slot was handed to this caller.
    pub(crate) fn granted(&self) -> bool {
        self.waiter.granted()
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let core = self.core;
        let evicted = {
            let mut reg = core.registry.lock();
            core.slots.remove(&self.waiter);
            if let Some(grant) = self.waiter.take_grant() {
                reg.return_grant(&self.waiter.key(), grant);
            }
            // Whatever woke this caller, or was handed to it, goes on to
            // the next one.
            reg.pump(&core.slots, core.config.max_sessions)
        };
        signal_all(&evicted);
    }
}

impl SessionPool {
    /// One look at the registry, under its lock; never awaits.
    pub(crate) fn step<'a>(
        &'a self,
        server: &str,
        scope: &str,
        config: &ServerConfig,
        queued: Option<&Queued<'a>>,
    ) -> Result<Step<'a>, Error> {
        let core = &*self.inner.core;
        if let Some((field, transport)) = config.misuse {
            return Err(Error::InvalidServerConfig {
                server: Some(server.into()),
                field: field.into(),
                reason: format!("applies only to {transport} servers"),
            });
        }
        // Every scope of a shared server uses its one session.
        let scope = match config.policy.scope {
            ScopePolicy::PerScope => scope,
            ScopePolicy::Shared => SHARED_SCOPE,
        };
        let view = (server, scope);
        let mut to_signal = Vec::new();
        let mut spares = Vec::new();
        let look = {
            let mut reg = core.registry.lock();
            let look = self.look(&mut reg, &view, config, queued, &mut to_signal);
            // Not on hits: only a new scope (a creation, or a spare taken)
            // can need another spare.
            if matches!(look, Ok(Look::Create(_) | Look::Adopted(_)))
                && config.policy.warm_spares > 0
                && config.policy.scope == ScopePolicy::PerScope
            {
                self.top_up_spares(&mut reg, server, config, &mut to_signal, &mut spares);
            }
            look
        };
        signal_all(&to_signal);
        let step = match look {
            Err(e) => Err(e),
            Ok(Look::Done(step) | Look::Adopted(step)) => Ok(step),
            Ok(Look::Create(create)) => {
                let (key, generation, ready, made) = (
                    create.key.clone(),
                    create.link.generation,
                    create.ready.clone(),
                    create.made.clone(),
                );
                // The caller's creation first, then the spares.
                self.spawn_owner(*create, config);
                Ok(Step::Join(
                    ready,
                    JoinTicket {
                        core,
                        key,
                        generation,
                        made,
                        claimed: false,
                    },
                ))
            }
        };
        for spare in spares {
            self.spawn_owner(spare, config);
        }
        step
    }

    /// Starts a creation's owner task on the owner runtime.
    fn spawn_owner(&self, create: Create, config: &ServerConfig) {
        let Create {
            key,
            link,
            tx,
            previous,
            after,
            ..
        } = create;
        let mut task = OwnerTask {
            guard: OwnerGuard::new(self.inner.core.clone(), key, link, tx),
            config: config.clone(),
            previous,
            after,
            driver: None,
        };
        let host = &self.inner.host;
        // Twice at most: an `Auto` pool's home runtime that is shutting down
        // (its sentinel not yet dropped) refuses the task, which then goes to
        // the pool's own runtime.
        loop {
            let handle = match host.handle() {
                Ok(handle) => handle,
                Err(e) => return task.fail(e),
            };
            task.driver = Some(host.driver(&handle));
            // A runtime drops a task it refuses without running it: keep the
            // task where it can be taken back.
            let slot = Arc::new(parking_lot::Mutex::new(Some(task)));
            let theirs = slot.clone();
            let join = handle.spawn(async move {
                let task = theirs.lock().take();
                if let Some(task) = task {
                    task.run().await;
                }
            });
            let refused = join.is_finished().then(|| slot.lock().take()).flatten();
            match refused {
                Some(back) if host.home_refused() => task = back,
                // Accepted; or refused by a runtime the application chose,
                // and dropping the task tells its waiters, as when a runtime
                // drops an owner it was running.
                _ => return,
            }
        }
    }

    /// Starts warm spares of `server` until it has as many as its config
    /// asks for, in free slots only: a spare never evicts a session, nor
    /// takes a slot a caller waits for.
    fn top_up_spares(
        &self,
        reg: &mut Registry,
        server: &str,
        config: &ServerConfig,
        to_signal: &mut Vec<OwnerLink>,
        spares: &mut Vec<Create>,
    ) {
        let core = &*self.inner.core;
        let fingerprint = config.fingerprint();
        // Spares of an earlier config would never be taken: close them.
        to_signal.extend(reg.drop_stale_spares(server, fingerprint));
        // Spares that fail to start back off like any key.
        let backoff = SessionKey::spares_of(server);
        if reg
            .backoff
            .get(&backoff as &dyn KeyView)
            .is_some_and(|b| Instant::now() < b.until)
        {
            return;
        }
        let have = reg.spares_of(server);
        for _ in have..config.policy.warm_spares {
            if core.slots.waiting()
                || !reg.has_free_slot_for(server, config.server_bound(), core.config.max_sessions)
            {
                return;
            }
            let generation = core.next_generation();
            let key = SessionKey::spare(server, generation);
            spares.push(self.create(reg, key, generation, 0, Vec::new(), None));
        }
    }

    /// Registers a creation under the lock, to be started after unlocking.
    fn create(
        &self,
        reg: &mut Registry,
        key: SessionKey,
        generation: u64,
        waiters: usize,
        after: Vec<CancellationToken>,
        previous: Option<CloseReason>,
    ) -> Create {
        let link = OwnerLink::new(generation, self.inner.core.root.child_token());
        let (tx, rx) = oneshot::channel();
        let (srv, scp) = (key.server.clone(), key.scope.clone());
        let ready: Ready = rx
            .map(move |r| {
                // The owner ended without answering: it panicked, or its
                // runtime shut down.
                r.unwrap_or(Err(Error::OwnerGone {
                    server: srv,
                    scope: scp,
                }))
            })
            .boxed()
            .shared();
        let made = Made::default();
        reg.inflight.insert(
            key.clone(),
            Pending {
                ready: ready.clone(),
                link: link.clone(),
                waiters,
                made: made.clone(),
            },
        );
        metrics::gauge(Gauge::Creating, &key.server, 1.0);
        Create {
            key,
            link,
            tx,
            ready,
            made,
            previous,
            after,
        }
    }

    /// The decision of [`step`](Self::step), under the lock. Owners to be
    /// told to close go into `to_signal`.
    fn look<'a>(
        &'a self,
        reg: &mut Registry,
        k: &dyn KeyView,
        config: &ServerConfig,
        queued: Option<&Queued<'a>>,
        to_signal: &mut Vec<OwnerLink>,
    ) -> Result<Look<'a>, Error> {
        let core = &*self.inner.core;
        let max = core.config.max_sessions;
        let (server, scope) = k.parts();
        if reg.closed {
            return Err(Error::PoolClosed {
                server: server.into(),
                scope: scope.into(),
            });
        }
        // Callers wait for a slot: idle sessions go to them first, in order,
        // even the one this caller would reuse.
        if core.slots.waiting() {
            to_signal.extend(reg.pump(&core.slots, max));
        }
        if let Some(live) = reg.live.get(k) {
            if live.session.fingerprint == config.fingerprint() && live.is_usable() {
                let check = match core.config.health_check {
                    HealthCheck::PingIfIdleFor(idle) => {
                        live.session.busy() == 0 && live.session.last_used().elapsed() >= idle
                    }
                    HealthCheck::Off => false,
                };
                let session = live.session.lease();
                reg.hits += 1;
                metrics::reused(server);
                tracing::trace!(
                    server,
                    scope,
                    generation = session.generation(),
                    "session reused"
                );
                return Ok(Look::Done(if check {
                    Step::Check(session)
                } else {
                    Step::Hit(session)
                }));
            }
            if live.is_usable() {
                // Made from another config: replaced once its leases are
                // dropped, and the new one waits for that.
                tracing::info!(
                    server,
                    scope,
                    "server config changed; replacing the session"
                );
                if let Some(link) = reg.remove_live(k, CloseReason::ConfigChanged) {
                    link.retire.cancel();
                }
            } else {
                // Its transport is gone and its owner has not removed it yet.
                to_signal.extend(reg.remove_live(k, CloseReason::Died));
            }
        }
        if let Some((key, pending)) = reg.inflight.get_key_value(k) {
            let (key, ready, generation, made) = (
                key.clone(),
                pending.ready.clone(),
                pending.link.generation,
                pending.made.clone(),
            );
            if let Some(pending) = reg.inflight.get_mut(k) {
                pending.waiters += 1;
            }
            Stats::bump(&core.stats.joined);
            metrics::joined(server);
            return Ok(Look::Done(Step::Join(
                ready,
                JoinTicket {
                    core,
                    key,
                    generation,
                    made,
                    claimed: false,
                },
            )));
        }
        if let Some(backoff) = reg.backoff.get(k) {
            let now = Instant::now();
            if now < backoff.until {
                return Err(Error::BackingOff {
                    server: server.into(),
                    scope: scope.into(),
                    retry_in: backoff.until - now,
                    source: Arc::new(backoff.error.clone()),
                });
            }
        }

        // A warm spare, made for a new scope like this one.
        // Not while an earlier server of the key is still closing: a key
        // never has two servers.
        if config.policy.warm_spares > 0
            && config.policy.scope == ScopePolicy::PerScope
            && reg.closing_of(k).is_empty()
            && let Some(session) = reg.adopt_spare(k, config.fingerprint())
        {
            reg.hits += 1;
            metrics::reused(server);
            tracing::debug!(
                server,
                scope,
                generation = session.generation(),
                "warm spare taken"
            );
            return Ok(Look::Adopted(Step::Hit(session)));
        }

        // A slot: one handed to this caller in the queue; a free (or
        // evictable) one if nobody queues before it; else its turn in line.
        let server_max = config.server_bound();
        let mut after = reg.closing_of(k);
        match queued {
            Some(queued) => match queued.waiter.take_grant() {
                Some(grant) => {
                    reg.unreserve(k);
                    after.extend(grant.predecessor());
                }
                None => return Ok(Look::Done(Step::Wait(None))),
            },
            None if !core.slots.waiting()
                && let Some((grant, evicted)) = reg.slot_for(server, server_max, max, &[]) =>
            {
                after.extend(grant.predecessor());
                to_signal.extend(evicted);
            }
            None => {
                // Queued before the pump reads any busy count (see `enqueue`).
                let waiter = core.slots.enqueue(server.into(), scope.into(), server_max);
                to_signal.extend(reg.pump(&core.slots, max));
                match waiter.take_grant() {
                    Some(grant) => {
                        reg.unreserve(k);
                        after.extend(grant.predecessor());
                    }
                    None => {
                        return Ok(Look::Done(Step::Wait(Some(Queued {
                            core,
                            waiter,
                            since: Instant::now(),
                        }))));
                    }
                }
            }
        }

        let previous = reg.gone.peek(k).copied();
        let create = self.create(
            reg,
            SessionKey::new(server, scope),
            core.next_generation(),
            1,
            after,
            previous,
        );
        // Callers of this key in line join the creation.
        if core.slots.waiting() {
            to_signal.extend(reg.pump(&core.slots, max));
        }
        Ok(Look::Create(Box::new(create)))
    }

    /// A live session of `server` made from the config with `fingerprint`,
    /// of any scope (a warm spare too), leased; for requests that any
    /// session of a server answers alike.
    pub(crate) fn any_live_session(&self, server: &str, fingerprint: u64) -> Option<Session> {
        let reg = self.inner.core.registry.lock();
        reg.live
            .iter()
            .find(|(k, l)| {
                &*k.server == server && l.session.fingerprint == fingerprint && l.is_usable()
            })
            .map(|(_, l)| l.session.lease())
    }

    /// Hands a caller the session created for it, unless it was evicted or
    /// closed before the caller got to it.
    pub(crate) fn claim(
        &self,
        created: &Arc<SessionInner>,
        mut ticket: JoinTicket<'_>,
    ) -> Option<Session> {
        let reg = self.inner.core.registry.lock();
        let view = (&*created.server, &**created.scope());
        let live = reg
            .live
            .peek(&view as &dyn KeyView)
            .is_some_and(|l| Arc::ptr_eq(&l.session, created) && l.is_usable());
        drop(reg);
        // Otherwise the ticket's drop gives the lease back.
        ticket.claimed = live;
        live.then(|| created.leased())
    }
}

enum Look<'a> {
    Done(Step<'a>),
    /// A warm spare taken by a new scope.
    Adopted(Step<'a>),
    /// Boxed: rare, and large next to the hit path's `Done`.
    Create(Box<Create>),
}

/// A creation decided under the lock, to start after unlocking.
struct Create {
    key: SessionKey,
    link: OwnerLink,
    tx: oneshot::Sender<Result<Arc<SessionInner>, Error>>,
    ready: Ready,
    made: Made,
    previous: Option<CloseReason>,
    after: Vec<CancellationToken>,
}
