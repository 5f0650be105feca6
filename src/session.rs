//! The handle callers get: an rmcp peer plus which session it is, holding a
//! lease that marks the session busy while it is alive.

use std::{
    fmt,
    ops::Deref,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use rmcp::{Peer, RoleClient};
use tokio::{runtime::Handle, sync::Notify, time::Instant};

use crate::{
    CloseReason, Error, handler::Hooks, key::SessionKey, registry::OwnerLink, slots::Slots,
};

/// What the registry keeps of an established session.
pub(crate) struct SessionInner {
    pub(crate) peer: Peer<RoleClient>,
    /// The runtime that hosts the session's tasks.
    runtime: Handle,
    /// What drives its blocking calls from plain threads.
    driver: crate::runtime::Driver,
    pub(crate) server: Arc<str>,
    pub(crate) scope: Arc<str>,
    pub(crate) generation: u64,
    /// The owner's link: why the session ended, and when.
    pub(crate) link: OwnerLink,
    /// Deadline of each request made through the session.
    pub(crate) call_timeout: Option<std::time::Duration>,
    /// Of the config the session was made from.
    pub(crate) fingerprint: u64,
    /// What the pool hears of the session's traffic (progress routes).
    pub(crate) hooks: Arc<Hooks>,
    previous: Option<CloseReason>,
    /// Whether a handle has reported `previous` yet: it is told once.
    told: AtomicBool,
    pid: Option<u32>,
    /// Leases taken, ever. Written only under the registry lock, so a load
    /// and a store count one: no read-modify-write on the hit path.
    leases: AtomicU64,
    /// Leases given back, ever, less the clones made (a clone is a lease
    /// taken outside the lock). Handles alive: `leases - releases`.
    releases: AtomicU64,
    /// When it was last known idle, as nanoseconds past `epoch`: stamped by
    /// each release if `stamp_releases`, else by the owner when it sees
    /// `used` (a clock read is a fifth of a hit's cost).
    last_used: AtomicU64,
    epoch: Instant,
    /// Released since `last_used` was stamped: the session may not idle out
    /// until the owner stamps it again.
    used: AtomicBool,
    stamp_releases: bool,
    /// Wakes the owner when the last handle is released, if it waits for
    /// that (`owner_waits`): a release nobody waits for skips the notify.
    pub(crate) released: Notify,
    owner_waits: AtomicBool,
    /// Wakes callers waiting for an evictable session.
    slots: Arc<Slots>,
}

impl SessionInner {
    /// Must be called on the runtime that hosts the session.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        peer: Peer<RoleClient>,
        key: &SessionKey,
        link: OwnerLink,
        (call_timeout, fingerprint): (Option<std::time::Duration>, u64),
        hooks: Arc<Hooks>,
        previous: Option<CloseReason>,
        pid: Option<u32>,
        (epoch, stamp_releases): (Instant, bool),
        slots: Arc<Slots>,
        driver: crate::runtime::Driver,
    ) -> Self {
        let inner = Self {
            peer,
            runtime: Handle::current(),
            driver,
            server: key.server.clone(),
            scope: key.scope.clone(),
            generation: link.generation,
            link,
            call_timeout,
            fingerprint,
            hooks,
            previous,
            // Nothing to tell (unless a scope takes it as a warm spare).
            told: AtomicBool::new(previous.is_none() && !crate::registry::is_spare(key)),
            pid,
            leases: AtomicU64::new(0),
            releases: AtomicU64::new(0),
            last_used: AtomicU64::new(0),
            epoch,
            used: AtomicBool::new(false),
            stamp_releases,
            released: Notify::new(),
            owner_waits: AtomicBool::new(false),
            slots,
        };
        inner.touch();
        inner
    }

    /// The scope of the session's key: a warm spare's is that of the scope
    /// that took it.
    pub(crate) fn scope(&self) -> &Arc<str> {
        self.link.adopted.get().map_or(&self.scope, |a| &a.scope)
    }

    fn previous(&self) -> Option<CloseReason> {
        match self.link.adopted.get() {
            Some(adoption) => adoption.previous,
            None => self.previous,
        }
    }

    /// The runtime that hosts the session's tasks.
    pub(crate) fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Handles alive.
    pub(crate) fn busy(&self) -> u64 {
        // Releases first: a release seen here has its lease seen next.
        let releases = self.releases.load(Ordering::SeqCst);
        self.leases.load(Ordering::SeqCst).wrapping_sub(releases)
    }

    /// Under the registry lock, the only place `leases` is written.
    fn count_leases(&self, n: u64) {
        let leases = self.leases.load(Ordering::Relaxed);
        self.leases.store(leases.wrapping_add(n), Ordering::Release);
    }

    pub(crate) fn last_used(&self) -> Instant {
        self.epoch + std::time::Duration::from_nanos(self.last_used.load(Ordering::Relaxed))
    }

    /// For the owner: stamps `last_used` now if a release came since the
    /// last stamp (unless releases stamp it themselves). Between such looks
    /// a session idles out late, never early.
    pub(crate) fn stamp_if_used(&self) {
        // Cleared before the clock is read: a release after the clear sets
        // it again, and one before is older than the stamp.
        if self.used.swap(false, Ordering::SeqCst) && !self.stamp_releases {
            self.touch();
        }
    }

    /// Whether a release came since `last_used` was stamped. A release
    /// that [`busy`](Self::busy) counted has its flag seen here: the flag is
    /// stored before the count, which `busy` reads with acquire.
    pub(crate) fn used_since_stamp(&self) -> bool {
        self.used.load(Ordering::SeqCst)
    }

    /// Whether only the owner's looks stamp `last_used`: then it must look
    /// now and then while the session is idle.
    pub(crate) fn stamped_by_owner(&self) -> bool {
        !self.stamp_releases
    }

    fn touch(&self) {
        let nanos = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_nanos();
        // The latest wins: two releases may stamp out of order.
        self.last_used
            .fetch_max(nanos.try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Marks the session busy and returns a handle that releases it on drop.
    /// Under the registry lock, so eviction and expiry see it.
    pub(crate) fn lease(self: &Arc<Self>) -> Session {
        // No timestamp: a busy session does not idle, and the release marks it used.
        self.count_leases(1);
        self.leased()
    }

    /// Marks the session busy for `n` handles to be made later with
    /// [`leased`](Self::leased). Under the registry lock.
    pub(crate) fn reserve(&self, n: usize) {
        self.count_leases(n as u64);
    }

    /// Gives one lease back.
    pub(crate) fn release(&self) {
        if self.stamp_releases {
            self.touch();
        }
        // Before the count: whoever sees this release counted sees the flag;
        // whoever sees the flag sees the stamp.
        self.used.store(true, Ordering::Release);
        // The last handle, unless a lease taken meanwhile is not yet seen
        // here: then its own release is the last one.
        let released = self.releases.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        if released == self.leases.load(Ordering::SeqCst) {
            if self.owner_waits.load(Ordering::SeqCst) {
                self.released.notify_one();
            }
            self.slots.released();
        }
    }

    /// For the owner: whether the session is busy, and if so, that the last
    /// release is to wake it through `released`.
    pub(crate) fn busy_for_owner(&self) -> bool {
        // Both sides SeqCst: either this read sees the last release, or that
        // release sees the flag and notifies (a permit, if not yet awaited).
        self.owner_waits.store(true, Ordering::SeqCst);
        let busy = self.busy() > 0;
        if !busy {
            self.owner_waits.store(false, Ordering::Relaxed);
        }
        busy
    }

    /// A handle for a lease already counted by [`reserve`](Self::reserve).
    pub(crate) fn leased(self: &Arc<Self>) -> Session {
        // Told once, to the first handle of this generation; one load on
        // the hit path once told.
        let replaced = if self.told.load(Ordering::Relaxed) {
            None
        } else {
            self.previous()
                .filter(|_| !self.told.swap(true, Ordering::Relaxed))
        };
        Session {
            inner: self.clone(),
            replaced,
        }
    }
}

/// A live, initialized MCP client session for one `(server, scope)` key.
///
/// Its request methods ([`call_tool`](Self::call_tool),
/// [`list_all_tools`](Self::list_all_tools), [`read_resource`](Self::read_resource),
/// [`send_request`](Self::send_request) for anything else, ...) are guarded:
/// a request ends when the session ends, with [`Error::SessionEnded`] naming
/// the reason, and within the server's call timeout if it has one. Errors are
/// the crate's [`Error`], naming server and scope.
///
/// It also dereferences to rmcp's [`Peer<RoleClient>`] for what these methods
/// do not cover (notifications, new protocol features); the methods of this
/// type take precedence, so `session.call_tool(..)` is the guarded one. See
/// [`peer`](Self::peer) for what a raw request does not get.
/// Cloning is cheap, and every clone talks to the same server session.
///
/// While a handle from [`get_session`](crate::SessionPool::get_session) (or
/// any clone of it) is alive, the session counts as **busy**: it is not
/// evicted, and it does not expire. Get a handle for each call and drop it
/// afterwards, rather than storing it. The pool may still close a busy
/// session (`close_*`, the server dying); its requests then fail with
/// [`Error::SessionEnded`].
pub struct Session {
    pub(crate) inner: Arc<SessionInner>,
    replaced: Option<CloseReason>,
}

impl Clone for Session {
    /// Another handle, busy like this one: no allocation, one atomic
    /// subtract (from the releases).
    fn clone(&self) -> Self {
        // Before the original can be dropped: its release never makes the
        // count look zero while this clone lives.
        self.inner.releases.fetch_sub(1, Ordering::SeqCst);
        Session {
            inner: self.inner.clone(),
            replaced: self.replaced,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.inner.release();
    }
}

impl Session {
    fn inner(&self) -> &SessionInner {
        &self.inner
    }

    /// The server name of this session's key.
    pub fn server(&self) -> &str {
        &self.inner().server
    }

    /// The scope of this session's key.
    pub fn scope(&self) -> &str {
        self.inner().scope()
    }

    /// A number that is different for every session the pool creates. When a
    /// key's session is replaced the new one has a different generation, and
    /// the server's state is gone.
    pub fn generation(&self) -> u64 {
        self.inner().generation
    }

    /// Why the previous session of this key ended, if this session replaced
    /// one: the server's state from before (an open page, a login) is gone.
    /// An agent can tell its model so ("the browser was restarted") instead
    /// of failing mysteriously.
    ///
    /// Told once: only the first handle that [`get_session`] returns for a
    /// new session (and clones of that handle) report it; every later
    /// handle says `None`, so a tool wrapper that checks it on every call
    /// tells its model once. `None` also for a key's first session (as far
    /// as the pool remembers: it keeps the reasons of recently closed keys).
    ///
    /// [`get_session`]: crate::SessionPool::get_session
    pub fn replaced(&self) -> Option<CloseReason> {
        self.replaced
    }

    /// The MCP protocol version this session negotiated: `2026-07-28` with
    /// a server reached through `server/discover`, an earlier one through
    /// `initialize` (see [`Protocol`](crate::Protocol)).
    pub fn protocol_version(&self) -> Option<rmcp::model::ProtocolVersion> {
        self.inner()
            .peer
            .peer_info()
            .map(|info| info.protocol_version.clone())
    }

    /// The process id of a stdio server (which is also its process group);
    /// `None` for other transports.
    pub fn server_pid(&self) -> Option<u32> {
        self.inner().pid
    }

    /// The raw rmcp peer of this session (also reachable through `Deref`),
    /// for notifications and anything the guarded request methods do not
    /// cover.
    ///
    /// Requests made directly on the peer are **not guarded**: they have no
    /// call timeout, their errors are rmcp's, and in rmcp up to at least 3.11
    /// a request that races the session's close can wait forever. rmcp's
    /// service loop drops its request channel's receiver without closing and
    /// draining it first, so a request queued in that instant keeps its
    /// responder alive in the channel, which this handle keeps open; closing
    /// the receiver and draining it before the transport closes fixes that
    /// upstream. Prefer this type's own methods ([`call_tool`](Self::call_tool),
    /// [`send_request`](Self::send_request), ...), which end when the session
    /// ends.
    pub fn peer(&self) -> &Peer<RoleClient> {
        &self.inner().peer
    }

    /// Runs any future, typically a request on this session, to completion
    /// from sync code. Same rules as
    /// [`call_tool_blocking`](Self::call_tool_blocking).
    ///
    /// ```no_run
    /// # fn f(session: mcp_session_pool::Session) -> Result<(), Box<dyn std::error::Error>> {
    /// let tools = session.block_on(session.list_all_tools())??;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::BlockingNotAllowed`] when called from a current-thread
    /// runtime, or (with `OwnerRuntime::Auto` or `Dedicated`) after the pool
    /// that made the session, and the runtime it ran, was dropped.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> Result<F::Output, Error> {
        crate::blocking::block_on(&self.inner().driver, fut)
    }
}

impl Deref for Session {
    type Target = Peer<RoleClient>;

    fn deref(&self) -> &Self::Target {
        &self.inner().peer
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner();
        f.debug_struct("Session")
            .field("server", &inner.server)
            .field("scope", inner.scope())
            .field("generation", &inner.generation)
            .field("replaced", &self.replaced)
            .finish_non_exhaustive()
    }
}
