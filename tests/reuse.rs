//! One live session per (server, scope), and server-side state that persists.

mod common;

use std::sync::atomic::Ordering;

use common::{Servers, in_process, increment, pool};

#[tokio::test]
async fn same_key_reuses_one_server_and_its_state() {
    let servers = Servers::new("same_key");
    let cfg = servers.config(&[]);
    let pool = pool();
    let mut counts = Vec::new();
    let mut generations = Vec::new();
    for _ in 0..3 {
        let s = pool.get_session("counter", "thread-1", &cfg).await.unwrap();
        counts.push(increment(&s).await);
        generations.push(s.generation());
    }
    assert_eq!(counts, [1, 2, 3]);
    assert!(generations.iter().all(|&g| g == generations[0]));
    assert_eq!(servers.started().len(), 1);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn different_scopes_get_separate_servers() {
    let servers = Servers::new("scopes");
    let cfg = servers.config(&[]);
    let pool = pool();
    let a = pool.get_session("counter", "a", &cfg).await.unwrap();
    let b = pool.get_session("counter", "b", &cfg).await.unwrap();
    assert_eq!(increment(&a).await, 1);
    assert_eq!(increment(&a).await, 2);
    assert_eq!(increment(&b).await, 1);
    assert_ne!(a.generation(), b.generation());
    assert_eq!((a.scope(), b.scope()), ("a", "b"));
    assert_eq!(servers.started().len(), 2);
    assert_eq!(pool.status().live, 2);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn keys_that_join_to_the_same_string_stay_separate() {
    let servers = Servers::new("colliding");
    let cfg = servers.config(&[]);
    let pool = pool();
    let left = pool.get_session("a:b", "c", &cfg).await.unwrap();
    let right = pool.get_session("a", "b:c", &cfg).await.unwrap();
    assert_eq!(increment(&left).await, 1);
    assert_eq!(increment(&right).await, 1);
    assert_eq!((left.server(), left.scope()), ("a:b", "c"));
    assert_eq!((right.server(), right.scope()), ("a", "b:c"));
    assert_eq!(servers.started().len(), 2);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn in_process_connector_connects_once_per_key() {
    let (cfg, connects) = in_process();
    let pool = pool();
    for expected in 1..=3 {
        let s = pool.get_session("mem", "t", &cfg).await.unwrap();
        assert_eq!(increment(&s).await, expected);
    }
    let other = pool.get_session("mem", "u", &cfg).await.unwrap();
    assert_eq!(increment(&other).await, 1);
    assert_eq!(connects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn sessions_are_clone_send_sync_and_deref_to_the_peer() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<mcp_session_pool::Session>();
    assert_traits::<mcp_session_pool::SessionPool>();
    let (cfg, _) = in_process();
    let pool = pool();
    let s = pool.get_session("mem", "t", &cfg).await.unwrap();
    let info = s.peer_info().expect("initialized");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("mcp-session-pool-test-server")
    );
}

#[test]
fn get_session_future_stays_small() {
    // Every task that awaits it carries it, and spawning one copies it.
    let pool = mcp_session_pool::SessionPool::new();
    let (cfg, _) = in_process();
    let fut = pool.get_session("mem", "t", &cfg);
    let size = std::mem::size_of_val(&fut);
    assert!(size <= 1024, "get_session future is {size} bytes");
    eprintln!("get_session future: {size} bytes");
}
