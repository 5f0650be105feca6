//! The streamable HTTP transport, behind the `http` feature.

use rmcp::service::ClientLifecycleMode;

#[cfg(feature = "http")]
use rmcp::transport::streamable_http_client::StreamableHttpError;

use std::sync::Arc;

use crate::{
    config::Http,
    handler::PoolHandler,
    owner::{Handshake, boxed},
    registry::Lost,
};

/// Connects to an HTTP MCP server and runs the handshake.
#[cfg(feature = "http")]
pub(crate) fn connect(
    config: Http,
    info: PoolHandler,
    mode: ClientLifecycleMode,
    lost: Arc<Lost>,
) -> Handshake {
    use rmcp::{
        service::ClientServiceExt,
        transport::{
            StreamableHttpClientTransport,
            streamable_http_client::StreamableHttpClientTransportConfig,
        },
    };
    // rustls needs a process-wide crypto provider; install `ring` unless the
    // host installed one already. `ring` is deprecated for lacking
    // post-quantum key exchange, but `aws-lc-rs` needs cmake to build; a host
    // that wants it installs it first and this does nothing.
    #[cfg(feature = "https-rustls")]
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    Box::pin(async move {
        let mut headers = std::collections::HashMap::new();
        for (name, value) in &config.headers {
            let name = http::HeaderName::try_from(name.as_str()).map_err(boxed)?;
            let value = http::HeaderValue::try_from(value.as_str()).map_err(boxed)?;
            headers.insert(name, value);
        }
        // A 404 means the server forgot the session and its state: end the
        // session, so the pool makes a new generation and callers learn of
        // the loss, instead of re-initializing behind their backs.
        let mut transport_config =
            StreamableHttpClientTransportConfig::with_uri(config.url.as_str())
                .custom_headers(headers)
                .reinit_on_expired_session(false);
        if let Some(token) = &config.bearer {
            transport_config = transport_config.auth_header(token.as_str());
        }
        let transport = Expiring {
            inner: StreamableHttpClientTransport::from_config(transport_config),
            expired: lost,
        };
        info.serve_with_lifecycle(transport, mode)
            .await
            .map_err(|e| match e {
                rmcp::service::ClientInitializeError::TransportError { error, context } => {
                    // rmcp's HTTP error does not chain its client's error:
                    // unwrap it, so `source()` reaches the root cause.
                    let source: Box<dyn std::error::Error + Send + Sync> =
                        match error
                            .error
                            .downcast::<StreamableHttpError<reqwest::Error>>()
                        {
                            Ok(http) => match *http {
                                StreamableHttpError::Client(client) => Box::new(client),
                                other => Box::new(other),
                            },
                            Err(other) => other,
                        };
                    boxed(Unreachable {
                        url: config.url.clone(),
                        context,
                        source,
                    })
                }
                other => boxed(other),
            })
    })
}

/// An HTTP server that could not be reached, said in terms a user can act
/// on: the URL and the root cause (rmcp's own message names internal
/// types). The whole chain stays reachable through `source()`.
#[cfg(feature = "http")]
#[derive(Debug)]
struct Unreachable {
    url: String,
    context: std::borrow::Cow<'static, str>,
    source: Box<dyn std::error::Error + Send + Sync>,
}

#[cfg(feature = "http")]
impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut cause: &(dyn std::error::Error + 'static) = &*self.source;
        while let Some(next) = cause.source() {
            cause = next;
        }
        write!(
            f,
            "cannot reach the MCP server at {}: {cause} (while trying to {})",
            self.url, self.context
        )
    }
}

#[cfg(feature = "http")]
impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The data key rmcp puts on the errors it makes up for undeliverable requests.
#[cfg(feature = "http")]
const TRANSPORT_CLOSED_MARKER: &str = "io.modelcontextprotocol/transportClosed";

/// An HTTP transport that ends once the server has forgotten its session.
///
/// Without re-initialization rmcp fails the request that got the 404 and
/// carries on; ending the transport instead ends the session, so the pool
/// replaces it and says why.
#[cfg(feature = "http")]
struct Expiring<T> {
    inner: T,
    expired: Arc<Lost>,
}

#[cfg(feature = "http")]
impl<T, E> rmcp::transport::Transport<rmcp::RoleClient> for Expiring<T>
where
    T: rmcp::transport::Transport<rmcp::RoleClient, Error = StreamableHttpError<E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    type Error = StreamableHttpError<E>;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<rmcp::RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let sent = self.inner.send(item);
        let expired = self.expired.clone();
        async move {
            let result = sent.await;
            if matches!(result, Err(StreamableHttpError::SessionExpired)) {
                tracing::info!("HTTP server no longer knows the session (404); ending it");
                expired.trip();
            }
            result
        }
    }

    fn receive(
        &mut self,
    ) -> impl Future<Output = Option<rmcp::service::RxJsonRpcMessage<rmcp::RoleClient>>> + Send
    {
        let expired = self.expired.clone();
        let received = self.inner.receive();
        async move {
            let message = tokio::select! {
                biased;
                _ = expired.tripped() => None,
                message = received => message,
            };
            // rmcp's worker answers a request it could not deliver with a
            // synthetic "transport closed" error. Mark the session lost
            // before that answer reaches the caller, so the caller's next
            // `get_session` already gets a new session.
            if let Some(rmcp::model::JsonRpcMessage::Error(reply)) = &message
                && reply
                    .error
                    .data
                    .as_ref()
                    .is_some_and(|d| d.get(TRANSPORT_CLOSED_MARKER).is_some())
            {
                tracing::info!(error = %reply.error.message, "HTTP transport lost the session; ending it");
                expired.trip();
            }
            message
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

/// Without the `http` feature an HTTP server cannot be reached.
#[cfg(not(feature = "http"))]
pub(crate) fn connect(
    config: Http,
    _info: PoolHandler,
    _mode: ClientLifecycleMode,
    _lost: Arc<Lost>,
) -> Handshake {
    let message = format!(
        "{} is an HTTP MCP server, but mcp-session-pool was built without its `http` feature",
        config.url
    );
    Box::pin(async move {
        Err(boxed(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            message,
        )))
    })
}
