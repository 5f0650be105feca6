//! The client side of a session's two-way traffic: the user's rmcp
//! `ClientHandler`, made per session by a factory, wrapped so the pool still
//! hears what it needs (list changes for its catalogue, progress of the
//! calls it routes).

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
};

use parking_lot::Mutex;
use rmcp::{
    ClientHandler, ErrorData, RoleClient, Service,
    model::{
        ClientCapabilities, ClientConfig, ClientResult, Implementation, ProgressNotificationParam,
        ProgressToken, ProtocolVersion, ServerNotification, ServerRequest,
    },
    service::{NotificationContext, RequestContext},
};
use tokio::sync::mpsc;

use crate::registry::Adoption;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which session a client handler serves, given to the handler factory.
///
/// A warm spare's handler is made before any scope takes the spare: keep
/// the context and read [`scope`](Self::scope) when a message comes, rather
/// than copying the scope at creation.
#[derive(Clone)]
pub struct HandlerContext {
    server: Arc<str>,
    scope: Arc<str>,
    generation: u64,
    adopted: Arc<OnceLock<Adoption>>,
}

impl HandlerContext {
    pub(crate) fn new(
        server: Arc<str>,
        scope: Arc<str>,
        generation: u64,
        adopted: Arc<OnceLock<Adoption>>,
    ) -> Self {
        Self {
            server,
            scope,
            generation,
            adopted,
        }
    }

    /// The server name of the session's key.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The scope of the session's key: for a warm spare, that of the scope
    /// that took it, once one has (until then the spare's own placeholder).
    pub fn scope(&self) -> &str {
        self.adopted.get().map_or(&self.scope, |a| &a.scope)
    }

    /// The session's generation ([`Session::generation`](crate::Session::generation)).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerContext")
            .field("server", &self.server)
            .field("scope", &self.scope())
            .field("generation", &self.generation)
            .finish()
    }
}

/// An rmcp client service with its futures boxed, so sessions can hold
/// handlers of any type.
trait ErasedService: Send + Sync + 'static {
    fn request(
        &self,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> BoxFuture<'_, Result<ClientResult, ErrorData>>;
    fn notify(
        &self,
        notification: ServerNotification,
        context: NotificationContext<RoleClient>,
    ) -> BoxFuture<'_, Result<(), ErrorData>>;
    fn info(&self) -> ClientConfig;
}

impl<S: Service<RoleClient>> ErasedService for S {
    fn request(
        &self,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> BoxFuture<'_, Result<ClientResult, ErrorData>> {
        Box::pin(self.handle_request(request, context))
    }

    fn notify(
        &self,
        notification: ServerNotification,
        context: NotificationContext<RoleClient>,
    ) -> BoxFuture<'_, Result<(), ErrorData>> {
        Box::pin(self.handle_notification(notification, context))
    }

    fn info(&self) -> ClientConfig {
        self.get_info()
    }
}

type MakeHandler = dyn Fn(&HandlerContext) -> Box<dyn ErasedService> + Send + Sync;

/// Makes the client handler of each session; see
/// [`Builder::client_handler`](crate::Builder::client_handler).
#[derive(Clone)]
pub(crate) struct HandlerFactory(Arc<MakeHandler>);

impl HandlerFactory {
    pub(crate) fn new<F, H>(make: F) -> Self
    where
        F: Fn(&HandlerContext) -> H + Send + Sync + 'static,
        H: ClientHandler,
    {
        Self(Arc::new(move |cx| Box::new(make(cx))))
    }
}

impl PartialEq for HandlerFactory {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for HandlerFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerFactory")
    }
}

/// Without a factory: a handler that declares no capabilities and ignores
/// what the server sends.
fn default_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-session-pool", env!("CARGO_PKG_VERSION")),
    )
}

