//! The owner task: the only code that connects, initializes and tears down a
//! session. Everything else only signals it through its close token.

use std::{sync::Arc, time::Duration};

use rmcp::{
    RoleClient, ServiceExt,
    model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion},
    service::RunningService,
};
use tokio::{
    sync::oneshot,
    time::{Instant, timeout, timeout_at},
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    Error, ServerConfig, Session,
    config::Transport,
    core::OwnerGuard,
    process::{Exit, ServerProcess},
};

/// After teardown, how long to let rmcp's service loop finish before
/// detaching it. It ends as soon as the transport is gone.
const SERVICE_EXIT_GRACE: Duration = Duration::from_secs(1);

type Client = RunningService<RoleClient, ClientConfig>;

pub(crate) struct OwnerTask {
    pub(crate) guard: OwnerGuard,
    pub(crate) config: ServerConfig,
    pub(crate) ready: oneshot::Sender<Result<Session, Error>>,
    /// The close signal of a session evicted to make room for this one: its
    /// process is gone before this one starts, so the bound holds for
    /// processes, not just registry entries.
    pub(crate) after: Option<CancellationToken>,
}

/// Why an established session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    ServiceEnded,
    ProcessExited,
}

impl OwnerTask {
    pub(crate) async fn run(self) {
        let link = &self.guard.link;
        let span = tracing::info_span!(
            "mcp_session",
            server = %self.guard.key.server,
            scope = %self.guard.key.scope,
            generation = link.generation,
        );
        self.run_inner().instrument(span).await;
    }

    async fn run_inner(self) {
        let OwnerTask {
            guard,
            config,
            ready,
            after,
        } = self;
        let close = guard.link.close.clone();
        let timeouts = &guard.core.config;
        let (connect_timeout, close_timeout) = (timeouts.connect_timeout, timeouts.close_timeout);

        if let Some(prev) = after {
            tokio::select! {
                _ = prev.cancelled() => {}
                _ = close.cancelled() => {}
            }
        }
        if close.is_cancelled() {
            let err = Error::ClosedWhileConnecting {
                server: guard.key.server.clone(),
                scope: guard.key.scope.clone(),
            };
            fail(&guard, None, ready, err).await;
            guard.finish();
            return;
        }

        let started = Instant::now();
        let deadline = started + connect_timeout;
        // A child token: rmcp cancels it when the service is dropped, and a
        // close of the session (or of the whole pool) cancels it too.
        let service_ct = close.child_token();
        let (mut process, connecting) = match start(&config, service_ct.clone()) {
            Ok(started) => started,
            Err(source) => {
                let err = Error::Spawn {
                    server: guard.key.server.clone(),
                    scope: guard.key.scope.clone(),
                    source: Arc::new(source),
                };
                tracing::warn!(error = %err, "session creation failed");
                fail(&guard, None, ready, err).await;
                guard.finish();
                return;
            }
        };
        tracing::debug!(pid = ?process.as_ref().and_then(|p| p.pid()), "server started");

        let result = tokio::select! {
            biased;
            _ = close.cancelled() => Err(Error::ClosedWhileConnecting {
                server: guard.key.server.clone(),
                scope: guard.key.scope.clone(),
            }),
            r = timeout_at(deadline, connecting) => match r {
                Ok(Ok(client)) => Ok(client),
                Ok(Err(source)) => Err(Error::Connect {
                    server: guard.key.server.clone(),
                    scope: guard.key.scope.clone(),
                    source,
                }),
                Err(_) => Err(Error::ConnectTimeout {
                    server: guard.key.server.clone(),
                    scope: guard.key.scope.clone(),
                    timeout: connect_timeout,
                }),
            },
        };
        let client = match result {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(error = %err, "session creation failed");
                fail(&guard, process.as_mut(), ready, err).await;
                guard.finish();
                return;
            }
        };

        let session = Session::new(
            client.peer().clone(),
            guard.key.server.clone(),
            guard.key.scope.clone(),
            guard.link.generation,
        );
        if !guard
            .core
            .promote(&guard.key, session.clone(), guard.link.clone())
        {
            let err = Error::ClosedWhileConnecting {
                server: guard.key.server.clone(),
                scope: guard.key.scope.clone(),
            };
            let _ = ready.send(Err(err));
            teardown(client, service_ct, process, close_timeout).await;
            guard.finish();
            return;
        }
        tracing::debug!(elapsed = ?started.elapsed(), "session created");
        // Waiters may all be gone; the session stays for later callers.
        let _ = ready.send(Ok(session));

