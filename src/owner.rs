//! The owner task: the only code that connects, initializes and tears down a
//! session. Everything else only signals it through its close token.

use std::{sync::Arc, time::Duration};

use futures_util::{FutureExt, future::FusedFuture};
use rmcp::{
    RoleClient,
    service::{
        ClientLifecycleMode, ClientServiceExt, RunningService, RunningServiceCancellationToken,
    },
};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    CloseReason, Error, HandlerContext, HealthCheck, ServerConfig,
    config::Transport,
    core::OwnerGuard,
    handler::{Hooks, PoolHandler},
    metrics,
    process::{Exit, ServerProcess},
    runtime::{Driver, KILL_MARGIN},
    session::SessionInner,
    stats::Stats,
    watchdog::Watchdog,
};

/// After teardown, how long to let rmcp's service loop finish before
/// detaching it. It ends as soon as the transport is gone.
pub(crate) const SERVICE_EXIT_GRACE: Duration = Duration::from_secs(1);

pub(crate) type Client = RunningService<RoleClient, PoolHandler>;
pub(crate) type ConnectError = Arc<dyn std::error::Error + Send + Sync>;

pub(crate) struct OwnerTask {
    pub(crate) guard: OwnerGuard,
    pub(crate) config: ServerConfig,
    /// Why the key's previous session ended, if it had one.
    pub(crate) previous: Option<CloseReason>,
    /// Done signals of sessions whose processes must be gone before this
    /// one starts: the one evicted to make room, and an earlier session of
    /// the same key still closing. So the bound holds for processes, and a
    /// key never has two servers.
    pub(crate) after: Vec<CancellationToken>,
    /// What drives the session's blocking calls; set when it is spawned.
    pub(crate) driver: Option<Driver>,
}

impl OwnerTask {
    /// Fails the creation without running it (no runtime could take it).
    pub(crate) fn fail(self, err: Error) {
        let mut guard = self.guard;
        guard.core.fail(&guard.key, guard.link.generation, &err);
        guard.answer(Err(err));
        guard.finish();
    }

    pub(crate) async fn run(self) {
        let span = tracing::info_span!(
            "mcp_session",
            server = %self.guard.key.server,
            scope = %self.guard.key.scope,
            generation = self.guard.link.generation,
        );
        // A panic (in a custom connector, say) must not take the runtime's
        // worker with it; the guard frees the slot and the waiters are told.
        let run = std::panic::AssertUnwindSafe(self.run_inner()).catch_unwind();
        if let Err(panic) = run.instrument(span.clone()).await {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            span.in_scope(|| tracing::error!(panic = %message, "session owner task panicked"));
        }
    }

