//! Close paths: explicit closes (also mid-creation), stubborn servers,
//! grandchildren, blocking close and dropping the pool. None leaves a process.

mod common;

use std::time::{Duration, Instant};

use common::{Servers, call, increment, pool};
use mcp_session_pool::{Error, OwnerRuntime, SessionPool};

#[tokio::test]
async fn close_session_scope_and_server_close_what_they_match() {
    let servers = Servers::new("close_match");
    let cfg = servers.config(&[]);
    let pool = pool();
    for (server, scope) in [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")] {
        pool.get_session(server, scope, &cfg).await.unwrap();
    }
    assert_eq!(pool.close_session("a", "1").await, 1);
    assert_eq!(pool.close_session("a", "1").await, 0);
    assert_eq!(pool.close_scope("2").await, 2);
    assert_eq!(pool.close_server("b").await, 1);
    assert_eq!(pool.status().live, 0);
    // Each close waited for its teardown: nothing is left right now.
    servers.assert_none_alive();
    let again = pool.get_session("a", "1", &cfg).await.unwrap();
    assert_eq!(increment(&again).await, 1);
    assert_eq!(pool.close_all().await, 1);
    servers.assert_none_alive();
}

#[tokio::test]
async fn close_scope_during_creation_fails_waiters_and_never_registers() {
    let servers = Servers::new("close_inflight");
    let cfg = servers.config(&["--no-initialize"]);
    let pool = pool();
    let waiter = tokio::spawn({
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move { pool.get_session("srv", "t", &cfg).await }
    });
    servers.wait_started(1).await;
    assert_eq!(pool.status().in_flight, 1);
    assert_eq!(pool.close_scope("t").await, 1);
    servers.assert_none_alive();
    let err = waiter.await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::ClosedWhileConnecting { .. }),
        "{err:?}"
    );
    assert_eq!((err.server(), err.scope()), (Some("srv"), Some("t")));
    let status = pool.status();
    assert_eq!((status.live, status.in_flight), (0, 0));
}

#[tokio::test]
async fn eof_ignoring_server_is_gone_within_the_close_timeout() {
    let servers = Servers::new("ignore_eof");
    let close_timeout = Duration::from_millis(400);
    let pool = SessionPool::builder()
        .close_timeout(close_timeout)
        .build()
        .unwrap();
    pool.get_session("stubborn", "t", &servers.config(&["--ignore-eof"]))
        .await
        .unwrap();
    let t0 = Instant::now();
    assert_eq!(pool.close_all().await, 1);
    let took = t0.elapsed();
    assert!(
        took < close_timeout + Duration::from_millis(500),
        "close took {took:?}"
    );
    servers.assert_none_alive();
}

#[tokio::test]
async fn close_all_tears_sessions_down_concurrently() {
    let servers = Servers::new("concurrent_close");
    let close_timeout = Duration::from_millis(600);
    let pool = SessionPool::builder()
        .close_timeout(close_timeout)
        .build()
        .unwrap();
    let cfg = servers.config(&["--ignore-eof"]);
    for scope in ["1", "2", "3", "4"] {
        pool.get_session("stubborn", scope, &cfg).await.unwrap();
    }
    // Each needs SIGTERM at half the close timeout; one after another would
    // take at least 4 × 300 ms.
    let t0 = Instant::now();
    assert_eq!(pool.close_all().await, 4);
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(900), "close_all took {took:?}");
    servers.assert_none_alive();
}

#[tokio::test]
async fn grandchild_processes_die_with_their_session() {
    let servers = Servers::new("grandchild");
    let pool = pool();
    let s = pool
        .get_session("forks", "t", &servers.config(&[]))
        .await
        .unwrap();
    let grandchild: u32 = call(&s, "spawn_child", serde_json::json!({}))
        .await
        .parse()
        .unwrap();
    assert!(common::process_running(grandchild, "sleep"));
    assert_eq!(pool.close_session("forks", "t").await, 1);
    assert!(
        !common::process_running(grandchild, "sleep"),
        "grandchild survived close"
    );
    servers.assert_none_alive();
}

#[tokio::test]
async fn grandchild_dies_when_its_server_crashes() {
    let servers = Servers::new("grandchild_crash");
    let pool = pool();
    let cfg = servers.config(&[]);
    let s = pool.get_session("forks", "t", &cfg).await.unwrap();
    let grandchild: u32 = call(&s, "spawn_child", serde_json::json!({}))
        .await
        .parse()
        .unwrap();
    let _ = s
        .call_tool(mcp_session_pool::rmcp::model::CallToolRequestParams::new(
            "crash",
        ))
        .await;
    // Waits for every owner, including the one tearing down the crash.
    pool.close().await;
    assert!(
        !common::process_running(grandchild, "sleep"),
        "grandchild survived its server: {:?}",
        std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
    );
    servers.assert_none_alive();
}

