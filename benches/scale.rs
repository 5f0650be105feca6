//! The pool with many live sessions: creation with 16 connecting at once,
//! the `get_session` hit at each size (one key, and rotating over every live
//! key), one `echo` call on each session, `close_all`, and the process's
//! threads, file descriptors and resident memory at each size.
//!
//! Three runs, each in a process of its own so that one run's freed memory
//! does not hide the next one's growth:
//!
//! - `pool-in-process`: 0, 1, 100, 1000 and 10,000 sessions of the in-repo
//!   server over an in-process duplex (client and server in this process);
//! - `raw-in-process`: the same sizes as bare rmcp client/server pairs, the
//!   floor the pool's own cost is measured against;
//! - `pool-stdio`: 0, 1, 100 and 1000 sessions of the stdio test server (its
//!   memory is in the children, so this process's growth is the client's);
//! - `raw-stdio`: the same as bare rmcp clients of spawned servers.
//!
//! Run with `cargo bench --bench scale` (all three), or name one run:
//! `cargo bench --bench scale -- pool-stdio`. BENCHMARKS.md has the results.

mod support;

#[path = "../examples/support/test_server.rs"]
mod test_server;

use std::{
    hint::black_box,
    num::NonZeroUsize,
    time::{Duration, Instant},
};

use mcp_session_pool::{Protocol, ServerConfig, SessionPool};
use rmcp::{
    ServiceExt,
    model::{
        CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
    },
};

/// Counts the heap bytes this process holds, so the table can say what a
/// session keeps on the heap apart from RSS's page granularity and the
/// allocator's retained memory.
struct Counting;

static HELD: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: every call forwards to the system allocator with the caller's
// arguments unchanged; the counter is only bookkeeping.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as for `System.alloc`, whose contract the caller meets.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        HELD.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as for `System.alloc_zeroed`.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        HELD.fetch_add(
            new as isize - layout.size() as isize,
            std::sync::atomic::Ordering::Relaxed,
        );
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap_kib() -> f64 {
    HELD.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0
}

const SERVER: &str = "srv";
const CONNECTING: usize = 16;
const HITS: usize = 200_000;
const RUNS: [&str; 4] = [
    "pool-in-process",
    "raw-in-process",
    "pool-stdio",
    "raw-stdio",
];

