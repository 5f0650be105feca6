//! What the per-server policies and the request guard cost, and what they
//! buy, each measured side by side in one run:
//!
//! - `request_guard`: a call through the guarded `Session::call_tool` and the
//!   same call on the session's raw rmcp peer, in alternating blocks on one
//!   session (the ratio is printed);
//! - `new_scope_first_call`: `get_session` of a never-seen scope plus one
//!   call, with and without a warm spare (stdio test server), and the
//!   `get_session` alone (`*_get_only`);
//! - `list_tools_new_scope`: a new scope's tool list from the catalogue, and
//!   from a session of its own;
//! - `connect_legacy_server`: creating a session of a server that knows only
//!   `initialize`, with `Protocol::Legacy` and with an `Auto` probe each time
//!   (each iteration uses a fresh server name, so nothing is remembered), and
//!   with `Auto` once the answer is remembered;
//! - `fairness` (printed, not timed by criterion): one session held busy at a
//!   bound of 2 while two keys loop get + call + drop for 2 s: calls each,
//!   worst wait, and sessions created per session handed out.
//!
//! Run with `cargo bench --bench policy`; BENCHMARKS.md has the results.

mod support;

#[path = "../examples/support/test_server.rs"]
mod test_server;

use std::{
    collections::HashSet,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::Criterion;
use mcp_session_pool::{OwnerRuntime, Protocol, ServerConfig, SessionPool};
use rmcp::model::CallToolRequestParams;
use tokio::runtime::Runtime;

fn echo() -> CallToolRequestParams {
    let serde_json::Value::Object(args) = serde_json::json!({ "text": "hello" }) else {
        unreachable!("a JSON object literal")
    };
    CallToolRequestParams::new("echo").with_arguments(args)
}

fn request_guard(c: &mut Criterion, rt: &Runtime) {
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .build()
        .expect("pool");
    let cfg = ServerConfig::connector(|| async { Ok(test_server::spawn_in_process()) });
    let session = rt
        .block_on(pool.get_session("srv", "t", &cfg))
        .expect("session");
    let mut group = c.benchmark_group("request_guard");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut ratios = Vec::new();
    let mut guarded_first = false;
    group.bench_function("paired_guarded_and_raw_peer", |b| {
        b.iter_custom(|iters| {
            guarded_first = !guarded_first;
            let session = session.clone();
            let (guarded, raw) = rt.block_on(async move {
                let guarded = async {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        black_box(session.call_tool(echo()).await.expect("echo"));
                    }
                    t0.elapsed()
                };
                let raw = async {
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        black_box(session.peer().call_tool(echo()).await.expect("echo"));
                    }
                    t0.elapsed()
                };
                if guarded_first {
                    let g = guarded.await;
                    (g, raw.await)
                } else {
                    let r = raw.await;
                    (guarded.await, r)
                }
            });
            if iters >= 100 {
                ratios.push(guarded.as_secs_f64() / raw.as_secs_f64());
            }
            guarded + raw
        })
    });
    group.finish();
    print_ratio("request_guard: guarded/raw call time", &mut ratios);
    drop(session);
    rt.block_on(pool.close_all());
}

fn print_ratio(what: &str, ratios: &mut [f64]) {
    if ratios.is_empty() {
        return;
    }
    ratios.sort_by(f64::total_cmp);
    let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
    println!(
        "{what}: median {:.4}, quartiles [{:.4} {:.4}], {} samples",
        q(0.5),
        q(0.25),
        q(0.75),
        ratios.len()
    );
}

fn new_scope_first_call(c: &mut Criterion, rt: &Runtime) {
    let bin = support::server_bin();
    let mut group = c.benchmark_group("new_scope_first_call");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (spares, get_only) in [(0, false), (1, false), (0, true), (1, true)] {
        let pool = SessionPool::builder().build().expect("pool");
        let cfg = ServerConfig::stdio(&bin)
            .protocol(Protocol::Legacy)
            .warm_spares(spares);
        let next = AtomicU64::new(0);
        // The first scope brings the spares up.
        rt.block_on(async {
            pool.get_session("srv", "warm", &cfg).await.expect("first");
        });
        let name = match (spares, get_only) {
            (0, false) => "no_spare",
            (_, false) => "warm_spare",
            (0, true) => "no_spare_get_only",
            (_, true) => "warm_spare_get_only",
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let scope = format!("s{}", next.fetch_add(1, Ordering::Relaxed));
                    timed += rt.block_on(async {
                        // Let the replacement spare be ready, as it is when
                        // conversations start seconds apart; close the last
                        // scope so the pool does not grow.
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        let t0 = Instant::now();
                        let s = pool.get_session("srv", &scope, &cfg).await.expect("get");
                        let got = t0.elapsed();
                        black_box(s.call_tool(echo()).await.expect("echo"));
                        let took = if get_only { got } else { t0.elapsed() };
                        drop(s);
                        pool.close_scope(&scope).await;
                        took
                    });
                }
                timed
            })
        });
        rt.block_on(pool.close_all());
    }
    group.finish();
}

