//! Sessions with a streamable-HTTP MCP server: the in-repo test server,
//! served on 127.0.0.1 by the example itself. With the `initialize`
//! lifecycle each scope is one HTTP session (`Mcp-Session-Id`) and keeps its
//! state; closing sends the session's `DELETE`. The same server reached
//! with MCP 2026-07-28 keeps no session at all.
//!
//! ```text
//! cargo run --example http --features http
//! ```

#[path = "support/test_server.rs"]
mod test_server;

// The tests' HTTP harness; the example uses part of it.
#[allow(dead_code)]
#[path = "../tests/common/http_server.rs"]
mod http_server;

use mcp_session_pool::{
    Protocol, ServerConfig, SessionPool,
    rmcp::model::{CallToolRequestParams, ContentBlock},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let server = http_server::HttpServer::start().await;
    println!("test server at {}", server.url);
    let pool = SessionPool::new();

    let legacy = ServerConfig::http(&server.url).protocol(Protocol::Legacy);
    for scope in ["a", "a", "b", "a"] {
        let session = pool.get_session("web", scope, &legacy).await?;
        println!(
            "initialize era, scope {scope}: counter {} ({})",
            call(&session, "increment").await?,
            session
                .protocol_version()
                .map(|v| v.to_string())
                .unwrap_or_default()
        );
    }
    let closed = pool.close_server("web").await;
    println!(
        "closed {closed} HTTP sessions; the server saw {} DELETEs",
        server.deletes.load(std::sync::atomic::Ordering::SeqCst)
    );

    let modern = ServerConfig::http(&server.url).protocol(Protocol::Auto);
    for _ in 0..2 {
        let session = pool.get_session("web", "a", &modern).await?;
        println!(
            "2026-07-28, scope a: counter {} ({}): each request stands alone",
            call(&session, "increment").await?,
            session
                .protocol_version()
                .map(|v| v.to_string())
                .unwrap_or_default()
        );
    }
    pool.close().await;
    Ok(())
}

async fn call(session: &mcp_session_pool::Session, tool: &'static str) -> Result<String, BoxError> {
    let result = session.call_tool(CallToolRequestParams::new(tool)).await?;
    Ok(result
        .content
        .iter()
        .filter_map(ContentBlock::as_text)
        .map(|t| t.text.as_str())
        .collect())
}
