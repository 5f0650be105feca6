//! Sessions and the runtimes that host them.

mod common;

use std::sync::{Arc, Mutex};

use common::{Servers, increment};
use mcp_session_pool::{
    CloseReason, OwnerRuntime, Session, SessionPool, rmcp::model::CallToolRequestParams,
};

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
    let counts = counts_through_fresh_runtimes(&pool, &cfg);
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
    wait_gone(pid);
    drop(pool);
}

/// A pool whose handler factory (called by each session's owner task, on
/// the runtime hosting the session) records the name of the thread it ran on.
fn pool_recording_owner_threads(
    builder: mcp_session_pool::Builder,
) -> (SessionPool, Arc<Mutex<Vec<String>>>) {
    let threads = Arc::new(Mutex::new(Vec::new()));
    let seen = threads.clone();
    let pool = builder
        .client_handler(move |_| {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            seen.lock().unwrap().push(name);
        })
        .build()
        .unwrap();
    (pool, threads)
}

fn app_runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn default_pool_hosts_sessions_on_the_multi_threaded_runtime_it_is_built_in() {
    let servers = Servers::new("auto_home");
    let cfg = servers.config(&[]);
    let app = app_runtime("app-worker");
    let (pool, threads) = {
        let _in_app = app.enter();
        pool_recording_owner_threads(SessionPool::builder())
    };
    let counts: Vec<u64> = app.block_on(async {
        let mut counts = Vec::new();
        for _ in 0..3 {
            let pool = pool.clone();
            let cfg = cfg.clone();
            let task = tokio::spawn(async move {
                increment(&pool.get_session("srv", "t", &cfg).await.unwrap()).await
            });
            counts.push(task.await.unwrap());
        }
        counts
    });
    assert_eq!(counts, [1, 2, 3]);
    // And from a plain thread through the blocking API, on the same session.
    let s = pool.get_session_blocking("srv", "t", &cfg).unwrap();
    assert_eq!(increment_blocking(&s), 4);
    drop(s);
    assert_eq!(*threads.lock().unwrap(), ["app-worker"]);
    assert_eq!(pool.close_all_blocking(), 1);
    servers.assert_none_alive();
}

#[test]
fn default_pool_built_outside_a_multi_threaded_runtime_runs_its_own() {
    let servers = Servers::new("auto_own");
    let cfg = servers.config(&[]);
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let built_in_current = {
        let _in = current.enter();
        pool_recording_owner_threads(SessionPool::builder())
    };
    for (pool, threads) in [
        pool_recording_owner_threads(SessionPool::builder()),
        built_in_current,
    ] {
        // A fresh runtime per call, as sync tool wrappers do: one session.
        let counts = counts_through_fresh_runtimes(&pool, &cfg);
        assert_eq!(counts, [1, 2, 3]);
        assert_eq!(*threads.lock().unwrap(), ["mcp-session-pool"]);
        drop(pool);
    }
    assert_eq!(servers.started().len(), 2);
    servers.assert_none_alive();
}

#[test]
fn sessions_of_a_home_runtime_that_shuts_down_move_to_the_pools_own() {
    let servers = Servers::new("auto_home_gone");
    let cfg = servers.config(&[]);
    let app = app_runtime("short-lived");
    let (pool, threads) = {
        let _in_app = app.enter();
        pool_recording_owner_threads(SessionPool::builder())
    };
    let first = app.block_on(async {
        let s = pool.get_session("srv", "t", &cfg).await.unwrap();
        assert_eq!(increment(&s).await, 1);
        s.server_pid().unwrap()
    });
    drop(app);
    // Its server is reaped although no runtime hosts its owner any more.
    wait_gone(first);
    // The state was lost once; from then on sessions outlive their callers'
    // runtimes.
    let counts = counts_through_fresh_runtimes(&pool, &cfg);
    assert_eq!(counts, [1, 2, 3]);
    assert_eq!(
        *threads.lock().unwrap(),
        ["short-lived", "mcp-session-pool"]
    );
    assert_eq!(pool.status().closed(CloseReason::RuntimeGone), 1);
    drop(pool);
    assert_eq!(servers.started().len(), 2);
    servers.assert_none_alive();
}

fn increment_blocking(session: &Session) -> u64 {
    let result = session
        .call_tool_blocking(CallToolRequestParams::new("increment"))
        .unwrap();
    common::text(&result.content).parse().unwrap()
}

