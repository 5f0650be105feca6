//! Concurrent callers of a new key share one creation, and a caller that goes
//! away mid-creation neither cancels nor duplicates it.

mod common;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use common::{Servers, gated_in_process, increment, pool};
use futures_util::{FutureExt, future::join_all};
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_callers_start_exactly_one_server() {
    let servers = Servers::new("hundred");
    let cfg = servers.config(&[]);
    let pool = pool();
    let tasks = (0..100).map(|_| {
        let (pool, cfg) = (pool.clone(), cfg.clone());
        tokio::spawn(async move {
            pool.get_session("srv", "t", &cfg)
                .await
                .unwrap()
                .generation()
        })
    });
    let generations: Vec<u64> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(generations.iter().all(|&g| g == generations[0]));
    assert_eq!(servers.started().len(), 1);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn dropped_first_caller_does_not_cancel_the_creation() {
    let gate = Arc::new(Semaphore::new(0));
    let (cfg, connects) = gated_in_process(gate.clone());
    let pool = pool();
    // Poll the first caller once, which registers the creation, then drop it.
    let first = pool.get_session("mem", "t", &cfg).now_or_never();
    assert!(
        first.is_none(),
        "creation cannot finish while the gate is shut"
    );
    assert_eq!(pool.status().in_flight, 1);

    let second = tokio::spawn({
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move { pool.get_session("mem", "t", &cfg).await }
    });
    gate.add_permits(1);
    let session = second.await.unwrap().unwrap();
    assert_eq!(increment(&session).await, 1);
    assert_eq!(
        connects.load(Ordering::SeqCst),
        1,
        "the creation was shared, not repeated"
    );
    assert_eq!((pool.status().live, pool.status().in_flight), (1, 0));
}

#[tokio::test]
async fn dropped_only_caller_leaves_a_stdio_session_for_the_next_call() {
    let servers = Servers::new("dropped_stdio");
    let cfg = servers.config(&[]);
    let pool = pool();
    assert!(pool.get_session("srv", "t", &cfg).now_or_never().is_none());
    // The owner task carries on with nobody waiting.
    let s = tokio::time::timeout(Duration::from_secs(10), pool.get_session("srv", "t", &cfg))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(increment(&s).await, 1);
    assert_eq!(servers.started().len(), 1);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn creation_error_is_shared_by_every_waiter_and_then_forgotten() {
    let servers = Servers::new("shared_error");
    // `Legacy`: `Auto` tries a server that hangs up on its probe twice.
    let cfg = servers
        .config(&["--exit-before-initialize"])
        .protocol(mcp_session_pool::Protocol::Legacy);
    let pool = mcp_session_pool::SessionPool::builder()
        .failure_backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    let results = join_all((0..10).map(|_| pool.get_session("bad", "t", &cfg))).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(mcp_session_pool::Error::Connect { .. })))
    );
    assert_eq!(
        servers.started().len(),
        1,
        "one creation for all ten waiters"
    );
    // Not cached: the next call tries again.
    assert!(pool.get_session("bad", "t", &cfg).await.is_err());
    assert_eq!(servers.started().len(), 2);
    servers.assert_none_alive();
}
