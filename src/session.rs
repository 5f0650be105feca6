//! The handle callers get: an rmcp peer plus which session it is.

use std::{fmt, ops::Deref, sync::Arc};

use rmcp::{Peer, RoleClient};

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
    server: Arc<str>,
    scope: Arc<str>,
    generation: u64,
}

impl Session {
    pub(crate) fn new(
        peer: Peer<RoleClient>,
        server: Arc<str>,
        scope: Arc<str>,
        generation: u64,
    ) -> Self {
        Self {
            inner: Arc::new(SessionInner {
                peer,
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
