//! Sessions over streamable HTTP against the test server on 127.0.0.1.
#![cfg(feature = "http")]

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use common::{http_server::HttpServer, increment};
use mcp_session_pool::{CloseReason, Protocol, ServerConfig, SessionPool};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sessions_keep_state_per_key_and_close_with_delete() {
    let server = HttpServer::start().await;
    // An HTTP session (`Mcp-Session-Id`) is of the `initialize` era.
    let cfg = ServerConfig::http(&server.url).protocol(Protocol::Legacy);
    let pool = SessionPool::new();
    let a = pool.get_session("web", "a", &cfg).await.unwrap();
    assert_eq!(increment(&a).await, 1);
    drop(a);
    let a = pool.get_session("web", "a", &cfg).await.unwrap();
    assert_eq!(increment(&a).await, 2);
    let b = pool.get_session("web", "b", &cfg).await.unwrap();
    assert_eq!(increment(&b).await, 1);
    drop((a, b));
    assert_eq!(server.deletes.load(Ordering::SeqCst), 0);
    assert_eq!(pool.close_session("web", "a").await, 1);
    assert_eq!(
        server.deletes.load(Ordering::SeqCst),
        1,
        "close sent the session DELETE"
    );
    assert_eq!(pool.close_all().await, 1);
    assert_eq!(server.deletes.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_bearer_token_reach_the_server() {
    let server = HttpServer::start().await;
    let cfg = ServerConfig::http(&server.url)
        .header("X-Tenant", "acme")
        .bearer_auth("tok-123");
    let pool = SessionPool::new();
    increment(&pool.get_session("web", "t", &cfg).await.unwrap()).await;
    let seen = server.seen_headers.lock().unwrap().clone();
    assert!(
        seen.contains(&("x-tenant".into(), "acme".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("authorization".into(), "Bearer tok-123".into())),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_http_session_becomes_a_new_generation() {
    let server = HttpServer::start().await;
    let cfg = ServerConfig::http(&server.url).protocol(Protocol::Legacy);
    let pool = SessionPool::builder()
        .close_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let first = pool.get_session("web", "t", &cfg).await.unwrap();
    assert_eq!(increment(&first).await, 1);
    let first_gen = first.generation();

    // The server forgets the session (a restart, an expiry): HTTP 404.
    server.forget.store(true, Ordering::SeqCst);
    let call = first.call_tool(mcp_session_pool::rmcp::model::CallToolRequestParams::new(
        "increment",
    ));
    let failed = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap()
        .unwrap_err();
    // The failing call itself says the session, and its state, is gone.
    assert_eq!(failed.session_ended(), Some(CloseReason::Died), "{failed}");
    drop(first);
    server.forget.store(false, Ordering::SeqCst);

    let fresh = pool.get_session("web", "t", &cfg).await.unwrap();
    assert_ne!(fresh.generation(), first_gen, "not silently re-initialized");
    assert_eq!(fresh.replaced(), Some(CloseReason::Died));
    assert_eq!(
        increment(&fresh).await,
        1,
        "the old state is gone, and the caller can tell"
    );
}

#[tokio::test]
async fn unreachable_server_error_names_the_url_and_the_cause() {
    // A port that nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let pool = SessionPool::new();
    let err = pool
        .get_session("web", "a", &ServerConfig::http(&url))
        .await
        .unwrap_err();
    let message = err.to_string();
    eprintln!("{message}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    assert!(
        matches!(err, mcp_session_pool::Error::Connect { .. }),
        "{err:?}"
    );
    assert!(message.contains(&url), "{message}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    assert!(
        !message.contains("mcp_session_pool::") && !message.contains('<'),
        "internal type names in: {message}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_http_server_is_reached_without_an_http_session() {
    let server = HttpServer::start().await;
    let pool = SessionPool::new();
    for protocol in [Protocol::Auto, Protocol::Modern] {
        let cfg = ServerConfig::http(&server.url).protocol(protocol);
        let s = pool.get_session("web", "t", &cfg).await.unwrap();
        assert_eq!(
            s.protocol_version().map(|v| v.to_string()),
            Some("2026-07-28".to_owned()),
            "{protocol:?}"
        );
        // 2026-07-28 over HTTP has no session: each request stands alone,
        // so the server keeps no state between calls.
        assert_eq!(increment(&s).await, 1);
        assert_eq!(increment(&s).await, 1);
    }
    pool.close_all().await;
    assert_eq!(
        server.deletes.load(Ordering::SeqCst),
        0,
        "no session to delete"
    );
}
