//! The sync path next to the async path, in one run: a tool call made
//! (a) from a long-lived async runtime, (b) through a fresh `Runtime::new()`
//! per call, as sync tool wrappers do, and (c) through the blocking API from
//! a plain thread. Each iteration is one `get_session` plus one `call_tool`
//! on a warm session of the stdio test server, on the pool's dedicated
//! runtime. Calls/s = 1 / time per iteration.

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_session_pool::{ServerConfig, SessionPool, rmcp::model::CallToolRequestParams};

fn echo() -> CallToolRequestParams {
    let mut args = serde_json::Map::new();
    args.insert("text".into(), "hi".into());
    CallToolRequestParams::new("echo").with_arguments(args)
}

fn sync_vs_async(c: &mut Criterion) {
    let pool = SessionPool::new();
    let cfg = ServerConfig::stdio(support::server_bin());
    // Warm: the server is running before anything is timed.
    pool.get_session_blocking("srv", "t", &cfg).unwrap();

    let mut group = c.benchmark_group("sync_vs_async_call");
    let rt = tokio::runtime::Runtime::new().unwrap();
    group.bench_function("async_long_lived_runtime", |b| {
        b.to_async(&rt).iter(|| async {
            let session = pool.get_session("srv", "t", &cfg).await.unwrap();
            session.call_tool(echo()).await.unwrap()
        })
    });
    group.bench_function("sync_fresh_runtime_per_call", |b| {
        b.iter(|| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let session = pool.get_session("srv", "t", &cfg).await.unwrap();
                session.call_tool(echo()).await.unwrap()
            })
        })
    });
    // The floor of the fresh-runtime path: the runtime alone, no call.
    group.bench_function("fresh_runtime_alone", |b| {
        b.iter(|| tokio::runtime::Runtime::new().unwrap().block_on(async {}))
    });
    group.bench_function("sync_blocking_api", |b| {
        b.iter(|| {
            let session = pool.get_session_blocking("srv", "t", &cfg).unwrap();
            session.call_tool_blocking(echo()).unwrap()
        })
    });
    group.finish();
    drop(rt);
    assert_eq!(pool.close_all_blocking(), 1);
}

criterion_group!(benches, sync_vs_async);
criterion_main!(benches);
