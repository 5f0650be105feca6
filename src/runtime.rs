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
    Own(Own),
    Handle(Handle),
    Caller,
    /// `Auto`: the multi-threaded runtime the pool was built in while it
    /// runs, then (or with no such runtime) a runtime of the pool's own,
    /// started when first needed.
    Auto {
        home: Option<Home>,
        own: Own,
    },
}

/// The pool's own runtime.
pub(crate) struct Own {
    rt: Mutex<Option<Runtime>>,
    threads: usize,
}

/// The application runtime an `Auto` pool was built in, and whether it still
/// runs: a task parked on it forever clears `alive` when the runtime drops it
/// at shutdown.
pub(crate) struct Home {
    handle: Handle,
    alive: Arc<AtomicBool>,
    sentinel: AbortHandle,
}

impl Host {
    pub(crate) fn new(choice: &OwnerRuntime, threads: usize) -> Result<Self, Error> {
        Ok(match choice {
            OwnerRuntime::Auto => {
                let home = Handle::try_current()
                    .ok()
                    .filter(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
                    .map(Home::watch);
                let own = Own::new(threads);
                if home.is_none() {
                    // Nothing to share: start it now, so `build` reports a
                    // failure to start threads.
                    own.handle()?;
                }
                Host::Auto { home, own }
            }
            OwnerRuntime::Dedicated => {
                let own = Own::new(threads);
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
            Host::Auto { home, own } => match home {
                Some(home) if home.alive.load(Ordering::Acquire) => Ok(home.handle.clone()),
                _ => own.handle(),
            },
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
            Host::Own(own) | Host::Auto { own, .. } => own.rt.get_mut().take(),
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
            rt: Mutex::new(None),
            threads,
        }
    }

    /// The runtime's handle, starting the runtime if it has not started yet.
    fn handle(&self) -> Result<Handle, Error> {
        let mut rt = self.rt.lock();
        if let Some(rt) = &*rt {
            return Ok(rt.handle().clone());
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
        *rt = Some(started);
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
            handle,
            alive,
            sentinel,
        }
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        self.sentinel.abort();
    }
}