    async fn run_inner(self) {
        let OwnerTask {
            mut guard,
            config,
            previous,
            after,
            driver,
        } = self;
        let close = guard.link.close.clone();
        if !after.is_empty() {
            // Bounded: those owners finish within their own close budget.
            let bound = guard.core.config.close_timeout + KILL_MARGIN;
            let predecessors = futures_util::future::join_all(after.iter().map(|d| d.cancelled()));
            tokio::select! {
                r = timeout(bound, predecessors) => if r.is_err() {
                    tracing::warn!("an earlier server is still closing; starting anyway");
                },
                _ = close.cancelled() => {}
            }
        }

        let started = Instant::now();
        let catalogue = guard.core.catalogue.clone();
        let server = guard.key.server.clone();
        let hooks = Arc::new(Hooks::new(move || catalogue.changed(&server)));
        // Boxed, as is each teardown below: a task's allocation is as large
        // as its largest state for as long as it lives, and an idle session
        // lives long; only its loop's state should stay.
        let connected = Box::pin(connect(&guard, &config, &hooks)).await;
        let made_from = (config.policy.call_timeout, config.fingerprint());
        // Not needed any more; a connector may hold things (even a pool
        // handle) that must not live as long as the session.
        drop(config);
        let (client, mut process, service_ct) = match connected {
            Ok(connected) => connected,
            Err((err, process)) => {
                tracing::warn!(error = %err, elapsed = ?started.elapsed(), "session creation failed");
                // Free the slot first so the next call starts afresh, then
                // kill and reap, then hand the error to the waiters.
                guard.core.fail(&guard.key, guard.link.generation, &err);
                if let Some(mut p) = process {
                    p.note_descendants();
                    Box::pin(p.kill()).await;
                }
                guard.answer(Err(err));
                guard.finish();
                return;
            }
        };

        let core = guard.core.clone();
        let session = Arc::new(SessionInner::new(
            client.peer().clone(),
            &guard.key,
            guard.link.clone(),
            made_from,
            hooks,
            previous,
            process.as_ref().and_then(ServerProcess::pid),
            // A health check reads the idle time on every hit: exact then.
            (core.epoch, core.config.health_check != HealthCheck::Off),
            core.slots.clone(),
            driver.unwrap_or_else(|| Driver::Runtime(tokio::runtime::Handle::current())),
        ));
        if !core.promote(&guard.key, session.clone(), guard.link.clone()) {
            Stats::bump(&core.stats.creation_failures);
            metrics::creation_failed(&guard.key.server);
            guard.answer(Err(Error::ClosedWhileConnecting {
                server: guard.key.server.clone(),
                scope: guard.key.scope.clone(),
            }));
            guard.link.ended.cancel();
            let mut waiting = std::pin::pin!(client.waiting().fuse());
            Box::pin(teardown(&guard, &mut waiting, service_ct, process.as_mut())).await;
            guard.finish();
            return;
        }
        guard.established = true;
        metrics::created(&guard.key.server, started.elapsed());
        tracing::info!(elapsed = ?started.elapsed(), replaced = ?previous, "session created");
        guard.answer(Ok(session.clone()));

        // Fused: it may complete in the select below, and teardown must not
        // poll it again.
        let mut waiting = std::pin::pin!(client.waiting().fuse());
        let reason = loop {
            let busy = session.busy_for_owner();
            if !busy {
                session.stamp_if_used();
            }
            let idle = core.config.idle_timeout;
            let idle_at = idle.map(|d| session.last_used() + d);
            let life_at = core.config.max_lifetime.map(|d| started + d);
            // Releases nobody waits for are seen here, at most this late.
            let look_at = idle
                .filter(|_| session.stamped_by_owner())
                .map(|d| Instant::now() + look_every(d));
            // A busy session neither idles nor expires: wait for its release.
            let wake = if busy {
                None
            } else {
                idle_at.into_iter().chain(life_at).chain(look_at).min()
            };
            tokio::select! {
                biased;
                _ = close.cancelled() => break match guard.link.reason.get() {
                    Some(reason) => reason,
                    // The pool's own signal: nobody took it out of the
                    // registry, so it leaves by itself.
                    None => {
                        core.remove(&guard.key, &guard.link, CloseReason::PoolDropped);
                        CloseReason::PoolDropped
                    }
                },
                _ = &mut waiting => break died(&guard, "service ended"),
                _ = exited(process.as_mut()) => break died(&guard, "server process exited"),
                _ = guard.link.lost.tripped() => break died(&guard, "transport lost the session"),
                _ = session.released.notified(), if busy => {}
                // Taken out already: end once its last caller lets go. The
                // `busy` read above may be stale (a caller leased it since),
                // so look again; a release wakes this loop.
                _ = guard.link.retire.cancelled(), if !busy => {
                    if session.busy() == 0 {
                        break CloseReason::ConfigChanged;
                    }
                }
                _ = sleep_until(wake.unwrap_or(started)), if wake.is_some() => {
                    let now = Instant::now();
                    let expired = if life_at.is_some_and(|t| t <= now) {
                        CloseReason::MaxLifetime
                    } else if !session.used_since_stamp()
                        && idle.is_some_and(|d| session.last_used() + d <= now)
                    {
                        CloseReason::IdleTimeout
                    } else {
                        continue;
                    };
                    // Fails if a caller took the session meanwhile.
                    if core.expire(&guard.key, &guard.link, expired) {
                        tracing::info!(reason = ?expired, "session expired");
                        break expired;
                    }
                }
            }
        };
        drop(session);
        // Recorded before requests in flight are ended, so they name it;
        // whoever decided first (a close racing a death) gives the reason.
        guard.link.reason.set(reason);
        let reason = guard.link.reason.get().unwrap_or(reason);
        guard.link.ended.cancel();
        core.stats.closed(reason);
        guard.established = false;
        let elapsed = Box::pin(teardown(&guard, &mut waiting, service_ct, process.as_mut())).await;
        metrics::closed(&guard.key.server, reason, Some(elapsed));
        tracing::info!(?reason, teardown = ?elapsed, "session closed");
        guard.finish();
    }
}

