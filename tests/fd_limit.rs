//! A host at its open-file limit gets a spawn error that says so.
//!
//! The host is this test binary itself, run again under `ulimit -n` as
//! `host_at_fd_limit`.

mod common;

use std::process::Command;

use common::server_bin;
use mcp_session_pool::{Error, ServerConfig, SessionPool};

const HOST: &str = "MCP_POOL_FD_LIMIT_HOST";

#[test]
#[ignore = "run by reaching_the_open_file_limit_is_named_in_the_spawn_error, under a low ulimit"]
fn host_at_fd_limit() {
    if std::env::var_os(HOST).is_none() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = SessionPool::builder()
        .kill_servers_on_host_exit(false)
        .build()
        .unwrap();
    let cfg = ServerConfig::stdio(server_bin());
    let mut sessions = Vec::new();
    let err = rt.block_on(async {
        for i in 0..64 {
            match pool.get_session("srv", &format!("t{i}"), &cfg).await {
                Ok(s) => sessions.push(s),
                Err(e) => return e,
            }
        }
        panic!("64 sessions fit under the limit");
    });
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    println!("OPENED {} ERROR {err}", sessions.len());
    drop(sessions);
    rt.block_on(pool.close_all());
}

#[test]
fn reaching_the_open_file_limit_is_named_in_the_spawn_error() {
    let out = Command::new("/bin/sh")
        .args(["-c", "ulimit -n 40 && exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "host_at_fd_limit",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOST, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "host failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("OPENED ").map(|(_, rest)| rest))
        .expect("the host's report");
    let (opened, error) = line.split_once(" ERROR ").unwrap();
    assert!(opened.parse::<usize>().unwrap() > 0, "{line}");
    assert!(error.contains("Too many open files"), "{error}");
    assert!(error.contains("open-file limit is reached"), "{error}");
}
