//! `mcpServers` JSON: round trip, every kind of bad input, the registry, and
//! configs that never print their secrets.

mod common;

use mcp_session_pool::{Error, Protocol, ScopePolicy, ServerConfig, Servers, SessionPool};
use serde_json::json;

const DOC: &str = r#"{
  "mcpServers": {
    "files": {"command": "npx", "args": ["-y", "server-filesystem", "/tmp"],
              "env": {"API_KEY": "s3cret-env"}, "cwd": "/tmp", "inheritEnv": true,
              "disabled": false},
    "web": {"type": "streamable-http", "url": "https://example.test:8443/mcp",
            "headers": {"X-Tenant": "acme", "Authorization": "Bearer s3cret-token"}},
    "remote": {"url": "http://127.0.0.1:9000/mcp"},
    "plain": {"type": "stdio", "command": "server"}
  }
}"#;

#[test]
fn json_round_trips() {
    let servers = Servers::from_json(DOC).unwrap();
    assert_eq!(
        servers.names().collect::<Vec<_>>(),
        ["files", "plain", "remote", "web"]
    );
    let expected_files = ServerConfig::stdio("npx")
        .args(["-y", "server-filesystem", "/tmp"])
        .env("API_KEY", "s3cret-env")
        .cwd("/tmp")
        .inherit_env(true);
    assert_eq!(servers.get("files"), Some(&expected_files));
    let expected_web = ServerConfig::http("https://example.test:8443/mcp")
        .header("Authorization", "Bearer s3cret-token")
        .header("X-Tenant", "acme");
    assert_eq!(servers.get("web"), Some(&expected_web));
    assert_eq!(
        servers.get("remote"),
        Some(&ServerConfig::http("http://127.0.0.1:9000/mcp"))
    );

    let json = servers.to_json().unwrap();
    assert_eq!(
        json["mcpServers"]["files"],
        json!({"command": "npx", "args": ["-y", "server-filesystem", "/tmp"],
               "env": {"API_KEY": "s3cret-env"}, "cwd": "/tmp", "inheritEnv": true})
    );
    assert_eq!(json["mcpServers"]["plain"], json!({"command": "server"}));
    let again = Servers::from_value(&json).unwrap();
    assert_eq!(again, servers);
    assert_eq!(Servers::from_json(&json.to_string()).unwrap(), servers);
}

#[test]
fn connectors_have_no_json_form() {
    let servers: Servers = [("mem", common::in_process().0)].into_iter().collect();
    let err = servers.to_json().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidServerConfig { field, .. } if field == "type"),
        "{err:?}"
    );
    assert_eq!(err.server(), Some("mem"));
}