fn main() {
    // `cargo bench` passes `--bench`; anything else names runs.
    let runs: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if runs.is_empty() {
        let exe = std::env::current_exe().expect("bench executable");
        for run in RUNS {
            let status = std::process::Command::new(&exe)
                .arg(run)
                .status()
                .expect("run the bench in a process of its own");
            assert!(status.success(), "run {run} failed: {status}");
        }
        return;
    }
    for run in runs {
        match run.as_str() {
            "pool-in-process" => pool_run(Transport::InProcess, &[0, 1, 100, 1000, 10_000]),
            "raw-in-process" => raw_run(Transport::InProcess, &[0, 1, 100, 1000, 10_000]),
            "raw-stdio" => raw_run(Transport::Stdio, &[0, 1, 100, 1000]),
            "pool-stdio" => pool_run(Transport::Stdio, &[0, 1, 100, 1000]),
            other => panic!("unknown run {other:?}; runs: {RUNS:?}"),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    InProcess,
    Stdio,
}

/// Threads, open file descriptors and resident KiB of this process.
fn footprint() -> (usize, usize, u64) {
    let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.count());
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (count("/proc/self/task"), count("/proc/self/fd"), rss)
}

/// Live children of this process (the stdio servers).
fn children() -> usize {
    support::all_pids()
        .filter(|pid| support::is_our_test_server(pid))
        .count()
}

fn echo() -> CallToolRequestParams {
    let serde_json::Value::Object(args) = serde_json::json!({ "text": "hi" }) else {
        unreachable!("a JSON object literal")
    };
    CallToolRequestParams::new("echo").with_arguments(args)
}

fn header() {
    println!(
        "| live | created in | hit, one key | hit, rotating | call on each | threads | fds | RSS MiB | RSS/session KiB | heap/session KiB |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
}

fn pool_run(transport: Transport, sizes: &[usize]) {
    let rt = support::callers_runtime();
    let bin = support::server_bin();
    let cfg = match transport {
        Transport::InProcess => {
            ServerConfig::connector(|| async { Ok(test_server::spawn_in_process()) })
        }
        Transport::Stdio => ServerConfig::stdio(&bin),
    }
    .protocol(Protocol::Legacy);
    // Built in the callers' runtime, as an async application builds it.
    let pool = {
        let _in = rt.enter();
        SessionPool::builder()
            .max_sessions(20_000)
            .max_connecting(NonZeroUsize::new(CONNECTING).expect("non-zero"))
            .connect_timeout(Duration::from_secs(120))
            .build()
            .expect("pool")
    };
    let name = match transport {
        Transport::InProcess => "pool, in-process",
        Transport::Stdio => "pool, stdio",
    };
    println!("\n### {name} ({CONNECTING} connecting at once)\n");
    header();
    let (_, _, rss0) = footprint();
    let heap0 = heap_kib();
    let mut keys: Vec<String> = Vec::new();
    for &size in sizes {
        let t0 = Instant::now();
        let new: Vec<String> = (keys.len()..size).map(|i| format!("t{i}")).collect();
        rt.block_on(async {
            let tasks: Vec<_> = new
                .iter()
                .map(|k| {
                    let (pool, cfg, k) = (pool.clone(), cfg.clone(), k.clone());
                    tokio::spawn(async move { pool.get_session(SERVER, &k, &cfg).await })
                })
                .collect();
            for t in tasks {
                drop(t.await.expect("task").expect("create"));
            }
        });
        let created = t0.elapsed();
        keys.extend(new);
        assert_eq!(pool.status().live, size);
        if transport == Transport::Stdio {
            assert_eq!(children(), size, "one server process per session");
        }
        let (threads, fds, rss) = footprint();
        let heap = heap_kib();
        let (same, rotating, call) = if size == 0 {
            (None, None, None)
        } else {
            let hits = |keys: Vec<String>| {
                let (pool, cfg) = (pool.clone(), cfg.clone());
                rt.block_on(rt.spawn(async move {
                    let t0 = Instant::now();
                    for i in 0..HITS {
                        let k = &keys[i % keys.len()];
                        black_box(pool.get_session(SERVER, k, &cfg).await.expect("hit"));
                    }
                    t0.elapsed() / HITS as u32
                }))
                .expect("hits")
            };
            let same = hits(vec![keys[0].clone()]);
            let rotating = hits(keys.clone());
            let (pool2, cfg2, keys2) = (pool.clone(), cfg.clone(), keys.clone());
            let call = rt
                .block_on(rt.spawn(async move {
                    let t0 = Instant::now();
                    for k in &keys2 {
                        let s = pool2.get_session(SERVER, k, &cfg2).await.expect("hit");
                        black_box(s.call_tool(echo()).await.expect("echo"));
                    }
                    t0.elapsed() / keys2.len() as u32
                }))
                .expect("calls");
            (Some(same), Some(rotating), Some(call))
        };
        assert_eq!(pool.status().created, size as u64, "every get was a hit");
        let per = per_session(size, rss, rss0, heap, heap0);
        let ns = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{} ns", d.as_nanos()));
        let us = |d: Option<Duration>| {
            d.map_or("-".to_owned(), |d| {
                format!("{:.1} µs", d.as_secs_f64() * 1e6)
            })
        };
        println!(
            "| {size} | {:.3} s | {} | {} | {} | {threads} | {fds} | {:.1} | {per} |",
            created.as_secs_f64(),
            ns(same),
            ns(rotating),
            us(call),
            rss as f64 / 1024.0
        );
    }
    let t0 = Instant::now();
    let closed = rt.block_on(pool.close_all());
    let took = t0.elapsed();
    assert_eq!(closed, keys.len());
    let (threads, fds, rss) = footprint();
    println!(
        "\n`close_all` of {closed}: {:.3} s; then {threads} threads, {fds} fds, {:.1} MiB RSS{}",
        took.as_secs_f64(),
        rss as f64 / 1024.0,
        if transport == Transport::Stdio {
            format!(", {} server processes", children())
        } else {
            String::new()
        }
    );
    if transport == Transport::Stdio {
        assert_eq!(children(), 0, "every server reaped by close_all");
    }
    drop(pool);
}

/// Bare rmcp clients (of in-process servers, or of spawned stdio servers,
/// stderr discarded), held in a `Vec`: what the sessions cost without the
/// pool.
fn raw_run(transport: Transport, sizes: &[usize]) {
    let bin = support::server_bin();
    let rt = support::callers_runtime();
    let config = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bench-raw-client", "0"),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
    println!(
        "\n### raw rmcp clients, {}\n",
        match transport {
            Transport::InProcess => "in-process",
            Transport::Stdio => "stdio",
        }
    );
    header();
    let (_, _, rss0) = footprint();
    let heap0 = heap_kib();
    let mut clients = Vec::new();
    for &size in sizes {
        let t0 = Instant::now();
        rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            let mut next = clients.len();
            while next < size || !tasks.is_empty() {
                while next < size && tasks.len() < CONNECTING {
                    let config = config.clone();
                    let bin = bin.clone();
                    tasks.spawn(async move {
                        match transport {
                            Transport::InProcess => (
                                config
                                    .serve(test_server::spawn_in_process())
                                    .await
                                    .expect("raw connect"),
                                None,
                            ),
                            Transport::Stdio => {
                                let mut child = tokio::process::Command::new(bin)
                                    .stdin(std::process::Stdio::piped())
                                    .stdout(std::process::Stdio::piped())
                                    .stderr(std::process::Stdio::null())
                                    .kill_on_drop(true)
                                    .spawn()
                                    .expect("spawn test_server");
                                let pipes = (
                                    child.stdout.take().expect("stdout"),
                                    child.stdin.take().expect("stdin"),
                                );
                                let service = config.serve(pipes).await.expect("raw connect");
                                (service, Some(child))
                            }
                        }
                    });
                    next += 1;
                }
                if let Some(done) = tasks.join_next().await {
                    clients.push(done.expect("connect task"));
                }
            }
        });
        let created = t0.elapsed();
        let (threads, fds, rss) = footprint();
        let heap = heap_kib();
        let call = (size > 0).then(|| {
            let peers: Vec<_> = clients.iter().map(|(c, _)| c.peer().clone()).collect();
            rt.block_on(rt.spawn(async move {
                let t0 = Instant::now();
                for p in &peers {
                    black_box(p.call_tool(echo()).await.expect("echo"));
                }
                t0.elapsed() / peers.len() as u32
            }))
            .expect("calls")
        });
        let per = per_session(size, rss, rss0, heap, heap0);
        println!(
            "| {size} | {:.3} s | - | - | {} | {threads} | {fds} | {:.1} | {per} |",
            created.as_secs_f64(),
            call.map_or("-".to_owned(), |d| format!(
                "{:.1} µs",
                d.as_secs_f64() * 1e6
            )),
            rss as f64 / 1024.0
        );
    }
    let t0 = Instant::now();
    rt.block_on(async {
        for (c, child) in clients {
            let _ = c.cancel().await;
            if let Some(mut child) = child {
                child.wait().await.expect("reap");
            }
        }
    });
    println!(
        "\ncancelling all {} raw clients one by one (and reaping their servers): {:.3} s",
        sizes.last().copied().unwrap_or(0),
        t0.elapsed().as_secs_f64()
    );
}

/// The RSS and heap growth since no session was live, per session.
fn per_session(size: usize, rss: u64, rss0: u64, heap: f64, heap0: f64) -> String {
    if size == 0 {
        return "- | -".to_owned();
    }
    format!(
        "{:.1} | {:.1}",
        rss.saturating_sub(rss0) as f64 / size as f64,
        (heap - heap0) / size as f64
    )
}
