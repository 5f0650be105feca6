//! How to reach one MCP server: a command to run over stdio, or a custom connector.

use std::{
    ffi::OsString, fmt, future::Future, io, path::PathBuf, pin::Pin, sync::Arc, time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite};

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
    pub(crate) call_timeout: Option<Duration>,
}

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
            call_timeout: None,
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
            call_timeout: None,
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
            call_timeout: None,
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
        self.call_timeout = Some(timeout);
        self
    }

    /// Passes the host's whole environment to a stdio server, instead of only
    /// [`DEFAULT_ENV_VARS`]. Secrets in the host environment then reach the
    /// server. No effect on other transports.
    #[must_use]
    pub fn inherit_env(mut self, inherit: bool) -> Self {
        if let Transport::Stdio(s) = &mut self.transport {
            s.inherit_env = inherit;
        }
        self
    }

    /// Adds a header to every request to an HTTP server. No effect on other
    /// transports.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Transport::Http(h) = &mut self.transport {
            h.headers.push((name.into(), value.into()));
        }
        self
    }

    /// Sends `Authorization: Bearer <token>` to an HTTP server. No effect on
    /// other transports.
    #[must_use]
    pub fn bearer_auth(mut self, token: impl Into<String>) -> Self {
        if let Transport::Http(h) = &mut self.transport {
            h.bearer = Some(token.into());
        }
        self
    }

    /// Appends arguments for a stdio server. No effect on other transports.
    #[must_use]
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        if let Transport::Stdio(s) = &mut self.transport {
            s.args.extend(args.into_iter().map(Into::into));
        }
        self
    }

    /// Sets an environment variable for a stdio server. No effect on other transports.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        if let Transport::Stdio(s) = &mut self.transport {
            s.env.push((key.into(), value.into()));
        }
        self
    }

    /// Sets the working directory of a stdio server. No effect on other transports.
    #[must_use]
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Transport::Stdio(s) = &mut self.transport {
            s.cwd = Some(dir.into());
        }
        self
    }
}

impl PartialEq for ServerConfig {
    /// Connectors are equal only to clones of themselves.
    fn eq(&self, other: &Self) -> bool {
        if self.call_timeout != other.call_timeout {
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
                    .field("call_timeout", &self.call_timeout)
                    .finish()
            }
            Transport::Http(h) => {
                let headers: Vec<_> = h.headers.iter().map(|(k, _)| (k, REDACTED)).collect();
                f.debug_struct("ServerConfig::Http")
                    .field("url", &h.url)
                    .field("headers", &headers)
                    .field("bearer", &h.bearer.as_ref().map(|_| REDACTED))
                    .field("call_timeout", &self.call_timeout)
                    .finish()
            }
            Transport::Connector(_) => f
                .debug_struct("ServerConfig::Connector")
                .field("call_timeout", &self.call_timeout)
                .finish_non_exhaustive(),
        }
    }
}
