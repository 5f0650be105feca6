//! How to reach one MCP server: a command to run over stdio, or a custom connector.

use std::{
    ffi::OsString,
    fmt,
    future::Future,
    hash::{Hash, Hasher},
    io,
    num::NonZeroUsize,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite};

use crate::handler::HandlerFactory;

/// A byte stream a custom connector hands to the pool: the MCP messages travel
/// over it as newline-delimited JSON, as on stdio.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Duplex for T {}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn Duplex>>> + Send>>;
type ConnectFn = dyn Fn() -> ConnectFuture + Send + Sync;

/// How the pool reaches one MCP server.
///
/// Cheap to clone. `Debug` prints environment variable names but never their
/// values, so a config can be logged without leaking secrets.
///
/// A key asked for with a changed config (command, arguments, environment,
/// working directory, URL, headers, or any policy setting) gets a new session
/// once the calls on the old one are done
/// ([`CloseReason::ConfigChanged`](crate::CloseReason::ConfigChanged)). A
/// different connector or client handler closure is not told apart (closures
/// cannot be compared, and a tool wrapper may rebuild its config per call):
/// close the key to apply one.
///
/// ```
/// use mcp_session_pool::ServerConfig;
///
/// let cfg = ServerConfig::stdio("my-server")
///     .args(["--flag", "value"])
///     .env("API_KEY", "secret")
///     .cwd("/tmp");
/// assert!(!format!("{cfg:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    pub(crate) transport: Transport,
    pub(crate) policy: Policy,
    /// Makes each session's client handler; the pool's when `None`.
    pub(crate) handler: Option<HandlerFactory>,
    /// The first setting made that does not apply to this transport.
    pub(crate) misuse: Option<(&'static str, &'static str)>,
    /// Of everything that reaches the server; computed once per config.
    fingerprint: OnceLock<u64>,
}

/// How the pool treats a server's sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Policy {
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) protocol: Protocol,
    pub(crate) scope: ScopePolicy,
    pub(crate) max_sessions: Option<NonZeroUsize>,
    pub(crate) warm_spares: usize,
}

/// Which MCP lifecycle the pool uses with a server.
///
/// MCP 2026-07-28 dropped the `initialize` handshake: a client asks
/// `server/discover` and sends its version and capabilities with every
/// request, and an HTTP server keeps no session for it. Servers built on
/// older SDKs (the TypeScript SDK servers, for one) know only `initialize`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// The `initialize` handshake (MCP 2025-11-25 and earlier).
    Legacy,
    /// `server/discover` and per-request metadata (MCP 2026-07-28). A
    /// server that does not know it fails to connect.
    Modern,
    /// Probe with `server/discover` and fall back to `initialize` when the
    /// server answers like an older one, or closes the connection on the
    /// probe (a fresh connection then runs `initialize`). The answer is
    /// remembered per server name until its config changes, so only a
    /// server's first session probes. The probe runs inside the connect
    /// timeout. The default: it reaches servers of either era, and a
    /// modern one without the handshake's round trip after the first.
    #[default]
    Auto,
}

/// Whose session a server's session is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScopePolicy {
    /// A session per `(server, scope)`: the state of one conversation (an
    /// open browser page, a login, a working directory) stays with it and
    /// never leaks into another. For stateful servers. The default.
    #[default]
    PerScope,
    /// One session per server, which every scope uses: for stateless
    /// servers (time, search, git, a file server), so a thousand
    /// conversations do not start a thousand processes. `close_scope` leaves
    /// it alone; `close_server` and `close_all` close it.
    Shared,
}

/// The scope under which a [`ScopePolicy::Shared`] server's one session is
/// kept; [`Session::scope`](crate::Session::scope) reports it.
pub const SHARED_SCOPE: &str = "(shared)";

#[derive(Clone)]
pub(crate) enum Transport {
    Stdio(Stdio),
    Http(Http),
    Connector(Arc<ConnectFn>),
}

/// A server started as a child process that speaks MCP on stdin/stdout.
#[derive(Clone, PartialEq)]
pub(crate) struct Stdio {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) inherit_env: bool,
}

/// A server reached over MCP's streamable HTTP transport.
#[derive(Clone, PartialEq)]
pub(crate) struct Http {
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) bearer: Option<String>,
}

