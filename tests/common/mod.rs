//! Support for the integration tests: the test server, pid accounting and
//! in-process connectors.
#![allow(dead_code)]

#[path = "../../examples/support/test_server.rs"]
pub mod test_server;

#[cfg(feature = "http")]
pub mod http_server;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mcp_session_pool::{
    ServerConfig, Session, SessionPool,
    rmcp::model::{CallToolRequestParams, ContentBlock},
};

/// The `test_server` example binary, built by `cargo test` with the tests.
pub fn server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/test_server
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("examples").join("test_server"))
        .expect("target directory layout");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test` (which builds examples) or `cargo build --examples` first",
        bin.display()
    );
    bin
}

/// A test's servers: each writes its pid into this test's own pid file.
pub struct Servers {
    pid_file: PathBuf,
}

impl Servers {
    pub fn new(test: &str) -> Self {
        let pid_file = std::env::temp_dir().join(format!(
            "mcp-session-pool-{}-{test}.pids",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&pid_file);
        Self { pid_file }
    }

    /// The stdio test server with extra flags.
    pub fn config(&self, flags: &[&str]) -> ServerConfig {
        ServerConfig::stdio(server_bin())
            .args(["--pid-file".as_ref(), self.pid_file.as_os_str()])
            .args(flags)
    }

    /// Pids of every server started so far, in start order.
    pub fn started(&self) -> Vec<u32> {
        std::fs::read_to_string(&self.pid_file)
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().expect("pid line"))
            .collect()
    }

    /// Pids of started servers that still exist (zombies count: not reaped).
    pub fn alive(&self) -> Vec<u32> {
        self.started()
            .into_iter()
            .filter(|&p| process_exists(p, "test_server"))
            .collect()
    }

    pub fn assert_none_alive(&self) {
        assert_eq!(
            self.alive(),
            Vec::<u32>::new(),
            "server processes left behind"
        );
    }

    /// For closes that only signal: waits (at most 5 s) until every server
    /// is gone, and fails the test if one is left.
    pub async fn wait_none_alive(&self) {
        let gone = tokio::time::timeout(Duration::from_secs(5), async {
            while !self.alive().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        assert!(
            gone.await.is_ok(),
            "server processes left behind: {:?}",
            self.alive()
        );
    }

    /// Waits until `n` servers have written their pid (they do so at start).
    pub async fn wait_started(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.started().len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "servers did not start"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        // Never leave a server behind, even when an assertion failed.
        for pid in self.alive() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Whether `pid` exists (running or zombie) and runs `comm`, so a reused pid
/// is not mistaken for ours.
pub fn process_exists(pid: u32, comm: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .split_once(" (")
            .is_some_and(|(_, rest)| rest.starts_with(&format!("{comm})"))),
        Err(_) => false,
    }
}

/// Whether `pid` runs `comm` and is not a zombie. For grandchildren: once
/// killed they are reparented to init, and reaping them is init's job, not
/// the pool's (the pool reaps its own children, checked by
/// [`process_exists`]).
pub fn process_running(pid: u32, comm: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .split_once(" (")
            .and_then(|(_, rest)| rest.strip_prefix(&format!("{comm}) ")))
            .is_some_and(|rest| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The in-process test server behind a connector that counts its connects.
pub fn in_process() -> (ServerConfig, Arc<AtomicUsize>) {
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = connects.clone();
    let cfg = ServerConfig::connector(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(test_server::spawn_in_process()) }
    });
    (cfg, connects)
}

/// The in-process server behind a connector that waits for `gate` to open,
/// so a test decides when each creation may finish.
pub fn gated_in_process(gate: Arc<tokio::sync::Semaphore>) -> (ServerConfig, Arc<AtomicUsize>) {
    let connects = Arc::new(AtomicUsize::new(0));
    let counter = connects.clone();
    let cfg = ServerConfig::connector(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let gate = gate.clone();
        async move {
            let _permit = gate.acquire().await.map_err(std::io::Error::other)?;
            Ok(test_server::spawn_in_process())
        }
    });
    (cfg, connects)
}

/// Calls a tool and returns its text.
pub async fn call(session: &Session, tool: &str, args: serde_json::Value) -> String {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let serde_json::Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    let result = session.call_tool(params).await.expect("tool call");
    text(&result.content)
}

pub fn text(content: &[ContentBlock]) -> String {
    content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.as_str())
        .collect()
}

pub async fn increment(session: &Session) -> u64 {
    call(session, "increment", serde_json::json!({}))
        .await
        .parse()
        .expect("counter")
}

/// A pool with short timeouts for tests.
pub fn pool() -> SessionPool {
    SessionPool::builder()
        .connect_timeout(Duration::from_secs(10))
        .close_timeout(Duration::from_secs(2))
        .build()
        .expect("pool")
}

/// A small seeded random number generator (splitmix64) for randomized
/// tests: the seed comes from `MCP_POOL_SEED` when set, so a failing run can
/// be repeated exactly, and is printed by the test.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The seed to use: `MCP_POOL_SEED`, or one taken from the clock.
    pub fn seed() -> u64 {
        std::env::var("MCP_POOL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A client end that counts how often `needle` is written to it: the
/// requests of one method a server was sent, seen from the wire.
pub struct Counting {
    inner: tokio::io::DuplexStream,
    needle: &'static [u8],
    seen: Arc<AtomicUsize>,
}

impl tokio::io::AsyncRead for Counting {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counting {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf
            .windows(self.needle.len())
            .filter(|w| *w == self.needle)
            .count();
        self.seen.fetch_add(n, Ordering::SeqCst);
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The in-process server made by `make`, behind a connector whose client
/// end counts the writes of `needle` (say `"server/discover"`).
pub fn counting_in_process(
    make: fn() -> test_server::TestServer,
    needle: &'static [u8],
) -> (ServerConfig, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let cfg = ServerConfig::connector(move || {
        let seen = counter.clone();
        async move {
            Ok(Counting {
                inner: test_server::spawn_in_process_with(make()),
                needle,
                seen,
            })
        }
    });
    (cfg, seen)
}