/// What the pool itself wants to hear of a session's traffic.
pub(crate) struct Hooks {
    /// Called when the server says a list changed; the catalogue refetches.
    pub(crate) list_changed: Option<Box<dyn Fn() + Send + Sync>>,
    /// Progress of calls made with `Session::call_tool_with_progress`, by
    /// token.
    progress: Mutex<Progress>,
    /// The user's handler, which answers `input_required` rounds too.
    user: Mutex<Option<Arc<dyn ErasedService>>>,
}

/// Progress routes, and a few notifications that came before their call
/// registered its route (the request is on the wire before its token is
/// known here).
#[derive(Default)]
struct Progress {
    routes: HashMap<ProgressToken, mpsc::UnboundedSender<ProgressNotificationParam>>,
    early: VecDeque<ProgressNotificationParam>,
}

/// How many progress notifications without a route are kept for a call that
/// is about to register one.
const EARLY_PROGRESS: usize = 64;

impl Hooks {
    pub(crate) fn new(list_changed: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            list_changed: Some(Box::new(list_changed)),
            progress: Mutex::default(),
            user: Mutex::default(),
        }
    }

    /// Answers a request of the server, as the session's handler does.
    pub(crate) async fn answer(
        &self,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        let user = self.user.lock().clone();
        match user {
            Some(user) => user.request(request, context).await,
            None => ().handle_request(request, context).await,
        }
    }

    /// Routes the progress of the call with `token` to `to`, with anything
    /// that arrived for it already.
    pub(crate) fn route_progress(
        &self,
        token: ProgressToken,
        to: mpsc::UnboundedSender<ProgressNotificationParam>,
    ) {
        let mut progress = self.progress.lock();
        let early = std::mem::take(&mut progress.early);
        for param in early {
            if param.progress_token == token {
                let _ = to.send(param);
            } else {
                progress.early.push_back(param);
            }
        }
        progress.routes.insert(token, to);
    }

    pub(crate) fn unroute_progress(&self, token: &ProgressToken) {
        self.progress.lock().routes.remove(token);
    }

    fn progress(&self, param: &ProgressNotificationParam) {
        let mut progress = self.progress.lock();
        match progress.routes.get(&param.progress_token) {
            Some(to) => {
                let _ = to.send(param.clone());
            }
            None => {
                if progress.early.len() == EARLY_PROGRESS {
                    progress.early.pop_front();
                }
                progress.early.push_back(param.clone());
            }
        }
    }
}

/// The service a session is served with: the user's handler, with the
/// pool listening in.
pub(crate) struct PoolHandler {
    user: Option<Arc<dyn ErasedService>>,
    hooks: Arc<Hooks>,
}

impl PoolHandler {
    pub(crate) fn new(
        factory: Option<&HandlerFactory>,
        cx: &HandlerContext,
        hooks: Arc<Hooks>,
    ) -> Self {
        let user: Option<Arc<dyn ErasedService>> = factory.map(|f| Arc::from((f.0)(cx)));
        *hooks.user.lock() = user.clone();
        Self { user, hooks }
    }
}

impl Service<RoleClient> for PoolHandler {
    async fn handle_request(
        &self,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, ErrorData> {
        match &self.user {
            Some(user) => user.request(request, context).await,
            None => ().handle_request(request, context).await,
        }
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        context: NotificationContext<RoleClient>,
    ) -> Result<(), ErrorData> {
        match &notification {
            ServerNotification::ToolListChangedNotification(_)
            | ServerNotification::PromptListChangedNotification(_)
            | ServerNotification::ResourceListChangedNotification(_) => {
                if let Some(changed) = &self.hooks.list_changed {
                    changed();
                }
            }
            ServerNotification::ProgressNotification(progress) => {
                self.hooks.progress(&progress.params)
            }
            _ => {}
        }
        match &self.user {
            Some(user) => user.notify(notification, context).await,
            None => Ok(()),
        }
    }

    fn get_info(&self) -> ClientConfig {
        let info = self.user.as_ref().map_or_else(default_info, |u| u.info());
        // What `initialize` asks for; `server/discover` asks for 2026-07-28.
        info.with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }
}
