//! The same three tool calls of one conversation made the usual way (a new
//! MCP session per call: spawn, handshake, call, kill) and through the pool
//! (one session kept), with the server's counter and the time each took;
//! then a second conversation, which gets a server of its own.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! The example is its own MCP server (run with `--serve` it serves a counter
//! tool on stdio), so it needs nothing but cargo.

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

    let counter = ServerConfig::stdio(std::env::current_exe()?).args(["--serve"]);

    // Without the pool: what a tool wrapper does when it opens a session per
    // call. (A pool with one key closed after every call does the same.)
    let t0 = std::time::Instant::now();
    let mut counts = Vec::new();
    for _ in 0..3 {
        let once = SessionPool::new();
        let session = once.get_session("counter", "a", &counter).await?;
        counts.push(call(&session, "increment").await?);
        drop(session);
        once.close().await;
    }
    println!(
        "session per call: {}  ({:.1} ms; the counter starts over: its state is lost)",
        counts.join(" "),
        t0.elapsed().as_secs_f64() * 1e3
    );

    let pool = SessionPool::new();
    let t0 = std::time::Instant::now();
    let mut counts = Vec::new();
    for _ in 0..3 {
        // What a tool wrapper does on every call: ask the pool, then call.
        let session = pool.get_session("counter", "a", &counter).await?;
        counts.push(call(&session, "increment").await?);
    }
    println!(
        "pooled:           {}  ({:.1} ms; one server kept its state)",
        counts.join(" "),
        t0.elapsed().as_secs_f64() * 1e3
    );

    let mut pids = Vec::new();
    for (scope, calls) in [("a", 1), ("b", 2)] {
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