#[test]
fn a_blocking_call_on_a_home_runtime_that_shuts_down_ends_with_an_error_not_a_panic() {
    let servers = Servers::new("auto_home_dies_mid_call");
    // A call timeout puts a timer in the call.
    let cfg = servers
        .config(&[])
        .call_timeout(std::time::Duration::from_secs(60));
    let app = app_runtime("dying");
    let pool = {
        let _in_app = app.enter();
        SessionPool::new()
    };
    let (sent, in_flight) = std::sync::mpsc::channel();
    let caller = std::thread::spawn({
        let (pool, cfg) = (pool.clone(), cfg.clone());
        move || {
            let s = pool.get_session_blocking("srv", "t", &cfg).unwrap();
            let serde_json::Value::Object(args) = serde_json::json!({"ms": 60_000}) else {
                unreachable!()
            };
            s.block_on(async {
                let call = s.call_tool(CallToolRequestParams::new("sleep").with_arguments(args));
                tokio::pin!(call);
                // One poll queues the request; then the runtime may go.
                tokio::select! {
                    biased;
                    _ = &mut call => panic!("a 60 s sleep returned"),
                    () = std::future::ready(()) => {}
                }
                sent.send(()).unwrap();
                call.await
            })
            .unwrap()
        }
    });
    in_flight.recv().unwrap();
    drop(app);
    let err = caller
        .join()
        .expect("the blocking caller panicked")
        .unwrap_err();
    assert!(
        matches!(
            err,
            mcp_session_pool::Error::SessionEnded {
                reason: CloseReason::RuntimeGone,
                ..
            }
        ),
        "{err:?}"
    );
    drop(pool);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !servers.alive().is_empty() {
        assert!(std::time::Instant::now() < deadline, "server left behind");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_runtime_without_io_or_time_never_hosts_sessions() {
    let servers = Servers::new("auto_bare_rt");
    let cfg = servers.config(&[]);
    let bare = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (pool, threads) = {
        let _in_bare = bare.enter();
        pool_recording_owner_threads(SessionPool::builder())
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(pool.get_session("srv", "t", &cfg)).unwrap();
    assert_eq!(rt.block_on(increment(&s)), 1);
    drop(s);
    assert_eq!(*threads.lock().unwrap(), ["mcp-session-pool"]);
    let refused = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Handle(bare.handle().clone()))
        .build();
    assert!(
        matches!(refused, Err(mcp_session_pool::Error::InvalidConfig { .. })),
        "{:?}",
        refused.err()
    );
    drop(pool);
    servers.assert_none_alive();
}

#[test]
fn a_blocking_caller_waiting_for_a_slot_when_the_home_runtime_shuts_down_gets_a_session() {
    let servers = Servers::new("auto_home_dies_while_queued");
    let cfg = servers.config(&[]);
    let app = app_runtime("dying");
    let pool = {
        let _in_app = app.enter();
        SessionPool::builder().max_sessions(1).build().unwrap()
    };
    // The one slot, held busy.
    let busy = app.block_on(pool.get_session("srv", "a", &cfg)).unwrap();
    let waiter = std::thread::spawn({
        let (pool, cfg) = (pool.clone(), cfg.clone());
        move || {
            let s = pool.get_session_blocking("srv", "b", &cfg)?;
            Ok::<_, mcp_session_pool::Error>(increment_blocking(&s))
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pool.status().waiting == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the caller never queued"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // The busy session dies with its runtime, and frees the slot.
    drop(app);
    let count = waiter
        .join()
        .expect("the waiting caller panicked")
        .expect("a session on the pool's own runtime");
    assert_eq!(count, 1);
    drop(busy);
    drop(pool);
    servers.assert_none_alive();
}

/// `increment` through three fresh runtimes, one per call, as sync tool
/// wrappers make them.
fn counts_through_fresh_runtimes(
    pool: &SessionPool,
    cfg: &mcp_session_pool::ServerConfig,
) -> Vec<u64> {
    (0..3)
        .map(|_| {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                increment(&pool.get_session("srv", "t", cfg).await.unwrap()).await
            })
        })
        .collect()
}

/// Waits (at most 3 s) until the server `pid` is gone, zombies included:
/// no later spawn or runtime may be needed to reap it.
fn wait_gone(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while common::process_exists(pid, "test_server") {
        assert!(
            std::time::Instant::now() < deadline,
            "server {pid} left behind (a zombie counts)"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_blocking_call_from_inside_a_runtime_without_timers_uses_the_pools_own() {
    let servers = Servers::new("auto_bare_rt_blocking");
    // A call timeout puts a timer in the call.
    let cfg = servers
        .config(&[])
        .call_timeout(std::time::Duration::from_secs(60));
    let bare = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let pool = {
        let _in_bare = bare.enter();
        SessionPool::new()
    };
    let s = pool.get_session_blocking("srv", "t", &cfg).unwrap();
    // A sync tool wrapper run by `spawn_blocking` on that runtime.
    let count = bare
        .block_on(bare.spawn_blocking(move || increment_blocking(&s)))
        .expect("the blocking call panicked");
    assert_eq!(count, 1);
    drop(pool);
    servers.assert_none_alive();
}
