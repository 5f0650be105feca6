//! Settings are checked when the pool is built, never by a panic later.

use std::time::Duration;

use mcp_session_pool::{Error, HealthCheck, OwnerRuntime, SessionPool};

fn rejected(builder: mcp_session_pool::Builder) -> &'static str {
    match builder.build() {
        Err(Error::InvalidConfig { reason }) => reason,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[test]
fn bad_settings_are_rejected_with_a_reason() {
    let b = SessionPool::builder;
    assert!(rejected(b().max_sessions(0)).contains("max_sessions"));
    assert!(rejected(b().connect_timeout(Duration::ZERO)).contains("connect_timeout"));
    assert!(rejected(b().close_timeout(Duration::ZERO)).contains("close_timeout"));
    assert!(rejected(b().idle_timeout(Some(Duration::ZERO))).contains("idle_timeout"));
    assert!(rejected(b().max_lifetime(Some(Duration::ZERO))).contains("max_lifetime"));
    assert!(
        rejected(b().health_check(HealthCheck::PingIfIdleFor(Duration::ZERO)))
            .contains("PingIfIdleFor")
    );
    assert!(
        rejected(b().failure_backoff(Duration::from_secs(2), Duration::from_secs(1)))
            .contains("failure_backoff")
    );
    assert!(rejected(b().dedicated_threads(0)).contains("dedicated_threads"));
    for huge in [
        b().connect_timeout(Duration::MAX),
        b().close_timeout(Duration::MAX),
        b().idle_timeout(Some(Duration::MAX)),
        b().max_lifetime(Some(Duration::MAX)),
        b().health_check(HealthCheck::PingIfIdleFor(Duration::MAX)),
        b().failure_backoff(Duration::from_secs(1), Duration::MAX),
    ] {
        assert!(rejected(huge).contains("ten years"));
    }
}

#[test]
fn handle_of_a_current_thread_runtime_is_rejected() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reason =
        rejected(SessionPool::builder().owner_runtime(OwnerRuntime::Handle(rt.handle().clone())));
    assert!(reason.contains("multi-threaded"));
}

#[test]
fn defaults_build() {
    let pool = SessionPool::builder().idle_timeout(None).build().unwrap();
    let status = pool.status();
    assert_eq!((status.live, status.in_flight, status.created), (0, 0, 0));
}