/// How often an idle session's owner looks for releases it was not woken
/// for: a sixteenth of the idle timeout, at least a millisecond. An idle
/// session expires at most this much after its timeout.
fn look_every(idle_timeout: Duration) -> Duration {
    (idle_timeout / 16).max(Duration::from_millis(1))
}

fn died(guard: &OwnerGuard, what: &'static str) -> CloseReason {
    // Out of the registry before anything else, so no caller gets a dead
    // session while it is torn down.
    guard
        .core
        .remove(&guard.key, &guard.link, CloseReason::Died);
    tracing::info!(cause = what, "session died");
    CloseReason::Died
}

async fn exited(process: Option<&mut ServerProcess>) {
    match process {
        Some(p) => p.exited().await,
        None => std::future::pending().await,
    }
}

/// Spawns the transport and runs the MCP handshake, within the connect
/// timeout, unless the session is closed first. The connect timeout also
/// bounds the wait for one of the pool's `max_connecting` slots, and a
/// second try on a fresh connection when a server hung up on the protocol
/// probe. On failure the process, if one was started, comes back to be
/// killed.
async fn connect(
    guard: &OwnerGuard,
    config: &ServerConfig,
    hooks: &Arc<Hooks>,
) -> Result<
    (
        Client,
        Option<ServerProcess>,
        RunningServiceCancellationToken,
    ),
    (Error, Option<ServerProcess>),
> {
    let (server, scope) = (guard.key.server.clone(), guard.key.scope.clone());
    let close = &guard.link.close;
    let core = &guard.core;
    let connect_timeout = core.config.connect_timeout;
    let started = Instant::now();
    let deadline = started + connect_timeout;
    let timed_out = |queued| Error::ConnectTimeout {
        server: server.clone(),
        scope: scope.clone(),
        timeout: connect_timeout,
        queued,
    };
    let closed = || Error::ClosedWhileConnecting {
        server: server.clone(),
        scope: scope.clone(),
    };
    if close.is_cancelled() {
        return Err((closed(), None));
    }
    // Held until the handshake is over, so at most `max_connecting` servers
    // start at once.
    let _permit = match &core.connecting {
        Some(connecting) => tokio::select! {
            biased;
            _ = close.cancelled() => return Err((closed(), None)),
            permit = timeout_at(deadline, connecting.acquire()) => match permit {
                Ok(Ok(permit)) => Some(permit),
                // The semaphore is never closed.
                Ok(Err(_)) => None,
                Err(_) => return Err((timed_out(Some(started.elapsed())), None)),
            },
        },
        None => None,
    };
    let queued = core.connecting.as_ref().map(|_| started.elapsed());
    let mut attempts = core.eras.attempts(&server, config).into_iter().peekable();
    loop {
        let mode = attempts.next().expect("at least one attempt");
        let handler = PoolHandler::new(
            config.handler.as_ref().or(core.config.handler.as_ref()),
            &HandlerContext::new(
                guard.key.server.clone(),
                guard.key.scope.clone(),
                guard.link.generation,
                guard.link.adopted.clone(),
            ),
            hooks.clone(),
        );
        let watchdog = core.watchdog.clone();
        let (mut process, handshake) =
            match start(config, mode, handler, guard.link.lost.clone(), watchdog) {
                Ok(started) => started,
                Err(source) => {
                    let source = Arc::new(source);
                    let (server, scope) = (server.clone(), scope.clone());
                    return Err((
                        Error::Spawn {
                            server,
                            scope,
                            source,
                        },
                        None,
                    ));
                }
            };
        tracing::debug!(pid = ?process.as_ref().and_then(ServerProcess::pid), "server started");
        let result = tokio::select! {
            biased;
            _ = close.cancelled() => Err(closed()),
            r = timeout_at(deadline, handshake) => match r {
                Ok(Ok(client)) => Ok(client),
                Ok(Err(_)) if close.is_cancelled() => Err(closed()),
                Ok(Err(source)) if attempts.peek().is_some() && hung_up_on_probe(&*source) => {
                    tracing::info!(error = %source, "protocol probe failed; trying `initialize` on a new connection");
                    if let Some(p) = process.as_mut() {
                        p.note_descendants();
                        p.kill().await;
                    }
                    continue;
                }
                Ok(Err(source)) => Err(Error::Connect {
                    server: server.clone(),
                    scope: scope.clone(),
                    source,
                }),
                Err(_) => Err(timed_out(queued)),
            },
        };
        return match result {
            Ok(client) => {
                if let Some(info) = client.peer_info() {
                    core.eras.learn(&server, config, &info.protocol_version);
                }
                let service_ct = client.cancellation_token();
                Ok((client, process, service_ct))
            }
            Err(err) => {
                if matches!(err, Error::Connect { .. } | Error::ConnectTimeout { .. }) {
                    core.eras.forget(&server);
                }
                Err((err, process))
            }
        };
    }
}

