//! The public pool handle.

use std::{sync::Arc, time::Duration};

use rmcp::{
    ServiceError,
    model::{ClientRequest, PingRequest},
    service::PeerRequestOptions,
};

use crate::{
    Builder, CloseReason, Error, PoolStatus, ServerConfig, Session, builder::PoolConfig,
    checkout::Step, core::Core, key::SessionKey, runtime::Host,
};

/// Upper bound on a health check's wait for a `ping` reply.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool of persistent MCP client sessions, one per `(server, scope)` key.
///
/// The first [`get_session`](Self::get_session) for a key starts the server
/// and runs the MCP handshake; concurrent callers for that key share the one
/// creation; later calls get the same session back until it is closed,
/// evicted or dies, and then the next call makes a new one.
///
/// The handle is a cheap [`Clone`] over an [`Arc`]: clone it into every task
/// rather than wrapping it in a lock. When the last handle is dropped every
/// session is told to close. Dropped in async code, the drop never blocks
/// the worker: the teardowns go on in the background (on the runtime hosting
/// the sessions, or on a thread of the pool's). If that runtime ends first
/// (`main` returns, say), the teardowns still running are cut short and
/// their servers killed at once, without the stdin EOF and `SIGTERM` grace.
/// Dropped in sync code, it waits (at most the close timeout plus a few
/// seconds) until every server process is gone. To wait from async code,
/// call [`close`](Self::close) before the runtime ends.
#[derive(Clone)]
pub struct SessionPool {
    pub(crate) inner: Arc<PoolInner>,
}

pub(crate) struct PoolInner {
    pub(crate) core: Arc<Core>,
    pub(crate) host: Host,
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Every session's close token is a child of the root.
        self.core.root.cancel();
        self.host.shut_down(&self.core);
    }
}

impl SessionPool {
    /// A pool with every default: see [`Builder`].
    ///
    /// # Panics
    ///
    /// If the pool's own runtime's threads cannot be started; use
    /// [`SessionPool::builder`] to get that as an error instead.
    pub fn new() -> Self {
        Builder::default()
            .build()
            .expect("failed to start the session pool's runtime")
    }

