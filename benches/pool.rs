//! Benchmarks of the session pool: the `get_session` hit path, a tool call
//! through the pool against the same call on a raw rmcp peer, one creation
//! shared by 1000 concurrent callers, and closing many sessions at once.
//!
//! Run with `cargo bench --bench pool`; BENCHMARKS.md has the results.

mod support;

#[path = "../examples/support/test_server.rs"]
mod test_server;

use std::{
    ffi::OsStr,
    future::Future,
    hint::black_box,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use futures_util::future::join_all;
use mcp_session_pool::{OwnerRuntime, Protocol, ServerConfig, SessionPool};
use rmcp::{
    Peer, RoleClient, ServiceExt,
    model::{
        CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
    },
    service::RunningService,
};
use tokio::runtime::Runtime;

const SERVER: &str = "srv";

/// What every benchmark shares: the caller's runtime and the stdio server.
struct Env {
    /// The callers' runtime: multi-threaded with 2 workers, the same for the
    /// raw peers and the pools so that pool-vs-raw ratios compare like with like.
    rt: Runtime,
    bin: PathBuf,
    /// Every stdio server of this run appends its pid here, so servers can be
    /// counted and none can be left behind unnoticed.
    pid_file: PathBuf,
}

impl Env {
    fn new() -> Self {
        let pid_file = std::env::temp_dir().join(format!(
            "mcp-session-pool-bench-{}.pids",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&pid_file);
        Self {
            rt: support::callers_runtime(),
            bin: support::server_bin(),
            pid_file,
        }
    }

    fn stdio_args(&self) -> [&OsStr; 2] {
        ["--pid-file".as_ref(), self.pid_file.as_os_str()]
    }

    fn config(&self, transport: Transport) -> ServerConfig {
        match transport {
            Transport::InProcess => {
                ServerConfig::connector(|| async { Ok(test_server::spawn_in_process()) })
            }
            Transport::Stdio => ServerConfig::stdio(&self.bin).args(self.stdio_args()),
        }
        // The raw peers run `initialize`; so does the pool here, so a call
        // carries the same bytes both ways (2026-07-28 adds metadata to
        // every request).
        .protocol(Protocol::Legacy)
    }

    /// How many stdio servers have started so far.
    fn started(&self) -> usize {
        std::fs::read_to_string(&self.pid_file)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// Servers of this run that still exist, zombies included. A process is
    /// ours if its command line names our pid file, or (a zombie has no
    /// command line) it is our own child: pids are reused, and other
    /// processes on the machine may run `test_server` too.
    fn leftovers(&self) -> Vec<u32> {
        let ours = |pid: &str| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline
                .split(|&b| b == 0)
                .any(|arg| arg == self.pid_file.as_os_str().as_encoded_bytes())
                || support::is_our_test_server(pid)
        };
        support::all_pids()
            .filter(|pid| ours(pid))
            .map(|pid| pid.parse().expect("a pid"))
            .collect()
    }

    /// Runs `fut` as a task on a worker of the caller runtime, where an
    /// application's calls run, rather than on the thread inside `block_on`.
    fn on_worker<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        self.rt
            .block_on(self.rt.spawn(fut))
            .expect("benchmark task panicked")
    }
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    InProcess,
    Stdio,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::InProcess => "in_process",
            Transport::Stdio => "stdio",
        }
    }
}

/// The client settings the pool uses, so the raw peer runs the same handshake.
fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bench-raw-client", "0"),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

fn echo_params() -> CallToolRequestParams {
    let serde_json::Value::Object(args) = serde_json::json!({ "text": "hello" }) else {
        unreachable!("a JSON object literal")
    };
    CallToolRequestParams::new("echo").with_arguments(args)
}

/// A client connected directly with rmcp over the same kind of transport the
/// pool uses: the baseline of the call benchmarks.
struct RawClient {
    service: RunningService<RoleClient, ClientConfig>,
    child: Option<tokio::process::Child>,
}

