//! A small stateful MCP server for the crate's tests, benches and examples.
//!
//! Included by path (`#[path = "..."] mod test_server;`) from examples and
//! integration tests alike, so it uses no `crate::` paths, and not every
//! includer uses every item.
#![allow(dead_code)]

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rmcp::{
    RoleServer, ServerHandler, ServiceExt,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{Implementation, ServerCapabilities, ServerConfig},
    service::RequestContext,
    tool, tool_handler, tool_router,
};
use tokio::io::AsyncBufReadExt;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to send back unchanged.
    pub text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct SleepArgs {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct StepsArgs {
    /// How many progress reports to send.
    pub steps: u32,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EnvArgs {
    /// Name of the environment variable to read.
    pub name: String,
}

/// MCP server whose `increment` counter lives as long as the instance, so a
/// client can tell whether two calls reached the same session.
#[derive(Debug, Clone)]
pub struct TestServer {
    counter: Arc<AtomicU64>,
    /// Requests the client cancelled while `sleep` ran.
    cancelled: Arc<AtomicU64>,
    /// Answer `ping` with a JSON-RPC error, as some servers do.
    reject_ping: bool,
    /// Know only the `initialize` lifecycle, as pre-2026 servers do:
    /// `server/discover` is an unknown method.
    legacy_only: bool,
    // Built once: `#[tool_handler]` would otherwise rebuild it on every call.
    tool_router: ToolRouter<Self>,
}

impl TestServer {
    pub fn new() -> Self {
        Self {
            counter: Arc::new(AtomicU64::new(0)),
            cancelled: Arc::new(AtomicU64::new(0)),
            reject_ping: false,
            legacy_only: false,
            tool_router: Self::tool_router(),
        }
    }

    /// A server that answers `ping` with a JSON-RPC error.
    pub fn rejecting_ping() -> Self {
        Self {
            reject_ping: true,
            ..Self::new()
        }
    }
}

impl TestServer {
    /// A server of the `initialize` era only.
    pub fn legacy_only() -> Self {
        Self {
            legacy_only: true,
            ..Self::new()
        }
    }
}

impl Default for TestServer {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router]
impl TestServer {
    #[tool(description = "Increment this server's counter and return the new value")]
    fn increment(&self) -> String {
        (self.counter.fetch_add(1, Ordering::SeqCst) + 1).to_string()
    }

    #[tool(description = "Return the given text")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Sleep for `ms` milliseconds; stops early if the request is cancelled")]
    async fn sleep(
        &self,
        Parameters(SleepArgs { ms }): Parameters<SleepArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, String> {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok("slept".to_owned()),
            () = context.ct.cancelled() => {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                Err("cancelled".to_owned())
            }
        }
    }

    #[tool(
        description = "Tell the client the tool list changed (notifications/tools/list_changed)"
    )]
    async fn announce_tools_changed(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<String, String> {
        context
            .peer
            .notify_tool_list_changed()
            .await
            .map_err(|e| e.to_string())?;
        Ok("announced".to_owned())
    }

    #[tool(description = "Report `steps` progress notifications for this call, then return")]
    async fn progress(
        &self,
        Parameters(StepsArgs { steps }): Parameters<StepsArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, String> {
        let Some(token) = context.meta.get_progress_token() else {
            return Err("no progress token".to_owned());
        };
        for step in 1..=steps {
            let mut report =
                rmcp::model::ProgressNotificationParam::new(token.clone(), step as f64);
            report.total = Some(steps as f64);
            context
                .peer
                .notify_progress(report)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(format!("{steps} steps"))
    }

    #[tool(
        description = "Ask the user for their name (an elicitation, in either protocol era) and greet them"
    )]
    async fn ask(
        &self,
        rmcp::handler::server::tool::InputResponses(answers): rmcp::handler::server::tool::InputResponses,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, String> {
        use rmcp::model::{
            CallToolResponse, CallToolResult, ClientResult, ContentBlock, ElicitRequest,
            ElicitRequestParams, ElicitResult, ElicitationSchema, InputRequest,
            InputRequiredResult, ServerRequest,
        };
        let question = || ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: "What is your name?".to_owned(),
            requested_schema: ElicitationSchema::builder()
                .string_property("name", |s| s)
                .build()
                .expect("a valid schema"),
        };
        let greet = |answer: ElicitResult| {
            let name = answer
                .content
                .as_ref()
                .and_then(|c| c.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or("(declined)")
                .to_owned();
            CallToolResponse::Complete(CallToolResult::success(vec![ContentBlock::text(format!(
                "hello {name}"
            ))]))
        };
        let modern = context
            .protocol_version()
            .is_some_and(|v| !v.has_initialize());
        if !modern {
            // `initialize` era: ask the client with a request of our own.
            let request = ServerRequest::ElicitRequest(ElicitRequest::new(question()));
            return match context.peer.send_request(request).await {
                Ok(ClientResult::ElicitResult(answer)) => Ok(greet(answer)),
                Ok(other) => Err(format!("not an elicitation result: {other:?}")),
                Err(e) => Err(e.to_string()),
            };
        }
        // 2026-07-28: no server-to-client requests; ask in the result, and
        // the client calls again with the answer.
        match answers.and_then(|mut a| a.remove("name")) {
            Some(answer) => {
                let answer: ElicitResult =
                    serde_json::from_value(answer).map_err(|e| e.to_string())?;
                Ok(greet(answer))
            }
            None => {
                let mut requests = std::collections::BTreeMap::new();
                requests.insert(
                    "name".to_owned(),
                    InputRequest::Elicitation(ElicitRequest::new(question())),
                );
                Ok(CallToolResponse::InputRequired(
                    InputRequiredResult::from_input_requests(requests),
                ))
            }
        }
    }

    #[tool(description = "How many `sleep` calls the client has cancelled")]
    fn cancelled(&self) -> String {
        self.cancelled.load(Ordering::SeqCst).to_string()
    }

    #[tool(description = "Return the server's process id")]
    fn pid(&self) -> String {
        std::process::id().to_string()
    }

    #[tool(description = "Exit the server process at once with code 1, without replying")]
    fn crash(&self) -> String {
        std::process::exit(1)
    }

    #[tool(description = "Spawn a detached `sleep 300` grandchild and return its pid")]
    fn spawn_child(&self) -> Result<String, String> {
        // Null stdio so the grandchild holds none of the server's pipes: the
        // client must see EOF on them as soon as the server itself dies.
        let child = Command::new("sleep")
            .arg("300")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn sleep: {e}"))?;
        // Dropping a std Child neither waits for nor kills it.
        Ok(child.id().to_string())
    }

    #[tool(
        description = "Spawn a `sleep 300` grandchild in a session of its own (setsid, out of the server's process group) and return its pid"
    )]
    fn spawn_detached(&self) -> Result<String, String> {
        // Not a group leader, so `setsid` makes the new session in place
        // and execs `sleep`: the pid is the sleep's.
        let child = Command::new("setsid")
            .args(["sleep", "300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn setsid: {e}"))?;
        Ok(child.id().to_string())
    }

    #[tool(description = "Return the value of an environment variable, or \"<unset>\"")]
    fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> String {
        std::env::var_os(&name).map_or_else(
            || "<unset>".to_owned(),
            |value| value.to_string_lossy().into_owned(),
        )
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), rmcp::ErrorData> {
        if self.reject_ping {
            return Err(rmcp::ErrorData::method_not_found::<
                rmcp::model::PingRequestMethod,
            >());
        }
        Ok(())
    }

    async fn discover(
        &self,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::DiscoverResult, rmcp::ErrorData> {
        if self.legacy_only {
            return Err(rmcp::ErrorData::method_not_found::<
                rmcp::model::DiscoverRequestMethod,
            >());
        }
        Ok(rmcp::model::DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ))
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-session-pool-test-server",
            env!("CARGO_PKG_VERSION"),
        ))
    }
}

