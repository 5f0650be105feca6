//! Closing sessions: by key, scope, server or all, from async or sync code.

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::{SessionPool, key::SessionKey, runtime::KILL_MARGIN};

impl SessionPool {
    /// Closes the session of `(server, scope)`, established or being created.
    /// Returns how many sessions it closed (0 or 1).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the session is taken out of the pool and its owner told
    /// to close before the first await; dropping this future only stops
    /// waiting for the teardown to finish.
    pub async fn close_session(&self, server: &str, scope: &str) -> usize {
        self.close_matching(|k| &*k.server == server && &*k.scope == scope)
            .await
    }

    /// Closes every session of `scope`, on every server. Returns how many.
    ///
    /// # Cancel safety
    ///
    /// As [`close_session`](Self::close_session).
    pub async fn close_scope(&self, scope: &str) -> usize {
        self.close_matching(|k| &*k.scope == scope).await
    }

    /// Closes every session of `server`, in every scope. Returns how many.
    ///
    /// # Cancel safety
    ///
    /// As [`close_session`](Self::close_session).
    pub async fn close_server(&self, server: &str) -> usize {
        self.close_matching(|k| &*k.server == server).await
    }

    /// Closes every session. The pool stays usable. Returns how many.
    ///
    /// # Cancel safety
    ///
    /// As [`close_session`](Self::close_session).
    pub async fn close_all(&self) -> usize {
        self.close_matching(|_| true).await
    }

    /// Closes every session and makes later [`get_session`](Self::get_session)
    /// calls fail with [`Error::PoolClosed`](crate::Error::PoolClosed). Returns how many it closed.
    ///
    /// # Cancel safety
    ///
    /// As [`close_session`](Self::close_session).
    pub async fn close(&self) -> usize {
        self.inner.core.registry.lock().closed = true;
        self.close_all().await
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.core.registry.lock().closed
    }

    /// [`close_all`](Self::close_all) for sync code. Never deadlocks.
    ///
    /// Every session is taken out and signalled at once. Called from outside
    /// any tokio runtime, with any [`OwnerRuntime`] but `Caller`, it then
    /// waits for the teardowns (at most the close timeout plus a few seconds). Inside a runtime, where blocking
    /// would stall other tasks or the owners themselves, and with
    /// [`OwnerRuntime::Caller`], whose owners may live on a runtime nobody is
    /// driving, it only signals: the owners finish in the background.
    ///
    /// [`OwnerRuntime`]: crate::OwnerRuntime
    /// [`OwnerRuntime::Caller`]: crate::OwnerRuntime::Caller
    pub fn close_all_blocking(&self) -> usize {
        let (closed, done) = self.take(|_| true);
        if self.inner.host.may_block_for_owners() {
            let bound = self.inner.core.config.close_timeout + KILL_MARGIN;
            let deadline = std::time::Instant::now() + bound;
            for done in &done {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                wait_cancelled_blocking(done, left);
            }
        }
        closed
    }

    /// Takes matching sessions out under the lock and signals their owners.
    /// Returns how many it took, and the done signals of those and of the
    /// matching sessions that were already closing (evicted, expired,
    /// replaced), which a close waits for too.
    fn take(&self, matches: impl Fn(&SessionKey) -> bool) -> (usize, Vec<CancellationToken>) {
        let (links, already) = self.inner.core.registry.lock().take_matching(matches);
        for link in links.iter().chain(&already) {
            link.signal();
        }
        let done = links.iter().chain(&already).map(|l| l.done.clone());
        (links.len(), done.collect())
    }

    async fn close_matching(&self, matches: impl Fn(&SessionKey) -> bool) -> usize {
        let (closed, done) = self.take(matches);
        let bound = self.inner.core.config.close_timeout + KILL_MARGIN;
        join_all(
            done.iter()
                .map(|d| tokio::time::timeout(bound, d.cancelled())),
        )
        .await;
        closed
    }
}

/// Waits for a token without a runtime: a token's `cancelled()` future only
/// needs a waker, so a parked thread can drive it.
fn wait_cancelled_blocking(token: &CancellationToken, limit: Duration) {
    if token.is_cancelled() {
        return;
    }
    let thread = std::thread::current();
    let waker = std::task::Waker::from(Arc::new(ThreadWaker(thread)));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(token.cancelled());
    let deadline = std::time::Instant::now() + limit;
    while fut.as_mut().poll(&mut cx).is_pending() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::park_timeout(left);
    }
}

struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}