/// The variables a stdio server gets from the host environment unless
/// [`ServerConfig::inherit_env`] is set: enough for shells, `npx`, `uvx` and
/// interpreters to run, and nothing that is likely to be a secret.
pub const DEFAULT_ENV_VARS: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR",
    "TZ",
];

impl ServerConfig {
    /// Every setting at its default, on a transport to be replaced.
    fn blank() -> Self {
        Self {
            transport: Transport::Http(Http {
                url: String::new(),
                headers: Vec::new(),
                bearer: None,
            }),
            policy: Policy::default(),
            handler: None,
            misuse: None,
            fingerprint: OnceLock::new(),
        }
    }

    /// A server run as a child process speaking MCP over its stdin and stdout.
    ///
    /// The child gets its own process group, which the pool kills when the
    /// session ends, so processes the server started (a browser, say) end with
    /// it. Its stderr is read and forwarded to `tracing` at debug level.
    ///
    /// The child does not inherit the host's environment: it gets the
    /// variables named in [`DEFAULT_ENV_VARS`] (where set), plus what
    /// [`env`](Self::env) adds. [`inherit_env`](Self::inherit_env) opts into
    /// the whole host environment.
    pub fn stdio(program: impl Into<OsString>) -> Self {
        Self {
            transport: Transport::Stdio(Stdio {
                program: program.into(),
                args: Vec::new(),
                env: Vec::new(),
                cwd: None,
                inherit_env: false,
            }),
            ..Self::blank()
        }
    }

    /// A server reached over MCP's streamable HTTP transport at `url`
    /// (`http://` or `https://`). Connecting needs the crate's `http` feature
    /// (plain HTTP) or `https` feature; without it, creating the session
    /// fails with [`Error::Connect`](crate::Error::Connect).
    ///
    /// Each session is one HTTP MCP session (one `Mcp-Session-Id`). If the
    /// server forgets it (HTTP 404), the session ends and the next call
    /// makes a new one, whose [`Session::replaced`](crate::Session::replaced)
    /// says the old state is gone; it is never silently re-initialized.
    /// Closing the session sends the HTTP `DELETE` for it.
    pub fn http(url: impl Into<String>) -> Self {
        Self {
            transport: Transport::Http(Http {
                url: url.into(),
                headers: Vec::new(),
                bearer: None,
            }),
            ..Self::blank()
        }
    }

    /// A server reached through a custom connector: `connect` is called once
    /// per session, on the pool's owner runtime, and returns a byte stream
    /// carrying MCP messages, for example one end of [`tokio::io::duplex`]
    /// whose other end an in-process server serves.
    ///
    /// ```
    /// use mcp_session_pool::ServerConfig;
    ///
    /// let cfg = ServerConfig::connector(|| async {
    ///     let (client, _server) = tokio::io::duplex(64 * 1024);
    ///     // ...serve `_server` with an MCP server here...
    ///     Ok(client)
    /// });
    /// # let _ = cfg;
    /// ```
    pub fn connector<F, Fut, S>(connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: Duplex,
    {
        let connect: Arc<ConnectFn> = Arc::new(move || {
            let fut = connect();
            Box::pin(async move { Ok(Box::new(fut.await?) as Box<dyn Duplex>) })
        });
        Self {
            transport: Transport::Connector(connect),
            ..Self::blank()
        }
    }

    /// A deadline for every request made through a session of this server
    /// ([`Session::call_tool`](crate::Session::call_tool) and the other
    /// request methods). A request that gets no answer in time is cancelled
    /// toward the server (`notifications/cancelled`) and fails with
    /// [`Error::CallTimeout`](crate::Error::CallTimeout); the session stays.
    ///
    /// Defaults to none: how long a tool may take is the tool's business (a
    /// build, a crawl), and a request never outlives its session, whose end
    /// fails it at once. Set it for servers that can hang. In the
    /// `mcpServers` file: `"pool": {"callTimeoutMs": 30000}`.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.policy.call_timeout = Some(timeout);
        self.changed()
    }

