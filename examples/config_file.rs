//! Servers from an `mcpServers` file, as Claude Desktop, Cursor and agent
//! frameworks write it, with this crate's per-server settings in `pool`:
//! a stateless server shared by every conversation, and a stateful one with a
//! session per conversation and a warm spare.
//!
//! ```text
//! cargo run --example config_file
//! ```
//!
//! The example is its own MCP server (`--serve`), written into the file by
//! path. (Values may also name the host's environment: `${env:HOME}`.)

#[path = "support/test_server.rs"]
mod test_server;

use mcp_session_pool::{
    Servers, SessionPool,
    rmcp::model::{CallToolRequestParams, ContentBlock},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const FILE: &str = r#"{
  "mcpServers": {
    "clock": {
      "command": "EXE", "args": ["--serve"],
      "pool": {"scope": "shared", "protocol": "auto"}
    },
    "notebook": {
      "command": "EXE", "args": ["--serve"], "cwd": "${env:HOME}",
      "pool": {"scope": "perScope", "warmSpares": 1, "maxSessions": 8, "callTimeoutMs": 10000}
    }
  }
}"#;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        test_server::run_stdio(test_server::Options::default()).await;
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let path = std::env::temp_dir().join(format!("mcp-pool-example-{}.json", std::process::id()));
    std::fs::write(&path, FILE.replace("EXE", &exe.to_string_lossy()))?;
    let servers = Servers::from_json(&std::fs::read_to_string(&path)?)?;
    std::fs::remove_file(&path)?;
    println!(
        "servers in the file: {:?}",
        servers.names().collect::<Vec<_>>()
    );

    let pool = SessionPool::builder().servers(servers).build()?;
    for thread in ["thread-1", "thread-2", "thread-3"] {
        let clock = pool.session("clock", thread).await?;
        let notebook = pool.session("notebook", thread).await?;
        println!(
            "{thread}: shared clock pid {} counter {}, own notebook pid {} counter {}",
            clock.server_pid().unwrap_or(0),
            call(&clock, "increment").await?,
            notebook.server_pid().unwrap_or(0),
            call(&notebook, "increment").await?,
        );
    }
    let tools = pool.tools("notebook", "thread-1").await?;
    println!(
        "notebook tools (fetched once for every thread): {}",
        tools.len()
    );
    println!("closed {} sessions", pool.close().await);
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
