//! A tool wrapper as an agent framework writes one, through a conversation:
//! calls that keep the server's state, a question the server asks the user
//! (routed to this conversation's handler), the progress of a long call,
//! a server that crashes mid-conversation, and the wrapper telling its model
//! that the state was lost. The pool's lifecycle log is on (`tracing`).
//!
//! ```text
//! cargo run --example agent_loop
//! RUST_LOG=mcp_session_pool=debug cargo run --example agent_loop   # more detail
//! ```
//!
//! The example is its own MCP server (`--serve`).

#[path = "support/test_server.rs"]
mod test_server;

use mcp_session_pool::{
    HandlerContext, ServerConfig, SessionPool,
    rmcp::{
        ClientHandler, ErrorData, RoleClient,
        model::{
            CallToolRequestParams, ClientCapabilities, ClientConfig, ContentBlock,
            ElicitRequestParams, ElicitResult, ElicitationAction, Implementation,
        },
        service::RequestContext,
    },
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The framework's per-conversation handler: answers the server's questions
/// on behalf of that conversation's user (here, a simulated one).
struct Conversation {
    cx: HandlerContext,
}

impl ClientHandler for Conversation {
    fn get_info(&self) -> ClientConfig {
        let caps = ClientCapabilities::builder().enable_elicitation().build();
        ClientConfig::new(caps, Implementation::new("agent-loop-example", "1.0"))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let ElicitRequestParams::FormElicitationParams { message, .. } = &request else {
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        };
        let user = format!("the user of {}", self.cx.scope());
        println!(
            "    [{}] server asks {message:?}; {user} answers",
            self.cx.scope()
        );
        let mut answer = ElicitResult::new(ElicitationAction::Accept);
        answer.content = Some(serde_json::json!({ "name": user }));
        Ok(answer)
    }
}

/// What the framework calls when its model asks for a tool: always returns
/// text for the model, never leaves it guessing why state disappeared.
async fn run_tool(
    pool: &SessionPool,
    server: &ServerConfig,
    thread: &str,
    tool: &str,
    args: serde_json::Value,
) -> String {
    let session = match pool.get_session("notebook", thread, server).await {
        Ok(session) => session,
        Err(err) => return format!("the tool is unavailable: {err}"),
    };
    let mut note = String::new();
    if let Some(why) = session.replaced() {
        note = format!("[the tool's server was restarted ({why}); its earlier state is gone] ");
    }
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let serde_json::Value::Object(args) = args {
        params = params.with_arguments(args);
    }
    let result = session
        .call_tool_with_progress(params, |p| {
            println!("    progress {}/{}", p.progress, p.total.unwrap_or(0.0))
        })
        .await;
    match result {
        Ok(result) => {
            let text: String = result
                .content
                .iter()
                .filter_map(ContentBlock::as_text)
                .map(|t| t.text.as_str())
                .collect();
            format!("{note}{text}")
        }
        Err(err) if err.session_ended().is_some() => {
            format!("{note}the tool's server stopped during the call and lost its state: {err}")
        }
        Err(err) => format!("{note}the tool failed: {err}"),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        test_server::run_stdio(test_server::Options::default()).await;
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "mcp_session_pool=info".into()),
        )
        .with_target(false)
        .init();

    let pool = SessionPool::builder()
        .client_handler(|cx: &HandlerContext| Conversation { cx: cx.clone() })
        .build()?;
    let notebook = ServerConfig::stdio(std::env::current_exe()?).args(["--serve"]);

    let turns = [
        ("increment", serde_json::json!({})),
        ("increment", serde_json::json!({})),
        ("ask", serde_json::json!({})),
        ("progress", serde_json::json!({"steps": 3})),
        ("crash", serde_json::json!({})),
        ("increment", serde_json::json!({})),
    ];
    for (tool, args) in turns {
        println!("model calls {tool}");
        let answer = run_tool(&pool, &notebook, "thread-1", tool, args).await;
        println!("  -> model reads: {answer}");
    }
    println!("closed {} sessions", pool.close().await);
    Ok(())
}
