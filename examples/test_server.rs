//! A small stateful MCP server on stdio, used by this crate's tests, benches and
//! quickstart. Its tools are `increment` (a per-process counter, so a client can
//! tell whether two calls reached the same session), `echo {text}`, `sleep {ms}`
//! (ends early when the request is cancelled), `cancelled` (how many `sleep`
//! calls were cancelled), `progress {steps}` (reports progress),
//! `announce_tools_changed` (sends `tools/list_changed`), `pid`, `crash` (exits at once
//! without replying), `spawn_child` (starts a detached `sleep 300` grandchild
//! and returns its pid), `spawn_detached` (the same, in a session of its own) and `env {name}`. Flags make it misbehave on purpose:
//! `--pid-file PATH` appends its pid to PATH, `--ignore-eof` keeps running after
//! stdin closes, `--no-initialize` never answers, `--exit-before-initialize`
//! exits with code 2 at once, `--legacy-only` knows only `initialize`,
//! `--garbage-stdout` answers the first line with
//! non-JSON-RPC output and exits with code 3, and `--stderr-flood BYTES` writes
//! BYTES of log lines to stderr before serving. It always logs
//! `test_server: started pid {pid}` to stderr.

#[path = "support/test_server.rs"]
mod test_server;

use test_server::Options;

#[tokio::main]
async fn main() {
    test_server::run_stdio(Options::from_args(std::env::args().skip(1))).await;
}
