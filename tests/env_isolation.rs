//! Stdio servers get a minimal environment unless the config opts into the
//! host's. One test alone in this binary: it sets a variable of the test
//! process before any other thread exists.

mod common;

use common::{Servers, call};
use mcp_session_pool::SessionPool;
use serde_json::json;

#[tokio::test]
async fn host_secrets_stay_out_of_servers_unless_inherited() {
    // SAFETY: the only test in this binary, run before the pool starts any
    // thread, so nothing reads the environment concurrently.
    unsafe { std::env::set_var("MCP_POOL_TEST_SECRET", "hunter2") };
    let servers = Servers::new("env");
    let pool = SessionPool::new();

    let isolated = pool
        .get_session("srv", "isolated", &servers.config(&[]).env("GIVEN", "yes"))
        .await
        .unwrap();
    assert_eq!(
        call(&isolated, "env", json!({"name": "MCP_POOL_TEST_SECRET"})).await,
        "<unset>"
    );
    assert_eq!(
        call(&isolated, "env", json!({"name": "GIVEN"})).await,
        "yes"
    );
    assert_eq!(
        call(&isolated, "env", json!({"name": "PATH"})).await,
        std::env::var("PATH").unwrap()
    );

    let inheriting = pool
        .get_session("srv", "inheriting", &servers.config(&[]).inherit_env(true))
        .await
        .unwrap();
    assert_eq!(
        call(&inheriting, "env", json!({"name": "MCP_POOL_TEST_SECRET"})).await,
        "hunter2"
    );

    drop((isolated, inheriting, pool));
    servers.wait_none_alive().await;
}