        let mut waiting = std::pin::pin!(client.waiting());
        let end = tokio::select! {
            biased;
            _ = close.cancelled() => End::Closed,
            _ = &mut waiting => End::ServiceEnded,
            _ = async { match process.as_mut() {
                Some(p) => p.exited().await,
                None => std::future::pending().await,
            } } => End::ProcessExited,
        };
        if end != End::Closed {
            // Out of the registry before anything else, so no caller gets a
            // dead session while it is torn down.
            guard.core.remove(&guard.key, guard.link.generation);
            tracing::info!(?end, "session died");
        }
        let t0 = Instant::now();
        service_ct.cancel();
        let exit = match process.as_mut() {
            Some(p) => Some(p.shut_down(close_timeout).await),
            None => None,
        };
        let service_done = match exit {
            Some(_) => timeout(SERVICE_EXIT_GRACE, &mut waiting).await.is_ok(),
            None => timeout(close_timeout, &mut waiting).await.is_ok(),
        };
        report_teardown(exit, service_done, t0.elapsed());
        guard.finish();
    }
}

/// Starts the transport: spawns a stdio server at once (so the owner holds
/// the process whatever happens next) and returns the handshake to await.
fn start(
    config: &ServerConfig,
    ct: CancellationToken,
) -> std::io::Result<(
    Option<ServerProcess>,
    impl Future<Output = Result<Client, ConnectError>> + use<>,
)> {
    let (process, pipes) = match &config.transport {
        Transport::Stdio(stdio) => {
            let (process, stdout, stdin) = ServerProcess::spawn(stdio)?;
            (Some(process), Some((stdout, stdin)))
        }
        Transport::Connector(_) => (None, None),
    };
    let connector = match &config.transport {
        Transport::Connector(c) => Some(c.clone()),
        Transport::Stdio(_) => None,
    };
    let handshake = async move {
        let info = client_config();
        let client = match (pipes, connector) {
            (Some(pipes), _) => info.serve_with_ct(pipes, ct).await,
            (None, Some(connect)) => {
                let stream = connect().await.map_err(|e| Arc::new(e) as ConnectError)?;
                info.serve_with_ct(stream, ct).await
            }
            (None, None) => unreachable!("a transport is either stdio or a connector"),
        };
        client.map_err(|e| Arc::new(e) as ConnectError)
    };
    Ok((process, handshake))
}

type ConnectError = Arc<dyn std::error::Error + Send + Sync>;

fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-session-pool", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// A creation failed: free the slot first so the next call starts afresh,
/// then kill and reap the process, then hand the error to the waiters.
async fn fail(
    guard: &OwnerGuard,
    process: Option<&mut ServerProcess>,
    ready: oneshot::Sender<Result<Session, Error>>,
    err: Error,
) {
    guard.core.remove(&guard.key, guard.link.generation);
    if let Some(p) = process {
        p.kill().await;
    }
    let _ = ready.send(Err(err));
}

/// Tears down a session that was never handed out.
async fn teardown(
    client: Client,
    service_ct: CancellationToken,
    mut process: Option<ServerProcess>,
    close_timeout: Duration,
) {
    let t0 = Instant::now();
    service_ct.cancel();
    let exit = match process.as_mut() {
        Some(p) => Some(p.shut_down(close_timeout).await),
        None => None,
    };
    let service_done = timeout(close_timeout, client.waiting()).await.is_ok();
    report_teardown(exit, service_done, t0.elapsed());
}

fn report_teardown(exit: Option<Exit>, service_done: bool, elapsed: Duration) {
    match exit {
        Some(Exit::Killed) => {
            tracing::warn!(?elapsed, "server ignored stdin EOF and SIGTERM; killed")
        }
        Some(exit) => tracing::debug!(?elapsed, ?exit, "server process ended"),
        None => {}
    }
    if !service_done {
        tracing::warn!(
            ?elapsed,
            "MCP service did not stop within the close timeout; detached"
        );
    }
}
