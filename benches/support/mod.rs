//! What the benchmarks share: the stdio test server binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `test_server` example binary next to this bench's profile directory:
/// target/<profile>/deps/pool-<hash> -> target/<profile>/examples/test_server.
///
/// `cargo bench` does not build examples, so this runs `cargo build` for it
/// every time: a no-op when it is fresh, and a stale server (its source
/// changed since it was last built) would silently skew every stdio number.
/// This does not deadlock: cargo releases its build-directory lock before it
/// runs the bench executable (it waits while another build holds it).
pub fn server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory layout");
    let bin = profile_dir.join("examples").join("test_server");
    let target_dir = profile_dir.parent().expect("target directory layout");
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "--example",
            "test_server",
            "--target-dir",
        ])
        .arg(target_dir);
    if profile_dir.file_name() == Some("release".as_ref()) {
        cargo.arg("--release");
    }
    match cargo.status() {
        Ok(status) => assert!(status.success(), "building test_server failed: {status}"),
        // Run outside its source tree, say: use the binary as it is.
        Err(e) if bin.exists() => eprintln!("could not run cargo ({e}); using {}", bin.display()),
        Err(e) => panic!("could not run cargo to build test_server: {e}"),
    }
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release --example test_server`",
        bin.display()
    );
    bin
}

/// The callers' runtime of every bench: multi-threaded with 2 workers, as on
/// the machine the figures come from, so pool-vs-raw ratios compare like with
/// like.
pub fn callers_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("callers' runtime")
}

/// The pids (as `/proc` names them) of every process on the machine.
pub fn all_pids() -> impl Iterator<Item = String> {
    std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `pid` is a `test_server` child of this process, zombies included.
pub fn is_our_test_server(pid: &str) -> bool {
    // `pid (comm) state ppid ...`
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let me = std::process::id().to_string();
    stat.contains("(test_server) ")
        && stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1))
            == Some(me.as_str())
}
