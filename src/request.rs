//! Guarded requests: every request made through a [`Session`] ends when the
//! session ends, and within the server's call timeout, with the crate's error.

use std::{future::Future, sync::Arc, time::Duration};

use rmcp::{
    Peer, RoleClient, ServiceError,
    model::{
        CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
        ClientRequest, CompleteRequestParams, CompleteResult, GetPromptRequestParams,
        GetPromptResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
        ListToolsResult, PaginatedRequestParams, PingRequest, ProgressNotificationParam,
        ProgressToken, Prompt, ReadResourceRequestParams, ReadResourceResult, RequestId, Resource,
        ResourceTemplate, ServerResult, Tool,
    },
    service::PeerRequestOptions,
};
use tokio::{sync::mpsc, time::Instant};

use crate::{CloseReason, Error, Session, handler::Hooks, session::SessionInner};

/// After a request failed because its transport is gone, how long to wait
/// for the owner to record why, so the error names the real reason.
const REASON_WAIT: Duration = Duration::from_millis(100);

impl Session {
    /// Calls a tool (`tools/call`).
    ///
    /// A tool that fails on its own terms (`is_error: true` in the result)
    /// is an `Ok`; the model should see that result. A 2026-07-28 server that
    /// needs input first (`input_required`: an elicitation, a sampling, the
    /// roots) has it answered by the session's client handler, and the call
    /// goes on (at most 10 rounds).
    ///
    /// # Errors
    ///
    /// [`Error::SessionEnded`] if the session ended before the answer came
    /// (the server's state is gone), [`Error::CallTimeout`] past the server's
    /// call timeout, [`Error::Call`] if the server answered with an error
    /// (an unknown tool, say).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future sends `notifications/cancelled` for
    /// the request, and the session stays usable.
    pub async fn call_tool(&self, params: CallToolRequestParams) -> Result<CallToolResult, Error> {
        let call = crate::mrtr::call_tool(self.peer(), &self.inner.hooks, params);
        self.guard("tools/call", call).await
    }

