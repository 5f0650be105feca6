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