#[test]
fn every_bad_input_names_the_server_and_field() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        (r#"not json"#, None, ""),
        (r#"{"servers": {}}"#, None, "mcpServers"),
        (r#"{"mcpServers": []}"#, None, "mcpServers"),
        (r#"{"mcpServers": {"a": 3}}"#, Some("a"), ""),
        (
            r#"{"mcpServers": {"a": {"type": "carrier-pigeon", "command": "x"}}}"#,
            Some("a"),
            "type",
        ),
        (
            r#"{"mcpServers": {"a": {"type": 7, "command": "x"}}}"#,
            Some("a"),
            "type",
        ),
        (
            r#"{"mcpServers": {"a": {"type": "sse", "url": "http://h/sse"}}}"#,
            Some("a"),
            "type",
        ),
        (
            r#"{"mcpServers": {"a": {"args": ["x"]}}}"#,
            Some("a"),
            "command",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "  "}}}"#,
            Some("a"),
            "command",
        ),
        (
            r#"{"mcpServers": {"a": {"command": ["npx"]}}}"#,
            Some("a"),
            "command",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "args": "-y"}}}"#,
            Some("a"),
            "args",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "args": ["-y", 2]}}}"#,
            Some("a"),
            "args[1]",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "env": ["K=V"]}}}"#,
            Some("a"),
            "env",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "env": {"PORT": 80}}}}"#,
            Some("a"),
            "env.PORT",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "cwd": 1}}}"#,
            Some("a"),
            "cwd",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x", "inheritEnv": "yes"}}}"#,
            Some("a"),
            "inheritEnv",
        ),
        (
            r#"{"mcpServers": {"w": {"type": "http"}}}"#,
            Some("w"),
            "url",
        ),
        (
            r#"{"mcpServers": {"w": {"type": "http", "url": 8080}}}"#,
            Some("w"),
            "url",
        ),
        (
            r#"{"mcpServers": {"w": {"url": "ftp://host/mcp"}}}"#,
            Some("w"),
            "url",
        ),
        (
            r#"{"mcpServers": {"w": {"url": "http:///mcp"}}}"#,
            Some("w"),
            "url",
        ),
        (
            r#"{"mcpServers": {"w": {"url": "http://host:99999/mcp"}}}"#,
            Some("w"),
            "url",
        ),
        (
            r#"{"mcpServers": {"w": {"url": "http://ho st/mcp"}}}"#,
            Some("w"),
            "url",
        ),
        (
            r#"{"mcpServers": {"w": {"url": "http://[::1/mcp"}}}"#,
            Some("w"),
            "url",
        ),
        (
            r#"{"mcpServers": {"w": {"url": "http://h/", "headers": ["X: y"]}}}"#,
            Some("w"),
            "headers",
        ),
        (
            r#"{"mcpServers": {"w": {"url": "http://h/", "headers": {"X": 1}}}}"#,
            Some("w"),
            "headers.X",
        ),
        (
            r#"{"mcpServers": {"w": {"url": "http://h/", "headers": {"Bad Name": "v"}}}}"#,
            Some("w"),
            "headers.Bad Name",
        ),
        (
            r#"{"mcpServers": {"w": {"url": "http://h/", "headers": {"X": "a\nb"}}}}"#,
            Some("w"),
            "headers.X",
        ),
    ];
    for (doc, server, field) in cases {
        let err = Servers::from_json(doc).expect_err(doc);
        match &err {
            Error::InvalidServerConfig {
                server: s,
                field: f,
                reason,
            } => {
                assert_eq!(s.as_deref(), *server, "{doc}");
                assert_eq!(f, field, "{doc}");
                assert!(!reason.is_empty());
            }
            other => panic!("{doc}: {other:?}"),
        }
        let message = err.to_string();
        if let Some(server) = server {
            assert!(message.contains(server), "{message}");
        }
        assert!(message.contains(field), "{message}");
    }
}

#[test]
fn debug_output_never_shows_secrets() {
    let servers = Servers::from_json(DOC).unwrap();
    let configs = [
        format!("{servers:?}"),
        format!("{:?}", servers.get("files").unwrap()),
        format!(
            "{:?}",
            ServerConfig::http("http://h/mcp")
                .bearer_auth("s3cret-bearer")
                .header("X-Key", "s3cret-header")
        ),
        format!(
            "{:#?}",
            ServerConfig::stdio("x").env("TOKEN", "s3cret-plain")
        ),
    ];
    for text in configs {
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
    // The names stay visible, for debugging.
    assert!(format!("{servers:?}").contains("API_KEY"));
}

#[tokio::test]
async fn registered_servers_are_reached_by_name() {
    let servers_on_disk = common::Servers::new("registry");
    let registry: Servers = [("counter", servers_on_disk.config(&[]))]
        .into_iter()
        .collect();
    let pool = SessionPool::builder().servers(registry).build().unwrap();
    let first = pool.session("counter", "t").await.unwrap();
    assert_eq!(common::increment(&first).await, 1);
    drop(first);
    assert_eq!(
        common::increment(&pool.session("counter", "t").await.unwrap()).await,
        2
    );
    let err = pool.session("nope", "t").await.unwrap_err();
    assert!(matches!(err, Error::UnknownServer { .. }), "{err:?}");
    assert_eq!((err.server(), err.scope()), (Some("nope"), Some("t")));
    drop(pool);
    servers_on_disk.wait_none_alive().await;
}

#[cfg(not(feature = "http"))]
#[tokio::test]
async fn http_config_without_the_feature_fails_clearly() {
    let pool = SessionPool::new();
    let err = pool
        .get_session("web", "t", &ServerConfig::http("http://127.0.0.1:9/mcp"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("web"));
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .to_string()
            .contains("`http` feature")
    );
}

#[test]
fn pool_settings_and_interpolation_are_read_and_written() {
    let home = std::env::var("HOME").expect("HOME is set");
    let servers = Servers::from_json(
        r#"{"mcpServers": {
        "time": {"command": "${env:HOME}/bin/time", "args": ["--dir", "${HOME}"],
                 "env": {"DATA": "${HOME}/data"},
                 "pool": {"scope": "shared", "protocol": "legacy", "maxSessions": 3,
                          "warmSpares": 1, "callTimeoutMs": 2500}},
        "web": {"url": "http://127.0.0.1:1/${env:HOME}", "headers": {"X-Home": "${HOME}"},
                "pool": {"protocol": "modern", "scope": "perScope"}}
    }}"#,
    )
    .unwrap();
    let expected = ServerConfig::stdio(format!("{home}/bin/time"))
        .args(["--dir", &home])
        .env("DATA", format!("{home}/data"))
        .scope_policy(ScopePolicy::Shared)
        .protocol(Protocol::Legacy)
        .max_sessions(std::num::NonZeroUsize::new(3).unwrap())
        .warm_spares(1)
        .call_timeout(std::time::Duration::from_millis(2500));
    assert_eq!(servers.get("time"), Some(&expected));
    let json = servers.to_json().unwrap();
    assert_eq!(
        json["mcpServers"]["time"]["pool"],
        json!({"scope": "shared", "protocol": "legacy", "maxSessions": 3,
               "warmSpares": 1, "callTimeoutMs": 2500})
    );
    assert_eq!(
        json["mcpServers"]["web"]["pool"],
        json!({"protocol": "modern"})
    );
    assert_eq!(Servers::from_value(&json).unwrap(), servers);
}

