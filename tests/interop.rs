//! Interop with MCP servers this project did not write: the reference
//! `@modelcontextprotocol/server-everything` (Node) and a small server on the
//! official Python SDK (`interop/python_server.py`), over stdio and over
//! streamable HTTP. `.ci/run` installs them into `interop/`.
//!
//! They run with the `interop` feature (as `.ci/run` runs them), and then a
//! missing server fails them; without it they show as ignored.

mod common;

use std::path::{Path, PathBuf};

use common::{call, process_exists};
use mcp_session_pool::{ServerConfig, SessionPool};
use serde_json::json;

fn interop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

fn everything_js() -> PathBuf {
    interop().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

fn python() -> PathBuf {
    interop().join(".venv/bin/python")
}

/// Fails the test unless `path` is installed.
fn installed(path: &Path) -> bool {
    assert!(
        path.exists(),
        "{} is missing: run `bash .ci/install-interop` to install the third-party MCP servers",
        path.display()
    );
    true
}

#[cfg_attr(
    not(feature = "interop"),
    ignore = "needs the third-party servers: bash .ci/install-interop, then --features interop"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_stdio() {
    if !installed(&everything_js()) {
        return;
    }
    let cfg = ServerConfig::stdio("node").args([everything_js().into_os_string(), "stdio".into()]);
    let pool = SessionPool::new();
    let a = pool.get_session("everything", "a", &cfg).await.unwrap();
    let tools = a.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.contains(&"echo") && names.contains(&"toggle-simulated-logging"),
        "{names:?}"
    );
    assert_eq!(call(&a, "echo", json!({"message": "hi"})).await, "Echo: hi");

    // The toggle is per-session state: it alternates only within one session.
    let toggle = |s| async move { call(&s, "toggle-simulated-logging", json!({})).await };
    assert!(toggle(a.clone()).await.starts_with("Started"));
    drop(a);
    let a = pool.get_session("everything", "a", &cfg).await.unwrap();
    assert!(
        toggle(a.clone()).await.starts_with("Stopped"),
        "same key, same session"
    );
    let b = pool.get_session("everything", "b", &cfg).await.unwrap();
    assert!(
        toggle(b.clone()).await.starts_with("Started"),
        "another scope, another session"
    );

    // The TypeScript SDK server knows only `initialize`: `Auto` (the
    // default) fell back to it.
    let version = a.protocol_version().expect("negotiated").to_string();
    assert_ne!(version, "2026-07-28");
    let pids = [a.server_pid().unwrap(), b.server_pid().unwrap()];
    assert_ne!(pids[0], pids[1]);
    drop((a, b));
    assert_eq!(pool.close_all().await, 2);
    for pid in pids {
        assert!(
            !process_exists(pid, "node"),
            "server-everything {pid} left behind"
        );
    }
}

#[cfg_attr(
    not(feature = "interop"),
    ignore = "needs the third-party servers: bash .ci/install-interop, then --features interop"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_server_over_stdio() {
    if !installed(&python()) {
        return;
    }
    let cfg = ServerConfig::stdio(python()).args([interop().join("python_server.py")]);
    let pool = SessionPool::new();
    let mut pids = Vec::new();
    for (scope, expected) in [("a", ["1", "2"]), ("b", ["1", "2"])] {
        for want in expected {
            let s = pool.get_session("py", scope, &cfg).await.unwrap();
            assert_eq!(
                call(&s, "increment", json!({})).await,
                want,
                "scope {scope}"
            );
            pids.push(s.server_pid().unwrap());
            // The Python SDK 2.x speaks 2026-07-28 over stdio too.
            assert_eq!(
                s.protocol_version().map(|v| v.to_string()).as_deref(),
                Some("2026-07-28")
            );
        }
    }
    pids.dedup();
    assert_eq!(pids.len(), 2, "one server per scope");
    assert_eq!(pool.close_all().await, 2);
    for pid in pids {
        assert!(
            !process_exists(pid, "python"),
            "python server {pid} left behind"
        );
    }
}

#[cfg(feature = "http")]
mod http {
    use std::{process::Stdio, time::Duration};

    use super::*;
    use mcp_session_pool::Protocol;

    /// A third-party HTTP server as a child process on a free local port.
    struct Served {
        child: tokio::process::Child,
        url: String,
    }

    impl Served {
        async fn start(mut cmd: tokio::process::Command, port: u16) -> Self {
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start the HTTP server");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "HTTP server did not listen on {port}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Self {
                child,
                url: format!("http://127.0.0.1:{port}/mcp"),
            }
        }

        async fn stop(mut self) {
            let pid = self.child.id().unwrap();
            self.child.kill().await.unwrap();
            assert!(!process_exists(pid, "node") && !process_exists(pid, "python"));
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[cfg_attr(
        not(feature = "interop"),
        ignore = "needs the third-party servers: bash .ci/install-interop, then --features interop"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_everything_over_streamable_http() {
        if !installed(&everything_js()) {
            return;
        }
        let port = free_port();
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(everything_js())
            .arg("streamableHttp")
            .env("PORT", port.to_string());
        let served = Served::start(cmd, port).await;
        let cfg = ServerConfig::http(&served.url);
        let pool = SessionPool::new();
        let toggle = |scope: &'static str| {
            let (pool, cfg) = (pool.clone(), cfg.clone());
            async move {
                let s = pool.get_session("everything", scope, &cfg).await.unwrap();
                call(&s, "toggle-simulated-logging", json!({})).await
            }
        };
        assert!(toggle("a").await.starts_with("Started"));
        assert!(
            toggle("a").await.starts_with("Stopped"),
            "same key, same HTTP session"
        );
        assert!(
            toggle("b").await.starts_with("Started"),
            "another scope, another HTTP session"
        );
        assert_eq!(pool.close_all().await, 2);
        served.stop().await;
    }

    #[cfg_attr(
        not(feature = "interop"),
        ignore = "needs the third-party servers: bash .ci/install-interop, then --features interop"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn python_sdk_server_over_streamable_http() {
        if !installed(&python()) {
            return;
        }
        let port = free_port();
        let mut cmd = tokio::process::Command::new(python());
        cmd.arg(interop().join("python_server.py"))
            .arg("http")
            .arg(port.to_string());
        let served = Served::start(cmd, port).await;
        // Per-session state needs an HTTP session: the `initialize` era.
        let cfg = ServerConfig::http(&served.url).protocol(Protocol::Legacy);
        let pool = SessionPool::new();
        for (scope, want) in [("a", "1"), ("a", "2"), ("b", "1"), ("a", "3")] {
            let s = pool.get_session("py", scope, &cfg).await.unwrap();
            assert_eq!(
                call(&s, "increment", json!({})).await,
                want,
                "scope {scope}"
            );
        }
        assert_eq!(pool.close_all().await, 2);
        served.stop().await;
    }
}
