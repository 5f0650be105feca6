//! Pool settings and their builder.

use std::time::Duration;

use crate::{Error, Servers, SessionPool, handler::HandlerFactory};

/// Where the pool runs its owner tasks and the MCP sessions' own tasks.
///
/// A session lives exactly as long as the runtime that hosts its tasks, so
/// this decides which callers can keep a session across calls. A call made
/// from the runtime hosting its session costs what a call on a raw rmcp peer
/// costs; a call from another runtime pays a wake-up of that runtime's
/// threads each way (measured: about 20 µs per call, 1.4× to 2.6× a raw
/// peer's; BENCHMARKS.md).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum OwnerRuntime {
    /// The multi-threaded tokio runtime the pool is built in, if it is built
    /// in one: an application with one long-lived runtime pays no hop
    /// between runtimes. Built anywhere else (a plain thread, `main` before
    /// any runtime, a current-thread runtime), the pool runs a runtime of its
    /// own as [`Dedicated`](Self::Dedicated) does, so callers that make a
    /// fresh runtime per call, or plain threads through the blocking API,
    /// keep their sessions. If the runtime the pool was built in shuts down
    /// while the pool lives on, its sessions end with it
    /// ([`CloseReason::RuntimeGone`](crate::CloseReason::RuntimeGone)) and
    /// later sessions live on a runtime of the pool's own. A runtime without
    /// IO or time is not used either: tokio offers no way to ask, so the
    /// pool uses each once when it is built and catches tokio's panic (the
    /// panic hook still runs, and with `panic = "abort"` the process ends;
    /// build such pools with [`Dedicated`](Self::Dedicated)). The default.
    #[default]
    Auto,
    /// A multi-threaded runtime owned by the pool, on its own named threads,
    /// shut down when the last pool handle is dropped. Sessions survive every
    /// calling context: a long-lived runtime, a fresh `Runtime::block_on` per
    /// call, or plain threads through the blocking API; every call crosses
    /// runtimes.
    Dedicated,
    /// A runtime the application keeps alive. It must outlive the pool's use.
    Handle(tokio::runtime::Handle),
    /// The runtime of the caller that creates each session: a session dies
    /// with that runtime. The pool notices and makes a new session on the
    /// next call, with a `warn` event.
    Caller,
}

/// Whether and how the pool checks a session before handing it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HealthCheck {
    /// Hand sessions out unchecked; a dead server is still noticed as soon as
    /// its process exits or its transport closes. The default.
    #[default]
    Off,
    /// Before handing out a session unused for longer than this, send it an
    /// MCP `ping` (bounded by the connect timeout, at most 5 s). Any reply
    /// counts as alive, including an error reply (some servers reject
    /// `ping`). No reply in time, or a broken transport, replaces the session
    /// within the same `get_session` call.
    PingIfIdleFor(Duration),
}

/// Settings of a [`SessionPool`], with their defaults.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub(crate) max_sessions: usize,
    pub(crate) max_connecting: Option<std::num::NonZeroUsize>,
    pub(crate) connect_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) owner_runtime: OwnerRuntime,
    pub(crate) dedicated_threads: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) health_check: HealthCheck,
    pub(crate) failure_backoff: (Duration, Duration),
    pub(crate) servers: Servers,
    pub(crate) handler: Option<HandlerFactory>,
    pub(crate) watchdog: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_sessions: 256,
            max_connecting: None,
            connect_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            owner_runtime: OwnerRuntime::Auto,
            dedicated_threads: 2,
            idle_timeout: Some(Duration::from_secs(30 * 60)),
            max_lifetime: None,
            health_check: HealthCheck::Off,
            failure_backoff: (Duration::from_millis(100), Duration::from_secs(30)),
            servers: Servers::default(),
            handler: None,
            watchdog: true,
        }
    }
}

/// Builds a [`SessionPool`]. Create one with [`SessionPool::builder`].
///
/// ```
/// use std::time::Duration;
/// use mcp_session_pool::SessionPool;
///
/// let pool = SessionPool::builder()
///     .max_sessions(64)
///     .connect_timeout(Duration::from_secs(10))
///     .close_timeout(Duration::from_secs(2))
///     .build()?;
/// # Ok::<(), mcp_session_pool::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `.build()` is called"]
pub struct Builder {
    config: PoolConfig,
}