    /// Which MCP lifecycle to use with this server; see [`Protocol`].
    ///
    /// Defaults to [`Protocol::Auto`]. In the `mcpServers` file:
    /// `"pool": {"protocol": "legacy" | "modern" | "auto"}`.
    #[must_use]
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.policy.protocol = protocol;
        self.changed()
    }

    /// Whether each scope gets its own session or all share one; see
    /// [`ScopePolicy`].
    ///
    /// Defaults to [`ScopePolicy::PerScope`]. In the `mcpServers` file:
    /// `"pool": {"scope": "perScope" | "shared"}`.
    #[must_use]
    pub fn scope_policy(mut self, policy: ScopePolicy) -> Self {
        self.policy.scope = policy;
        self.changed()
    }

    /// A bound on this server's sessions (established, being created and
    /// closing), under the pool-wide
    /// [`Builder::max_sessions`](crate::Builder::max_sessions). At the
    /// bound, the least recently used idle session of this server makes
    /// room; if all are busy, the caller waits in line.
    ///
    /// Defaults to none. In the `mcpServers` file: `"pool": {"maxSessions": 4}`.
    #[must_use]
    pub fn max_sessions(mut self, max: NonZeroUsize) -> Self {
        self.policy.max_sessions = Some(max);
        self.changed()
    }

    /// Keeps `spares` sessions of this server started and initialized but
    /// given to no scope, so that a new scope's first `get_session` takes
    /// one at once (no process start, no handshake) and the pool starts a
    /// replacement in the background. A spare is handed to one scope only,
    /// and stays that scope's. Spares count toward the bounds, are the first
    /// sessions evicted when room is needed, expire like other sessions,
    /// and are closed by `close_server` and `close_all`; they are made only
    /// in free slots and only for [`ScopePolicy::PerScope`] servers, and
    /// only once the server has been asked for.
    ///
    /// Defaults to 0. In the `mcpServers` file: `"pool": {"warmSpares": 1}`.
    #[must_use]
    pub fn warm_spares(mut self, spares: usize) -> Self {
        self.policy.warm_spares = spares;
        self.changed()
    }

    /// The client handler of this server's sessions: `make` is called by each
    /// session's owner, with the session's server, scope and generation,
    /// and returns an rmcp [`ClientHandler`](rmcp::ClientHandler). Takes the
    /// place of [`Builder::client_handler`](crate::Builder::client_handler)
    /// for this server; see there.
    #[must_use]
    pub fn client_handler<F, H>(mut self, make: F) -> Self
    where
        F: Fn(&crate::HandlerContext) -> H + Send + Sync + 'static,
        H: rmcp::ClientHandler,
    {
        self.handler = Some(HandlerFactory::new(make));
        self.changed()
    }

    /// The server's bound, if it has one.
    pub(crate) fn server_bound(&self) -> Option<usize> {
        self.policy.max_sessions.map(NonZeroUsize::get)
    }

    /// The fingerprint of everything that reaches the server and of how the
    /// pool treats it: two configs with the same fingerprint make the same
    /// sessions.
    pub(crate) fn fingerprint(&self) -> u64 {
        *self.fingerprint.get_or_init(|| {
            let mut h = std::hash::DefaultHasher::new();
            self.policy.hash(&mut h);
            self.handler.is_some().hash(&mut h);
            match &self.transport {
                Transport::Stdio(s) => {
                    0u8.hash(&mut h);
                    (&s.program, &s.args, &s.env, &s.cwd, s.inherit_env).hash(&mut h);
                }
                Transport::Http(x) => {
                    1u8.hash(&mut h);
                    (&x.url, &x.headers, &x.bearer).hash(&mut h);
                }
                // A closure cannot be compared: a config rebuilt with a new
                // one (per call, say) is the same config.
                Transport::Connector(_) => 2u8.hash(&mut h),
            }
            h.finish()
        })
    }

    /// A setting changed: the fingerprint is stale.
    fn changed(mut self) -> Self {
        self.fingerprint = OnceLock::new();
        self
    }

    /// Records a setting that does not apply to this transport; the config
    /// is then refused when used.
    fn misused(mut self, field: &'static str, applies_to: &'static str) -> Self {
        self.misuse.get_or_insert((field, applies_to));
        self
    }

    /// Passes the host's whole environment to a stdio server, instead of only
    /// [`DEFAULT_ENV_VARS`]. Secrets in the host environment then reach the
    /// server. On another transport the config is refused when used
    /// ([`Error::InvalidServerConfig`](crate::Error::InvalidServerConfig)).
    #[must_use]
    pub fn inherit_env(mut self, inherit: bool) -> Self {
        match &mut self.transport {
            Transport::Stdio(s) => {
                s.inherit_env = inherit;
            }
            _ => return self.misused("inheritEnv", "stdio"),
        }
        self.changed()
    }

    /// Adds a header to every request to an HTTP server. On another transport
    /// the config is refused when used
    /// ([`Error::InvalidServerConfig`](crate::Error::InvalidServerConfig)).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        match &mut self.transport {
            Transport::Http(h) => {
                h.headers.push((name.into(), value.into()));
            }
            _ => return self.misused("headers", "HTTP"),
        }
        self.changed()
    }

    /// Sends `Authorization: Bearer <token>` to an HTTP server. On another transport
    /// the config is refused when used
    /// ([`Error::InvalidServerConfig`](crate::Error::InvalidServerConfig)).
    #[must_use]
    pub fn bearer_auth(mut self, token: impl Into<String>) -> Self {
        match &mut self.transport {
            Transport::Http(h) => {
                h.bearer = Some(token.into());
            }
            _ => return self.misused("headers", "HTTP"),
        }
        self.changed()
    }

    /// Appends arguments for a stdio server. On another transport the config
    /// is refused when used
    /// ([`Error::InvalidServerConfig`](crate::Error::InvalidServerConfig)).
    #[must_use]
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        match &mut self.transport {
            Transport::Stdio(s) => {
                s.args.extend(args.into_iter().map(Into::into));
            }
            _ => return self.misused("args", "stdio"),
        }
        self.changed()
    }

    /// Sets an environment variable for a stdio server. On another transport
    /// the config is refused when used
    /// ([`Error::InvalidServerConfig`](crate::Error::InvalidServerConfig)).
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        match &mut self.transport {
            Transport::Stdio(s) => {
                s.env.push((key.into(), value.into()));
            }
            _ => return self.misused("env", "stdio"),
        }
        self.changed()
    }

    /// Sets the working directory of a stdio server. On another transport the
    /// config is refused when used
    /// ([`Error::InvalidServerConfig`](crate::Error::InvalidServerConfig)).
    #[must_use]
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        match &mut self.transport {
            Transport::Stdio(s) => {
                s.cwd = Some(dir.into());
            }
            _ => return self.misused("cwd", "stdio"),
        }
        self.changed()
    }
}

