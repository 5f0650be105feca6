//! Keeps one MCP session per scope and shows the server's state persisting.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! The example is its own MCP server (run with `--serve` it serves a counter
//! tool on stdio), so it needs nothing but cargo. The pool starts one server
//! process per scope, reuses it on every call, and closes it at the end.

#[path = "support/test_server.rs"]
mod test_server;

use mcp_session_pool::{
    ServerConfig, SessionPool,
    rmcp::model::{CallToolRequestParams, ContentBlock},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        test_server::run_stdio(test_server::Options::default()).await;
        return Ok(());
    }

    let pool = SessionPool::new();
    let counter = ServerConfig::stdio(std::env::current_exe()?).args(["--serve"]);

    let mut pids = Vec::new();
    for (scope, calls) in [("a", 3), ("b", 2)] {
        let mut counts = Vec::new();
        for _ in 0..calls {
            // What a tool wrapper does on every call: ask the pool, then call.
            let session = pool.get_session("counter", scope, &counter).await?;
            counts.push(call(&session, "increment").await?);
        }
        let session = pool.get_session("counter", scope, &counter).await?;
        pids.push(call(&session, "pid").await?.parse::<u32>()?);
        println!("scope {scope}: {}", counts.join(" "));
    }

    let closed = pool.close_all().await;
    let left = pids
        .iter()
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        .count();
    println!("closed {closed} sessions (server pids {pids:?}); server processes left: {left}");
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
