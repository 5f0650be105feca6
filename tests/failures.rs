//! Servers that fail to start, to initialize, or die later: typed errors that
//! name the key, no panic, no process left, and a fresh try on the next call.

mod common;

use std::time::Duration;

use common::{Servers, call, increment, pool};
use mcp_session_pool::{Error, ServerConfig, SessionPool};

fn short_connect() -> SessionPool {
    SessionPool::builder()
        .connect_timeout(Duration::from_millis(500))
        .close_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[tokio::test]
async fn killed_server_is_replaced_by_a_new_generation() {
    let servers = Servers::new("killed");
    let cfg = servers.config(&[]);
    let pool = pool();
    let first = pool.get_session("srv", "t", &cfg).await.unwrap();
    assert_eq!(increment(&first).await, 1);
    let params = mcp_session_pool::rmcp::model::CallToolRequestParams::new("crash");
    // The reply never comes: the call fails once rmcp sees the transport close.
    assert!(first.call_tool(params).await.is_err());
    let second = pool.get_session("srv", "t", &cfg).await.unwrap();
    assert_ne!(second.generation(), first.generation());
    assert_eq!(
        increment(&second).await,
        1,
        "a new server starts from scratch"
    );
    assert_eq!(servers.started().len(), 2);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn never_answering_server_times_out_naming_the_key() {
    let servers = Servers::new("silent");
    let pool = short_connect();
    let err = pool
        .get_session("silent", "t-9", &servers.config(&["--no-initialize"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert_eq!((err.server(), err.scope()), (Some("silent"), Some("t-9")));
    assert!(err.to_string().contains("silent") && err.to_string().contains("t-9"));
    // Killed and reaped before the error was handed out.
    assert_eq!(servers.started().len(), 1);
    servers.assert_none_alive();
    assert_eq!(pool.status().in_flight, 0);
}

#[tokio::test]
async fn missing_command_is_a_spawn_error_and_is_not_cached() {
    let pool = SessionPool::builder()
        .failure_backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    let cfg = ServerConfig::stdio("/nonexistent/mcp-server-binary");
    for _ in 0..2 {
        let err = pool.get_session("ghost", "t", &cfg).await.unwrap_err();
        let Error::Spawn {
            server,
            scope,
            source,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((&**server, &**scope), ("ghost", "t"));
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    }
    let status = pool.status();
    assert_eq!((status.live, status.in_flight), (0, 0));
}

#[tokio::test]
async fn server_exiting_before_initialize_is_a_connect_error() {
    let servers = Servers::new("exit_early");
    let pool = short_connect();
    let err = pool
        .get_session("early", "t", &servers.config(&["--exit-before-initialize"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert_eq!((err.server(), err.scope()), (Some("early"), Some("t")));
    // `Auto` probes, sees the connection close on the probe, and tries
    // `initialize` once more on a new process.
    assert_eq!(servers.started().len(), 2);
    servers.assert_none_alive();
}

#[tokio::test]
async fn garbage_on_stdout_is_a_connect_error() {
    let servers = Servers::new("garbage");
    let pool = short_connect();
    let err = pool
        .get_session("garbage", "t", &servers.config(&["--garbage-stdout"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. } | Error::ConnectTimeout { .. }),
        "{err:?}"
    );
    assert_eq!((err.server(), err.scope()), (Some("garbage"), Some("t")));
    servers.assert_none_alive();
}

#[tokio::test]
async fn chatty_stderr_never_blocks_the_server() {
    let servers = Servers::new("stderr_flood");
    let pool = pool();
    let s = pool
        .get_session(
            "chatty",
            "t",
            &servers.config(&["--stderr-flood", "1000000"]),
        )
        .await
        .unwrap();
    assert_eq!(
        call(&s, "echo", serde_json::json!({"text": "still here"})).await,
        "still here"
    );
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn panicking_connector_fails_its_waiters_and_the_next_call_retries() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let cfg = ServerConfig::connector(move || {
        let first = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        async move {
            assert!(!first, "connector panics on its first call");
            Ok(common::test_server::spawn_in_process())
        }
    });
    let pool = SessionPool::builder()
        .failure_backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    let err = pool.get_session("mem", "t", &cfg).await.unwrap_err();
    assert!(matches!(err, Error::OwnerGone { .. }), "{err:?}");
    assert_eq!((err.server(), err.scope()), (Some("mem"), Some("t")));
    assert!(!pool.is_closed());
    let s = pool.get_session("mem", "t", &cfg).await.unwrap();
    assert_eq!(increment(&s).await, 1);
}
