//! Dropping the pool stops its dedicated runtime's threads. Alone in its own
//! test binary, because it counts the threads of the whole process.

mod common;

use common::{Servers, increment};
use mcp_session_pool::SessionPool;

/// The kernel keeps 15 bytes of a thread name.
fn pool_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == &"mcp-session-pool"[..15])
        })
        .count()
}

#[test]
fn dropping_the_pool_leaves_no_thread_and_no_server() {
    let servers = Servers::new("threads");
    let pool = SessionPool::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = pool
            .get_session("srv", "t", &servers.config(&[]))
            .await
            .unwrap();
        assert_eq!(increment(&s).await, 1);
    });
    assert!(pool_threads() > 0);
    drop(pool);
    assert_eq!(pool_threads(), 0);
    servers.assert_none_alive();
}
