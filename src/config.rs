//! How to reach one MCP server: a command to run over stdio, or a custom connector.

use std::{ffi::OsString, fmt, future::Future, io, path::PathBuf, pin::Pin, sync::Arc};

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
}

#[derive(Clone)]
pub(crate) enum Transport {
    Stdio(Stdio),
    Connector(Arc<ConnectFn>),
}

/// A server started as a child process that speaks MCP on stdin/stdout.
#[derive(Clone)]
pub(crate) struct Stdio {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) cwd: Option<PathBuf>,
}

impl ServerConfig {
    /// A server run as a child process speaking MCP over its stdin and stdout.
    ///
    /// The child gets its own process group, which the pool kills when the
    /// session ends, so processes the server started (a browser, say) end with
    /// it. Its stderr is read and forwarded to `tracing` at debug level.
    pub fn stdio(program: impl Into<OsString>) -> Self {
        Self {
            transport: Transport::Stdio(Stdio {
                program: program.into(),
                args: Vec::new(),
                env: Vec::new(),
                cwd: None,
            }),
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
        }
    }

    /// Appends arguments for a stdio server. No effect on a connector.
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

    /// Sets an environment variable for a stdio server. No effect on a connector.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        if let Transport::Stdio(s) = &mut self.transport {
            s.env.push((key.into(), value.into()));
        }
        self
    }

    /// Sets the working directory of a stdio server. No effect on a connector.
    #[must_use]
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Transport::Stdio(s) = &mut self.transport {
            s.cwd = Some(dir.into());
        }
        self
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.transport {
            Transport::Stdio(s) => {
                let env: Vec<_> = s.env.iter().map(|(k, _)| (k, "<redacted>")).collect();
                f.debug_struct("ServerConfig::Stdio")
                    .field("program", &s.program)
                    .field("args", &s.args)
                    .field("env", &env)
                    .field("cwd", &s.cwd)
                    .finish()
            }
            Transport::Connector(_) => f.write_str("ServerConfig::Connector"),
        }
    }
}