impl RawClient {
    /// Must run inside the caller runtime, which then hosts the service.
    async fn connect(env: &Env, transport: Transport) -> Self {
        match transport {
            Transport::InProcess => {
                let stream = test_server::spawn_in_process();
                let service = client_config().serve(stream).await.expect("raw connect");
                Self {
                    service,
                    child: None,
                }
            }
            Transport::Stdio => {
                // Spawned as the pool spawns its servers, with the same pipes
                // handed to rmcp; stderr is dropped (the server only logs at start).
                let mut child = tokio::process::Command::new(&env.bin)
                    .args(env.stdio_args())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("spawn test_server");
                let pipes = (
                    child.stdout.take().expect("piped stdout"),
                    child.stdin.take().expect("piped stdin"),
                );
                let service = client_config().serve(pipes).await.expect("raw connect");
                Self {
                    service,
                    child: Some(child),
                }
            }
        }
    }

    fn peer(&self) -> Peer<RoleClient> {
        self.service.peer().clone()
    }

    /// Closes the transport and reaps the server, which exits on stdin EOF.
    async fn shut_down(self) {
        let _ = self.service.cancel().await;
        if let Some(mut child) = self.child {
            child.wait().await.expect("reap raw test_server");
        }
    }
}

/// (a) `get_session` for a key whose session is live: the hit path only.
fn get_session_hit(c: &mut Criterion, env: &Env) {
    let pool = SessionPool::new();
    let cfg = env.config(Transport::InProcess);
    let first = env
        .rt
        .block_on(pool.get_session(SERVER, "t", &cfg))
        .expect("create session")
        .generation();

    let mut group = c.benchmark_group("get_session_hit");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("live_session", |b| {
        b.to_async(&env.rt)
            .iter(|| pool.get_session(SERVER, "t", &cfg))
    });
    group.finish();

    // Every measured call was a hit on the one session made above.
    let last = env.rt.block_on(pool.get_session(SERVER, "t", &cfg));
    assert_eq!(last.expect("session").generation(), first);
    assert_eq!(env.rt.block_on(pool.close_all()), 1);
}

/// (b) One `echo` call: on a raw rmcp peer, and through the pool (a
/// `get_session` hit, then the call, as the pool's callers do) with the session
/// on the caller's runtime (`Caller`, and the default built in that runtime)
/// and on the pool's own runtime (`Dedicated`).
fn call_echo(c: &mut Criterion, env: &Env, transport: Transport) {
    let raw = env.rt.block_on(RawClient::connect(env, transport));
    let cfg = env.config(transport);
    let caller_pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .build()
        .expect("caller pool");
    // The default (`OwnerRuntime::Auto`) built inside the application's
    // runtime, as an async application builds it: sessions live there.
    let default_pool = {
        let _in_app = env.rt.enter();
        SessionPool::new()
    };
    let dedicated_pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Dedicated)
        .build()
        .expect("dedicated pool");
    let pools = [
        ("pool_caller_rt", &caller_pool),
        ("pool_default", &default_pool),
        ("pool_dedicated_rt", &dedicated_pool),
    ];
    // Created inside the caller runtime, so the `Caller` session lives there.
    let generations: Vec<u64> = pools
        .iter()
        .map(|(_, pool)| {
            env.rt
                .block_on(pool.get_session(SERVER, "t", &cfg))
                .expect("create session")
                .generation()
        })
        .collect();

    let mut group = c.benchmark_group(format!("call_echo_{}", transport.name()));
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let peer = raw.peer();
    group.bench_function("raw_peer", |b| {
        b.iter_custom(|iters| env.on_worker(raw_calls(peer.clone(), iters)))
    });
    for (name, pool) in pools {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| env.on_worker(pool_calls(pool.clone(), cfg.clone(), iters)))
        });
    }
    // The benchmarks above run one after the other, and this machine's
    // speed drifts by more than the 2% being looked for. Here each sample
    // times a block of raw calls and a block of pool calls back to back (in
    // alternating order), so drift hits both alike; the per-sample ratios are
    // printed below. The time criterion reports is that of one call of each.
    for (name, pool) in [
        ("pool_default", &default_pool),
        ("pool_dedicated_rt", &dedicated_pool),
    ] {
        let mut ratios = Vec::new();
        let mut pool_first = false;
        group.bench_function(format!("paired_raw_peer_and_{name}"), |b| {
            b.iter_custom(|iters| {
                pool_first = !pool_first;
                let (peer, pool, cfg) = (peer.clone(), pool.clone(), cfg.clone());
                let (raw, pooled) = env.on_worker(async move {
                    if pool_first {
                        let pooled = pool_calls(pool, cfg, iters).await;
                        (raw_calls(peer, iters).await, pooled)
                    } else {
                        let raw = raw_calls(peer, iters).await;
                        (raw, pool_calls(pool, cfg, iters).await)
                    }
                });
                // Tiny blocks (the first warm-up rounds) are mostly noise.
                if iters >= 100 {
                    ratios.push(pooled.as_secs_f64() / raw.as_secs_f64());
                }
                raw + pooled
            })
        });
        if !ratios.is_empty() {
            ratios.sort_by(f64::total_cmp);
            let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
            println!(
                "call_echo_{}: paired {name}/raw_peer time ratio: median {:.4}, \
                 quartiles [{:.4} {:.4}], min {:.4}, max {:.4}, {} samples",
                transport.name(),
                q(0.5),
                q(0.25),
                q(0.75),
                q(0.0),
                q(1.0),
                ratios.len()
            );
        }
    }
    group.finish();

    for ((_, pool), generation) in pools.iter().zip(generations) {
        let session = env.rt.block_on(pool.get_session(SERVER, "t", &cfg));
        assert_eq!(session.expect("session").generation(), generation);
        assert_eq!(env.rt.block_on(pool.close_all()), 1);
    }
    env.rt.block_on(raw.shut_down());
}

