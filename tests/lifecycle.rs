//! Idle timeout, max lifetime, health checks, failure backoff, the state-loss
//! signal and the counters. Timers run on tokio's paused clock: the pool's
//! owners run on the test's runtime (`OwnerRuntime::Caller`) with an
//! in-process server, so no real time passes.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Servers, in_process, increment, test_server};
use mcp_session_pool::{CloseReason, Error, HealthCheck, OwnerRuntime, ServerConfig, SessionPool};
use tokio::time::sleep;

const MIN: Duration = Duration::from_secs(60);

fn on_test_runtime() -> mcp_session_pool::Builder {
    SessionPool::builder().owner_runtime(OwnerRuntime::Caller)
}

#[tokio::test(start_paused = true)]
async fn idle_session_expires_and_the_next_call_says_why() {
    let (cfg, connects) = in_process();
    let pool = on_test_runtime()
        .idle_timeout(Some(30 * MIN))
        .build()
        .unwrap();
    let first = pool.get_session("mem", "t", &cfg).await.unwrap();
    assert_eq!(first.replaced(), None);
    assert_eq!(increment(&first).await, 1);
    let first_gen = first.generation();
    drop(first);

    sleep(29 * MIN).await;
    let again = pool.get_session("mem", "t", &cfg).await.unwrap();
    assert_eq!(
        again.generation(),
        first_gen,
        "used within the idle timeout"
    );
    assert_eq!(increment(&again).await, 2);
    drop(again);

    // Never before the timeout; after it by at most a sixteenth of it (the
    // owner stamps releases it was not woken for when it looks).
    sleep(30 * MIN - Duration::from_secs(1)).await;
    assert_eq!(
        pool.status().live,
        1,
        "idle time counts from the last release"
    );
    sleep(30 * MIN / 16 + Duration::from_secs(1)).await;
    assert_eq!(pool.status().live, 0);
    assert_eq!(pool.status().closed(CloseReason::IdleTimeout), 1);
    let fresh = pool.get_session("mem", "t", &cfg).await.unwrap();
    assert_ne!(fresh.generation(), first_gen);
    assert_eq!(fresh.replaced(), Some(CloseReason::IdleTimeout));
    assert_eq!(increment(&fresh).await, 1);
    assert_eq!(connects.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn busy_session_does_not_idle_out_until_released() {
    let (cfg, _) = in_process();
    let pool = on_test_runtime().idle_timeout(Some(MIN)).build().unwrap();
    let held = pool.get_session("mem", "t", &cfg).await.unwrap();
    sleep(10 * MIN).await;
    assert_eq!(pool.status().live, 1, "a held session is busy, not idle");
    assert_eq!(increment(&held).await, 1);
    drop(held);
    sleep(MIN / 2).await;
    assert_eq!(pool.status().live, 1, "idle time counts from the release");
    sleep(MIN).await;
    assert_eq!(pool.status().live, 0);
}

#[tokio::test(start_paused = true)]
async fn session_is_replaced_after_its_max_lifetime() {
    let (cfg, _) = in_process();
    let pool = on_test_runtime()
        .idle_timeout(None)
        .max_lifetime(Some(60 * MIN))
        .build()
        .unwrap();
    let first_gen = pool
        .get_session("mem", "t", &cfg)
        .await
        .unwrap()
        .generation();
    for _ in 0..5 {
        sleep(10 * MIN).await;
        assert_eq!(
            pool.get_session("mem", "t", &cfg)
                .await
                .unwrap()
                .generation(),
            first_gen
        );
    }
    sleep(11 * MIN).await;
    let fresh = pool.get_session("mem", "t", &cfg).await.unwrap();
    assert_ne!(fresh.generation(), first_gen);
    assert_eq!(fresh.replaced(), Some(CloseReason::MaxLifetime));
    assert_eq!(pool.status().closed(CloseReason::MaxLifetime), 1);
}

#[tokio::test]
async fn idle_stdio_server_is_closed_and_reaped() {
    let servers = Servers::new("idle_stdio");
    let cfg = servers.config(&[]);
    let pool = SessionPool::builder()
        .idle_timeout(Some(Duration::from_millis(200)))
        .build()
        .unwrap();
    let first = pool
        .get_session("srv", "t", &cfg)
        .await
        .unwrap()
        .generation();
    // The owner's idle timer closes it, with no call from here.
    servers.wait_none_alive().await;
    let fresh = pool.get_session("srv", "t", &cfg).await.unwrap();
    assert_ne!(fresh.generation(), first);
    assert_eq!(fresh.replaced(), Some(CloseReason::IdleTimeout));
    drop((fresh, pool));
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn health_check_replaces_a_hung_server_within_one_call() {
    let servers = Servers::new("health_hung");
    let cfg = servers.config(&[]);
    let pool = SessionPool::builder()
        .health_check(HealthCheck::PingIfIdleFor(Duration::from_millis(1)))
        .connect_timeout(Duration::from_millis(300))
        .close_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let first = pool.get_session("srv", "t", &cfg).await.unwrap();
    assert_eq!(increment(&first).await, 1);
    let first_gen = first.generation();
    drop(first);
    // Stopped: alive as a process, but it answers nothing.
    let pid = nix::unistd::Pid::from_raw(servers.started()[0] as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    sleep(Duration::from_millis(5)).await;
    let fresh = pool.get_session("srv", "t", &cfg).await.unwrap();
    assert_ne!(fresh.generation(), first_gen);
    assert_eq!(fresh.replaced(), Some(CloseReason::HealthCheck));
    assert_eq!(increment(&fresh).await, 1);
    drop((fresh, pool));
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn health_check_replaces_a_killed_server() {
    let servers = Servers::new("health_killed");
    let cfg = servers.config(&[]);
    let pool = SessionPool::builder()
        .health_check(HealthCheck::PingIfIdleFor(Duration::from_millis(1)))
        .build()
        .unwrap();
    let first_gen = pool
        .get_session("srv", "t", &cfg)
        .await
        .unwrap()
        .generation();
    let pid = nix::unistd::Pid::from_raw(servers.started()[0] as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    sleep(Duration::from_millis(5)).await;
    let fresh = pool.get_session("srv", "t", &cfg).await.unwrap();
    assert_ne!(fresh.generation(), first_gen);
    // Whichever noticed first, the owner or the ping, the session is new.
    assert!(
        matches!(
            fresh.replaced(),
            Some(CloseReason::Died | CloseReason::HealthCheck)
        ),
        "{:?}",
        fresh.replaced()
    );
    assert_eq!(increment(&fresh).await, 1);
    drop((fresh, pool));
    servers.wait_none_alive().await;
}

#[tokio::test(start_paused = true)]
async fn server_rejecting_ping_with_an_error_is_kept() {
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = connects.clone();
    let cfg = ServerConfig::connector(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            Ok(test_server::spawn_in_process_with(
                test_server::TestServer::rejecting_ping(),
            ))
        }
    });
    let pool = on_test_runtime()
        .health_check(HealthCheck::PingIfIdleFor(MIN))
        .build()
        .unwrap();
    let first = pool.get_session("mem", "t", &cfg).await.unwrap();
    assert_eq!(increment(&first).await, 1);
    let first_gen = first.generation();
    drop(first);
    sleep(2 * MIN).await;
    let again = pool.get_session("mem", "t", &cfg).await.unwrap();
    assert_eq!(
        again.generation(),
        first_gen,
        "an error reply is still a reply"
    );
    assert_eq!(increment(&again).await, 2);
    assert_eq!(connects.load(Ordering::SeqCst), 1);
}

/// A connector that fails while `failing` is set, counting attempts.
fn flaky() -> (ServerConfig, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let failing = Arc::new(AtomicBool::new(true));
    let attempts = Arc::new(AtomicUsize::new(0));
    let (f, a) = (failing.clone(), attempts.clone());
    let cfg = ServerConfig::connector(move || {
        a.fetch_add(1, Ordering::SeqCst);
        let fail = f.load(Ordering::SeqCst);
        async move {
            if fail {
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "server down",
                ))
            } else {
                Ok(test_server::spawn_in_process())
            }
        }
    });
    (cfg, failing, attempts)
}

#[tokio::test(start_paused = true)]
async fn failing_key_backs_off_exponentially_and_success_resets_it() {
    let (cfg, failing, attempts) = flaky();
    let pool = on_test_runtime()
        .failure_backoff(Duration::from_millis(100), Duration::from_millis(300))
        .build()
        .unwrap();
    let backing_off = |e: Error| match e {
        Error::BackingOff {
            retry_in, source, ..
        } => {
            assert!(matches!(*source, Error::Connect { .. }), "{source:?}");
            retry_in
        }
        other => panic!("expected BackingOff, got {other:?}"),
    };

    assert!(matches!(
        pool.get_session("m", "t", &cfg).await,
        Err(Error::Connect { .. })
    ));
    let retry_in = backing_off(pool.get_session("m", "t", &cfg).await.unwrap_err());
    assert_eq!(retry_in, Duration::from_millis(100));
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "failing fast, without an attempt"
    );
    // Other keys are unaffected.
    assert!(matches!(
        pool.get_session("m", "other", &cfg).await,
        Err(Error::Connect { .. })
    ));

    sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        pool.get_session("m", "t", &cfg).await,
        Err(Error::Connect { .. })
    ));
    assert_eq!(
        backing_off(pool.get_session("m", "t", &cfg).await.unwrap_err()),
        Duration::from_millis(200)
    );
    sleep(Duration::from_millis(200)).await;
    assert!(pool.get_session("m", "t", &cfg).await.is_err());
    assert_eq!(
        backing_off(pool.get_session("m", "t", &cfg).await.unwrap_err()),
        Duration::from_millis(300),
        "capped"
    );

    failing.store(false, Ordering::SeqCst);
    sleep(Duration::from_millis(300)).await;
    pool.get_session("m", "t", &cfg).await.unwrap();
    pool.close_all().await;
    failing.store(true, Ordering::SeqCst);
    assert!(pool.get_session("m", "t", &cfg).await.is_err());
    assert_eq!(
        backing_off(pool.get_session("m", "t", &cfg).await.unwrap_err()),
        Duration::from_millis(100),
        "reset by the success"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn backing_off_key_does_not_spawn_a_server() {
    let servers = Servers::new("backoff_stdio");
    // `Legacy`: `Auto` tries a server that hangs up on its probe twice.
    let cfg = servers
        .config(&["--exit-before-initialize"])
        .protocol(mcp_session_pool::Protocol::Legacy);
    let pool = SessionPool::builder()
        .failure_backoff(Duration::from_secs(60), Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(matches!(
        pool.get_session("bad", "t", &cfg).await,
        Err(Error::Connect { .. })
    ));
    for _ in 0..5 {
        let err = pool.get_session("bad", "t", &cfg).await.unwrap_err();
        assert!(matches!(err, Error::BackingOff { .. }), "{err:?}");
        assert!(
            err.to_string().contains("bad") && err.to_string().contains("`t`"),
            "{err}"
        );
    }
    assert_eq!(servers.started().len(), 1);
    servers.assert_none_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counters_follow_a_scripted_sequence_exactly() {
    let servers = Servers::new("counters");
    let stdio = servers.config(&[]);
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (gated, _) = common::gated_in_process(gate.clone());
    let (failing, _, _) = flaky();
    let pool = SessionPool::builder()
        .failure_backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();

    drop(pool.get_session("stdio", "a", &stdio).await.unwrap()); // created 1
    drop(pool.get_session("stdio", "a", &stdio).await.unwrap()); // hit 1
    drop(pool.get_session("stdio", "a", &stdio).await.unwrap()); // hit 2
    let b = futures_util::future::join3(
        pool.get_session("mem", "b", &gated),
        pool.get_session("mem", "b", &gated), // joined 1
        async {
            let joined = pool.get_session("mem", "b", &gated); // joined 2
            gate.add_permits(1);
            joined.await
        },
    )
    .await; // created 2
    assert!(b.0.is_ok() && b.1.is_ok() && b.2.is_ok());
    drop(b);
    assert_eq!(pool.close_session("stdio", "a").await, 1); // explicit 1
    let crashing = pool.get_session("stdio", "c", &stdio).await.unwrap(); // created 3
    let _ = crashing
        .call_tool(mcp_session_pool::rmcp::model::CallToolRequestParams::new(
            "crash",
        ))
        .await;
    drop(crashing);
    let replaced = pool.get_session("stdio", "c", &stdio).await.unwrap(); // died 1, created 4
    assert_eq!(replaced.replaced(), Some(CloseReason::Died));
    drop(replaced);
    assert!(pool.get_session("down", "d", &failing).await.is_err()); // creation failure 1
    assert_eq!(pool.close_all().await, 2); // explicit 3

    let s = pool.status();
    assert_eq!((s.live, s.in_flight, s.closing), (0, 0, 0));
    assert_eq!((s.created, s.hits, s.joined), (4, 2, 2));
    assert_eq!((s.creation_failures, s.teardown_failures), (1, 0));
    assert_eq!(s.closed(CloseReason::Explicit), 3);
    assert_eq!(s.closed(CloseReason::Died), 1);
    assert_eq!(s.closed_total(), 4);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn stubborn_server_counts_as_a_teardown_failure() {
    let servers = Servers::new("teardown_failure");
    let pool = SessionPool::builder()
        .close_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    // Ignores EOF; a SIGTERM still ends it, so this close is clean.
    pool.get_session("srv", "t", &servers.config(&["--ignore-eof"]))
        .await
        .unwrap();
    pool.close_all().await;
    assert_eq!(pool.status().teardown_failures, 0);
    servers.assert_none_alive();
}
