//! Sessions and the runtimes that host them.

mod common;

use common::{Servers, increment};
use mcp_session_pool::{OwnerRuntime, SessionPool};

#[test]
fn session_made_on_a_dropped_runtime_is_replaced() {
    let servers = Servers::new("dropped_rt");
    let cfg = servers.config(&[]);
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .build()
        .unwrap();
    let first = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let s = pool.get_session("srv", "t", &cfg).await.unwrap();
        assert_eq!(increment(&s).await, 1);
        s.generation()
    });
    // That runtime is gone, and the session with it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = pool.get_session("srv", "t", &cfg).await.unwrap();
        assert_ne!(s.generation(), first);
        assert_eq!(increment(&s).await, 1);
        assert_eq!(pool.close_all().await, 1);
    });
    assert_eq!(servers.started().len(), 2);
    servers.assert_none_alive();
}

#[test]
fn dedicated_runtime_keeps_sessions_across_caller_runtimes() {
    let servers = Servers::new("dedicated_rt");
    let cfg = servers.config(&[]);
    let pool = SessionPool::new();
    let counts: Vec<u64> = (0..3)
        .map(|_| {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                increment(&pool.get_session("srv", "t", &cfg).await.unwrap()).await
            })
        })
        .collect();
    assert_eq!(counts, [1, 2, 3]);
    assert_eq!(servers.started().len(), 1);
    drop(pool);
    servers.assert_none_alive();
}

#[test]
fn server_of_a_dropped_caller_runtime_is_reaped_not_left_a_zombie() {
    let servers = Servers::new("dropped_rt_zombie");
    let cfg = servers.config(&[]);
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .build()
        .unwrap();
    let pid = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let s = pool.get_session("srv", "t", &cfg).await.unwrap();
        s.server_pid().unwrap()
    });
    // No later spawn or runtime comes along to reap it: the pool must.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while common::process_exists(pid, "test_server") {
        assert!(
            std::time::Instant::now() < deadline,
            "server {pid} left behind (a zombie counts) after its runtime was dropped"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(pool);
}
