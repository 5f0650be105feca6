//! Persistent MCP client sessions for agent frameworks, keyed by
//! `(server, scope)`, on tokio and rmcp.
//!
//! An agent calls MCP tools many times in one conversation. A
//! [`SessionPool`] keeps one live session per server and scope (usually
//! the conversation) and hands it back on every call, so the server's state
//! (an open browser page, a login, a working directory) survives between
//! calls, and a server process is not started per call.
//!
//! ```no_run
//! use mcp_session_pool::{ServerConfig, SessionPool, rmcp::model::CallToolRequestParams};
//!
//! # async fn run() -> Result<(), mcp_session_pool::Error> {
//! let pool = SessionPool::new();
//! let browser = ServerConfig::stdio("npx").args(["-y", "@playwright/mcp", "--isolated"]);
//!
//! // In the tool wrapper, on every call of conversation "thread-42":
//! let session = pool.get_session("browser", "thread-42", &browser).await?;
//! let page = session.call_tool(CallToolRequestParams::new("browser_snapshot")).await?;
//! drop(session); // idle again until the next call
//!
//! // When the conversation ends:
//! pool.close_scope("thread-42").await;
//! # let _ = page; Ok(()) }
//! ```
//!
//! Where to go next:
//!
//! * [`SessionPool::get_session`] and [`Session`]: the call path, and what
//!   happens when a session ends under a call ([`Error::SessionEnded`]).
//! * [`ServerConfig`]: how to reach a server and the per-server policy:
//!   [`Protocol`], [`ScopePolicy`], bounds, warm spares, call timeout.
//! * [`Builder`]: pool-wide settings, client handlers for two-way sessions
//!   ([`Builder::client_handler`]), and the owner runtime ([`OwnerRuntime`]).
//! * [`Servers`]: servers from an `mcpServers` JSON file.
//! * [`SessionPool::list_tools`]: the tool catalogue shared by every scope.
//!
//! The README (on the crate's repository page) walks through these with
//! complete examples; they are compiled as doctests of this crate.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod blocking;
mod builder;
mod catalogue;
mod checkout;
mod close;
mod config;
mod core;
mod entry;
mod error;
mod handler;
mod http;
mod key;
mod lifecycle;
mod metrics;
mod mrtr;
mod owner;
mod pool;
mod proc;
mod process;
mod reason;
mod registry;
mod request;
mod runtime;
mod servers;
mod session;
mod slots;
mod stats;
mod watchdog;

pub use builder::{Builder, HealthCheck, OwnerRuntime};
pub use catalogue::Tools;
pub use config::{DEFAULT_ENV_VARS, Duplex, Protocol, SHARED_SCOPE, ScopePolicy, ServerConfig};
pub use error::Error;
pub use handler::HandlerContext;
pub use pool::SessionPool;
pub use reason::CloseReason;
pub use servers::Servers;
pub use session::Session;
pub use stats::PoolStatus;

/// rmcp, re-exported so callers use the exact version the pool was built with.
pub use rmcp;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
