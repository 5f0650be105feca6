//! The max_sessions bound: LRU eviction, and never more server processes
//! than the bound.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Servers, increment};
use futures_util::future::join_all;
use mcp_session_pool::SessionPool;

fn capped(max: usize) -> SessionPool {
    SessionPool::builder()
        .max_sessions(max)
        .close_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[tokio::test]
async fn least_recently_used_session_is_evicted_at_the_bound() {
    let servers = Servers::new("lru");
    let cfg = servers.config(&[]);
    let pool = capped(2);
    let a = pool.get_session("srv", "a", &cfg).await.unwrap();
    let b = pool.get_session("srv", "b", &cfg).await.unwrap();
    increment(&a).await;
    increment(&b).await;
    let (a_pid, b_pid) = (servers.started()[0], servers.started()[1]);
    // Touch a, so b is the least recently used.
    pool.get_session("srv", "a", &cfg).await.unwrap();
    let c = pool.get_session("srv", "c", &cfg).await.unwrap();
    // The evicted server is gone before its replacement started.
    assert!(
        !common::process_exists(b_pid, "test_server"),
        "evicted server still running"
    );
    assert!(common::process_exists(a_pid, "test_server"));
    assert_eq!(pool.status().live, 2);
    let a_again = pool.get_session("srv", "a", &cfg).await.unwrap();
    assert_eq!(a_again.generation(), a.generation());
    assert_eq!(increment(&a_again).await, 2, "a kept its state");
    assert_eq!(increment(&c).await, 1);
    let b_again = pool.get_session("srv", "b", &cfg).await.unwrap();
    assert_ne!(b_again.generation(), b.generation());
    assert_eq!(
        increment(&b_again).await,
        1,
        "b lost its state when evicted"
    );
    drop(pool);
    servers.assert_none_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_never_exceed_the_bound_in_processes() {
    let servers = Arc::new(Servers::new("bound"));
    let cfg = servers.config(&[]);
    let pool = capped(4);
    let max_seen = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (servers, max_seen, stop) = (servers.clone(), max_seen.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                max_seen.fetch_max(servers.alive().len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    let results = join_all((0..8).map(|i| {
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move { pool.get_session("srv", &i.to_string(), &cfg).await }
    }))
    .await;
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(servers.started().len(), 8);
    assert!(
        max_seen.load(Ordering::Relaxed) <= 4,
        "saw {} servers at once",
        max_seen.load(Ordering::Relaxed)
    );
    assert!(pool.status().live <= 4);
    drop(pool);
    servers.assert_none_alive();
}
