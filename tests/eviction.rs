//! The max_sessions bound: eviction of the least recently used idle session,
//! never more server processes than the bound, and busy sessions kept.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Servers, call, increment};
use futures_util::future::join_all;
use mcp_session_pool::{CloseReason, Error, SessionPool};

fn capped(max: usize) -> SessionPool {
    SessionPool::builder()
        .max_sessions(max)
        .connect_timeout(Duration::from_secs(10))
        .close_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

#[tokio::test]
async fn least_recently_used_idle_session_is_evicted_at_the_bound() {
    let servers = Servers::new("lru");
    let cfg = servers.config(&[]);
    let pool = capped(2);
    // Each tool call takes a handle and drops it, as a tool wrapper does.
    let a_gen = {
        let a = pool.get_session("srv", "a", &cfg).await.unwrap();
        increment(&a).await;
        a.generation()
    };
    let b_gen = {
        let b = pool.get_session("srv", "b", &cfg).await.unwrap();
        increment(&b).await;
        b.generation()
    };
    let (a_pid, b_pid) = (servers.started()[0], servers.started()[1]);
    // Touch a, so b is the least recently used.
    drop(pool.get_session("srv", "a", &cfg).await.unwrap());
    let c = pool.get_session("srv", "c", &cfg).await.unwrap();
    assert_eq!(increment(&c).await, 1);
    drop(c);
    // The evicted server was gone before its replacement started.
    assert!(
        !common::process_exists(b_pid, "test_server"),
        "evicted server still running"
    );
    assert!(common::process_exists(a_pid, "test_server"));
    assert_eq!(pool.status().live, 2);
    assert_eq!(pool.status().closed(CloseReason::Evicted), 1);

    let a = pool.get_session("srv", "a", &cfg).await.unwrap();
    assert_eq!(a.generation(), a_gen);
    assert_eq!(increment(&a).await, 2, "a kept its state");
    drop(a);
    let b = pool.get_session("srv", "b", &cfg).await.unwrap();
    assert_ne!(b.generation(), b_gen);
    assert_eq!(b.replaced(), Some(CloseReason::Evicted));
    assert_eq!(increment(&b).await, 1, "b lost its state when evicted");
    drop((b, pool));
    servers.wait_none_alive().await;
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
        async move {
            let session = pool.get_session("srv", &i.to_string(), &cfg).await?;
            // Busy while held: never evicted under its caller.
            Ok::<_, Error>(call(&session, "pid", serde_json::json!({})).await)
        }
    }))
    .await;
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let pids: Vec<String> = results.into_iter().map(Result::unwrap).collect();
    // A session evicted before its creator could use it is made again,
    // never handed out dead, so there may be more starts than keys.
    assert!(servers.started().len() >= 8);
    // Every caller's call reached the server it started.
    let started: Vec<String> = servers.started().iter().map(u32::to_string).collect();
    assert!(pids.iter().all(|p| started.contains(p)), "{pids:?}");
    assert!(
        max_seen.load(Ordering::Relaxed) <= 4,
        "saw {} servers at once",
        max_seen.load(Ordering::Relaxed)
    );
    assert!(pool.status().live <= 4);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_session_is_not_evicted_while_its_call_runs() {
    let servers = Servers::new("busy");
    let cfg = servers.config(&[]);
    let pool = capped(2);
    let busy = pool.get_session("srv", "busy", &cfg).await.unwrap();
    drop(pool.get_session("srv", "idle", &cfg).await.unwrap());
    let slow = tokio::spawn({
        let busy = busy.clone();
        async move { call(&busy, "sleep", serde_json::json!({"ms": 300})).await }
    });
    // "busy" is the least recently used, but it is in a call: "idle" goes.
    let third = pool.get_session("srv", "third", &cfg).await.unwrap();
    assert_eq!(increment(&third).await, 1);
    assert_eq!(slow.await.unwrap(), "slept");
    assert_eq!(increment(&busy).await, 1);
    assert_eq!(pool.status().closed(CloseReason::Evicted), 1);
    drop((busy, third, pool));
    servers.wait_none_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_busy_at_the_bound_waits_for_a_release_then_fails_at_the_connect_timeout() {
    let servers = Servers::new("all_busy");
    let cfg = servers.config(&[]);
    let pool = SessionPool::builder()
        .max_sessions(1)
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let held = pool.get_session("srv", "a", &cfg).await.unwrap();
    // Nothing evictable: the caller waits, then gets PoolFull; no process starts.
    let err = pool.get_session("srv", "b", &cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::PoolFull {
                max_sessions: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(servers.started().len(), 1);
    // A release in time lets the waiter through.
    let waiter = tokio::spawn({
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move {
            pool.get_session("srv", "b", &cfg)
                .await
                .map(|s| s.scope().to_owned())
        }
    });
    tokio::task::yield_now().await;
    drop(held);
    assert_eq!(waiter.await.unwrap().unwrap(), "b");
    assert_eq!(servers.started().len(), 2);
    drop(pool);
    servers.wait_none_alive().await;
}