/// Whether a handshake failed because the server closed the connection on
/// the `server/discover` probe, as some servers of the `initialize` era do.
fn hung_up_on_probe(error: &(dyn std::error::Error + 'static)) -> bool {
    use rmcp::service::ClientInitializeError as E;
    match error.downcast_ref::<E>() {
        Some(E::ConnectionClosed(context)) => context.contains("discover"),
        Some(E::TransportError { context, .. }) => context.contains("discover"),
        _ => false,
    }
}

/// Starts the transport: spawns a stdio server at once (so the owner holds
/// the process whatever happens next) and returns the handshake to await.
fn start(
    config: &ServerConfig,
    mode: ClientLifecycleMode,
    info: PoolHandler,
    lost: Arc<crate::registry::Lost>,
    watchdog: Option<Arc<Watchdog>>,
) -> std::io::Result<(Option<ServerProcess>, Handshake)> {
    Ok(match &config.transport {
        Transport::Stdio(stdio) => {
            let (process, stdout, stdin) = ServerProcess::spawn(stdio, watchdog)?;
            let handshake = async move {
                info.serve_with_lifecycle((stdout, stdin), mode)
                    .await
                    .map_err(boxed)
            };
            (Some(process), Box::pin(handshake))
        }
        Transport::Connector(connect) => {
            let connect = connect.clone();
            let handshake = async move {
                let stream = connect().await.map_err(boxed)?;
                info.serve_with_lifecycle(stream, mode).await.map_err(boxed)
            };
            (None, Box::pin(handshake))
        }
        Transport::Http(http) => (None, crate::http::connect(http.clone(), info, mode, lost)),
    })
}

pub(crate) type Handshake = futures_util::future::BoxFuture<'static, Result<Client, ConnectError>>;

pub(crate) fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> ConnectError {
    Arc::new(e)
}

/// Stops the service and the server within the close timeout. Failures are
/// logged at `warn` and counted, never swallowed.
async fn teardown(
    guard: &OwnerGuard,
    waiting: &mut (impl FusedFuture + Unpin),
    service_ct: RunningServiceCancellationToken,
    process: Option<&mut ServerProcess>,
) -> Duration {
    let core = &guard.core;
    let t0 = Instant::now();
    let close_timeout = core.config.close_timeout;
    let mut process = process;
    if let Some(p) = process.as_deref_mut() {
        // Before the server is told to stop: once it exits, what it started
        // can no longer be found through it.
        p.note_descendants();
    }
    service_ct.cancel();
    let exit = match process {
        Some(p) => Some(p.shut_down(close_timeout).await),
        None => None,
    };
    let grace = if exit.is_some() {
        SERVICE_EXIT_GRACE
    } else {
        close_timeout
    };
    let service_done = waiting.is_terminated() || timeout(grace, waiting).await.is_ok();
    let elapsed = t0.elapsed();
    match exit {
        Some(Exit::Killed) => {
            Stats::bump(&core.stats.teardown_failures);
            metrics::teardown_failed(&guard.key.server);
            tracing::warn!(
                ?elapsed,
                "server ignored stdin EOF and SIGTERM within the close timeout; killed"
            );
        }
        Some(Exit::Terminated) => {
            tracing::info!(?elapsed, "server ignored stdin EOF; ended by SIGTERM")
        }
        Some(exit) => tracing::debug!(?elapsed, ?exit, "server process ended"),
        None => {}
    }
    if !service_done {
        Stats::bump(&core.stats.teardown_failures);
        metrics::teardown_failed(&guard.key.server);
        tracing::warn!(
            ?elapsed,
            "MCP service did not stop within the close timeout; detached"
        );
    }
    elapsed
}