impl Builder {
    /// Bound on sessions, established and being created, across all keys.
    /// At the bound, the least recently used session is closed to make room.
    ///
    /// Defaults to 256. Must be at least 1.
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.config.max_sessions = max;
        self
    }

    /// At most this many sessions connect (spawn, connect, handshake) at
    /// once, across the pool; further creations wait their turn, and the
    /// wait counts against the connect timeout. Bounds the spawn storm of
    /// many new conversations starting at once (a cold `npx` start is
    /// heavy).
    ///
    /// Defaults to no bound.
    pub fn max_connecting(mut self, max: std::num::NonZeroUsize) -> Self {
        self.config.max_connecting = Some(max);
        self
    }

    /// One deadline for starting the server, connecting and the MCP
    /// `initialize` handshake. A server that misses it is killed.
    ///
    /// Defaults to 30 seconds. Must be non-zero.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Bound on each teardown. A stdio server gets half of it to exit after
    /// its stdin closes, then `SIGTERM` and the other half, then `SIGKILL`.
    ///
    /// Defaults to 5 seconds. Must be non-zero.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// Where sessions live; see [`OwnerRuntime`].
    ///
    /// Defaults to [`OwnerRuntime::Auto`]: the runtime the pool is built in
    /// if that is a multi-threaded one, otherwise a runtime of the pool's own.
    pub fn owner_runtime(mut self, runtime: OwnerRuntime) -> Self {
        self.config.owner_runtime = runtime;
        self
    }

    /// Worker threads of the pool's own runtime: that of
    /// [`OwnerRuntime::Dedicated`], and that [`OwnerRuntime::Auto`] starts
    /// when built outside a multi-threaded runtime, when that runtime shuts
    /// down, or when sync code first drives a call from a plain thread.
    ///
    /// Defaults to 2. Must be at least 1.
    pub fn dedicated_threads(mut self, threads: usize) -> Self {
        self.config.dedicated_threads = threads;
        self
    }

    /// Closes a session nobody has used for this long (measured from when
    /// its last handle was dropped). Each session's owner keeps its own timer.
    /// A busy session never expires. `None` keeps idle sessions forever.
    ///
    /// A session expires no earlier than this, and at most a sixteenth of it
    /// later (at least 1 ms): dropping a handle does not read the clock; the
    /// owner notes the last use when it looks, every `timeout / 16`. With a
    /// [`HealthCheck`] on, each drop is timed exactly.
    ///
    /// Defaults to 30 minutes.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Closes a session this long after it was created, once nobody is using
    /// it; the next call gets a new session. `None` means no limit.
    ///
    /// Defaults to `None`.
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.config.max_lifetime = lifetime;
        self
    }

    /// Checks sessions before handing them out; see [`HealthCheck`].
    ///
    /// Defaults to [`HealthCheck::Off`].
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.config.health_check = check;
        self
    }

    /// After a creation for a key fails, further creations for that key fail
    /// fast with [`Error::BackingOff`] for `initial`, doubling after each
    /// further failure up to `max`, and reset by a success. A zero `initial`
    /// turns backoff off.
    ///
    /// Defaults to 100 ms and 30 s.
    pub fn failure_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.failure_backoff = (initial, max);
        self
    }

    /// The client handler of every session: `make` is called by each
    /// session's owner, with the session's server, scope and generation
    /// ([`HandlerContext`](crate::HandlerContext)), and returns an rmcp
    /// [`ClientHandler`](rmcp::ClientHandler). The session is served with it:
    /// its `get_info()` capabilities (roots, sampling, elicitation) are what
    /// the server sees, and its methods receive that session's requests
    /// (`roots/list`, `sampling/createMessage`, `elicitation/create`) and
    /// notifications (progress, log messages, list changes, resource
    /// updates), so a framework routes them to the conversation they belong
    /// to. A server's own [`ServerConfig::client_handler`] takes its place.
    ///
    /// The pool still hears list changes (for [`SessionPool::list_tools`])
    /// and progress (for [`Session::call_tool_with_progress`]) whatever the
    /// handler does with them.
    ///
    /// The handler's methods run as tasks on the runtime that hosts the
    /// session (see [`OwnerRuntime`]), one task per message, so a slow one
    /// (an elicitation waiting for a human) does not stall the session's
    /// other traffic; a request the server sends waits for its answer
    /// under the server's own timeout.
    ///
    /// Defaults to none: sessions declare no client capabilities and ignore
    /// what servers send on their own.
    ///
    /// [`ServerConfig::client_handler`]: crate::ServerConfig::client_handler
    /// [`Session::call_tool_with_progress`]: crate::Session::call_tool_with_progress
    pub fn client_handler<F, H>(mut self, make: F) -> Self
    where
        F: Fn(&crate::HandlerContext) -> H + Send + Sync + 'static,
        H: rmcp::ClientHandler,
    {
        self.config.handler = Some(HandlerFactory::new(make));
        self
    }

    /// Whether stdio servers die with the host process when it dies without
    /// closing the pool (`kill -9`, the OOM killer, an abort). A small
    /// `/bin/sh` watchdog process per pool, started with the first stdio
    /// server, holds a pipe from the host and the list of the servers'
    /// process groups; when the pipe closes because the host is gone, it
    /// kills every group it still knows, within milliseconds. Processes that
    /// left their server's group are not reached that way.
    ///
    /// Without it, a server that exits on stdin EOF still ends with the
    /// host, but one that ignores EOF, and whatever a server started, lives
    /// on as an orphan.
    ///
    /// Defaults to on (Linux and other Unixes with `/bin/sh`).
    pub fn kill_servers_on_host_exit(mut self, on: bool) -> Self {
        self.config.watchdog = on;
        self
    }

    /// Registers servers by name, for [`SessionPool::session`].
    ///
    /// Defaults to none.
    pub fn servers(mut self, servers: Servers) -> Self {
        self.config.servers = servers;
        self
    }

    /// Checks the settings and builds the pool. With
    /// [`OwnerRuntime::Dedicated`], or [`OwnerRuntime::Auto`] outside a
    /// multi-threaded runtime, this starts the pool's runtime threads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a zero bound, timeout or thread count;
    /// [`Error::Runtime`] if the pool's own runtime cannot start.
    pub fn build(self) -> Result<SessionPool, Error> {
        let c = &self.config;
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        // Far beyond any useful setting, and safe to add to an `Instant`.
        const LONGEST: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
        let durations = [
            Some(c.connect_timeout),
            Some(c.close_timeout),
            c.idle_timeout,
            c.max_lifetime,
            Some(c.failure_backoff.1),
            match c.health_check {
                HealthCheck::PingIfIdleFor(d) => Some(d),
                HealthCheck::Off => None,
            },
        ];
        if durations.into_iter().flatten().any(|d| d > LONGEST) {
            return invalid("durations must be at most ten years");
        }
        if c.max_sessions == 0 {
            return invalid("max_sessions must be at least 1");
        }
        if c.connect_timeout.is_zero() {
            return invalid("connect_timeout must be non-zero");
        }
        if c.close_timeout.is_zero() {
            return invalid("close_timeout must be non-zero");
        }
        if c.idle_timeout.is_some_and(|d| d.is_zero())
            || c.max_lifetime.is_some_and(|d| d.is_zero())
        {
            return invalid(
                "idle_timeout and max_lifetime must be non-zero (use None to turn them off)",
            );
        }
        if matches!(c.health_check, HealthCheck::PingIfIdleFor(d) if d.is_zero()) {
            return invalid("HealthCheck::PingIfIdleFor needs a non-zero idle time");
        }
        if c.failure_backoff.0 > c.failure_backoff.1 {
            return invalid("failure_backoff's initial delay must not exceed its maximum");
        }
        if c.dedicated_threads == 0 {
            return invalid("dedicated_threads must be at least 1");
        }
        SessionPool::from_config(self.config)
    }
}
