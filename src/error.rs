//! The crate's one error type.

use std::{sync::Arc, time::Duration};

use crate::CloseReason;

/// Everything that can go wrong when getting a session from a [`SessionPool`].
///
/// Every variant that concerns a session names its `server` and `scope`, so a
/// log line or an error shown to a model says which session failed. Sources
/// are held in an [`Arc`] so that one failed creation can be handed, as the
/// same error, to every caller that waited on it: the error is `Clone`.
///
/// [`SessionPool`]: crate::SessionPool
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server process could not be started (command not found, not
    /// executable, bad working directory, ...).
    #[error(
        "failed to start MCP server `{server}` for scope `{scope}`: {source}{}",
        match source.raw_os_error() {
            Some(code) if code == nix::errno::Errno::EMFILE as i32 =>
                " (the process's open-file limit is reached: each stdio session holds about 4 \
                 descriptors; raise `ulimit -n` or lower max_sessions)",
            Some(code) if code == nix::errno::Errno::ENFILE as i32 =>
                " (the system-wide open-file limit is reached)",
            _ => "",
        }
    )]
    Spawn {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The transport could not be opened or the MCP `initialize` handshake
    /// failed (the server exited, closed its output, or answered wrongly).
    #[error("failed to connect to MCP server `{server}` for scope `{scope}`: {source}")]
    Connect {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
        /// What failed: a transport error or rmcp's initialize error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },

    /// Spawn, connect and the MCP handshake together (and the wait for one
    /// of the pool's [`max_connecting`](crate::Builder::max_connecting)
    /// slots) took longer than the pool's connect timeout. The server was
    /// killed.
    #[error(
        "MCP server `{server}` for scope `{scope}` did not finish connecting within {timeout:?}{}",
        queued.map(|q| format!(" ({q:?} of it waiting for one of the pool's max_connecting slots)")).unwrap_or_default()
    )]
    ConnectTimeout {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
        /// The connect timeout that elapsed.
        timeout: Duration,
        /// With a `max_connecting` bound: how long the creation waited for
        /// a slot to connect in.
        queued: Option<Duration>,
    },

    /// The session was closed (by a `close_*` call or by dropping the pool)
    /// while it was still being created.
    #[error("session for MCP server `{server}` and scope `{scope}` was closed while connecting")]
    ClosedWhileConnecting {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
    },

    /// The key's last creation failed recently; the pool does not retry it
    /// before `retry_in` has passed (see
    /// [`Builder::failure_backoff`](crate::Builder::failure_backoff)).
    #[error(
        "not retrying MCP server `{server}` for scope `{scope}` for another {retry_in:?}; its last creation failed: {source}"
    )]
    BackingOff {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
        /// How long until the next attempt is allowed.
        retry_in: Duration,
        /// The error of the failed creation.
        #[source]
        source: Arc<Error>,
    },

    /// Every slot the caller could use stayed taken by sessions that could
    /// not be evicted (being created, or busy: a handle of theirs is alive)
    /// for the whole connect timeout: the pool's bound, or the server's own.
    #[error(
        "no free slot for MCP server `{server}` and scope `{scope}` within {waited:?}: {}",
        match server_max_sessions {
            Some(n) => format!("the pool's {max_sessions} sessions or the server's own bound of {n} were all busy or being created"),
            None => format!("all {max_sessions} sessions of the pool were busy or being created"),
        }
    )]
    PoolFull {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
        /// The pool's `max_sessions`.
        max_sessions: usize,
        /// The server's own bound
        /// ([`ServerConfig::max_sessions`](crate::ServerConfig::max_sessions)),
        /// if it has one: the bound that may have been the one hit.
        server_max_sessions: Option<usize>,
        /// How long the caller waited for a slot.
        waited: Duration,
    },

    /// The task creating the session ended without a result: it panicked
    /// (a custom connector that panics, say), or the runtime hosting it shut
    /// down. The next call tries again.
    #[error(
        "the task creating the session for MCP server `{server}` and scope `{scope}` ended without a result (it panicked, or its runtime shut down)"
    )]
    OwnerGone {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
    },

    /// The pool was closed with [`SessionPool::close`](crate::SessionPool::close).
    #[error("session pool is closed (MCP server `{server}`, scope `{scope}`)")]
    PoolClosed {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
    },

    /// A request on an established session failed while the session itself
    /// stayed up: the server answered with an error (an unknown tool, bad
    /// arguments), or the answer was not what the request expects.
    #[error("{method} on MCP server `{server}` for scope `{scope}` failed: {source}")]
    Call {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
        /// The MCP method of the request (`tools/call`, `tools/list`, ...).
        method: Arc<str>,
        /// rmcp's error.
        #[source]
        source: Arc<rmcp::ServiceError>,
    },

    /// The session ended before the request got its answer, or had already
    /// ended when the request was made: the server's state (an open page, a
    /// login) is gone. The next [`get_session`](crate::SessionPool::get_session)
    /// makes a new session, which says so through
    /// [`Session::replaced`](crate::Session::replaced).
    #[error(
        "{method} on MCP server `{server}` for scope `{scope}` failed: its session (generation {generation}) ended: {reason}; the server's state is lost"
    )]
    SessionEnded {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
        /// The session's generation.
        generation: u64,
        /// Why it ended.
        reason: CloseReason,
        /// The MCP method of the request.
        method: Arc<str>,
    },

    /// The request got no answer within the server's call timeout
    /// ([`ServerConfig::call_timeout`](crate::ServerConfig::call_timeout)).
    /// The request was cancelled toward the server (`notifications/cancelled`);
    /// the session stays usable.
    #[error(
        "{method} on MCP server `{server}` for scope `{scope}` got no answer within {elapsed:?}; cancelled"
    )]
    CallTimeout {
        /// Server name of the session's key.
        server: Arc<str>,
        /// Scope of the session's key.
        scope: Arc<str>,
        /// The MCP method of the request.
        method: Arc<str>,
        /// How long the request waited: the call timeout.
        elapsed: Duration,
    },

    /// The blocking API was called where it cannot block safely.
    #[error("blocking call not allowed here: {reason}")]
    BlockingNotAllowed {
        /// Why the call would deadlock or panic, and what to use instead.
        reason: &'static str,
    },

    /// The pool's own runtime could not be started: when the pool is built,
    /// or later, when an [`OwnerRuntime::Auto`](crate::OwnerRuntime::Auto)
    /// pool first needs it for a session or a blocking call.
    #[error("failed to start the session pool's runtime: {source}")]
    Runtime {
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// A server configuration is malformed (see [`Servers`](crate::Servers)).
    #[error("invalid MCP server config{}{}: {reason}", server.as_ref().map(|s| format!(" for `{s}`")).unwrap_or_default(), if field.is_empty() { String::new() } else { format!(", field `{field}`") })]
    InvalidServerConfig {
        /// The server whose entry is wrong, if the error is inside one.
        server: Option<Arc<str>>,
        /// The field at fault (`command`, `url`, `args[2]`, `headers.X`, ...),
        /// or empty for the document or entry as a whole.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// [`SessionPool::session`](crate::SessionPool::session) named a server
    /// the pool's [`Servers`](crate::Servers) do not have.
    #[error("unknown MCP server `{server}` (asked for scope `{scope}`)")]
    UnknownServer {
        /// The server name asked for.
        server: Arc<str>,
        /// The scope asked for.
        scope: Arc<str>,
    },

    /// [`Builder::build`](crate::Builder::build) rejected a setting.
    #[error("invalid pool configuration: {reason}")]
    InvalidConfig {
        /// Which setting is wrong and why.
        reason: &'static str,
    },
}

impl Error {
    /// The server this error concerns, if any.
    pub fn server(&self) -> Option<&str> {
        match self {
            Error::InvalidServerConfig { server, .. } => server.as_deref(),
            _ => self.key().map(|(server, _)| server),
        }
    }

    /// Why the session ended, if this error means that the session, and the
    /// server-side state it held, is gone: a tool wrapper can then tell its
    /// model so ("the browser was restarted") instead of a bare failure.
    pub fn session_ended(&self) -> Option<CloseReason> {
        match self {
            Error::SessionEnded { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// The scope of the session this error concerns, if any.
    pub fn scope(&self) -> Option<&str> {
        self.key().map(|(_, scope)| scope)
    }

    fn key(&self) -> Option<(&str, &str)> {
        match self {
            Error::Spawn { server, scope, .. }
            | Error::Connect { server, scope, .. }
            | Error::ConnectTimeout { server, scope, .. }
            | Error::ClosedWhileConnecting { server, scope }
            | Error::PoolFull { server, scope, .. }
            | Error::PoolClosed { server, scope }
            | Error::OwnerGone { server, scope }
            | Error::BackingOff { server, scope, .. }
            | Error::UnknownServer { server, scope }
            | Error::Call { server, scope, .. }
            | Error::SessionEnded { server, scope, .. }
            | Error::CallTimeout { server, scope, .. } => Some((server, scope)),
            Error::BlockingNotAllowed { .. }
            | Error::Runtime { .. }
            | Error::InvalidConfig { .. }
            | Error::InvalidServerConfig { .. } => None,
        }
    }
}