/// `list_tools` for a new scope: from the catalogue (fetched once, shared by
/// every scope), and the uncached way a per-scope pool had to do it (a
/// session of the new scope, then `tools/list`).
fn list_tools_new_scope(c: &mut Criterion, rt: &Runtime) {
    let cfg = ServerConfig::stdio(support::server_bin()).protocol(Protocol::Legacy);
    let pool = SessionPool::new();
    rt.block_on(pool.list_tools("srv", "warm", &cfg))
        .expect("warm");
    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("list_tools_new_scope");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("catalogue", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t0 = Instant::now();
                for _ in 0..iters {
                    let scope = format!("c{}", next.fetch_add(1, Ordering::Relaxed));
                    black_box(pool.list_tools("srv", &scope, &cfg).await.expect("tools"));
                }
                t0.elapsed()
            })
        })
    });
    group.bench_function("own_session", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let scope = format!("o{}", next.fetch_add(1, Ordering::Relaxed));
                timed += rt.block_on(async {
                    let t0 = Instant::now();
                    let s = pool.get_session("srv", &scope, &cfg).await.expect("get");
                    black_box(s.list_all_tools().await.expect("tools"));
                    let took = t0.elapsed();
                    drop(s);
                    pool.close_scope(&scope).await;
                    took
                });
            }
            timed
        })
    });
    group.finish();
    rt.block_on(pool.close_all());
}

fn connect_legacy_server(c: &mut Criterion, rt: &Runtime) {
    let bin = support::server_bin();
    let legacy_only = ServerConfig::stdio(&bin).args(["--legacy-only"]);
    let mut group = c.benchmark_group("connect_legacy_server");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let pool = SessionPool::builder().build().expect("pool");
    let next = AtomicU64::new(0);
    for (name, protocol, fresh_name) in [
        ("legacy", Protocol::Legacy, true),
        ("auto_probing", Protocol::Auto, true),
        ("auto_remembered", Protocol::Auto, false),
    ] {
        let cfg = legacy_only.clone().protocol(protocol);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let server = if fresh_name {
                        format!("legacy-{n}")
                    } else {
                        "legacy".to_owned()
                    };
                    timed += rt.block_on(async {
                        let t0 = Instant::now();
                        let s = pool.get_session(&server, "t", &cfg).await.expect("connect");
                        let took = t0.elapsed();
                        drop(s);
                        pool.close_server(&server).await;
                        took
                    });
                }
                timed
            })
        });
    }
    group.finish();
    rt.block_on(pool.close_all());
}

fn fairness(rt: &Runtime) {
    let cfg = ServerConfig::connector(|| async { Ok(test_server::spawn_in_process()) });
    let pool = SessionPool::builder()
        .max_sessions(2)
        .build()
        .expect("pool");
    let report = rt.block_on(async {
        let held = pool.get_session("srv", "busy", &cfg).await.expect("held");
        let stop = Arc::new(AtomicBool::new(false));
        let handed = Arc::new(parking_lot::Mutex::new(HashSet::new()));
        let loops: Vec<_> = ["k0", "k1"]
            .into_iter()
            .map(|scope| {
                let (pool, cfg, stop, handed) =
                    (pool.clone(), cfg.clone(), stop.clone(), handed.clone());
                tokio::spawn(async move {
                    let (mut calls, mut worst, mut full) = (0u64, Duration::ZERO, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        match pool.get_session("srv", scope, &cfg).await {
                            Ok(s) => {
                                worst = worst.max(t0.elapsed());
                                handed.lock().insert(s.generation());
                                s.call_tool(echo()).await.expect("echo");
                                calls += 1;
                            }
                            Err(_) => full += 1,
                        }
                    }
                    (calls, worst, full)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        let mut results = Vec::new();
        for l in loops {
            results.push(l.await.expect("loop"));
        }
        drop(held);
        let created = pool.status().created - 1;
        let handed = handed.lock().len() as u64;
        (results, created, handed)
    });
    let (results, created, handed) = report;
    println!(
        "fairness: k0 {} calls (worst wait {:?}, PoolFull {}), k1 {} calls (worst wait {:?}, PoolFull {}); \
         sessions created {created}, handed out {handed}, ratio {:.3}",
        results[0].0,
        results[0].1,
        results[0].2,
        results[1].0,
        results[1].1,
        results[1].2,
        created as f64 / handed.max(1) as f64
    );
    rt.block_on(pool.close_all());
}

fn main() {
    let rt = support::callers_runtime();
    let mut c = Criterion::default().configure_from_args();
    request_guard(&mut c, &rt);
    new_scope_first_call(&mut c, &rt);
    list_tools_new_scope(&mut c, &rt);
    connect_legacy_server(&mut c, &rt);
    c.final_summary();
    fairness(&rt);
}
