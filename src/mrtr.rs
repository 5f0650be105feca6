//! Multi-round tool calls (MCP 2026-07-28, SEP-2322): a server that needs
//! the client's input (an elicitation, a sampling, the roots) answers
//! `input_required`; the session's client handler answers those requests
//! and the call is sent again with the answers, as rmcp's own
//! `RunningService::call_tool` does.

use std::{sync::Arc, time::Duration};

use rmcp::{
    ErrorData, Peer, RoleClient, ServiceError,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ClientResult, InputRequest,
        InputRequiredResult, InputResponses, NumberOrString, ServerRequest,
    },
    service::RequestContext,
};

use crate::handler::Hooks;

/// rmcp's default cap on `input_required` rounds.
const MAX_ROUNDS: usize = 10;

/// One `tools/call`, with every `input_required` round answered by the
/// session's client handler.
pub(crate) async fn call_tool(
    peer: &Peer<RoleClient>,
    hooks: &Hooks,
    params: CallToolRequestParams,
) -> Result<CallToolResult, ServiceError> {
    let mut rounds = Rounds::new(params);
    loop {
        match peer.call_tool_once(rounds.params.clone()).await? {
            CallToolResponse::Complete(result) => return Ok(result),
            CallToolResponse::InputRequired(result) => rounds.answer(peer, hooks, result).await?,
            // Tasks are driven by the caller, through `send_request`.
            _ => return Err(ServiceError::UnexpectedResponse),
        }
    }
}

/// The rounds of one call: its parameters, carrying the answers of the
/// last round.
pub(crate) struct Rounds {
    pub(crate) params: CallToolRequestParams,
    rounds: usize,
    state_only_rounds: u32,
}

impl Rounds {
    pub(crate) fn new(params: CallToolRequestParams) -> Self {
        Self {
            params,
            rounds: 0,
            state_only_rounds: 0,
        }
    }

    /// Answers an `input_required` result, ready for the next round.
    pub(crate) async fn answer(
        &mut self,
        peer: &Peer<RoleClient>,
        hooks: &Hooks,
        result: InputRequiredResult,
    ) -> Result<(), ServiceError> {
        self.rounds += 1;
        if self.rounds >= MAX_ROUNDS {
            return Err(ServiceError::InputRequiredRoundsExceeded {
                max_rounds: MAX_ROUNDS,
            });
        }
        let (responses, state) = answer(peer, hooks, result, &mut self.state_only_rounds).await?;
        self.params.input_responses = responses;
        self.params.request_state = state;
        Ok(())
    }
}

async fn answer(
    peer: &Peer<RoleClient>,
    hooks: &Hooks,
    result: InputRequiredResult,
    state_only_rounds: &mut u32,
) -> Result<(Option<InputResponses>, Option<String>), ServiceError> {
    let requests = result.input_requests.unwrap_or_default();
    if requests.is_empty() {
        if result.request_state.is_none() {
            return Err(ServiceError::UnexpectedResponse);
        }
        // Only state to carry: the server is not ready yet; back off a bit.
        let millis = (50u64 << (*state_only_rounds).min(3)).min(250);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        *state_only_rounds += 1;
        return Ok((None, result.request_state));
    }
    *state_only_rounds = 0;
    let mut responses = InputResponses::new();
    for (key, request) in requests {
        let request = match request {
            InputRequest::CreateMessage(r) => ServerRequest::CreateMessageRequest(r),
            InputRequest::Elicitation(r) => ServerRequest::ElicitRequest(r),
            InputRequest::ListRoots(r) => ServerRequest::ListRootsRequest(r),
            _ => return Err(ServiceError::UnexpectedResponse),
        };
        let context = RequestContext::new(
            NumberOrString::String(Arc::from(key.as_str())),
            peer.clone(),
        );
        let answer = hooks
            .answer(request, context)
            .await
            .map_err(ServiceError::McpError)?;
        let value = match answer {
            ClientResult::CreateMessageResult(r) => serde_json::to_value(r),
            ClientResult::ElicitResult(r) => serde_json::to_value(r),
            ClientResult::ListRootsResult(r) => serde_json::to_value(r),
            _ => return Err(ServiceError::UnexpectedResponse),
        }
        .map_err(|e| {
            ServiceError::McpError(ErrorData::internal_error(
                format!("failed to serialize an input response: {e}"),
                None,
            ))
        })?;
        responses.insert(key, value);
    }
    Ok((Some(responses), result.request_state))
}