#[test]
fn bad_pool_settings_and_unset_variables_name_the_server_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"command": "x", "pool": {"scope": "everyone"}}"#,
            "pool.scope",
        ),
        (
            r#"{"command": "x", "pool": {"protocol": 2026}}"#,
            "pool.protocol",
        ),
        (
            r#"{"command": "x", "pool": {"maxSessions": 0}}"#,
            "pool.maxSessions",
        ),
        (
            r#"{"command": "x", "pool": {"warmSpares": -1}}"#,
            "pool.warmSpares",
        ),
        (
            r#"{"command": "x", "pool": {"callTimeoutMs": "30s"}}"#,
            "pool.callTimeoutMs",
        ),
        (
            r#"{"command": "x", "pool": {"warmspares": 1}}"#,
            "pool.warmspares",
        ),
        (r#"{"command": "x", "pool": []}"#, "pool"),
        (
            r#"{"command": "${MCP_POOL_TEST_UNSET_VARIABLE}"}"#,
            "command",
        ),
        (
            r#"{"command": "x", "args": ["a", "${env:MCP_POOL_TEST_UNSET_VARIABLE}"]}"#,
            "args[1]",
        ),
        (
            r#"{"command": "x", "env": {"K": "${MCP_POOL_TEST_UNSET_VARIABLE}"}}"#,
            "env.K",
        ),
        (r#"{"command": "x", "args": ["${HOME"]}"#, "args[0]"),
        (
            r#"{"url": "http://${MCP_POOL_TEST_UNSET_VARIABLE}/mcp"}"#,
            "url",
        ),
        (
            r#"{"url": "http://h/mcp", "headers": {"A": "${MCP_POOL_TEST_UNSET_VARIABLE}"}}"#,
            "headers.A",
        ),
        (r#"{"url": "http://h/mcp", "env": {"K": "v"}}"#, "env"),
        (r#"{"command": "x", "headers": {"K": "v"}}"#, "headers"),
    ];
    for (entry, field) in cases {
        let doc = format!(r#"{{"mcpServers": {{"srv": {entry}}}}}"#);
        let err = Servers::from_json(&doc).expect_err(&doc);
        match &err {
            Error::InvalidServerConfig {
                server, field: f, ..
            } => {
                assert_eq!(server.as_deref(), Some("srv"), "{doc}");
                assert_eq!(f, field, "{doc}: {err}");
            }
            other => panic!("{doc}: {other:?}"),
        }
        assert!(err.to_string().contains(field), "{err}");
    }
    let err = Servers::from_json(
        r#"{"mcpServers": {"srv": {"command": "${MCP_POOL_TEST_UNSET_VARIABLE}"}}}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("MCP_POOL_TEST_UNSET_VARIABLE"),
        "{err}"
    );
}
