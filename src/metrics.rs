//! The pool's figures through the [`metrics`](https://crates.io/crates/metrics)
//! facade (feature `metrics`), labelled by server. Without the feature these
//! are empty and compile to nothing.
//!
//! | name | kind | labels |
//! | --- | --- | --- |
//! | `mcp_pool_sessions_live` | gauge | `server` |
//! | `mcp_pool_sessions_creating` | gauge | `server` |
//! | `mcp_pool_sessions_closing` | gauge | `server` |
//! | `mcp_pool_callers_waiting` | gauge | `server` |
//! | `mcp_pool_sessions_created_total` | counter | `server` |
//! | `mcp_pool_sessions_reused_total` | counter | `server` |
//! | `mcp_pool_creations_joined_total` | counter | `server` |
//! | `mcp_pool_sessions_closed_total` | counter | `server`, `reason` |
//! | `mcp_pool_creation_failures_total` | counter | `server` |
//! | `mcp_pool_teardown_failures_total` | counter | `server` |
//! | `mcp_pool_creation_seconds` | histogram | `server` |
//! | `mcp_pool_teardown_seconds` | histogram | `server` |
//! | `mcp_pool_slot_wait_seconds` | histogram | `server` |

#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

use std::time::Duration;

use crate::CloseReason;

/// A gauge the pool keeps per server.
#[derive(Clone, Copy)]
pub(crate) enum Gauge {
    Live,
    Creating,
    Closing,
    Waiting,
}

#[cfg(feature = "metrics")]
fn gauge_name(gauge: Gauge) -> &'static str {
    match gauge {
        Gauge::Live => "mcp_pool_sessions_live",
        Gauge::Creating => "mcp_pool_sessions_creating",
        Gauge::Closing => "mcp_pool_sessions_closing",
        Gauge::Waiting => "mcp_pool_callers_waiting",
    }
}

/// Moves a server's gauge by `delta`.
pub(crate) fn gauge(gauge: Gauge, server: &str, delta: f64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!(gauge_name(gauge), "server" => server.to_owned()).increment(delta);
}

fn count(name: &'static str, server: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(name, "server" => server.to_owned()).increment(1);
}

fn time(name: &'static str, server: &str, took: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!(name, "server" => server.to_owned()).record(took.as_secs_f64());
}

pub(crate) fn created(server: &str, took: Duration) {
    count("mcp_pool_sessions_created_total", server);
    time("mcp_pool_creation_seconds", server, took);
}

pub(crate) fn reused(server: &str) {
    count("mcp_pool_sessions_reused_total", server);
}

pub(crate) fn joined(server: &str) {
    count("mcp_pool_creations_joined_total", server);
}

pub(crate) fn creation_failed(server: &str) {
    count("mcp_pool_creation_failures_total", server);
}

pub(crate) fn teardown_failed(server: &str) {
    count("mcp_pool_teardown_failures_total", server);
}

pub(crate) fn closed(server: &str, reason: CloseReason, teardown: Option<Duration>) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "mcp_pool_sessions_closed_total",
        "server" => server.to_owned(),
        "reason" => format!("{reason:?}")
    )
    .increment(1);
    if let Some(took) = teardown {
        time("mcp_pool_teardown_seconds", server, took);
    }
}

pub(crate) fn slot_wait(server: &str, waited: Duration) {
    time("mcp_pool_slot_wait_seconds", server, waited);
}
