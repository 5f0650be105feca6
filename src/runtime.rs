//! Where owner tasks run, and shutting the pool's own runtime down.

use std::{sync::Arc, time::Duration};

use tokio::runtime::{Handle, Runtime};

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
    Dedicated(Option<Runtime>),
    Handle(Handle),
    Caller,
}

impl Host {
    pub(crate) fn new(choice: &OwnerRuntime, threads: usize) -> Result<Self, Error> {
        Ok(match choice {
            OwnerRuntime::Dedicated => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("mcp-session-pool")
                    .on_thread_start(|| ON_DEDICATED_THREAD.with(|c| c.set(true)))
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Runtime {
                        source: Arc::new(e),
                    })?;
                Host::Dedicated(Some(rt))
            }
            OwnerRuntime::Handle(h) => {
                if h.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
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

    /// The runtime to spawn an owner on; `None` in `Caller` mode outside a
    /// runtime.
    pub(crate) fn handle(&self) -> Option<Handle> {
        match self {
            Host::Dedicated(rt) => rt.as_ref().map(|rt| rt.handle().clone()),
            Host::Handle(h) => Some(h.clone()),
            Host::Caller => Handle::try_current().ok(),
        }
    }

    /// Whether `close_all_blocking` may wait for owner tasks: only from
    /// outside any runtime (never stalling a runtime's tasks), and not in
    /// `Caller` mode, whose owners may sit on a runtime nobody drives.
    pub(crate) fn may_block_for_owners(&self) -> bool {
        match self {
            Host::Dedicated(_) | Host::Handle(_) => Handle::try_current().is_err(),
            Host::Caller => false,
        }
    }

    /// Called when the last pool handle drops, after every owner has been
    /// signalled: waits for the owners (where that cannot deadlock), then
    /// stops the pool's runtime.
    pub(crate) fn shut_down(&mut self, core: &Arc<Core>) {
        let bound = core.config.close_timeout + KILL_MARGIN;
        let Host::Dedicated(rt) = self else {
            // An application runtime: wait only where that cannot stall it.
            if self.may_block_for_owners() {
                core.owners.wait_zero(bound);
            }
            return;
        };
        let Some(rt) = rt.take() else { return };
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
