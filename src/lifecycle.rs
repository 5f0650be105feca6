//! Protocol eras: which MCP lifecycle to run with a server, and what the pool
//! remembers of the era each server answered with.

use std::{collections::HashMap, sync::Arc};

use parking_lot::Mutex;
use rmcp::{model::ProtocolVersion, service::ClientLifecycleMode};

use crate::{Protocol, ServerConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    Legacy,
    Modern,
}

/// The era each server name answered with, and the config fingerprint it
/// answered under: a changed config probes again.
#[derive(Debug, Default)]
pub(crate) struct Eras(Mutex<HashMap<Arc<str>, (u64, Era)>>);

fn modern() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

impl Eras {
    /// The lifecycles to try, in order, each on a fresh connection: one,
    /// or for an unprobed [`Protocol::Auto`] server a probe that falls back
    /// on the same connection, then `initialize` on a new one in case the
    /// server hung up on the probe.
    pub(crate) fn attempts(&self, server: &str, config: &ServerConfig) -> Vec<ClientLifecycleMode> {
        match config.policy.protocol {
            Protocol::Legacy => vec![ClientLifecycleMode::Initialize],
            Protocol::Modern => vec![modern()],
            Protocol::Auto => match self.0.lock().get(server) {
                Some(&(fp, Era::Modern)) if fp == config.fingerprint() => vec![modern()],
                Some(&(fp, Era::Legacy)) if fp == config.fingerprint() => {
                    vec![ClientLifecycleMode::Initialize]
                }
                _ => vec![
                    ClientLifecycleMode::Auto {
                        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
                    },
                    ClientLifecycleMode::Initialize,
                ],
            },
        }
    }

    /// Remembers the version a server of `config` negotiated.
    pub(crate) fn learn(
        &self,
        server: &Arc<str>,
        config: &ServerConfig,
        version: &ProtocolVersion,
    ) {
        if config.policy.protocol != Protocol::Auto {
            return;
        }
        let era = if version.has_initialize() {
            Era::Legacy
        } else {
            Era::Modern
        };
        self.0
            .lock()
            .insert(server.clone(), (config.fingerprint(), era));
    }

    /// Forgets what `server` answered: it failed to connect in that era.
    pub(crate) fn forget(&self, server: &str) {
        self.0.lock().remove(server);
    }
}
