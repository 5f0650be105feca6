//! A named set of server configs, read from and written to the `mcpServers`
//! JSON that Claude Desktop, Cursor and agent frameworks use.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::{
    Error, ServerConfig,
    config::{Http, Stdio, Transport},
    entry::{self, invalid},
};

/// Server configs by name, as in an `mcpServers` JSON document:
///
/// ```
/// use mcp_session_pool::Servers;
///
/// let servers = Servers::from_json(r#"{"mcpServers": {
///     "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
///               "env": {"DEBUG": "1"}, "cwd": "/tmp"},
///     "web":   {"type": "http", "url": "http://127.0.0.1:8080/mcp",
///               "headers": {"Authorization": "Bearer secret"}}
/// }}"#)?;
/// assert_eq!(servers.names().collect::<Vec<_>>(), ["files", "web"]);
/// assert!(!format!("{servers:?}").contains("secret"));
/// # Ok::<(), mcp_session_pool::Error>(())
/// ```
///
/// A stdio entry has `command` and optionally `args`, `env`, `cwd` and
/// `inheritEnv` (this crate's extension: pass the whole host environment).
/// An HTTP entry has `type` `"http"` (also spelled `"streamable_http"` or
/// `"streamable-http"`), `url`, and optionally `headers`. An entry with a
/// `url` and no `type` is HTTP. A field of the other transport is an error;
/// fields no transport knows (`disabled`, ...) are ignored.
///
/// `command`, `args`, `env` values, `cwd`, `url` and header values may name
/// the host's environment variables as `${env:VAR}` or `${VAR}`; an unset
/// one is an error naming the server and field.
///
/// This crate's per-server settings go in an optional `pool` object:
///
/// | field | values | setting |
/// | --- | --- | --- |
/// | `scope` | `"perScope"`, `"shared"` | [`ServerConfig::scope_policy`] |
/// | `protocol` | `"auto"`, `"legacy"`, `"modern"` | [`ServerConfig::protocol`] |
/// | `maxSessions` | a number ≥ 1 | [`ServerConfig::max_sessions`] |
/// | `warmSpares` | a number | [`ServerConfig::warm_spares`] |
/// | `callTimeoutMs` | milliseconds ≥ 1 | [`ServerConfig::call_timeout`] |
///
/// ```
/// use mcp_session_pool::Servers;
///
/// let servers = Servers::from_json(r#"{"mcpServers": {
///     "time": {"command": "uvx", "args": ["mcp-server-time"],
///              "env": {"DATA_DIR": "${env:HOME}/.time"},
///              "pool": {"scope": "shared", "protocol": "auto"}},
///     "browser": {"command": "npx", "args": ["-y", "@playwright/mcp", "--isolated"],
///                 "pool": {"maxSessions": 4, "warmSpares": 1, "callTimeoutMs": 60000}}
/// }}"#)?;
/// assert_eq!(servers.len(), 2);
/// assert!(Servers::from_json(r#"{"mcpServers": {"x": {"command": "${NO_SUCH_VARIABLE}"}}}"#).is_err());
/// # Ok::<(), mcp_session_pool::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Servers {
    map: BTreeMap<String, ServerConfig>,
}

impl Servers {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses an `mcpServers` JSON document.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidServerConfig`] naming the server and the field at fault
    /// (bad JSON, unknown `type`, missing `command` or `url`, a bad URL, a
    /// value of the wrong type).
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| invalid(None, "", e.to_string()))?;
        Self::from_value(&value)
    }

    /// Reads the `mcpServers` object of an already parsed JSON document.
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json).
    pub fn from_value(value: &Value) -> Result<Self, Error> {
        let servers = value
            .get("mcpServers")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(None, "mcpServers", "expected an object named `mcpServers`"))?;
        let map = servers
            .iter()
            .map(|(name, entry)| Ok((name.clone(), entry::parse(name, entry)?)))
            .collect::<Result<_, Error>>()?;
        Ok(Self { map })
    }

    /// The `mcpServers` JSON document for these servers. Secrets in `env` and
    /// `headers` are included: this is the configuration itself.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidServerConfig`] for a [`ServerConfig::connector`],
    /// which has no JSON form.
    pub fn to_json(&self) -> Result<Value, Error> {
        let mut servers = Map::new();
        for (name, config) in &self.map {
            let mut entry = match &config.transport {
                Transport::Stdio(s) => stdio_json(s),
                Transport::Http(h) => http_json(h),
                Transport::Connector(_) => {
                    return Err(invalid(
                        Some(name),
                        "type",
                        "a custom connector has no JSON form",
                    ));
                }
            };
            if let (Some(pool), Value::Object(entry)) = (entry::pool_json(config), &mut entry) {
                entry.insert("pool".into(), pool);
            }
            servers.insert(name.clone(), entry);
        }
        Ok(json!({ "mcpServers": servers }))
    }

    /// Adds or replaces a server; returns the config it replaced.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        config: ServerConfig,
    ) -> Option<ServerConfig> {
        self.map.insert(name.into(), config)
    }

    /// The config of server `name`.
    pub fn get(&self, name: &str) -> Option<&ServerConfig> {
        self.map.get(name)
    }

    /// The server names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// How many servers there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<N: Into<String>> FromIterator<(N, ServerConfig)> for Servers {
    fn from_iter<I: IntoIterator<Item = (N, ServerConfig)>>(iter: I) -> Self {
        Self {
            map: iter.into_iter().map(|(n, c)| (n.into(), c)).collect(),
        }
    }
}

fn stdio_json(s: &Stdio) -> Value {
    let text = |o: &std::ffi::OsStr| o.to_string_lossy().into_owned();
    let mut entry = Map::new();
    entry.insert("command".into(), text(&s.program).into());
    if !s.args.is_empty() {
        entry.insert("args".into(), s.args.iter().map(|a| text(a)).collect());
    }
    if !s.env.is_empty() {
        let env: Map<String, Value> = s
            .env
            .iter()
            .map(|(k, v)| (text(k), text(v).into()))
            .collect();
        entry.insert("env".into(), env.into());
    }
    if let Some(dir) = &s.cwd {
        entry.insert("cwd".into(), dir.to_string_lossy().into_owned().into());
    }
    if s.inherit_env {
        entry.insert("inheritEnv".into(), true.into());
    }
    entry.into()
}

fn http_json(h: &Http) -> Value {
    let mut headers: Map<String, Value> = h
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    if let Some(token) = &h.bearer {
        headers.insert("Authorization".into(), format!("Bearer {token}").into());
    }
    let mut entry = Map::new();
    entry.insert("type".into(), "http".into());
    entry.insert("url".into(), h.url.clone().into());
    if !headers.is_empty() {
        entry.insert("headers".into(), headers.into());
    }
    entry.into()
}
