//! Sessions that survive their callers: sync tool wrappers with a fresh
//! runtime per call, plain threads through the blocking API, and the owner
//! runtime choices.

mod common;

use std::{collections::BTreeSet, sync::Arc};

use common::{Servers, increment, text};
use mcp_session_pool::{
    Error, OwnerRuntime, Session, SessionPool, rmcp::model::CallToolRequestParams,
};

fn increment_blocking(session: &Session) -> u64 {
    let result = session
        .call_tool_blocking(CallToolRequestParams::new("increment"))
        .unwrap();
    text(&result.content).parse().unwrap()
}

#[test]
fn fresh_runtime_per_call_keeps_one_server_and_its_state() {
    let servers = Servers::new("fresh_rt");
    let cfg = servers.config(&[]);
    let pool = SessionPool::new();
    let counts: Vec<u64> = (0..50)
        .map(|_| {
            // What sync tool wrappers do on every call.
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                increment(&pool.get_session("srv", "t", &cfg).await.unwrap()).await
            })
        })
        .collect();
    assert_eq!(counts, (1..=50).collect::<Vec<_>>());
    assert_eq!(servers.started().len(), 1);
    drop(pool);
    servers.assert_none_alive();
}

#[test]
fn plain_threads_on_their_own_scopes_each_keep_a_server() {
    let servers = Servers::new("threads_scopes");
    let cfg = servers.config(&[]);
    let pool = SessionPool::new();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (pool, cfg) = (pool.clone(), cfg.clone());
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| {
                        increment_blocking(
                            &pool
                                .get_session_blocking("srv", &i.to_string(), &cfg)
                                .unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), (1..=25).collect::<Vec<_>>());
    }
    assert_eq!(servers.started().len(), 8);
    drop(pool);
    servers.assert_none_alive();
}

#[test]
fn plain_threads_sharing_a_scope_share_one_server() {
    let servers = Servers::new("threads_shared");
    let cfg = servers.config(&[]);
    let pool = SessionPool::new();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (pool, cfg) = (pool.clone(), cfg.clone());
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| {
                        increment_blocking(
                            &pool.get_session_blocking("srv", "shared", &cfg).unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in threads {
        let counts = t.join().unwrap();
        // Each thread's own calls are ordered.
        assert!(counts.windows(2).all(|w| w[0] < w[1]));
        all.extend(counts);
    }
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(
        distinct,
        (1..=200).collect(),
        "every increment seen exactly once"
    );
    assert_eq!(servers.started().len(), 1);
    drop(pool);
    servers.assert_none_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_api_works_inside_a_multi_threaded_runtime() {
    let servers = Servers::new("blocking_in_mt");
    let pool = SessionPool::new();
    let session = pool
        .get_session_blocking("srv", "t", &servers.config(&[]))
        .unwrap();
    assert_eq!(increment_blocking(&session), 1);
    assert_eq!(increment(&session).await, 2);
    drop(pool);
    servers.wait_none_alive().await;
}

#[tokio::test]
async fn blocking_api_refuses_a_current_thread_runtime_instead_of_deadlocking() {
    let servers = Servers::new("blocking_in_ct");
    let cfg = servers.config(&[]);
    let pool = SessionPool::new();
    let err = pool.get_session_blocking("srv", "t", &cfg).unwrap_err();
    assert!(matches!(err, Error::BlockingNotAllowed { .. }), "{err:?}");
    let session = pool.get_session("srv", "t", &cfg).await.unwrap();
    let err = session
        .call_tool_blocking(CallToolRequestParams::new("increment"))
        .unwrap_err();
    assert!(matches!(err, Error::BlockingNotAllowed { .. }), "{err:?}");
    assert_eq!(increment(&session).await, 1, "the refused call never ran");
    drop(pool);
    servers.wait_none_alive().await;
}

#[test]
fn caller_runtime_cannot_host_sessions_for_plain_threads() {
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .build()
        .unwrap();
    let err = pool
        .get_session_blocking("srv", "t", &common::in_process().0)
        .unwrap_err();
    assert!(matches!(err, Error::BlockingNotAllowed { .. }), "{err:?}");
}

#[test]
fn application_runtime_hosts_sessions_across_short_lived_callers() {
    let servers = Servers::new("handle_mode");
    let cfg = servers.config(&[]);
    let app = tokio::runtime::Runtime::new().unwrap();
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Handle(app.handle().clone()))
        .build()
        .unwrap();
    let mut counts: Vec<u64> = (0..3)
        .map(|_| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                increment(&pool.get_session("srv", "t", &cfg).await.unwrap()).await
            })
        })
        .collect();
    counts.push(increment_blocking(
        &pool.get_session_blocking("srv", "t", &cfg).unwrap(),
    ));
    assert_eq!(counts, [1, 2, 3, 4]);
    assert_eq!(servers.started().len(), 1);
    assert_eq!(pool.close_all_blocking(), 1);
    servers.assert_none_alive();
}

#[test]
fn call_failure_names_the_session() {
    let servers = Servers::new("call_error");
    let pool = SessionPool::new();
    let session = pool
        .get_session_blocking("srv", "t-1", &servers.config(&[]))
        .unwrap();
    let err = session
        .call_tool_blocking(CallToolRequestParams::new("no_such_tool"))
        .unwrap_err();
    assert!(matches!(err, Error::Call { .. }), "{err:?}");
    assert_eq!((err.server(), err.scope()), (Some("srv"), Some("t-1")));
    drop(pool);
    servers.assert_none_alive();
}

#[test]
fn pool_dropped_on_a_plain_thread_leaves_no_server() {
    let servers = Arc::new(Servers::new("drop_plain_thread"));
    let cfg = servers.config(&["--ignore-eof"]);
    let pool = SessionPool::builder()
        .close_timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    pool.get_session_blocking("srv", "a", &cfg).unwrap();
    pool.get_session_blocking("srv", "b", &cfg).unwrap();
    std::thread::spawn(move || drop(pool)).join().unwrap();
    servers.assert_none_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_dropped_inside_a_multi_threaded_runtime_leaves_no_server() {
    let servers = Servers::new("drop_in_mt");
    let pool = SessionPool::new();
    pool.get_session("srv", "t", &servers.config(&[]))
        .await
        .unwrap();
    drop(pool);
    servers.wait_none_alive().await;
}

#[test]
fn example_process_exit_leaves_no_server() {
    let exe = common::server_bin().with_file_name("sync_tool_wrapper");
    let pid_file = std::env::temp_dir().join(format!(
        "mcp-session-pool-{}-example.pids",
        std::process::id()
    ));
    let out = std::process::Command::new(exe)
        .arg("--pid-file")
        .arg(&pid_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("counter: 1 2 3 4 5"), "{stdout}");
    assert!(stdout.contains("server processes started: 1"), "{stdout}");
    let pids: Vec<u32> = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let _ = std::fs::remove_file(&pid_file);
    assert_eq!(pids.len(), 1);
    assert!(
        !common::process_exists(pids[0], "sync_tool_wrapp"),
        "server outlived the example"
    );
}
