#![doc = include_str!("../README.md")]
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