/// `iters` echo calls on a raw peer; returns their wall time.
async fn raw_calls(peer: Peer<RoleClient>, iters: u64) -> Duration {
    let params = echo_params();
    let start = Instant::now();
    for _ in 0..iters {
        black_box(peer.call_tool(params.clone()).await.expect("echo"));
    }
    start.elapsed()
}

/// `iters` echo calls through the pool, each on a handle from `get_session`
/// (a hit) as the pool's callers do; returns their wall time.
async fn pool_calls(pool: SessionPool, cfg: ServerConfig, iters: u64) -> Duration {
    let params = echo_params();
    let start = Instant::now();
    for _ in 0..iters {
        let session = pool.get_session(SERVER, "t", &cfg).await.expect("hit");
        black_box(session.call_tool(params.clone()).await.expect("echo"));
    }
    start.elapsed()
}

/// (c) Creating the session of a new stdio key: one caller, and 1000 callers
/// at once, which must share one creation (one server started). A third case,
/// 1000 callers on a key whose session is already live, times the fan-out
/// alone (spawning, joining, 1000 hits) to show what of the 1000-caller
/// creation is not the creation.
fn create_new_key(c: &mut Criterion, env: &Env) {
    let pool = SessionPool::new();
    let cfg = env.config(Transport::Stdio);
    let next_scope = AtomicU64::new(0);
    let mut creations = 0;
    let servers_before = env.started();

    let mut group = c.benchmark_group("create_new_key_stdio");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for callers in [1usize, 1000] {
        group.bench_function(BenchmarkId::new("callers", callers), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let scope: Arc<str> =
                        format!("new-{}", next_scope.fetch_add(1, Ordering::Relaxed)).into();
                    let before = env.started();
                    timed += env
                        .rt
                        .block_on(concurrent_gets(&pool, &cfg, &scope, callers));
                    // Untimed: count the servers, then close before the next key.
                    let started = env.started() - before;
                    assert_eq!(started, 1, "{callers} callers started {started} servers");
                    creations += 1;
                    assert_eq!(env.rt.block_on(pool.close_session(SERVER, &scope)), 1);
                }
                timed
            })
        });
    }
    println!(
        "create_new_key_stdio: {creations} creations started {} servers",
        env.started() - servers_before
    );

    let live: Arc<str> = "live".into();
    let generation = env
        .rt
        .block_on(pool.get_session(SERVER, &live, &cfg))
        .expect("create session")
        .generation();
    let before = env.started();
    group.bench_function(BenchmarkId::new("callers_on_live_key", 1000), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                timed += env.rt.block_on(concurrent_gets(&pool, &cfg, &live, 1000));
            }
            timed
        })
    });
    // The harness alone: the same spawning and joining, without the pool.
    group.bench_function(BenchmarkId::new("spawn_join_only", 1000), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                timed += env.rt.block_on(spawn_join_only(1000));
            }
            timed
        })
    });
    group.finish();
    assert_eq!(env.started(), before, "a hit started a server");
    let session = env.rt.block_on(pool.get_session(SERVER, &live, &cfg));
    assert_eq!(session.expect("session").generation(), generation);
    assert_eq!(env.rt.block_on(pool.close_all()), 1);
}