/// Starts a [`TestServer`] on an in-memory pipe and returns the client end.
///
/// Must be called inside a Tokio runtime. The server stops when the client end
/// is dropped.
pub fn spawn_in_process() -> tokio::io::DuplexStream {
    spawn_in_process_with(TestServer::new())
}

/// [`spawn_in_process`] with a given server.
pub fn spawn_in_process_with(server: TestServer) -> tokio::io::DuplexStream {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(service) = server.serve(server_end).await {
            let _ = service.waiting().await;
        }
    });
    client_end
}

/// Misbehaviours of the stdio server, selected by command-line flags.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--pid-file PATH`: append the server's pid to PATH at startup.
    pub pid_file: Option<PathBuf>,
    /// `--ignore-eof`: keep running after stdin closes.
    pub ignore_eof: bool,
    /// `--ignore-sigterm`: survive SIGTERM (only SIGKILL ends it).
    pub ignore_sigterm: bool,
    /// `--no-initialize`: never read stdin or answer anything.
    pub no_initialize: bool,
    /// `--exit-before-initialize`: exit with code 2 before reading stdin.
    pub exit_before_initialize: bool,
    /// `--garbage-stdout`: answer the first line with non-JSON-RPC output, then exit 3.
    pub garbage_stdout: bool,
    /// `--stderr-flood BYTES`: write BYTES of log lines to stderr before serving.
    pub stderr_flood: Option<usize>,
    /// `--reject-ping`: answer `ping` with a JSON-RPC error.
    pub reject_ping: bool,
    /// `--legacy-only`: know only `initialize`, not `server/discover`.
    pub legacy_only: bool,
}

