//! Where owner tasks run, and shutting the pool's own runtime down.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{
    runtime::{Handle, Runtime, RuntimeFlavor},
    task::AbortHandle,
};

use crate::{Error, builder::OwnerRuntime, core::Core};

/// Longest a teardown can take past the close timeout: the reap after
/// SIGKILL, the wait for the group to empty, the stderr reader, the service
/// loop, and a second of slack.
pub(crate) const KILL_MARGIN: Duration = Duration::from_secs(
    2 * crate::process::REAP_AFTER_KILL.as_secs() + crate::owner::SERVICE_EXIT_GRACE.as_secs() + 2,
);

thread_local! {
    static ON_DEDICATED_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) enum Host {
    /// `Dedicated`: the pool's own runtime, started with the pool.
    Own(Arc<Own>),
    Handle(Handle),
    Caller,
    /// `Auto`: the multi-threaded runtime the pool was built in while it
    /// runs, then (or with no such runtime) a runtime of the pool's own,
    /// started when first needed.
    Auto {
        home: Option<Home>,
        own: Arc<Own>,
    },
}

/// The pool's own runtime.
pub(crate) struct Own {
    rt: Mutex<OwnState>,
    threads: usize,
}

enum OwnState {
    NotStarted,
    Running(Runtime),
    /// The pool was dropped: sync callers holding a session get an error
    /// rather than a runtime started again.
    ShutDown,
}

/// The application runtime an `Auto` pool was built in, while it runs: a
/// task parked on it forever clears `alive` when the runtime drops it at
/// shutdown, and the handle is let go then.
pub(crate) struct Home {
    handle: Mutex<Option<Handle>>,
    alive: Arc<AtomicBool>,
    sentinel: AbortHandle,
}

/// What sync code uses to drive a session's futures from a plain thread.
#[derive(Clone)]
pub(crate) enum Driver {
    /// The runtime hosting the session, which the application keeps alive.
    Runtime(Handle),
    /// The pool's own runtime (started if need be), which lives as long as
    /// the pool: never an application runtime that may shut down mid-call.
    Own(Arc<Own>),
}

impl Driver {
    pub(crate) fn handle(&self) -> Result<Handle, Error> {
        match self {
            Driver::Runtime(h) => Ok(h.clone()),
            Driver::Own(own) => own.handle(),
        }
    }
}