    /// Starts building a pool with non-default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn from_config(config: PoolConfig) -> Result<Self, Error> {
        let host = Host::new(&config.owner_runtime, config.dedicated_threads)?;
        Ok(Self {
            inner: Arc::new(PoolInner {
                core: Arc::new(Core::new(config)),
                host,
            }),
        })
    }

    /// Returns the live session for `(server, scope)`, creating it with
    /// `config` if there is none. `config` is only read when a session is
    /// created.
    ///
    /// The session counts as busy while the returned handle (or a clone) is
    /// alive: get one per tool call and drop it afterwards.
    ///
    /// # Errors
    ///
    /// Creation failures ([`Error::Spawn`], [`Error::Connect`],
    /// [`Error::ConnectTimeout`]) are handed to every caller that waited on
    /// that creation; further calls for the key within the failure backoff
    /// get [`Error::BackingOff`] without a new attempt.
    /// [`Error::ClosedWhileConnecting`] if a `close_*` call took the creation
    /// out; [`Error::PoolFull`] if every slot stayed busy or in creation for
    /// the connect timeout; [`Error::PoolClosed`] after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. The creation runs in the session's owner task, not in
    /// this future: dropping this future (even as the first caller of a new
    /// key) neither cancels nor duplicates the creation, and later callers
    /// get its result.
    ///
    /// # Timing
    ///
    /// Must be polled inside a tokio runtime (it uses tokio's timer). The
    /// connect timeout bounds one creation; a caller can wait longer in
    /// total: for a free slot (at most the connect timeout), for a replaced
    /// server of the same key to finish closing, and then for the creation.
    pub async fn get_session(
        &self,
        server: &str,
        scope: &str,
        config: &ServerConfig,
    ) -> Result<Session, Error> {
        // Only a caller that waits for a slot reads the clock.
        let mut queued = None;
        loop {
            match self.step(server, scope, config, queued.as_ref())? {
                Step::Hit(session) => return Ok(session),
                // Cancel safety: dropping the handle is all a cancel does.
                Step::Check(session) => {
                    // Boxed: a rare path, which would otherwise make every
                    // `get_session` future (and each task spawning one) large.
                    if Box::pin(self.is_healthy(&session)).await {
                        return Ok(session);
                    }
                }
                // Cancel safety: this is a clone of the shared result, and
                // the ticket gives the caller's lease back if dropped; the
                // owner task runs on whether or not anyone awaits it.
                Step::Join(ready, ticket) => {
                    // Out of the slot queue: the creation has a slot.
                    if let Some(waited) = queued.take() {
                        crate::metrics::slot_wait(server, waited.since.elapsed());
                    }
                    let created = ready.await?;
                    if let Some(session) = self.claim(&created, ticket) {
                        return Ok(session);
                    }
                }
                // Cancel safety: dropping the place in the queue leaves it
                // and hands a slot granted meanwhile to the next caller.
                Step::Wait(new) => {
                    if new.is_some() {
                        queued = new;
                    }
                    let Some(waiting) = &queued else {
                        unreachable!("a caller waits only in the queue")
                    };
                    let core = &self.inner.core;
                    let deadline = waiting.since + core.config.connect_timeout;
                    if tokio::time::timeout_at(deadline, waiting.woken())
                        .await
                        .is_err()
                    {
                        // A slot handed over at the last moment still counts.
                        if waiting.granted() {
                            continue;
                        }
                        return Err(Error::PoolFull {
                            server: server.into(),
                            scope: scope.into(),
                            max_sessions: core.config.max_sessions,
                            server_max_sessions: config.server_bound(),
                            waited: waiting.since.elapsed(),
                        });
                    }
                }
            }
        }
    }

    /// [`get_session`](Self::get_session) for sync code, with no runtime needed.
    ///
    /// Works from plain threads and from inside a multi-threaded tokio runtime
    /// (through `block_in_place`). Sessions outlive the calling thread with
    /// [`OwnerRuntime::Auto`] (the default), [`OwnerRuntime::Dedicated`] or
    /// [`OwnerRuntime::Handle`].
    ///
    /// ```no_run
    /// use mcp_session_pool::{ServerConfig, SessionPool, rmcp::model::CallToolRequestParams};
    ///
    /// // A sync tool function, as a framework calls it.
    /// fn browse(pool: &SessionPool, thread_id: &str) -> Result<String, mcp_session_pool::Error> {
    ///     let cfg = ServerConfig::stdio("my-browser-server");
    ///     let session = pool.get_session_blocking("browser", thread_id, &cfg)?;
    ///     let result = session.call_tool_blocking(CallToolRequestParams::new("snapshot"))?;
    ///     Ok(format!("{result:?}"))
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get_session`](Self::get_session), plus
    /// [`Error::BlockingNotAllowed`] when called from a current-thread
    /// runtime (blocking would stall it), or with [`OwnerRuntime::Caller`]
    /// outside any runtime (there is no runtime to host the session).
    ///
    /// [`OwnerRuntime::Auto`]: crate::OwnerRuntime::Auto
    /// [`OwnerRuntime::Dedicated`]: crate::OwnerRuntime::Dedicated
    /// [`OwnerRuntime::Handle`]: crate::OwnerRuntime::Handle
    /// [`OwnerRuntime::Caller`]: crate::OwnerRuntime::Caller
    pub fn get_session_blocking(
        &self,
        server: &str,
        scope: &str,
        config: &ServerConfig,
    ) -> Result<Session, Error> {
        let driver = self.inner.host.blocking_driver()?;
        crate::blocking::block_on(&driver, self.get_session(server, scope, config))?
    }

    /// [`get_session`](Self::get_session) with the config registered under
    /// `server` through [`Builder::servers`].
    ///
    /// ```no_run
    /// use mcp_session_pool::{Servers, SessionPool};
    ///
    /// # async fn run() -> Result<(), mcp_session_pool::Error> {
    /// let servers = Servers::from_json(&std::fs::read_to_string("mcp.json").unwrap())?;
    /// let pool = SessionPool::builder().servers(servers).build()?;
    /// let session = pool.session("browser", "thread-42").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::UnknownServer`] if no server has that name; otherwise as
    /// [`get_session`](Self::get_session).
    ///
    /// # Cancel safety
    ///
    /// As [`get_session`](Self::get_session).
    pub async fn session(&self, server: &str, scope: &str) -> Result<Session, Error> {
        let config = self.registered(server, scope)?;
        self.get_session(server, scope, config).await
    }

    /// [`session`](Self::session) for sync code; see
    /// [`get_session_blocking`](Self::get_session_blocking).
    ///
    /// # Errors
    ///
    /// As [`session`](Self::session) and
    /// [`get_session_blocking`](Self::get_session_blocking).
    pub fn session_blocking(&self, server: &str, scope: &str) -> Result<Session, Error> {
        let config = self.registered(server, scope)?;
        self.get_session_blocking(server, scope, config)
    }

    /// [`list_tools`](Self::list_tools) with the config registered under
    /// `server` through [`Builder::servers`].
    ///
    /// # Errors
    ///
    /// [`Error::UnknownServer`] if no server has that name; otherwise as
    /// [`list_tools`](Self::list_tools).
    ///
    /// # Cancel safety
    ///
    /// As [`list_tools`](Self::list_tools).
    pub async fn tools(&self, server: &str, scope: &str) -> Result<crate::Tools, Error> {
        let config = self.registered(server, scope)?;
        self.list_tools(server, scope, config).await
    }

    /// The servers registered through [`Builder::servers`].
    pub fn servers(&self) -> &crate::Servers {
        &self.inner.core.config.servers
    }

    fn registered(&self, server: &str, scope: &str) -> Result<&ServerConfig, Error> {
        self.inner
            .core
            .config
            .servers
            .get(server)
            .ok_or_else(|| Error::UnknownServer {
                server: server.into(),
                scope: scope.into(),
            })
    }

    /// Pings a session; a failure takes it out of the pool for good.
    async fn is_healthy(&self, session: &Session) -> bool {
        let core = &self.inner.core;
        let limit = core.config.connect_timeout.min(PING_TIMEOUT);
        let request = ClientRequest::PingRequest(PingRequest::default());
        let reply = async {
            let handle = session
                .send_request_with_option(request, PeerRequestOptions::with_timeout(limit))
                .await?;
            handle.await_response().await
        };
        match reply.await {
            // An error reply is a reply: the server is alive.
            Ok(_) | Err(ServiceError::McpError(_)) => true,
            Err(error) => {
                tracing::info!(
                    server = session.server(),
                    scope = session.scope(),
                    generation = session.generation(),
                    %error,
                    "health check failed; replacing the session"
                );
                let key = SessionKey::new(session.server(), session.scope());
                let link = core.registry.lock().remove_live_generation(
                    &key,
                    session.generation(),
                    CloseReason::HealthCheck,
                );
                if let Some(link) = link {
                    link.signal();
                }
                false
            }
        }
    }

    /// Sessions live, being created and closing, and the pool's counters.
    /// See [`PoolStatus`] for how consistent the snapshot is.
    pub fn status(&self) -> PoolStatus {
        let core = &self.inner.core;
        let counts = {
            let reg = core.registry.lock();
            (
                reg.live.len(),
                reg.inflight.len(),
                reg.closing.len(),
                reg.hits,
            )
        };
        core.stats.snapshot(counts, core.slots.len())
    }
}

impl Default for SessionPool {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}