#[test]
fn close_all_blocking_from_a_plain_thread_waits_for_teardown() {
    let servers = Servers::new("blocking_plain");
    let pool = pool();
    let cfg = servers.config(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        pool.get_session("srv", "1", &cfg).await.unwrap();
        pool.get_session("srv", "2", &cfg).await.unwrap();
    });
    drop(rt);
    let closed = std::thread::spawn({
        let pool = pool.clone();
        move || pool.close_all_blocking()
    })
    .join()
    .unwrap();
    assert_eq!(closed, 2);
    servers.assert_none_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_all_blocking_inside_a_runtime_signals_without_blocking() {
    let servers = Servers::new("blocking_in_rt");
    let cfg = servers.config(&[]);
    for runtime in [OwnerRuntime::Dedicated, OwnerRuntime::Caller] {
        let pool = SessionPool::builder()
            .owner_runtime(runtime.clone())
            .build()
            .unwrap();
        pool.get_session("srv", "t", &cfg).await.unwrap();
        assert_eq!(pool.close_all_blocking(), 1, "{runtime:?}");
        assert_eq!(pool.status().live, 0);
        // Signalled only: the owners finish in the background.
        servers.wait_none_alive().await;
    }
}

#[tokio::test]
async fn replacement_waits_for_the_same_keys_server_to_close() {
    let servers = Servers::new("same_key_overlap");
    let cfg = servers.config(&["--ignore-eof"]);
    let pool = SessionPool::builder()
        .close_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let old = pool
        .get_session("srv", "t", &cfg)
        .await
        .unwrap()
        .server_pid()
        .unwrap();
    // Signal only: poll the close once, then stop waiting for it.
    assert!(futures_util::FutureExt::now_or_never(pool.close_session("srv", "t")).is_none());
    let new = pool.get_session("srv", "t", &cfg).await.unwrap();
    assert!(
        !common::process_exists(old, "test_server"),
        "two servers for one key"
    );
    assert_ne!(new.server_pid(), Some(old));
    drop((new, pool));
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn closing_servers_count_toward_the_bound() {
    let servers = Servers::new("closing_bound");
    let cfg = servers.config(&["--ignore-eof"]);
    let pool = SessionPool::builder()
        .max_sessions(1)
        .close_timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let a = pool
        .get_session("srv", "a", &cfg)
        .await
        .unwrap()
        .server_pid()
        .unwrap();
    assert!(futures_util::FutureExt::now_or_never(pool.close_session("srv", "a")).is_none());
    let b = pool.get_session("srv", "b", &cfg).await.unwrap();
    assert!(
        !common::process_exists(a, "test_server"),
        "more servers than max_sessions"
    );
    drop((b, pool));
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn dropping_the_pool_closes_every_session() {
    let servers = Servers::new("drop_pool");
    let cfg = servers.config(&[]);
    let pool = pool();
    for scope in 0..5 {
        pool.get_session("srv", &scope.to_string(), &cfg)
            .await
            .unwrap();
    }
    let stubborn = servers.config(&["--ignore-eof"]);
    pool.get_session("stubborn", "t", &stubborn).await.unwrap();
    assert_eq!(servers.alive().len(), 6);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn closed_pool_rejects_new_sessions() {
    let servers = Servers::new("closed_pool");
    let cfg = servers.config(&[]);
    let pool = pool();
    pool.get_session("srv", "t", &cfg).await.unwrap();
    assert_eq!(pool.close().await, 1);
    assert!(pool.is_closed());
    let err = pool.get_session("srv", "t", &cfg).await.unwrap_err();
    assert!(matches!(err, Error::PoolClosed { .. }), "{err:?}");
    servers.assert_none_alive();
}

#[tokio::test]
async fn descendant_that_left_the_process_group_dies_with_its_session() {
    let servers = Servers::new("setsid_child");
    let pool = pool();
    let s = pool
        .get_session("forks", "t", &servers.config(&[]))
        .await
        .unwrap();
    let detached: u32 = call(&s, "spawn_detached", serde_json::json!({}))
        .await
        .parse()
        .unwrap();
    let running = |pid| common::process_running(pid, "sleep");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running(detached) {
        assert!(Instant::now() < deadline, "setsid sleep did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(s);
    assert_eq!(pool.close_session("forks", "t").await, 1);
    assert!(
        !running(detached),
        "a descendant outside the group survived close"
    );
    servers.assert_none_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_pool_in_async_code_does_not_block_the_worker() {
    let servers = Servers::new("drop_nonblocking");
    let pool = SessionPool::builder()
        .close_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // Ends only by SIGKILL, a close timeout after its stdin closes.
    let cfg = servers.config(&["--ignore-eof", "--ignore-sigterm"]);
    pool.get_session("stubborn", "t", &cfg).await.unwrap();
    let t0 = Instant::now();
    drop(pool);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(200),
        "drop blocked for {took:?}"
    );
    // The teardown goes on without the pool.
    servers.wait_none_alive().await;
}
