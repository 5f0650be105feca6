//! A sync tool function, written the way agent frameworks write them: every
//! call builds a fresh tokio runtime and blocks on it. Without a pool that
//! owns its sessions, each call would start a new server and lose its state.
//!
//! ```text
//! cargo run --example sync_tool_wrapper
//! ```
//!
//! Like the quickstart, the example is its own MCP server (`--serve`).
//! `--pid-file PATH` records the pids of the servers it starts.

#[path = "support/test_server.rs"]
mod test_server;

use mcp_session_pool::{
    ServerConfig, SessionPool,
    rmcp::model::{CallToolRequestParams, ContentBlock},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The tool as a framework calls it: sync, with a short-lived runtime.
fn increment_tool(
    pool: &SessionPool,
    server: &ServerConfig,
    thread_id: &str,
) -> Result<String, BoxError> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let session = pool.get_session("counter", thread_id, server).await?;
        let result = session
            .call_tool(CallToolRequestParams::new("increment"))
            .await?;
        Ok(result
            .content
            .iter()
            .filter_map(ContentBlock::as_text)
            .map(|t| t.text.clone())
            .collect())
    })
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let pid_file = match args.next().as_deref() {
        Some("--serve") => {
            let opts = test_server::Options::from_args(args);
            tokio::runtime::Runtime::new()?.block_on(test_server::run_stdio(opts));
            return Ok(());
        }
        Some("--pid-file") => args.next().ok_or("--pid-file needs a path")?.into(),
        _ => std::env::temp_dir().join(format!("sync_tool_wrapper-{}.pids", std::process::id())),
    };
    let _ = std::fs::remove_file(&pid_file);

    let pool = SessionPool::new();
    let server = ServerConfig::stdio(std::env::current_exe()?).args([
        "--serve".as_ref(),
        "--pid-file".as_ref(),
        pid_file.as_os_str(),
    ]);

    let counts = (0..5)
        .map(|_| increment_tool(&pool, &server, "thread-1"))
        .collect::<Result<Vec<_>, _>>()?;
    let started = std::fs::read_to_string(&pid_file)?;
    println!("counter: {}", counts.join(" "));
    println!("server processes started: {}", started.lines().count());
    println!(
        "server pids: {}",
        started.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    // The pool is dropped here, at the end of main: it closes the session and
    // waits until the server is gone before the process exits.
    Ok(())
}