    /// [`call_tool`](Self::call_tool), with the server's progress reports of
    /// this call (`notifications/progress` for its progress token) handed to
    /// `on_progress` as they come, in this caller's task. A tool wrapper can
    /// forward them to its user; the session's client handler sees them too.
    /// rmcp handles each incoming notification in a task of its own, so a
    /// report sent just before the result can arrive after it; such a late
    /// report reaches the handler only.
    ///
    /// To bound or cancel the call, set the server's
    /// [`call_timeout`](crate::ServerConfig::call_timeout), or drop this
    /// future (under `tokio::time::timeout`, or a `select!` on the user's
    /// cancel button): the server gets `notifications/cancelled` for the
    /// request either way, and the session stays usable.
    ///
    /// ```no_run
    /// # async fn f(session: mcp_session_pool::Session) -> Result<(), mcp_session_pool::Error> {
    /// use mcp_session_pool::rmcp::model::CallToolRequestParams;
    ///
    /// let result = session
    ///     .call_tool_with_progress(CallToolRequestParams::new("crawl"), |p| {
    ///         println!("{} of {:?}: {}", p.progress, p.total, p.message.as_deref().unwrap_or(""));
    ///     })
    ///     .await?;
    /// # let _ = result; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn call_tool_with_progress(
        &self,
        params: CallToolRequestParams,
        mut on_progress: impl FnMut(ProgressNotificationParam) + Send,
    ) -> Result<CallToolResult, Error> {
        let peer = self.peer();
        let session = &*self.inner;
        self.guard("tools/call", async move {
            let mut rounds = crate::mrtr::Rounds::new(params);
            loop {
                let request =
                    ClientRequest::CallToolRequest(CallToolRequest::new(rounds.params.clone()));
                let handle = peer
                    .send_request_with_option(request, PeerRequestOptions::no_options())
                    .await?;
                let abandon = CancelOnDrop::new(peer, session, &handle.id);
                let (tx, mut progress) = mpsc::unbounded_channel();
                let route = Route::new(&session.hooks, handle.progress_token.clone(), tx);
                let response = handle.await_response();
                tokio::pin!(response);
                let result = loop {
                    tokio::select! {
                        result = &mut response => break result,
                        Some(report) = progress.recv() => on_progress(report),
                    }
                };
                drop(route);
                while let Ok(report) = progress.try_recv() {
                    on_progress(report);
                }
                abandon.answered();
                match result? {
                    ServerResult::CallToolResult(result) => return Ok(result),
                    // A 2026-07-28 server needs input first: the session's
                    // handler answers, and the call goes again.
                    ServerResult::InputRequiredResult(input) => {
                        rounds.answer(peer, &session.hooks, input).await?;
                    }
                    _ => return Err(ServiceError::UnexpectedResponse),
                }
            }
        })
        .await
    }

    /// One page of the server's tools (`tools/list`).
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn list_tools(
        &self,
        params: Option<PaginatedRequestParams>,
    ) -> Result<ListToolsResult, Error> {
        self.guard("tools/list", self.peer().list_tools(params))
            .await
    }

    /// All of the server's tools, every page.
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool); the call timeout bounds all pages
    /// together.
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn list_all_tools(&self) -> Result<Vec<Tool>, Error> {
        self.guard("tools/list", self.peer().list_all_tools()).await
    }

    /// One page of the server's prompts (`prompts/list`).
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn list_prompts(
        &self,
        params: Option<PaginatedRequestParams>,
    ) -> Result<ListPromptsResult, Error> {
        self.guard("prompts/list", self.peer().list_prompts(params))
            .await
    }

    /// All of the server's prompts, every page.
    ///
    /// # Errors
    ///
    /// As [`list_all_tools`](Self::list_all_tools).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn list_all_prompts(&self) -> Result<Vec<Prompt>, Error> {
        self.guard("prompts/list", self.peer().list_all_prompts())
            .await
    }

    /// Gets a prompt (`prompts/get`).
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn get_prompt(
        &self,
        params: GetPromptRequestParams,
    ) -> Result<GetPromptResult, Error> {
        self.guard("prompts/get", self.peer().get_prompt(params))
            .await
    }

    /// One page of the server's resources (`resources/list`).
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn list_resources(
        &self,
        params: Option<PaginatedRequestParams>,
    ) -> Result<ListResourcesResult, Error> {
        self.guard("resources/list", self.peer().list_resources(params))
            .await
    }

    /// All of the server's resources, every page.
    ///
    /// # Errors
    ///
    /// As [`list_all_tools`](Self::list_all_tools).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn list_all_resources(&self) -> Result<Vec<Resource>, Error> {
        self.guard("resources/list", self.peer().list_all_resources())
            .await
    }

    /// One page of the server's resource templates (`resources/templates/list`).
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn list_resource_templates(
        &self,
        params: Option<PaginatedRequestParams>,
    ) -> Result<ListResourceTemplatesResult, Error> {
        self.guard(
            "resources/templates/list",
            self.peer().list_resource_templates(params),
        )
        .await
    }

    /// All of the server's resource templates, every page.
    ///
    /// # Errors
    ///
    /// As [`list_all_tools`](Self::list_all_tools).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn list_all_resource_templates(&self) -> Result<Vec<ResourceTemplate>, Error> {
        self.guard(
            "resources/templates/list",
            self.peer().list_all_resource_templates(),
        )
        .await
    }

    /// Reads a resource (`resources/read`).
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn read_resource(
        &self,
        params: ReadResourceRequestParams,
    ) -> Result<ReadResourceResult, Error> {
        self.guard("resources/read", self.peer().read_resource(params))
            .await
    }

    /// Asks for argument completions (`completion/complete`).
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn complete(&self, params: CompleteRequestParams) -> Result<CompleteResult, Error> {
        self.guard("completion/complete", self.peer().complete(params))
            .await
    }

    /// Sets the server's log level (`logging/setLevel`). MCP 2026-07-28
    /// deprecates logging; servers of that version may not support it.
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    #[allow(deprecated)]
    pub async fn set_level(&self, params: rmcp::model::SetLevelRequestParams) -> Result<(), Error> {
        self.guard("logging/setLevel", self.peer().set_level(params))
            .await
    }

    /// Pings the server. A server that rejects `ping` (MCP 2026-07-28 has
    /// none) answers with an error: [`Error::Call`], which still shows that
    /// it is alive.
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn ping(&self) -> Result<(), Error> {
        let request = ClientRequest::PingRequest(PingRequest::default());
        self.send_request(request).await.map(drop)
    }

    /// Sends any request, guarded like the methods above: the escape hatch
    /// for requests this type has no method for.
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool).
    ///
    /// # Cancel safety
    ///
    /// As [`call_tool`](Self::call_tool).
    pub async fn send_request(&self, request: ClientRequest) -> Result<ServerResult, Error> {
        let method = request.method().to_owned();
        let peer = self.peer();
        let session = &self.inner;
        self.guard(&method, async move {
            let handle = peer
                .send_request_with_option(request, PeerRequestOptions::no_options())
                .await?;
            // rmcp's raw requests do not cancel on drop; its typed ones do.
            let abandon = CancelOnDrop::new(peer, session, &handle.id);
            let result = handle.await_response().await;
            abandon.answered();
            result
        })
        .await
    }

    /// [`call_tool`](Self::call_tool) from sync code, with no runtime needed.
    ///
    /// Outside any runtime this blocks the thread; inside a multi-threaded
    /// runtime it uses `block_in_place` and works too. The session's own
    /// tasks go on where they live; the waiting runs on the pool's own
    /// runtime (started if need be) or, with `OwnerRuntime::Handle` or
    /// `Caller`, on the runtime hosting the session.
    ///
    /// # Errors
    ///
    /// As [`call_tool`](Self::call_tool); [`Error::BlockingNotAllowed`] when
    /// called from a current-thread runtime, where blocking could deadlock:
    /// use `call_tool` there.
    pub fn call_tool_blocking(
        &self,
        params: CallToolRequestParams,
    ) -> Result<CallToolResult, Error> {
        self.block_on(self.call_tool(params))?
    }

    /// Runs `request` unless the session has ended, until the session ends
    /// or the call timeout passes, and names the session in any error.
    pub(crate) async fn guard<T>(
        &self,
        method: &str,
        request: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, Error> {
        let inner = &*self.inner;
        let ended = &inner.link.ended;
        if ended.is_cancelled() {
            return Err(ended_error(inner, method));
        }
        let result = match inner.call_timeout {
            None => tokio::select! {
                biased;
                result = request => result,
                () = ended.cancelled() => return Err(ended_error(inner, method)),
            },
            Some(limit) => {
                let started = Instant::now();
                tokio::select! {
                    biased;
                    result = request => result,
                    () = ended.cancelled() => return Err(ended_error(inner, method)),
                    // Dropping rmcp's future cancels the request toward the server.
                    () = tokio::time::sleep(limit) => return Err(Error::CallTimeout {
                        server: inner.server.clone(),
                        scope: inner.scope().clone(),
                        method: method.into(),
                        elapsed: started.elapsed(),
                    }),
                }
            }
        };
        match result {
            Ok(value) => Ok(value),
            // The transport is gone: the session is dead whatever rmcp's
            // service loop has noticed so far. Tell the owner, and give it a
            // moment to record why.
            Err(ServiceError::TransportClosed | ServiceError::TransportSend(_)) => {
                inner.link.lost.trip();
                let _ = tokio::time::timeout(REASON_WAIT, ended.cancelled()).await;
                Err(ended_error(inner, method))
            }
            Err(source) => Err(Error::Call {
                server: inner.server.clone(),
                scope: inner.scope().clone(),
                method: method.into(),
                source: Arc::new(source),
            }),
        }
    }
}