/// Spawns `callers` tasks that all ask for `scope`'s session and waits for
/// all of them; returns the wall time. Every caller must get the same session.
async fn concurrent_gets(
    pool: &SessionPool,
    cfg: &ServerConfig,
    scope: &Arc<str>,
    callers: usize,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (pool, cfg, scope) = (pool.clone(), cfg.clone(), scope.clone());
            tokio::spawn(async move {
                pool.get_session(SERVER, &scope, &cfg)
                    .await
                    .map(|s| s.generation())
            })
        })
        .collect();
    let mut generation = None;
    for task in tasks {
        let g = task.await.expect("caller task").expect("get_session");
        assert_eq!(
            *generation.get_or_insert(g),
            g,
            "callers got different sessions"
        );
    }
    start.elapsed()
}

/// [`concurrent_gets`] with tasks that do nothing.
async fn spawn_join_only(tasks: usize) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..tasks)
        .map(|i| tokio::spawn(async move { black_box(i) }))
        .collect();
    for task in tasks {
        black_box(task.await.expect("task"));
    }
    start.elapsed()
}

/// (d) Closing: one stdio session with `close_session`, and 32 with
/// `close_all`. Only the close is timed; the sessions are made before it.
/// The same counts of raw rmcp clients shut down concurrently (transport
/// closed, server reaped) give the floor the machine allows.
fn close(c: &mut Criterion, env: &Env) {
    let pool = SessionPool::new();
    let cfg = env.config(Transport::Stdio);

    let mut group = c.benchmark_group("close_stdio");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    for sessions in [1usize, 32] {
        let name = if sessions == 1 {
            "pool_close_session"
        } else {
            "pool_close_all"
        };
        group.bench_function(BenchmarkId::new(name, sessions), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    env.rt.block_on(open_sessions(&pool, &cfg, sessions));
                    assert_eq!(pool.status().live, sessions);
                    let (closed, took) = env.rt.block_on(async {
                        let start = Instant::now();
                        let closed = if sessions == 1 {
                            pool.close_session(SERVER, "s0").await
                        } else {
                            pool.close_all().await
                        };
                        (closed, start.elapsed())
                    });
                    assert_eq!(closed, sessions);
                    timed += took;
                }
                timed
            })
        });
    }
    for clients in [1usize, 32] {
        group.bench_function(BenchmarkId::new("raw_shutdown", clients), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let raw = env.rt.block_on(join_all(
                        (0..clients).map(|_| RawClient::connect(env, Transport::Stdio)),
                    ));
                    timed += env.rt.block_on(async {
                        let start = Instant::now();
                        // One task per client, as the pool has one owner task
                        // per session.
                        let tasks: Vec<_> = raw
                            .into_iter()
                            .map(|r| tokio::spawn(r.shut_down()))
                            .collect();
                        for task in tasks {
                            task.await.expect("shutdown task");
                        }
                        start.elapsed()
                    });
                }
                timed
            })
        });
    }
    group.finish();
}

/// Creates the sessions `s0..s{n}` concurrently.
async fn open_sessions(pool: &SessionPool, cfg: &ServerConfig, n: usize) {
    let gets = (0..n).map(|i| {
        let (pool, cfg) = (pool.clone(), cfg.clone());
        tokio::spawn(async move { pool.get_session(SERVER, &format!("s{i}"), &cfg).await })
    });
    for task in gets.collect::<Vec<_>>() {
        task.await.expect("open task").expect("create session");
    }
}

fn main() {
    let env = Env::new();
    let mut c = Criterion::default().configure_from_args();

    get_session_hit(&mut c, &env);
    call_echo(&mut c, &env, Transport::InProcess);
    call_echo(&mut c, &env, Transport::Stdio);
    create_new_key(&mut c, &env);
    close(&mut c, &env);

    c.final_summary();

    // Every pool is dropped by now, and a closed session's server is reaped
    // before its close returns: no server may be left.
    let leftovers = env.leftovers();
    let started = env.started();
    for &pid in &leftovers {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = std::fs::remove_file(&env.pid_file);
    assert!(
        leftovers.is_empty(),
        "test_server processes left running: {leftovers:?}"
    );
    println!("all {started} test_server processes have exited");
}
