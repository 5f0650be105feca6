//! One server's entry in an `mcpServers` document: its serde form, checked
//! into a [`ServerConfig`], with `${env:VAR}` / `${VAR}` interpolation.

use std::{
    collections::BTreeMap,
    num::{NonZeroU64, NonZeroUsize},
    sync::Arc,
    time::Duration,
};

use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Protocol, ScopePolicy, ServerConfig};

/// An entry as written. Fields this crate does not know are ignored (other
/// hosts add their own, such as `disabled`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(rename = "type")]
    kind: Option<String>,
    command: Option<String>,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<String>,
    inherit_env: Option<bool>,
    url: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    pool: Option<Pool>,
}

/// This crate's per-server settings, in the entry's `pool` object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Pool {
    scope: Option<Scope>,
    protocol: Option<Era>,
    max_sessions: Option<NonZeroUsize>,
    warm_spares: Option<usize>,
    call_timeout_ms: Option<NonZeroU64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum Scope {
    PerScope,
    Shared,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum Era {
    Legacy,
    Modern,
    Auto,
}

pub(crate) fn invalid(server: Option<&str>, field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidServerConfig {
        server: server.map(Arc::from),
        field: field.into(),
        reason: reason.into(),
    }
}

/// Reads server `name`'s entry.
pub(crate) fn parse(name: &str, value: &Value) -> Result<ServerConfig, Error> {
    let bad = |field: &str, reason: String| invalid(Some(name), field, reason);
    let entry: Entry = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        bad(&field, e.into_inner().to_string())
    })?;
    let env = |field: &str, text: &str| interpolate(text).map_err(|reason| bad(field, reason));
    let kind = match entry.kind.as_deref() {
        None if entry.url.is_some() => "http",
        None => "stdio",
        Some(kind) => kind,
    };
    let config = match kind {
        "stdio" => {
            let command = match &entry.command {
                Some(c) if !c.trim().is_empty() => env("command", c)?,
                Some(_) => return Err(bad("command", "is empty".into())),
                None => {
                    return Err(bad(
                        "command",
                        "missing (a stdio server needs a command)".into(),
                    ));
                }
            };
            let mut config = ServerConfig::stdio(command);
            for (i, arg) in entry.args.iter().flatten().enumerate() {
                config = config.args([env(&format!("args[{i}]"), arg)?]);
            }
            for (key, value) in entry.env.iter().flatten() {
                config = config.env(key, env(&format!("env.{key}"), value)?);
            }
            if let Some(dir) = &entry.cwd {
                config = config.cwd(env("cwd", dir)?);
            }
            if let Some(inherit) = entry.inherit_env {
                config = config.inherit_env(inherit);
            }
            config
        }
        "http" | "streamable_http" | "streamable-http" | "streamableHttp" => {
            let Some(url) = &entry.url else {
                return Err(bad("url", "missing (an HTTP server needs a url)".into()));
            };
            let url = env("url", url)?;
            check_url(&url)
                .map_err(|reason| bad("url", format!("`{url}` is not a valid URL: {reason}")))?;
            let mut config = ServerConfig::http(&url);
            for (key, value) in entry.headers.iter().flatten() {
                let field = format!("headers.{key}");
                if !is_token(key) {
                    return Err(bad(&field, "not a valid header name".into()));
                }
                let value = env(&field, value)?;
                if value.chars().any(|c| c.is_control() && c != '\t') {
                    return Err(bad(&field, "value has control characters".into()));
                }
                config = config.header(key, value);
            }
            config
        }
        "sse" => {
            return Err(bad(
                "type",
                "the legacy SSE transport is not supported; use streamable HTTP (`\"type\": \"http\"`)"
                    .into(),
            ));
        }
        other => {
            return Err(bad(
                "type",
                format!("unknown transport type `{other}`; expected `stdio` or `http`"),
            ));
        }
    };
    if kind == "stdio" {
        if entry.url.is_some() || entry.headers.is_some() {
            let field = if entry.url.is_some() {
                "url"
            } else {
                "headers"
            };
            return Err(bad(field, "applies only to HTTP servers".into()));
        }
    } else if let Some(field) = [
        ("command", entry.command.is_some()),
        ("args", entry.args.is_some()),
        ("env", entry.env.is_some()),
        ("cwd", entry.cwd.is_some()),
        ("inheritEnv", entry.inherit_env.is_some()),
    ]
    .into_iter()
    .find_map(|(field, set)| set.then_some(field))
    {
        return Err(bad(field, "applies only to stdio servers".into()));
    }
    Ok(apply_pool(config, entry.pool))
}

fn apply_pool(mut config: ServerConfig, pool: Option<Pool>) -> ServerConfig {
    let Some(pool) = pool else { return config };
    if let Some(scope) = pool.scope {
        config = config.scope_policy(match scope {
            Scope::PerScope => ScopePolicy::PerScope,
            Scope::Shared => ScopePolicy::Shared,
        });
    }
    if let Some(era) = pool.protocol {
        config = config.protocol(match era {
            Era::Legacy => Protocol::Legacy,
            Era::Modern => Protocol::Modern,
            Era::Auto => Protocol::Auto,
        });
    }
    if let Some(max) = pool.max_sessions {
        config = config.max_sessions(max);
    }
    if let Some(spares) = pool.warm_spares {
        config = config.warm_spares(spares);
    }
    if let Some(ms) = pool.call_timeout_ms {
        config = config.call_timeout(Duration::from_millis(ms.get()));
    }
    config
}

/// The entry's `pool` object for `config`, if it has non-default settings.
pub(crate) fn pool_json(config: &ServerConfig) -> Option<Value> {
    let policy = &config.policy;
    let mut pool = serde_json::Map::new();
    if policy.scope == ScopePolicy::Shared {
        pool.insert("scope".into(), "shared".into());
    }
    match policy.protocol {
        Protocol::Auto => {}
        Protocol::Legacy => drop(pool.insert("protocol".into(), "legacy".into())),
        Protocol::Modern => drop(pool.insert("protocol".into(), "modern".into())),
    }
    if let Some(max) = policy.max_sessions {
        pool.insert("maxSessions".into(), max.get().into());
    }
    if policy.warm_spares > 0 {
        pool.insert("warmSpares".into(), policy.warm_spares.into());
    }
    if let Some(timeout) = policy.call_timeout {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        pool.insert("callTimeoutMs".into(), ms.into());
    }
    (!pool.is_empty()).then(|| pool.into())
}

/// Replaces `${env:VAR}` and `${VAR}` with the host's environment variable.
/// An unset variable, or an unclosed `${`, is an error.
fn interpolate(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
        let name = after[..end].strip_prefix("env:").unwrap_or(&after[..end]);
        if name.is_empty() {
            return Err(format!("an empty variable name in `{text}`"));
        }
        let value =
            std::env::var(name).map_err(|_| format!("environment variable `{name}` is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
