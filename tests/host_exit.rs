//! A host that dies without closing its pool (`kill -9`, an abort) takes its
//! servers with it: a plain one, one that ignores stdin EOF, and the
//! grandchild in a third one's process group are all gone within a second.
//!
//! The host is this test binary itself, run again as `host_process`.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{call, server_bin};
use mcp_session_pool::{ServerConfig, SessionPool};

const MODE: &str = "MCP_POOL_TEST_HOST_MODE";

/// The host: holds three sessions, prints the pids to watch, then dies the
/// way the parent asked.
#[test]
#[ignore = "not a test on its own: the host process the host_dies tests start and kill"]
fn host_process() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = SessionPool::new();
    let pids = rt.block_on(async {
        let plain = ServerConfig::stdio(server_bin());
        let stubborn = ServerConfig::stdio(server_bin()).args(["--ignore-eof"]);
        let a = pool.get_session("srv", "plain", &plain).await.unwrap();
        let b = pool
            .get_session("srv", "stubborn", &stubborn)
            .await
            .unwrap();
        let c = pool.get_session("srv", "forks", &plain).await.unwrap();
        let grandchild = call(&c, "spawn_child", serde_json::json!({})).await;
        [
            a.server_pid().unwrap().to_string(),
            b.server_pid().unwrap().to_string(),
            c.server_pid().unwrap().to_string(),
            grandchild,
        ]
    });
    println!("PIDS {}", pids.join(" "));
    match mode.as_str() {
        "abort" => std::process::abort(),
        _ => std::thread::sleep(Duration::from_secs(600)),
    }
}

/// Starts the host, waits for its pids, ends it with `end`, and returns the
/// pids and the host's exit status.
fn host_dies(mode: &str, end: impl FnOnce(u32)) -> Vec<u32> {
    let mut host = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "host_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(host.stdout.take().unwrap()).lines();
    let pids: Vec<u32> = loop {
        let line = lines
            .next()
            .expect("the host ended before printing its pids")
            .unwrap();
        // The test harness may print on the same line first.
        if let Some((_, pids)) = line.split_once("PIDS ") {
            break pids.split(' ').map(|p| p.parse().unwrap()).collect();
        }
    };
    assert_eq!(pids.len(), 4);
    for &pid in &pids {
        assert!(running(pid), "{pid} is not running to begin with");
    }
    end(host.id());
    let status = host.wait().unwrap();
    assert!(!status.success(), "the host was meant to die: {status:?}");
    pids
}

fn running(pid: u32) -> bool {
    common::process_running(pid, "test_server") || common::process_running(pid, "sleep")
}

/// Waits (at most `bound`) until none of `pids` runs; returns how long.
fn gone_within(pids: &[u32], bound: Duration) -> Duration {
    let t0 = Instant::now();
    while pids.iter().any(|&p| running(p)) {
        if t0.elapsed() > bound {
            let left: Vec<_> = pids.iter().filter(|&&p| running(p)).collect();
            // Never leave them behind, even when the test fails.
            for &&pid in &left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            panic!("still running {bound:?} after the host died: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed()
}

#[test]
fn servers_die_with_a_host_killed_by_sigkill() {
    let pids = host_dies("sigkill", |host| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(host as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    });
    let took = gone_within(&pids, Duration::from_secs(1));
    eprintln!("servers and grandchild gone {took:?} after the host's SIGKILL");
}

#[test]
fn servers_die_with_a_host_that_aborts() {
    let pids = host_dies("abort", |_| {});
    let took = gone_within(&pids, Duration::from_secs(1));
    eprintln!("servers and grandchild gone {took:?} after the host's abort");
}
