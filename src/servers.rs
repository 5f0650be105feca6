//! A named set of server configs, read from and written to the `mcpServers`
//! JSON that Claude Desktop, Cursor and agent frameworks use.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::{Map, Value, json};

use crate::{
    Error, ServerConfig,
    config::{Http, Stdio, Transport},
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
/// `url` and no `type` is HTTP. Other fields are ignored.
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
            .map(|(name, entry)| Ok((name.clone(), parse_entry(name, entry)?)))
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
            if let (Some(timeout), Value::Object(entry)) = (config.policy.call_timeout, &mut entry)
            {
                let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
                entry.insert("pool".into(), json!({ "callTimeoutMs": ms }));
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

fn invalid(server: Option<&str>, field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidServerConfig {
        server: server.map(Arc::from),
        field: field.into(),
        reason: reason.into(),
    }
}

fn parse_entry(name: &str, entry: &Value) -> Result<ServerConfig, Error> {
    let bad = |field: &str, reason: &str| invalid(Some(name), field, reason);
    let entry = entry
        .as_object()
        .ok_or_else(|| bad("", "expected an object"))?;
    let kind = match entry.get("type") {
        None | Some(Value::Null) if entry.contains_key("url") => "http",
        None | Some(Value::Null) => "stdio",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(bad("type", "expected a string")),
    };
    let config = match kind {
        "stdio" => parse_stdio(name, entry),
        "http" | "streamable_http" | "streamable-http" | "streamableHttp" => {
            parse_http(name, entry)
        }
        "sse" => Err(bad(
            "type",
            "the legacy SSE transport is not supported; use streamable HTTP (`\"type\": \"http\"`)",
        )),
        other => Err(invalid(
            Some(name),
            "type",
            format!("unknown transport type `{other}`; expected `stdio` or `http`"),
        )),
    }?;
    parse_pool(name, entry, config)
}

/// This crate's per-server settings, in the entry's `pool` object.
fn parse_pool(
    name: &str,
    entry: &Map<String, Value>,
    mut config: ServerConfig,
) -> Result<ServerConfig, Error> {
    let pool = match entry.get("pool") {
        None | Some(Value::Null) => return Ok(config),
        Some(Value::Object(pool)) => pool,
        Some(_) => return Err(invalid(Some(name), "pool", "expected an object")),
    };
    match pool.get("callTimeoutMs") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_u64() {
            Some(ms) if ms > 0 => config = config.call_timeout(Duration::from_millis(ms)),
            _ => {
                return Err(invalid(
                    Some(name),
                    "pool.callTimeoutMs",
                    "expected a positive whole number of milliseconds",
                ));
            }
        },
    }
    Ok(config)
}

fn parse_stdio(name: &str, entry: &Map<String, Value>) -> Result<ServerConfig, Error> {
    let command = match entry.get("command") {
        Some(Value::String(c)) if !c.trim().is_empty() => c,
        Some(Value::String(_)) => return Err(invalid(Some(name), "command", "is empty")),
        Some(_) => return Err(invalid(Some(name), "command", "expected a string")),
        None => {
            return Err(invalid(
                Some(name),
                "command",
                "missing (a stdio server needs a command)",
            ));
        }
    };
    let mut config = ServerConfig::stdio(command).args(strings(name, entry, "args")?);
    for (key, value) in string_map(name, entry, "env")? {
        config = config.env(key, value);
    }
    match entry.get("cwd") {
        None | Some(Value::Null) => {}
        Some(Value::String(dir)) => config = config.cwd(dir),
        Some(_) => return Err(invalid(Some(name), "cwd", "expected a string")),
    }
    match entry.get("inheritEnv") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => config = config.inherit_env(*b),
        Some(_) => return Err(invalid(Some(name), "inheritEnv", "expected true or false")),
    }
    Ok(config)
}

fn parse_http(name: &str, entry: &Map<String, Value>) -> Result<ServerConfig, Error> {
    let url = match entry.get("url") {
        Some(Value::String(u)) => u,
        Some(_) => return Err(invalid(Some(name), "url", "expected a string")),
        None => {
            return Err(invalid(
                Some(name),
                "url",
                "missing (an HTTP server needs a url)",
            ));
        }
    };
    check_url(url).map_err(|reason| {
        invalid(
            Some(name),
            "url",
            format!("`{url}` is not a valid URL: {reason}"),
        )
    })?;
    let mut config = ServerConfig::http(url);
    for (key, value) in string_map(name, entry, "headers")? {
        if http_token(&key).is_err() {
            return Err(invalid(
                Some(name),
                &format!("headers.{key}"),
                "not a valid header name",
            ));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(invalid(
                Some(name),
                &format!("headers.{key}"),
                "value has control characters",
            ));
        }
        config = config.header(key, value);
    }
    Ok(config)
}

/// An absolute `http(s)://host[:port][/path]` URL.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("the scheme must be http:// or https://")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or("unclosed `[` in the host")?;
            (addr, after.strip_prefix(':'))
        }
        None => match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        },
    };
    if host.is_empty() {
        return Err("the host is missing");
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err("the port is not a number from 0 to 65535");
    }
    Ok(())
}

fn http_token(name: &str) -> Result<(), ()> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok { Ok(()) } else { Err(()) }
}

fn strings(name: &str, entry: &Map<String, Value>, field: &str) -> Result<Vec<String>, Error> {
    match entry.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(invalid(
                    Some(name),
                    &format!("{field}[{i}]"),
                    "expected a string",
                )),
            })
            .collect(),
        Some(_) => Err(invalid(Some(name), field, "expected an array of strings")),
    }
}

fn string_map(
    name: &str,
    entry: &Map<String, Value>,
    field: &str,
) -> Result<Vec<(String, String)>, Error> {
    match entry.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(invalid(
                    Some(name),
                    &format!("{field}.{k}"),
                    "expected a string",
                )),
            })
            .collect(),
        Some(_) => Err(invalid(Some(name), field, "expected an object of strings")),
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
