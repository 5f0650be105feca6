//! The handle callers get: an rmcp peer plus which session it is.

use std::{fmt, ops::Deref, sync::Arc};

use rmcp::{
    Peer, RoleClient,
    model::{CallToolRequestParams, CallToolResult},
};
use tokio::runtime::Handle;

use crate::Error;

/// A live, initialized MCP client session for one `(server, scope)` key.
///
/// It dereferences to rmcp's [`Peer<RoleClient>`], so every client call is
/// available on it: `session.call_tool(..)`, `session.list_tools(..)`, ...
/// Cloning is cheap, and every clone talks to the same server session.
///
/// Holding a `Session` does not keep the session open: the pool may close it
/// (eviction, `close_*`, the server dying), after which calls fail with
/// rmcp's `TransportClosed`. Get a fresh one from the pool for each call
/// rather than storing it.
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    peer: Peer<RoleClient>,
    /// The runtime that hosts the session's tasks, to drive blocking calls.
    runtime: Handle,
    server: Arc<str>,
    scope: Arc<str>,
    generation: u64,
}

impl Session {
    /// Must be called on the runtime that hosts the session.
    pub(crate) fn new(
        peer: Peer<RoleClient>,
        server: Arc<str>,
        scope: Arc<str>,
        generation: u64,
    ) -> Self {
        Self {
            inner: Arc::new(SessionInner {
                peer,
                runtime: Handle::current(),
                server,
                scope,
                generation,
            }),
        }
    }

    /// The server name of this session's key.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// The scope of this session's key.
    pub fn scope(&self) -> &str {
        &self.inner.scope
    }

    /// A number that is different for every session the pool creates. When a
    /// key's session is replaced (it died, was evicted or closed) the new one
    /// has a different generation, and the server's state is gone.
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The rmcp peer of this session (also reachable through `Deref`).
    pub fn peer(&self) -> &Peer<RoleClient> {
        &self.inner.peer
    }

    /// Calls a tool from sync code, with no runtime needed.
    ///
    /// The call runs on the runtime that hosts the session. Outside any
    /// runtime this blocks the thread; inside a multi-threaded runtime it
    /// uses `block_in_place` and works too.
    ///
    /// # Errors
    ///
    /// [`Error::Call`] if the call fails (the server answered with an error,
    /// or the session is gone); [`Error::BlockingNotAllowed`] when called
    /// from a current-thread runtime, where blocking could deadlock: use
    /// `call_tool` there.
    pub fn call_tool_blocking(
        &self,
        params: CallToolRequestParams,
    ) -> Result<CallToolResult, Error> {
        self.block_on(self.inner.peer.call_tool(params))?
            .map_err(|source| Error::Call {
                server: self.inner.server.clone(),
                scope: self.inner.scope.clone(),
                source: Arc::new(source),
            })
    }

    /// Runs any future, typically a call on this session, to completion from
    /// sync code, on the runtime that hosts the session. Same rules as
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
    /// [`Error::BlockingNotAllowed`] when called from a current-thread runtime.
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> Result<F::Output, Error> {
        crate::blocking::block_on(&self.inner.runtime, fut)
    }

    pub(crate) fn is_transport_closed(&self) -> bool {
        self.inner.peer.is_transport_closed()
    }
}

impl Deref for Session {
    type Target = Peer<RoleClient>;

    fn deref(&self) -> &Self::Target {
        &self.inner.peer
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.inner.server)
            .field("scope", &self.inner.scope)
            .field("generation", &self.inner.generation)
            .finish_non_exhaustive()
    }
}
