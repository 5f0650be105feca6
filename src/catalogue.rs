//! The tool catalogue: each server's tools, fetched once and shared by every
//! scope, until the server says they changed, their `ttlMs` runs out, or the
//! server's config changes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures_util::{
    FutureExt,
    future::{BoxFuture, Shared, WeakShared},
};
use parking_lot::Mutex;
use rmcp::model::{PaginatedRequestParams, Tool};
use tokio::time::Instant;

use crate::{Error, ServerConfig, SessionPool};

/// A server's tools, as the pool hands them out: cheap to clone.
pub type Tools = Arc<[Tool]>;

/// The tools and how long they stay fresh.
type Fetched = BoxFuture<'static, Result<(Tools, Option<Duration>), Error>>;
type Fetch = Shared<Fetched>;

enum State {
    Empty,
    /// Held weakly: the callers awaiting it keep it (and the pool handle it
    /// holds) alive; once all of them are gone, the next caller starts anew.
    Fetching(WeakShared<Fetched>),
    Ready {
        tools: Tools,
        until: Option<Instant>,
    },
}

struct Listing {
    fingerprint: u64,
    /// Bumped by every change notice, so a fetch that started before one
    /// does not store what it got.
    version: u64,
    state: State,
}

#[derive(Default)]
pub(crate) struct Catalogue {
    servers: Mutex<HashMap<Arc<str>, Listing>>,
    /// `tools/list` fetches started, ever (for the status).
    pub(crate) fetches: std::sync::atomic::AtomicU64,
}

impl Catalogue {
    /// A server said its tools (or prompts, or resources) changed.
    pub(crate) fn changed(&self, server: &str) {
        if let Some(listing) = self.servers.lock().get_mut(server) {
            listing.version += 1;
            listing.state = State::Empty;
        }
    }
}

impl SessionPool {
    /// The tools of `server`, every page, shared by every scope: the first
    /// caller fetches them (from any live session of the server, or else from
    /// `scope`'s own session, created with `config` if need be), and later
    /// callers of any scope get the same list without a request to the
    /// server, until the server sends `notifications/tools/list_changed`
    /// (or the prompts or resources one) on any of its sessions, the
    /// `ttlMs` it attached to the list runs out, or `config` changes.
    /// Concurrent callers share one fetch.
    ///
    /// A framework can build a new conversation's tool schema from this
    /// without starting a server for that conversation.
    ///
    /// ```no_run
    /// # async fn f(pool: mcp_session_pool::SessionPool, cfg: mcp_session_pool::ServerConfig) -> Result<(), mcp_session_pool::Error> {
    /// let tools = pool.list_tools("browser", "thread-42", &cfg).await?;
    /// for tool in tools.iter() {
    ///     println!("{}: {}", tool.name, tool.description.as_deref().unwrap_or(""));
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get_session`](Self::get_session) and
    /// [`Session::list_tools`](crate::Session::list_tools); errors are not
    /// cached.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the fetch is shared; dropping this future leaves it to
    /// the other callers (or to the next one, which resumes it).
    pub async fn list_tools(
        &self,
        server: &str,
        scope: &str,
        config: &ServerConfig,
    ) -> Result<Tools, Error> {
        let catalogue = &self.inner.core.catalogue;
        let fingerprint = config.fingerprint();
        let (fetch, version) = {
            let mut servers = catalogue.servers.lock();
            let listing = servers.entry(Arc::from(server)).or_insert_with(|| Listing {
                fingerprint,
                version: 0,
                state: State::Empty,
            });
            if listing.fingerprint != fingerprint {
                *listing = Listing {
                    fingerprint,
                    version: listing.version + 1,
                    state: State::Empty,
                };
            }
            let running = match &listing.state {
                State::Ready { tools, until } if until.is_none_or(|t| Instant::now() < t) => {
                    return Ok(tools.clone());
                }
                State::Fetching(fetch) => fetch.upgrade(),
                _ => None,
            };
            match running {
                Some(fetch) => (fetch, listing.version),
                None => {
                    let fetch = self.fetch_tools(server, scope, config);
                    let weak = fetch.downgrade().expect("a fresh fetch has not completed");
                    listing.state = State::Fetching(weak);
                    catalogue
                        .fetches
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    (fetch, listing.version)
                }
            }
        };
        let result = fetch.await;
        let mut servers = catalogue.servers.lock();
        if let Some(listing) = servers.get_mut(server)
            && listing.version == version
            && matches!(listing.state, State::Fetching(_))
        {
            listing.state = match &result {
                Ok((tools, ttl)) => State::Ready {
                    tools: tools.clone(),
                    until: ttl.map(|ttl| Instant::now() + ttl),
                },
                Err(_) => State::Empty,
            };
        }
        result.map(|(tools, _)| tools)
    }

    fn fetch_tools(&self, server: &str, scope: &str, config: &ServerConfig) -> Fetch {
        let (pool, server, scope, config) = (
            self.clone(),
            server.to_owned(),
            scope.to_owned(),
            config.clone(),
        );
        async move {
            let session = match pool.any_live_session(&server, config.fingerprint()) {
                Some(session) => session,
                None => pool.get_session(&server, &scope, &config).await?,
            };
            let mut tools = Vec::new();
            let mut ttl: Option<u64> = None;
            let mut cursor = None;
            loop {
                let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
                let page = session.list_tools(params).await?;
                tools.extend(page.tools);
                if let Some(ms) = page.ttl_ms {
                    ttl = Some(ttl.map_or(ms, |t| t.min(ms)));
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            Ok((Tools::from(tools), ttl.map(Duration::from_millis)))
        }
        .boxed()
        .shared()
    }
}
