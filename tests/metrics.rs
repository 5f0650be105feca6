//! The pool's figures reach a `metrics` recorder, labelled by server.
#![cfg(feature = "metrics")]

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{in_process, increment};
use mcp_session_pool::{OwnerRuntime, SessionPool};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use parking_lot::Mutex;

/// A recorder that keeps every value, by name and labels.
#[derive(Default)]
struct Kept {
    counters: Mutex<HashMap<String, Arc<Value>>>,
    gauges: Mutex<HashMap<String, Arc<Value>>>,
    histograms: Mutex<HashMap<String, Arc<Value>>>,
}

/// A counter total, a gauge (as f64 bits), or a histogram's sample count.
#[derive(Default)]
struct Value(AtomicU64);

impl CounterFn for Value {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl GaugeFn for Value {
    fn increment(&self, value: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }
    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::SeqCst);
    }
}

impl HistogramFn for Value {
    fn record(&self, value: f64) {
        assert!(value >= 0.0);
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn name(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

fn slot(map: &Mutex<HashMap<String, Arc<Value>>>, key: &Key) -> Arc<Value> {
    map.lock().entry(name(key)).or_default().clone()
}

impl Recorder for &'static Kept {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(slot(&self.counters, key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(slot(&self.gauges, key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(slot(&self.histograms, key))
    }
}

impl Kept {
    fn counter(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .get(name)
            .map_or(0, |v| v.0.load(Ordering::SeqCst))
    }
    fn gauge(&self, name: &str) -> f64 {
        self.gauges
            .lock()
            .get(name)
            .map_or(0.0, |v| f64::from_bits(v.0.load(Ordering::SeqCst)))
    }
    fn samples(&self, name: &str) -> u64 {
        self.histograms
            .lock()
            .get(name)
            .map_or(0, |v| v.0.load(Ordering::SeqCst))
    }
}

#[tokio::test(start_paused = true)]
async fn pool_figures_reach_the_recorder_labelled_by_server() {
    let kept: &'static Kept = Box::leak(Box::default());
    metrics::set_global_recorder(kept).expect("the only recorder of this test binary");

    let (cfg, _) = in_process();
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .max_sessions(2)
        .build()
        .unwrap();
    let a = pool.get_session("alpha", "t1", &cfg).await.unwrap();
    assert_eq!(increment(&a).await, 1);
    drop(a);
    drop(pool.get_session("alpha", "t1", &cfg).await.unwrap()); // a reuse
    let b = pool.get_session("beta", "t1", &cfg).await.unwrap();
    assert_eq!(kept.gauge("mcp_pool_sessions_live{server=alpha}"), 1.0);
    assert_eq!(kept.gauge("mcp_pool_sessions_live{server=beta}"), 1.0);
    assert_eq!(kept.gauge("mcp_pool_sessions_creating{server=alpha}"), 0.0);

    // A third key at the bound of 2 waits while both are busy, then evicts.
    let a = pool.get_session("alpha", "t1", &cfg).await.unwrap();
    let waiter = tokio::spawn({
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move { pool.get_session("gamma", "t1", &cfg).await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(kept.gauge("mcp_pool_callers_waiting{server=gamma}"), 1.0);
    drop(a);
    waiter.await.unwrap().unwrap();
    assert_eq!(kept.gauge("mcp_pool_callers_waiting{server=gamma}"), 0.0);
    assert_eq!(kept.samples("mcp_pool_slot_wait_seconds{server=gamma}"), 1);
    drop(b);

    assert_eq!(
        kept.counter("mcp_pool_sessions_created_total{server=alpha}"),
        1
    );
    assert_eq!(
        kept.counter("mcp_pool_sessions_reused_total{server=alpha}"),
        2
    );
    assert_eq!(kept.samples("mcp_pool_creation_seconds{server=alpha}"), 1);
    assert_eq!(
        kept.counter("mcp_pool_sessions_closed_total{reason=Evicted,server=alpha}"),
        1
    );
    assert_eq!(kept.samples("mcp_pool_teardown_seconds{server=alpha}"), 1);

    pool.close_all().await;
    for server in ["alpha", "beta", "gamma"] {
        for gauge in [
            "mcp_pool_sessions_live",
            "mcp_pool_sessions_creating",
            "mcp_pool_sessions_closing",
            "mcp_pool_callers_waiting",
        ] {
            assert_eq!(
                kept.gauge(&format!("{gauge}{{server={server}}}")),
                0.0,
                "{gauge} of {server} after close_all"
            );
        }
    }
    assert_eq!(
        kept.counter("mcp_pool_sessions_closed_total{reason=Explicit,server=beta}"),
        1
    );

    // A failed creation is counted.
    let refused = mcp_session_pool::ServerConfig::connector(|| async {
        Err::<tokio::io::DuplexStream, _>(std::io::Error::other("down"))
    });
    assert!(pool.get_session("delta", "t1", &refused).await.is_err());
    assert_eq!(
        kept.counter("mcp_pool_creation_failures_total{server=delta}"),
        1
    );
}
