//! The streamable HTTP transport, behind the `http` feature.

use rmcp::model::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Http,
    owner::{Handshake, boxed},
};

/// Connects to an HTTP MCP server and runs the handshake.
#[cfg(feature = "http")]
pub(crate) fn connect(config: Http, info: ClientConfig, ct: CancellationToken) -> Handshake {
    use rmcp::{
        ServiceExt,
        transport::{
            StreamableHttpClientTransport,
            streamable_http_client::StreamableHttpClientTransportConfig,
        },
    };
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
        let transport = StreamableHttpClientTransport::from_config(transport_config);
        info.serve_with_ct(transport, ct).await.map_err(boxed)
    })
}

/// Without the `http` feature an HTTP server cannot be reached.
#[cfg(not(feature = "http"))]
pub(crate) fn connect(config: Http, _info: ClientConfig, _ct: CancellationToken) -> Handshake {
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