impl PartialEq for ServerConfig {
    /// Connectors are equal only to clones of themselves.
    fn eq(&self, other: &Self) -> bool {
        if self.policy != other.policy
            || self.misuse != other.misuse
            || self.handler != other.handler
        {
            return false;
        }
        match (&self.transport, &other.transport) {
            (Transport::Stdio(a), Transport::Stdio(b)) => a == b,
            (Transport::Http(a), Transport::Http(b)) => a == b,
            (Transport::Connector(a), Transport::Connector(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for ServerConfig {
    /// Prints environment variable and header names, never their values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "<redacted>";
        match &self.transport {
            Transport::Stdio(s) => {
                let env: Vec<_> = s.env.iter().map(|(k, _)| (k, REDACTED)).collect();
                f.debug_struct("ServerConfig::Stdio")
                    .field("program", &s.program)
                    .field("args", &s.args)
                    .field("env", &env)
                    .field("cwd", &s.cwd)
                    .field("inherit_env", &s.inherit_env)
                    .field("policy", &self.policy)
                    .finish()
            }
            Transport::Http(h) => {
                let headers: Vec<_> = h.headers.iter().map(|(k, _)| (k, REDACTED)).collect();
                f.debug_struct("ServerConfig::Http")
                    .field("url", &h.url)
                    .field("headers", &headers)
                    .field("bearer", &h.bearer.as_ref().map(|_| REDACTED))
                    .field("policy", &self.policy)
                    .finish()
            }
            Transport::Connector(_) => f
                .debug_struct("ServerConfig::Connector")
                .field("policy", &self.policy)
                .finish_non_exhaustive(),
        }
    }
}