impl Options {
    /// Parses the flags documented on the fields; panics on anything else so a
    /// typo in a test fails loudly instead of silently testing the wrong thing.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Self {
        let mut opts = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--pid-file" => {
                    let path = args.next().expect("--pid-file needs a PATH");
                    opts.pid_file = Some(PathBuf::from(path));
                }
                "--ignore-eof" => opts.ignore_eof = true,
                "--ignore-sigterm" => opts.ignore_sigterm = true,
                "--no-initialize" => opts.no_initialize = true,
                "--exit-before-initialize" => opts.exit_before_initialize = true,
                "--garbage-stdout" => opts.garbage_stdout = true,
                "--reject-ping" => opts.reject_ping = true,
                "--legacy-only" => opts.legacy_only = true,
                "--stderr-flood" => {
                    let bytes = args.next().expect("--stderr-flood needs BYTES");
                    let bytes = bytes
                        .parse()
                        .unwrap_or_else(|e| panic!("--stderr-flood {bytes:?}: {e}"));
                    opts.stderr_flood = Some(bytes);
                }
                other => panic!("test_server: unknown argument {other:?}"),
            }
        }
        opts
    }
}

/// Runs a [`TestServer`] on stdin/stdout, misbehaving as `opts` asks.
pub async fn run_stdio(opts: Options) {
    let pid = std::process::id();
    if let Some(path) = &opts.pid_file {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open pid file {}: {e}", path.display()));
        // One small O_APPEND write, so concurrent servers never interleave.
        file.write_all(format!("{pid}\n").as_bytes())
            .unwrap_or_else(|e| panic!("write pid file {}: {e}", path.display()));
    }
    eprintln!("test_server: started pid {pid}");
    if opts.ignore_sigterm {
        // A handler replaces SIGTERM's default action, which is to exit.
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::spawn(async move { while sigterm.recv().await.is_some() {} });
    }

    if opts.exit_before_initialize {
        std::process::exit(2);
    }
    if opts.no_initialize {
        std::future::pending::<()>().await;
    }
    if opts.garbage_stdout {
        let mut first_line = String::new();
        let _ = tokio::io::BufReader::new(tokio::io::stdin())
            .read_line(&mut first_line)
            .await;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(b"this is not json\n{\"hello\":\"world\"}\n\x00\x01garbage\n");
        let _ = stdout.flush();
        std::process::exit(3);
    }
    if let Some(bytes) = opts.stderr_flood {
        // Blocking on purpose: if the client does not drain stderr, the server
        // stalls here once the pipe fills and never answers `initialize`.
        let line = format!("{}\n", "x".repeat(100));
        let mut stderr = std::io::stderr().lock();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(line.len());
            stderr
                .write_all(&line.as_bytes()[line.len() - n..])
                .expect("write stderr flood");
            left -= n;
        }
    }

    let server = TestServer {
        reject_ping: opts.reject_ping,
        legacy_only: opts.legacy_only,
        ..TestServer::new()
    };
    match server.serve(rmcp::transport::stdio_pipes()).await {
        Ok(service) => {
            let _ = service.waiting().await;
        }
        Err(e) if !opts.ignore_eof => {
            eprintln!("test_server: initialize failed: {e}");
            std::process::exit(1);
        }
        Err(_) => {}
    }
    if opts.ignore_eof {
        std::future::pending::<()>().await;
    }
}
