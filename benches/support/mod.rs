//! What the benchmarks share: the stdio test server binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `test_server` example binary next to this bench's profile directory:
/// target/<profile>/deps/<bench>-<hash> -> target/<profile>/examples/test_server.
///
/// `cargo bench` does not build examples, so a missing binary is built here.
/// This does not deadlock: cargo releases its build-directory lock before it
/// runs the bench executable.
pub fn server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory layout");
    let bin = profile_dir.join("examples").join("test_server");
    if !bin.exists() {
        let target_dir = profile_dir.parent().expect("target directory layout");
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--example", "test_server", "--target-dir"])
            .arg(target_dir);
        if profile_dir.file_name() == Some("release".as_ref()) {
            cargo.arg("--release");
        }
        eprintln!("building {} ...", bin.display());
        let status = cargo.status().expect("run cargo to build test_server");
        assert!(status.success(), "building test_server failed: {status}");
    }
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release --example test_server`",
        bin.display()
    );
    bin
}