fn ended_error(inner: &SessionInner, method: &str) -> Error {
    Error::SessionEnded {
        server: inner.server.clone(),
        scope: inner.scope().clone(),
        generation: inner.generation,
        reason: inner.link.reason.get().unwrap_or(CloseReason::Died),
        method: method.into(),
    }
}

/// A progress route of one call, taken down however the call ends.
struct Route<'a> {
    hooks: &'a Hooks,
    token: ProgressToken,
}

impl<'a> Route<'a> {
    fn new(
        hooks: &'a Hooks,
        token: ProgressToken,
        to: mpsc::UnboundedSender<ProgressNotificationParam>,
    ) -> Self {
        hooks.route_progress(token.clone(), to);
        Self { hooks, token }
    }
}

impl Drop for Route<'_> {
    fn drop(&mut self) {
        self.hooks.unroute_progress(&self.token);
    }
}

/// Sends `notifications/cancelled` for a raw request whose caller stopped
/// waiting, as rmcp's typed requests do.
struct CancelOnDrop<'a> {
    peer: &'a Peer<RoleClient>,
    session: &'a SessionInner,
    id: Option<RequestId>,
}

impl<'a> CancelOnDrop<'a> {
    fn new(peer: &'a Peer<RoleClient>, session: &'a SessionInner, id: &RequestId) -> Self {
        Self {
            peer,
            session,
            id: Some(id.clone()),
        }
    }

    /// The request was answered (or failed): nothing to cancel.
    fn answered(mut self) {
        self.id = None;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let peer = self.peer.clone();
        let param = CancelledNotificationParam::new(
            Some(id),
            Some("request abandoned by the caller".into()),
        );
        // Bounded: on a session that is closing, the send may never be
        // answered.
        self.session.runtime().spawn(async move {
            let _ = tokio::time::timeout(REASON_WAIT, peer.notify_cancelled(param)).await;
        });
    }
}
