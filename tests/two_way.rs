//! Two-way sessions: a client handler per session sees that session's
//! server-initiated traffic only, a call's progress reaches its caller, and
//! the tool catalogue is fetched once for every scope until it changes.
#![allow(deprecated)] // roots, sampling and logging: deprecated by MCP 2026-07-28, still in use

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{call, in_process, increment, test_server};
use futures_util::future::join_all;
use mcp_session_pool::{
    HandlerContext, OwnerRuntime, Protocol, ServerConfig, SessionPool,
    rmcp::{
        ClientHandler, ErrorData, RoleClient,
        model::{
            CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation,
            ProgressNotificationParam,
        },
        service::NotificationContext,
    },
};
use parking_lot::Mutex;

fn listing_server() -> (ServerConfig, Arc<AtomicUsize>) {
    common::counting_in_process(test_server::TestServer::new, b"\"tools/list\"")
}

fn on_test_runtime() -> SessionPool {
    SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn hundred_scopes_list_tools_with_one_request_until_the_list_changes() {
    let (cfg, lists) = listing_server();
    // `initialize` era: its lists carry no `ttlMs`, so they stay fresh until
    // the server says they changed.
    let cfg = cfg.protocol(Protocol::Legacy);
    let pool = on_test_runtime();
    let all = join_all((0..100).map(|scope| {
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move { pool.list_tools("srv", &format!("t{scope}"), &cfg).await }
    }))
    .await;
    let first = all[0].as_ref().unwrap().clone();
    assert!(first.iter().any(|t| t.name == "increment"));
    assert!(all.iter().all(|r| r.as_ref().unwrap().len() == first.len()));
    assert_eq!(
        lists.load(Ordering::SeqCst),
        1,
        "one tools/list for 100 scopes"
    );
    assert_eq!(pool.status().live, 1, "one session served them all");

    // The server says its tools changed: the next call fetches once more.
    let s = pool.get_session("srv", "t0", &cfg).await.unwrap();
    assert_eq!(
        call(&s, "announce_tools_changed", serde_json::json!({})).await,
        "announced"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    for scope in 0..10 {
        pool.list_tools("srv", &format!("t{scope}"), &cfg)
            .await
            .unwrap();
    }
    assert_eq!(lists.load(Ordering::SeqCst), 2);

    // Another config of the server: fetched again.
    let changed = cfg.clone().call_timeout(Duration::from_secs(30));
    drop(s);
    pool.list_tools("srv", "t0", &changed).await.unwrap();
    assert_eq!(lists.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_zero_ttl_list_is_fetched_every_time() {
    // An rmcp server of 2026-07-28 marks its lists `ttlMs: 0`: never fresh.
    let (cfg, lists) = listing_server();
    let cfg = cfg.protocol(Protocol::Modern);
    let pool = on_test_runtime();
    pool.list_tools("srv", "a", &cfg).await.unwrap();
    pool.list_tools("srv", "b", &cfg).await.unwrap();
    assert_eq!(lists.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_call_reports_its_progress_to_its_caller() {
    let (cfg, _) = in_process();
    let pool = on_test_runtime();
    let s = pool.get_session("srv", "t", &cfg).await.unwrap();
    let mut seen = Vec::new();
    let serde_json::Value::Object(args) = serde_json::json!({"steps": 5}) else {
        unreachable!()
    };
    let result = s
        .call_tool_with_progress(
            CallToolRequestParams::new("progress").with_arguments(args),
            |p| seen.push((p.progress, p.total)),
        )
        .await
        .unwrap();
    assert_eq!(common::text(&result.content), "5 steps");
    assert_eq!(
        seen,
        (1..=5)
            .map(|i| (f64::from(i), Some(5.0)))
            .collect::<Vec<_>>()
    );
    // The session carries on.
    assert_eq!(increment(&s).await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_is_cancelled_at_the_server_and_the_session_stays() {
    let (cfg, _) = in_process();
    let pool = on_test_runtime();
    let s = pool.get_session("srv", "t", &cfg).await.unwrap();
    let serde_json::Value::Object(args) = serde_json::json!({"ms": 60_000}) else {
        unreachable!()
    };
    let call_sleep = s.call_tool(CallToolRequestParams::new("sleep").with_arguments(args));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), call_sleep)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(call(&s, "cancelled", serde_json::json!({})).await, "1");
    assert_eq!(increment(&s).await, 1);
}

/// What a test handler saw, with the scope of the session it serves.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn push(&self, what: String) {
        self.0.lock().push(what);
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().clone()
    }
}

/// A framework's handler: declares roots, sampling and elicitation, answers
/// them for its scope, and records the notifications it gets.
struct Handler {
    cx: HandlerContext,
    seen: Seen,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder()
                .enable_roots()
                .enable_sampling()
                .enable_elicitation()
                .build(),
            Implementation::new("test-framework", "1"),
        )
    }

    async fn list_roots(
        &self,
        _context: mcp_session_pool::rmcp::service::RequestContext<RoleClient>,
    ) -> Result<mcp_session_pool::rmcp::model::ListRootsResult, ErrorData> {
        let root =
            mcp_session_pool::rmcp::model::Root::new(format!("file:///work/{}", self.cx.scope()));
        self.seen.push("roots".into());
        Ok(mcp_session_pool::rmcp::model::ListRootsResult::new(vec![
            root,
        ]))
    }

    async fn create_message(
        &self,
        _params: mcp_session_pool::rmcp::model::CreateMessageRequestParams,
        _context: mcp_session_pool::rmcp::service::RequestContext<RoleClient>,
    ) -> Result<mcp_session_pool::rmcp::model::CreateMessageResult, ErrorData> {
        self.seen.push("sampling".into());
        Ok(mcp_session_pool::rmcp::model::CreateMessageResult::new(
            mcp_session_pool::rmcp::model::SamplingMessage::assistant_text(format!(
                "sampled for {}",
                self.cx.scope()
            )),
            "test-model".into(),
        ))
    }

    async fn create_elicitation(
        &self,
        _request: mcp_session_pool::rmcp::model::ElicitRequestParams,
        _context: mcp_session_pool::rmcp::service::RequestContext<RoleClient>,
    ) -> Result<mcp_session_pool::rmcp::model::ElicitResult, ErrorData> {
        self.seen.push("elicitation".into());
        // The simulated user answers.
        let mut result = mcp_session_pool::rmcp::model::ElicitResult::new(
            mcp_session_pool::rmcp::model::ElicitationAction::Accept,
        );
        result.content = Some(serde_json::json!({
            "name": format!("user of {}", self.cx.scope()),
            "check": true, "firstLine": "Call me Ishmael.", "email": "u@example.test",
            "homepage": "https://example.test", "birthdate": "1990-01-01",
            "integer": 7, "number": 3.5, "untitledSingleSelectEnum": "option1",
            "titledSingleSelectEnum": "value1", "legacyTitledEnum": "opt1",
            "untitledMultipleSelectEnum": ["option1"], "titledMultipleSelectEnum": ["value1"]
        }));
        Ok(result)
    }

    async fn on_logging_message(
        &self,
        params: mcp_session_pool::rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen.push(format!("log {}", params.data));
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen.push(format!("progress {}", params.progress));
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.seen.push("tools changed".into());
    }
}

/// The handlers a pool made: scope, generation, and what each saw.
type Made = Arc<Mutex<Vec<(String, u64, Seen)>>>;

/// A pool whose handlers record into one `Seen` per scope.
fn pool_with_handlers(runtime: OwnerRuntime) -> (SessionPool, Made) {
    let made: Made = Arc::default();
    let m = made.clone();
    let pool = SessionPool::builder()
        .owner_runtime(runtime)
        .client_handler(move |cx: &HandlerContext| {
            let seen = Seen::default();
            m.lock()
                .push((cx.scope().to_owned(), cx.generation(), seen.clone()));
            Handler {
                cx: cx.clone(),
                seen,
            }
        })
        .build()
        .unwrap();
    (pool, made)
}

fn seen_by(made: &Mutex<Vec<(String, u64, Seen)>>, scope: &str) -> Vec<String> {
    made.lock()
        .iter()
        .filter(|(s, _, _)| s == scope)
        .flat_map(|(_, _, seen)| seen.all())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn each_session_has_its_own_handler_and_only_its_own_traffic() {
    let (cfg, _) = in_process();
    let (pool, made) = pool_with_handlers(OwnerRuntime::Caller);
    let a = pool.get_session("srv", "a", &cfg).await.unwrap();
    let b = pool.get_session("srv", "b", &cfg).await.unwrap();
    assert_eq!(made.lock().len(), 2, "one handler per session");
    assert_eq!(made.lock()[0].1, a.generation());
    call(&a, "announce_tools_changed", serde_json::json!({})).await;
    let serde_json::Value::Object(args) = serde_json::json!({"steps": 2}) else {
        unreachable!()
    };
    b.call_tool(CallToolRequestParams::new("progress").with_arguments(args))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(seen_by(&made, "a"), ["tools changed"]);
    assert_eq!(seen_by(&made, "b"), ["progress 1", "progress 2"]);
}

mod everything {
    //! The same against the reference TypeScript server, which asks its
    //! client for roots, sampling and elicitation.

    use super::*;

    fn config() -> Option<ServerConfig> {
        let js = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
        assert!(
            js.exists(),
            "{} is missing: run `bash .ci/install-interop`",
            js.display()
        );
        Some(ServerConfig::stdio("node").args([js.into_os_string(), "stdio".into()]))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(feature = "interop"),
        ignore = "needs server-everything: bash .ci/install-interop, then --features interop"
    )]
    async fn server_requests_reach_the_handler_of_their_scope() {
        let Some(cfg) = config() else { return };
        let (pool, made) = pool_with_handlers(OwnerRuntime::Dedicated);
        let a = pool.get_session("everything", "a", &cfg).await.unwrap();

        let roots = call(&a, "get-roots-list", serde_json::json!({})).await;
        assert!(roots.contains("file:///work/a"), "{roots}");

        let sampled = call(
            &a,
            "trigger-sampling-request",
            serde_json::json!({"prompt": "hi", "maxTokens": 10}),
        )
        .await;
        assert!(sampled.contains("sampled for a"), "{sampled}");

        let elicited = call(&a, "trigger-elicitation-request", serde_json::json!({})).await;
        assert!(elicited.contains("user of a"), "{elicited}");

        let mut reports = Vec::new();
        let serde_json::Value::Object(args) = serde_json::json!({"duration": 1, "steps": 3}) else {
            unreachable!()
        };
        a.call_tool_with_progress(
            CallToolRequestParams::new("trigger-long-running-operation").with_arguments(args),
            |p| reports.push(p.progress),
        )
        .await
        .unwrap();
        // rmcp hands each notification to a task of its own, so the last
        // report can lose the race with the result; the earlier ones come.
        assert!(reports.len() >= 2, "{reports:?}");
        assert!(reports.windows(2).all(|w| w[0] < w[1]), "{reports:?}");
        assert!(
            reports.iter().all(|p| (1.0..=3.0).contains(p)),
            "{reports:?}"
        );

        let seen = seen_by(&made, "a");
        for what in ["roots", "sampling", "elicitation"] {
            assert!(seen.iter().any(|s| s == what), "{what} not seen: {seen:?}");
        }
        drop(a);
        assert_eq!(pool.close_all().await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(feature = "interop"),
        ignore = "needs server-everything: bash .ci/install-interop, then --features interop"
    )]
    async fn log_messages_reach_only_the_handler_of_their_scope() {
        let Some(cfg) = config() else { return };
        let (pool, made) = pool_with_handlers(OwnerRuntime::Dedicated);
        let a = pool.get_session("everything", "a", &cfg).await.unwrap();
        let b = pool.get_session("everything", "b", &cfg).await.unwrap();
        let toggled = call(&a, "toggle-simulated-logging", serde_json::json!({})).await;
        assert!(toggled.starts_with("Started"), "{toggled}");
        // It logs every 5 seconds.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !seen_by(&made, "a").iter().any(|s| s.starts_with("log")) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log message came"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !seen_by(&made, "b").iter().any(|s| s.starts_with("log")),
            "b heard a's log"
        );
        drop((a, b));
        assert_eq!(pool.close_all().await, 2);
    }
}

#[tokio::test(start_paused = true)]
async fn a_servers_question_reaches_the_handler_in_either_protocol_era() {
    let (cfg, _) = in_process();
    let (pool, made) = pool_with_handlers(OwnerRuntime::Caller);
    for (scope, protocol, era) in [
        // A request of the server's own.
        ("old", Protocol::Legacy, "2025-11-25"),
        // An `input_required` result, answered, and the call made again.
        ("new", Protocol::Modern, "2026-07-28"),
    ] {
        let s = pool
            .get_session("srv", scope, &cfg.clone().protocol(protocol))
            .await
            .unwrap();
        assert_eq!(s.protocol_version().unwrap().to_string(), era);
        assert_eq!(
            call(&s, "ask", serde_json::json!({})).await,
            format!("hello user of {scope}")
        );
        let mut reports = 0;
        let with_progress = s
            .call_tool_with_progress(CallToolRequestParams::new("ask"), |_| reports += 1)
            .await
            .unwrap();
        assert_eq!(
            common::text(&with_progress.content),
            format!("hello user of {scope}")
        );
        assert_eq!(seen_by(&made, scope), ["elicitation", "elicitation"]);
    }
}