impl Host {
    pub(crate) fn new(choice: &OwnerRuntime, threads: usize) -> Result<Self, Error> {
        Ok(match choice {
            OwnerRuntime::Auto => {
                let home = Handle::try_current()
                    .ok()
                    .filter(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
                    .filter(|h| {
                        let usable = has_drivers(h);
                        if !usable {
                            tracing::warn!(
                                "the runtime the pool is built in has its IO or time driver off \
                                 (the panic message just printed is this check); sessions live \
                                 on a runtime of the pool's own"
                            );
                        }
                        usable
                    })
                    .map(Home::watch);
                let own = Arc::new(Own::new(threads));
                if home.is_none() {
                    // Nothing to share: start it now, so `build` reports a
                    // failure to start threads.
                    own.handle()?;
                }
                Host::Auto { home, own }
            }
            OwnerRuntime::Dedicated => {
                let own = Arc::new(Own::new(threads));
                own.handle()?;
                Host::Own(own)
            }
            OwnerRuntime::Handle(h) => {
                if h.runtime_flavor() != RuntimeFlavor::MultiThread {
                    // Its tasks only run inside that runtime's own `block_on`,
                    // so owners and blocking callers could wait forever.
                    return Err(Error::InvalidConfig {
                        reason: "OwnerRuntime::Handle needs a multi-threaded runtime",
                    });
                }
                if !has_drivers(h) {
                    return Err(Error::InvalidConfig {
                        reason: "OwnerRuntime::Handle needs a runtime with IO and time enabled \
                                 (`enable_all`)",
                    });
                }
                Host::Handle(h.clone())
            }
            OwnerRuntime::Caller => Host::Caller,
        })
    }

    /// The runtime to spawn an owner on.
    pub(crate) fn handle(&self) -> Result<Handle, Error> {
        match self {
            Host::Own(own) => own.handle(),
            Host::Handle(h) => Ok(h.clone()),
            Host::Caller => Handle::try_current().map_err(|_| Error::BlockingNotAllowed {
                reason: "OwnerRuntime::Caller has no runtime to host a session outside a runtime; \
                         use OwnerRuntime::Auto, OwnerRuntime::Dedicated or OwnerRuntime::Handle",
            }),
            Host::Auto { home, own } => match home.as_ref().and_then(Home::handle) {
                Some(home) => Ok(home),
                None => own.handle(),
            },
        }
    }

    /// How sync code drives the futures of a session spawned on `on`.
    pub(crate) fn driver(&self, on: &Handle) -> Driver {
        match self {
            Host::Own(own) | Host::Auto { own, .. } => Driver::Own(own.clone()),
            Host::Handle(_) | Host::Caller => Driver::Runtime(on.clone()),
        }
    }

    /// The runtime `get_session_blocking` drives its future on from a plain
    /// thread.
    pub(crate) fn blocking_driver(&self) -> Result<Driver, Error> {
        Ok(match self {
            Host::Own(own) | Host::Auto { own, .. } => Driver::Own(own.clone()),
            Host::Handle(h) => Driver::Runtime(h.clone()),
            Host::Caller => Driver::Runtime(self.handle()?),
        })
    }

    /// The home runtime refused a task: it is shutting down, though its
    /// sentinel has not been dropped yet.
    /// Returns whether the task should go to the pool's own runtime.
    pub(crate) fn home_refused(&self) -> bool {
        match self {
            Host::Auto {
                home: Some(home), ..
            } => home.alive.swap(false, Ordering::AcqRel),
            _ => false,
        }
    }

    /// Whether `close_all_blocking` may wait for owner tasks: only from
    /// outside any runtime (never stalling a runtime's tasks), and not in
    /// `Caller` mode, whose owners may sit on a runtime nobody drives.
    pub(crate) fn may_block_for_owners(&self) -> bool {
        match self {
            Host::Caller => false,
            _ => Handle::try_current().is_err(),
        }
    }

    /// Called when the last pool handle drops, after every owner has been
    /// signalled: waits for the owners (where that cannot deadlock), then
    /// stops the pool's runtime.
    pub(crate) fn shut_down(&mut self, core: &Arc<Core>) {
        let own = match self {
            Host::Own(own) | Host::Auto { own, .. } => {
                match std::mem::replace(&mut *own.rt.lock(), OwnState::ShutDown) {
                    OwnState::Running(rt) => Some(rt),
                    OwnState::NotStarted | OwnState::ShutDown => None,
                }
            }
            Host::Handle(_) | Host::Caller => None,
        };
        let bound = core.config.close_timeout + KILL_MARGIN;
        let Some(rt) = own else {
            // An application runtime: wait only where that cannot stall it.
            if self.may_block_for_owners() {
                core.owners.wait_zero(bound);
            }
            return;
        };
        if ON_DEDICATED_THREAD.with(|c| c.get()) || Handle::try_current().is_ok() {
            // Dropped in async code (or on one of its own threads): never
            // block a worker; the teardowns finish on a thread of their own.
            let core = core.clone();
            let waiter = std::thread::Builder::new()
                .name("mcp-pool-shutdown".into())
                .spawn(move || {
                    if !core.owners.wait_zero(bound) {
                        tracing::warn!(
                            "session owners still running after the close timeout; shutting down"
                        );
                    }
                    rt.shutdown_timeout(Duration::from_secs(1));
                });
            if let Err(e) = waiter {
                tracing::warn!(%e, "could not start the shutdown thread; servers are killed at once");
            }
            return;
        }
        if !core.owners.wait_zero(bound) {
            tracing::warn!("session owners still running after the close timeout; shutting down");
        }
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}

impl Own {
    fn new(threads: usize) -> Self {
        Self {
            rt: Mutex::new(OwnState::NotStarted),
            threads,
        }
    }

    /// The runtime's handle, starting the runtime if it has not started yet.
    pub(crate) fn handle(&self) -> Result<Handle, Error> {
        let mut rt = self.rt.lock();
        match &*rt {
            OwnState::Running(rt) => return Ok(rt.handle().clone()),
            OwnState::ShutDown => {
                return Err(Error::BlockingNotAllowed {
                    reason: "the pool that made this session was dropped, and its runtime with it",
                });
            }
            OwnState::NotStarted => {}
        }
        let started = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .thread_name("mcp-session-pool")
            .on_thread_start(|| ON_DEDICATED_THREAD.with(|c| c.set(true)))
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime {
                source: Arc::new(e),
            })?;
        let handle = started.handle().clone();
        *rt = OwnState::Running(started);
        Ok(handle)
    }
}

impl Home {
    fn watch(handle: Handle) -> Self {
        struct ClearOnDrop(Arc<AtomicBool>);
        impl Drop for ClearOnDrop {
            fn drop(&mut self) {
                if self.0.swap(false, Ordering::AcqRel) {
                    tracing::debug!(
                        "the runtime the pool was built in shut down; \
                         new sessions live on a runtime of the pool's own"
                    );
                }
            }
        }
        let alive = Arc::new(AtomicBool::new(true));
        let flag = ClearOnDrop(alive.clone());
        let sentinel = handle
            .spawn(async move {
                let _flag = flag;
                std::future::pending::<()>().await
            })
            .abort_handle();
        Self {
            handle: Mutex::new(Some(handle)),
            alive,
            sentinel,
        }
    }

    /// The home runtime while it runs; once it is gone, its handle (and the
    /// drivers it keeps alive) is let go.
    fn handle(&self) -> Option<Handle> {
        let mut handle = self.handle.lock();
        if self.alive.load(Ordering::Acquire) {
            return handle.clone();
        }
        *handle = None;
        None
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // The pool is going, not the runtime: no "shut down" event.
        self.alive.store(false, Ordering::Release);
        self.sentinel.abort();
    }
}

/// Whether `handle`'s runtime has the IO and time drivers sessions need.
/// tokio offers no query, only a panic on first use, so this uses each
/// once and catches the panic (the panic hook still runs).
fn has_drivers(handle: &Handle) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _in = handle.enter();
        drop(tokio::time::sleep(Duration::ZERO));
        // No socket to probe with (the open-file limit, say): unknown,
        // which counts as no.
        let (probe, _peer) = std::os::unix::net::UnixStream::pair().ok()?;
        probe.set_nonblocking(true).ok()?;
        tokio::net::UnixStream::from_std(probe).ok()
    }))
    .is_ok_and(|probed| probed.is_some())
}
