//! Per-server policy: protocol era (legacy, modern, probed once), a shared
//! session for stateless servers, bounds per server and on creations at
//! once, a config change that replaces the session, and settings that do
//! not apply to a transport.

mod common;

use std::{
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Servers, gated_in_process, increment, test_server};
use futures_util::future::join_all;
use mcp_session_pool::{
    CloseReason, Error, OwnerRuntime, Protocol, SHARED_SCOPE, ScopePolicy, ServerConfig,
    SessionPool,
};

/// The in-process server (of the `initialize` era only, if `legacy`),
/// counting the `server/discover` requests it is sent.
fn probed_server(legacy: bool) -> (ServerConfig, Arc<AtomicUsize>) {
    let make = if legacy {
        test_server::TestServer::legacy_only
    } else {
        test_server::TestServer::new
    };
    common::counting_in_process(make, b"server/discover")
}

fn probed() -> (ServerConfig, Arc<AtomicUsize>) {
    probed_server(false)
}

fn on_test_runtime() -> SessionPool {
    SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .build()
        .unwrap()
}

fn version(s: &mcp_session_pool::Session) -> String {
    s.protocol_version().expect("negotiated").to_string()
}

#[tokio::test(start_paused = true)]
async fn each_protocol_negotiates_its_era() {
    let pool = on_test_runtime();
    for (protocol, want) in [
        (Protocol::Legacy, "2025-11-25"),
        (Protocol::Modern, "2026-07-28"),
        (Protocol::Auto, "2026-07-28"),
    ] {
        let (cfg, _) = probed();
        let s = pool
            .get_session("srv", &format!("{protocol:?}"), &cfg.protocol(protocol))
            .await
            .unwrap();
        assert_eq!(version(&s), want, "{protocol:?}");
        assert_eq!(increment(&s).await, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn auto_probes_a_legacy_server_once_per_server_name_until_its_config_changes() {
    let (cfg, probes) = probed_server(true);
    let pool = on_test_runtime();
    for scope in 0..5 {
        let s = pool
            .get_session("old", &scope.to_string(), &cfg)
            .await
            .unwrap();
        assert_eq!(version(&s), "2025-11-25");
        assert_eq!(increment(&s).await, 1);
    }
    assert_eq!(
        probes.load(Ordering::SeqCst),
        1,
        "only the first session probes"
    );
    // Another config of the same server name probes again.
    let changed = cfg.clone().call_timeout(Duration::from_secs(60));
    pool.get_session("old", "other", &changed).await.unwrap();
    assert_eq!(probes.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn legacy_never_probes_and_modern_refuses_a_legacy_server() {
    let (cfg, probes) = probed_server(true);
    let pool = on_test_runtime();
    let s = pool
        .get_session("old", "a", &cfg.clone().protocol(Protocol::Legacy))
        .await
        .unwrap();
    assert_eq!(version(&s), "2025-11-25");
    assert_eq!(probes.load(Ordering::SeqCst), 0);
    let err = pool
        .get_session("old", "b", &cfg.protocol(Protocol::Modern))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_the_probe_fails_within_the_connect_timeout() {
    let servers = Servers::new("silent_probe");
    let pool = SessionPool::builder()
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let t0 = std::time::Instant::now();
    let err = pool
        .get_session("silent", "t", &servers.config(&["--no-initialize"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    servers.wait_none_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_server_is_one_process_for_every_scope() {
    let servers = Servers::new("shared");
    let cfg = servers.config(&[]).scope_policy(ScopePolicy::Shared);
    let pool = common::pool();
    let counts = join_all((0..50).map(|scope| {
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move {
            let s = pool
                .get_session("time", &format!("thread-{scope}"), &cfg)
                .await
                .unwrap();
            assert_eq!(s.scope(), SHARED_SCOPE);
            increment(&s).await
        }
    }))
    .await;
    assert_eq!(servers.started().len(), 1, "one process for 50 scopes");
    let mut counts = counts;
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=50).collect::<Vec<_>>(),
        "every call reached it"
    );
    assert_eq!(pool.close_scope("thread-3").await, 0);
    assert_eq!(servers.alive().len(), 1, "closing a scope leaves it");
    assert_eq!(pool.close_server("time").await, 1);
    servers.assert_none_alive();
}

#[tokio::test(start_paused = true)]
async fn max_connecting_bounds_creations_running_at_once() {
    // Each connect waits for a permit of its own from the test.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let connects = Arc::new(AtomicUsize::new(0));
    let (g, c) = (gate.clone(), connects.clone());
    let cfg = ServerConfig::connector(move || {
        c.fetch_add(1, Ordering::SeqCst);
        let gate = g.clone();
        async move {
            gate.acquire()
                .await
                .map_err(std::io::Error::other)?
                .forget();
            Ok(test_server::spawn_in_process())
        }
    });
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .max_connecting(NonZeroUsize::new(2).unwrap())
        .connect_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let callers: Vec<_> = (0..20)
        .map(|scope| {
            let (pool, cfg) = (pool.clone(), cfg.clone());
            tokio::spawn(async move { pool.get_session("srv", &scope.to_string(), &cfg).await })
        })
        .collect();
    for released in 0..20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Connected or connecting: never more than 2 ahead of those let through.
        assert_eq!(
            connects.load(Ordering::SeqCst),
            (released + 2).min(20),
            "creations running at once"
        );
        gate.add_permits(1);
    }
    for caller in callers {
        caller
            .await
            .unwrap()
            .expect("every creation succeeds in turn");
    }
    assert_eq!(pool.status().live, 20);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_connecting_slot_counts_against_the_connect_timeout() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (cfg, _) = gated_in_process(gate);
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .max_connecting(NonZeroUsize::new(1).unwrap())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let first = tokio::spawn({
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move { pool.get_session("srv", "a", &cfg).await }
    });
    tokio::task::yield_now().await;
    let err = pool.get_session("srv", "b", &cfg).await.unwrap_err();
    match &err {
        Error::ConnectTimeout { queued, .. } => assert!(queued.is_some(), "{err}"),
        other => panic!("expected ConnectTimeout, got {other:?}"),
    }
    assert!(err.to_string().contains("max_connecting"), "{err}");
    assert!(first.await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_bound_holds_under_concurrent_creation() {
    let servers = Arc::new(Servers::new("server_bound"));
    let bounded = servers
        .config(&[])
        .max_sessions(NonZeroUsize::new(2).unwrap());
    let (other, _) = common::in_process();
    let pool = SessionPool::builder()
        .max_sessions(16)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // Server processes alive at once, sampled from outside the pool.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let (servers, stop) = (servers.clone(), stop.clone());
        move || {
            let mut most = 0;
            while !stop.load(Ordering::Relaxed) {
                most = most.max(servers.alive().len());
                std::thread::sleep(Duration::from_micros(200));
            }
            most
        }
    });
    let results = join_all((0..10).map(|scope| {
        let (pool, bounded, other) = (pool.clone(), bounded.clone(), other.clone());
        async move {
            // Sessions of another server do not count toward this one's bound.
            let o = pool
                .get_session("other", &scope.to_string(), &other)
                .await?;
            let s = pool
                .get_session("bounded", &scope.to_string(), &bounded)
                .await?;
            let n = increment(&s).await;
            drop((s, o));
            Ok::<_, Error>(n)
        }
    }))
    .await;
    stop.store(true, Ordering::Relaxed);
    let most = sampler.join().unwrap();
    assert!(results.iter().all(|r| matches!(r, Ok(1))), "{results:?}");
    assert!(most <= 2, "{most} servers of a bound of 2 at once");
    assert_eq!(servers.started().len(), 10);
    assert_eq!(pool.status().live, 12, "2 bounded + 10 other");
    pool.close_all().await;
    servers.assert_none_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_replaces_the_session_once_its_callers_are_done() {
    let servers = Servers::new("config_change");
    let pool = common::pool();
    let old_cfg = servers.config(&[]).env("MODE", "old");
    let new_cfg = servers.config(&[]).env("MODE", "new");
    let old = pool.get_session("srv", "t", &old_cfg).await.unwrap();
    let old_pid = old.server_pid().unwrap();
    assert_eq!(increment(&old).await, 1);
    let replacing = tokio::spawn({
        let (pool, new_cfg) = (pool.clone(), new_cfg.clone());
        async move { pool.get_session("srv", "t", &new_cfg).await }
    });
    // The old session's caller finishes its work first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!replacing.is_finished());
    assert_eq!(increment(&old).await, 2);
    drop(old);
    let new = replacing.await.unwrap().unwrap();
    assert_eq!(new.replaced(), Some(CloseReason::ConfigChanged));
    assert!(
        !common::process_exists(old_pid, "test_server"),
        "old server still running"
    );
    assert_eq!(
        common::call(&new, "env", serde_json::json!({"name": "MODE"})).await,
        "new"
    );
    // The same config again is a hit.
    let again = pool
        .get_session("srv", "t", &new_cfg.clone())
        .await
        .unwrap();
    assert_eq!(again.generation(), new.generation());
    drop((new, again));
    assert_eq!(pool.status().closed(CloseReason::ConfigChanged), 1);
    pool.close_all().await;
    servers.assert_none_alive();
}

/// A creation finished and leased to its caller, who has not taken it yet
/// when a caller with another config replaces it: the first caller's lease
/// is given back, so the old session closes instead of waiting for it.
#[tokio::test(start_paused = true)]
async fn a_session_replaced_before_its_caller_took_it_still_closes() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (old_cfg, _) = gated_in_process(gate.clone());
    let new_cfg = old_cfg.clone().call_timeout(Duration::from_secs(60));
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .close_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut first = std::pin::pin!(pool.get_session("srv", "t", &old_cfg));
    // Polled once: it waits for the creation, held at the gate.
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut first)
            .await
            .is_err()
    );
    gate.add_permits(10);
    while pool.status().live == 0 {
        tokio::task::yield_now().await;
    }
    let replacing = tokio::spawn({
        let (pool, new_cfg) = (pool.clone(), new_cfg.clone());
        async move { pool.get_session("srv", "t", &new_cfg).await }
    });
    while pool.status().closing == 0 {
        tokio::task::yield_now().await;
    }
    // The first caller looks only now: its session is already taken out.
    drop(first.await);
    drop(replacing.await.unwrap());
    tokio::time::sleep(Duration::from_secs(600)).await;
    let status = pool.status();
    assert_eq!(
        status.closing, 0,
        "a session waits for a lease nobody holds: {status:?}"
    );
    assert!(status.closed(CloseReason::ConfigChanged) >= 1, "{status:?}");
    pool.close_all().await;
}

#[tokio::test]
async fn a_setting_for_another_transport_is_refused() {
    let pool = SessionPool::new();
    let cfg = ServerConfig::http("http://127.0.0.1:9/mcp").env("API_KEY", "x");
    let err = pool.get_session("web", "t", &cfg).await.unwrap_err();
    match &err {
        Error::InvalidServerConfig { server, field, .. } => {
            assert_eq!(server.as_deref(), Some("web"));
            assert_eq!(field, "env");
        }
        other => panic!("expected InvalidServerConfig, got {other:?}"),
    }
    assert!(err.to_string().contains("stdio"), "{err}");
    let err = pool
        .get_session("cli", "t", &ServerConfig::stdio("true").header("X", "y"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidServerConfig { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_new_scope_takes_a_warm_spare_and_a_replacement_starts() {
    let (cfg, connects) = common::in_process();
    let cfg = cfg.warm_spares(1);
    let pool = on_test_runtime();
    let a = pool.get_session("srv", "a", &cfg).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        connects.load(Ordering::SeqCst),
        2,
        "a's session and one spare"
    );
    assert_eq!(pool.status().live, 2);

    // A new scope: no connect of its own, the spare is handed over at once.
    let b = pool.get_session("srv", "b", &cfg).await.unwrap();
    assert_eq!(b.scope(), "b");
    assert_eq!(connects.load(Ordering::SeqCst), 2);
    assert_eq!(increment(&b).await, 1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(connects.load(Ordering::SeqCst), 3, "a replacement spare");

    // The spare stays b's: b's next call is the same session.
    let generation = b.generation();
    drop(b);
    let b = pool.get_session("srv", "b", &cfg).await.unwrap();
    assert_eq!(b.generation(), generation);
    assert_eq!(increment(&b).await, 2);
    // And closing b does not make its session anybody else's.
    drop((a, b));
    pool.close_scope("b").await;
    let c = pool.get_session("srv", "c", &cfg).await.unwrap();
    assert_ne!(c.generation(), generation);
    assert_eq!(increment(&c).await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_spare_taken_by_a_scope_says_what_the_scope_lost() {
    let (cfg, _) = common::in_process();
    let cfg = cfg.warm_spares(1);
    let pool = on_test_runtime();
    drop(pool.get_session("srv", "a", &cfg).await.unwrap());
    tokio::time::sleep(Duration::from_millis(10)).await;
    pool.close_session("srv", "a").await;
    // "a" comes back: it takes the spare, which tells it its state is gone.
    let again = pool.get_session("srv", "a", &cfg).await.unwrap();
    assert_eq!(again.replaced(), Some(CloseReason::Explicit));
}

#[tokio::test(start_paused = true)]
async fn spares_never_exceed_the_bounds_and_go_first() {
    let (cfg, _) = common::in_process();
    let cfg = cfg.warm_spares(3);
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .max_sessions(2)
        .build()
        .unwrap();
    let a = pool.get_session("srv", "a", &cfg).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(pool.status().live, 2, "one spare fits");
    // Another server's session evicts the spare, not a's session.
    let (other, _) = common::in_process();
    let o = pool.get_session("other", "x", &other).await.unwrap();
    assert_eq!(increment(&o).await, 1);
    assert_eq!(increment(&a).await, 1);
    let status = pool.status();
    assert!(status.live + status.in_flight <= 2, "{status:?}");
    assert_eq!(status.closed(CloseReason::Evicted), 1);
}

#[tokio::test]
async fn close_all_closes_warm_spares() {
    let servers = Servers::new("spares_close");
    let cfg = servers.config(&[]).warm_spares(2);
    let pool = common::pool();
    pool.get_session("srv", "a", &cfg).await.unwrap();
    servers.wait_started(3).await;
    // Wait until both spares are ready, so none is still starting.
    while pool.status().in_flight > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(pool.close_all().await, 3);
    servers.assert_none_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_waits_for_a_caller_that_took_the_session_after_it_idled() {
    let pool = on_test_runtime();
    let (cfg, _) = common::in_process();
    drop(pool.get_session("srv", "t", &cfg).await.unwrap());
    // The owner has seen the session idle before this caller takes it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let held = pool.get_session("srv", "t", &cfg).await.unwrap();
    let changed = cfg.clone().call_timeout(Duration::from_secs(60));
    let replacing = tokio::spawn({
        let pool = pool.clone();
        async move {
            pool.get_session("srv", "t", &changed)
                .await
                .map(|s| s.generation())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        increment(&held).await,
        1,
        "the caller finishes its work first"
    );
    let old = held.generation();
    drop(held);
    assert_ne!(replacing.await.unwrap().unwrap(), old);
}

#[tokio::test(start_paused = true)]
async fn a_config_rebuilt_per_call_with_a_handler_keeps_its_session() {
    let pool = on_test_runtime();
    let (base, connects) = common::in_process();
    let make = || {
        base.clone()
            .client_handler(|_: &mcp_session_pool::HandlerContext| ())
    };
    let first = make();
    let s = pool.get_session("srv", "t", &first).await.unwrap();
    assert_eq!(increment(&s).await, 1);
    let generation = s.generation();
    drop(s);
    let again = pool.get_session("srv", "t", &make()).await.unwrap();
    assert_eq!(again.generation(), generation);
    assert_eq!(increment(&again).await, 2);
    assert_eq!(connects.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_callers_scope_that_looks_like_a_spares_is_never_handed_to_another_scope() {
    let pool = on_test_runtime();
    let (cfg, _) = common::in_process();
    let cfg = cfg.warm_spares(1);
    let a = pool.get_session("srv", "(spare 1)", &cfg).await.unwrap();
    assert_eq!(increment(&a).await, 1);
    let taken = a.generation();
    drop(a);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let b = pool.get_session("srv", "thread-b", &cfg).await.unwrap();
    assert_ne!(b.generation(), taken, "two scopes share one session");
    assert_eq!(increment(&b).await, 1);
}

#[tokio::test(start_paused = true)]
async fn spares_of_an_earlier_config_make_way_for_the_current_ones() {
    let pool = on_test_runtime();
    let (base, connects) = common::in_process();
    let old = base.clone().warm_spares(1);
    let _a = pool.get_session("srv", "A", &old).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(pool.status().live, 2, "A and its spare");
    let new = base.warm_spares(1).call_timeout(Duration::from_secs(60));
    let _b = pool.get_session("srv", "B", &new).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        pool.status().closed(CloseReason::ConfigChanged),
        1,
        "the old spare"
    );
    let before = connects.load(Ordering::SeqCst);
    let c = pool.get_session("srv", "C", &new).await.unwrap();
    assert_eq!(
        connects.load(Ordering::SeqCst),
        before,
        "C took a spare of the current config"
    );
    assert_eq!(increment(&c).await, 1);
}

#[tokio::test(start_paused = true)]
async fn spares_that_fail_to_start_back_off() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let (d, n) = (down.clone(), attempts.clone());
    let cfg = ServerConfig::connector(move || {
        n.fetch_add(1, Ordering::SeqCst);
        let down = d.load(Ordering::SeqCst);
        async move {
            if down {
                Err(std::io::Error::other("no more instances"))
            } else {
                Ok(test_server::spawn_in_process())
            }
        }
    })
    .warm_spares(1);
    let pool = on_test_runtime();
    drop(pool.get_session("srv", "a", &cfg).await.unwrap());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "a and a spare");
    down.store(true, Ordering::SeqCst);
    // b takes the spare; its replacement fails and backs off.
    drop(pool.get_session("srv", "b", &cfg).await.unwrap());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    for _ in 0..20 {
        drop(pool.get_session("srv", "b", &cfg).await.unwrap());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A new scope's own creation is one attempt; no spare comes with it.
    assert!(pool.get_session("srv", "c", &cfg).await.is_err());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}
