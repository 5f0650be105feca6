//! One `echo` tool call over streamable HTTP against the in-repo test server
//! (served on 127.0.0.1 by this process), in one run:
//!
//! - `raw_client`: one long-lived rmcp client, the floor;
//! - `pooled`: a `get_session` hit and the call, `initialize` era;
//! - `pooled_2026_07_28`: the same with `Protocol::Modern` (no session on the
//!   server; version and capabilities ride on every request);
//! - `session_per_call`: what hosts without a pool do: connect, `initialize`,
//!   the call, then close (the session's `DELETE`).
//!
//! The pooled/raw ratio is also measured paired (blocks of each back to
//! back, alternating order), and printed. Run with
//! `cargo bench --features http --bench http`; BENCHMARKS.md has the results.

mod support;

#[path = "../examples/support/test_server.rs"]
mod test_server;

// Shared with the tests, whose hooks this bench does not all use.
#[allow(dead_code)]
#[path = "../tests/common/http_server.rs"]
mod http_server;

use std::{
    hint::black_box,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use criterion::Criterion;
use mcp_session_pool::{Protocol, ServerConfig, SessionPool};
use rmcp::{
    Peer, RoleClient, ServiceExt,
    model::{
        CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
    },
    transport::StreamableHttpClientTransport,
};

fn echo() -> CallToolRequestParams {
    let serde_json::Value::Object(args) = serde_json::json!({ "text": "hello" }) else {
        unreachable!("a JSON object literal")
    };
    CallToolRequestParams::new("echo").with_arguments(args)
}

fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bench-raw-client", "0"),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

async fn raw_calls(peer: &Peer<RoleClient>, iters: u64) -> Duration {
    let t0 = Instant::now();
    for _ in 0..iters {
        black_box(peer.call_tool(echo()).await.expect("echo"));
    }
    t0.elapsed()
}

async fn pool_calls(pool: &SessionPool, cfg: &ServerConfig, iters: u64) -> Duration {
    let t0 = Instant::now();
    for _ in 0..iters {
        let session = pool.get_session("web", "t", cfg).await.expect("hit");
        black_box(session.call_tool(echo()).await.expect("echo"));
    }
    t0.elapsed()
}

fn main() {
    let rt = support::callers_runtime();
    let mut c = Criterion::default().configure_from_args();
    let server = rt.block_on(http_server::HttpServer::start());
    let url = server.url.clone();
    let pool = {
        let _in = rt.enter();
        SessionPool::new()
    };
    let legacy = ServerConfig::http(&url).protocol(Protocol::Legacy);
    let modern = ServerConfig::http(&url).protocol(Protocol::Modern);
    let raw = rt.block_on(async {
        client_config()
            .serve(StreamableHttpClientTransport::from_uri(url.as_str()))
            .await
            .expect("raw connect")
    });
    let peer = raw.peer().clone();

    let mut group = c.benchmark_group("call_echo_http");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("raw_client", |b| {
        b.to_async(&rt).iter_custom(|iters| raw_calls(&peer, iters))
    });
    group.bench_function("pooled", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| pool_calls(&pool, &legacy, iters))
    });
    group.bench_function("pooled_2026_07_28", |b| {
        let pool = pool.clone();
        let modern = modern.clone();
        b.to_async(&rt).iter_custom(move |iters| {
            let (pool, modern) = (pool.clone(), modern.clone());
            async move {
                let t0 = Instant::now();
                for _ in 0..iters {
                    let session = pool.get_session("web", "m", &modern).await.expect("hit");
                    black_box(session.call_tool(echo()).await.expect("echo"));
                }
                t0.elapsed()
            }
        })
    });
    let deletes_before = server.deletes.load(Ordering::SeqCst);
    let mut per_call = 0u64;
    group.bench_function("session_per_call", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            per_call += iters;
            let url = url.clone();
            async move {
                let t0 = Instant::now();
                for _ in 0..iters {
                    let client = client_config()
                        .serve(StreamableHttpClientTransport::from_uri(url.as_str()))
                        .await
                        .expect("connect");
                    black_box(client.peer().call_tool(echo()).await.expect("echo"));
                    client.cancel().await.expect("close");
                }
                t0.elapsed()
            }
        })
    });
    let mut ratios = Vec::new();
    let mut pool_first = false;
    group.bench_function("paired_raw_client_and_pooled", |b| {
        b.iter_custom(|iters| {
            pool_first = !pool_first;
            let (raw, pooled) = rt.block_on(async {
                if pool_first {
                    let pooled = pool_calls(&pool, &legacy, iters).await;
                    (raw_calls(&peer, iters).await, pooled)
                } else {
                    let raw = raw_calls(&peer, iters).await;
                    (raw, pool_calls(&pool, &legacy, iters).await)
                }
            });
            if iters >= 20 {
                ratios.push(pooled.as_secs_f64() / raw.as_secs_f64());
            }
            raw + pooled
        })
    });
    group.finish();
    c.final_summary();

    // Each session-per-call client ended its server session with a DELETE.
    let deletes = server.deletes.load(Ordering::SeqCst) - deletes_before;
    assert_eq!(
        deletes as u64, per_call,
        "one DELETE per session-per-call client"
    );
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        let q = |f: f64| ratios[((ratios.len() - 1) as f64 * f).round() as usize];
        println!(
            "call_echo_http: paired pooled/raw_client time ratio: median {:.4}, \
             quartiles [{:.4} {:.4}], min {:.4}, max {:.4}, {} samples",
            q(0.5),
            q(0.25),
            q(0.75),
            q(0.0),
            q(1.0),
            ratios.len()
        );
    }
    rt.block_on(async {
        assert_eq!(pool.close_all().await, 2);
        raw.cancel().await.expect("close raw");
    });
}
