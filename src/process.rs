//! A stdio server's child process: spawned in its own process group, stderr
//! drained into `tracing`, torn down within a budget and always reaped.

use std::{io, process::Stdio as StdStdio, sync::Arc, time::Duration};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, ChildStderr, ChildStdin, ChildStdout, Command},
    task::JoinHandle,
    time::timeout,
};
use tracing::Instrument;

use crate::{
    config::{DEFAULT_ENV_VARS, Stdio},
    watchdog::Watchdog,
};

/// After `SIGKILL` a process exits at once unless it is stuck in the kernel;
/// this only stops a teardown from hanging on such a process.
pub(crate) const REAP_AFTER_KILL: Duration = Duration::from_secs(2);
/// How long to let the stderr reader reach EOF after the kill.
pub(crate) const STDERR_GRACE: Duration = Duration::from_millis(200);
/// Longest stderr line forwarded as one event; longer lines are split.
const MAX_STDERR_LINE: u64 = 8 * 1024;

/// How a server process ended during teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Exited by itself after its stdin closed, or had already died.
    Exited,
    /// Needed `SIGTERM`.
    Terminated,
    /// Needed `SIGKILL`: it ignored both its stdin closing and `SIGTERM`.
    Killed,
}

pub(crate) struct ServerProcess {
    /// Taken only by `Drop`, to be reaped on a thread of its own.
    child: Option<Child>,
    /// The process group, which is the child's pid; `None` once it has been
    /// killed after the leader was reaped, so `Drop` cannot hit a reused pid.
    group: Option<Pid>,
    stderr: Option<JoinHandle<()>>,
    /// Kills the group if the host dies; told when the group is gone.
    watchdog: Option<Arc<Watchdog>>,
    /// The server's descendants seen at the start of teardown, with their
    /// start times: those that left its process group (`setsid`, as a
    /// browser does) are killed by pid.
    descendants: Vec<(Pid, u64)>,
}

impl ServerProcess {
    /// Starts the server. Must run inside the runtime that will own it.
    pub(crate) fn spawn(
        cfg: &Stdio,
        watchdog: Option<Arc<Watchdog>>,
    ) -> io::Result<(Self, ChildStdout, ChildStdin)> {
        let mut cmd = Command::new(&cfg.program);
        if !cfg.inherit_env {
            cmd.env_clear();
            for name in DEFAULT_ENV_VARS {
                if let Some(value) = std::env::var_os(name) {
                    cmd.env(name, value);
                }
            }
        }
        cmd.args(&cfg.args)
            .envs(cfg.env.iter().map(|(k, v)| (k, v)))
            .stdin(StdStdio::piped())
            .stdout(StdStdio::piped())
            .stderr(StdStdio::piped())
            // Its own group, so teardown reaches whatever the server started.
            .process_group(0)
            // Covers a runtime dropped under the owner task.
            .kill_on_drop(true);
        if let Some(dir) = &cfg.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn()?;
        let group = child.id().map(|pid| Pid::from_raw(pid as i32));
        if let (Some(watchdog), Some(pid)) = (&watchdog, child.id()) {
            watchdog.watch(pid);
        }
        let (stdout, stdin) = match (child.stdout.take(), child.stdin.take()) {
            (Some(out), Some(inp)) => (out, inp),
            _ => return Err(io::Error::other("child stdio was not piped")),
        };
        let stderr = child
            .stderr
            .take()
            .map(|e| tokio::spawn(drain(e).in_current_span()));
        Ok((
            Self {
                child: Some(child),
                group,
                stderr,
                watchdog,
                descendants: Vec::new(),
            },
            stdout,
            stdin,
        ))
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.group.map(|p| p.as_raw() as u32)
    }

    /// Resolves when the server process exits. Cancel safe.
    pub(crate) async fn exited(&mut self) {
        match &mut self.child {
            Some(child) => drop(child.wait().await),
            None => std::future::pending().await,
        }
    }

    /// Notes the server's descendants, while they can still be found
    /// through their parents: call before the server is told to stop.
    pub(crate) fn note_descendants(&mut self) {
        // Once the server is reaped its pid may be another process's, and
        // its children have gone to init: nothing to find through it.
        if let Some(child) = &mut self.child
            && matches!(child.try_wait(), Ok(Some(_)) | Err(_))
        {
            return;
        }
        if let Some(group) = self.group {
            self.descendants = crate::proc::descendants(group);
        }
    }

    /// Ends a server whose stdin is closed (or closing): half the budget to
    /// exit by itself, `SIGTERM` and the other half, then `SIGKILL`. Then
    /// kills the rest of its process group and reaps it.
    pub(crate) async fn shut_down(&mut self, budget: Duration) -> Exit {
        let half = budget / 2;
        let exit = if self.wait_for(half).await {
            Exit::Exited
        } else {
            self.signal_group(Signal::SIGTERM);
            if self.wait_for(budget - half).await {
                Exit::Terminated
            } else {
                Exit::Killed
            }
        };
        self.kill().await;
        exit
    }

    /// `SIGKILL` to the whole group, then reap the server.
    pub(crate) async fn kill(&mut self) {
        self.signal_group(Signal::SIGKILL);
        if self.wait_for(REAP_AFTER_KILL).await {
            // Reaped: nothing left for `Drop` to do.
            self.child = None;
        } else {
            tracing::warn!(pid = ?self.pid(), "server process did not exit after SIGKILL");
        }
        // The leader is reaped; kill whatever it started since, and the
        // descendants that left its group, then wait until they are really
        // gone: SIGKILL is asynchronous, and callers of close rely on
        // nothing of the server running afterwards.
        self.signal_group(Signal::SIGKILL);
        let strays = std::mem::take(&mut self.descendants);
        crate::proc::kill_all(&strays);
        if let Some(group) = self.group.take() {
            let deadline = tokio::time::Instant::now() + REAP_AFTER_KILL;
            while crate::proc::group_has_running_member(group) || crate::proc::any_running(&strays)
            {
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(?group, "server's child processes survived SIGKILL");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if let Some(watchdog) = &self.watchdog {
                watchdog.forget(group.as_raw() as u32);
            }
        }
        if let Some(mut task) = self.stderr.take() {
            // Ends at EOF, which the kill above brings, unless a process that
            // left the group holds the pipe: never wait long, never leak it.
            if timeout(STDERR_GRACE, &mut task).await.is_err() {
                tracing::debug!("stderr still held open after kill; stopped reading it");
                task.abort();
            }
        }
    }

    async fn wait_for(&mut self, limit: Duration) -> bool {
        match &mut self.child {
            Some(child) => matches!(timeout(limit, child.wait()).await, Ok(Ok(_))),
            None => true,
        }
    }

    fn signal_group(&self, signal: Signal) {
        if let Some(group) = self.group {
            match killpg(group, signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => tracing::warn!(%e, ?signal, "failed to signal server process group"),
            }
        }
    }
}

impl Drop for ServerProcess {
    /// The synchronous last resort when the owner task is dropped without
    /// finishing (its runtime shut down): nothing in the group survives.
    fn drop(&mut self) {
        self.signal_group(Signal::SIGKILL);
        crate::proc::kill_all(&self.descendants);
        if let Some(task) = self.stderr.take() {
            task.abort();
        }
        // Its runtime may be gone, and with it tokio's reaping of dropped
        // children: reap it here, off the dropping thread, so no zombie
        // waits for some later spawn.
        if let Some(mut child) = self.child.take() {
            let (watchdog, group) = (self.watchdog.clone(), self.group);
            let reap = move || {
                let deadline = std::time::Instant::now() + REAP_AFTER_KILL;
                while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if let (Some(watchdog), Some(group), Ok(Some(_))) =
                    (watchdog, group, child.try_wait())
                {
                    watchdog.forget(group.as_raw() as u32);
                }
            };
            if let Err(e) = std::thread::Builder::new()
                .name("mcp-pool-reap".into())
                .spawn(reap)
            {
                tracing::warn!(%e, "could not start a thread to reap a server process");
            }
        }
    }
}

/// Forwards the server's stderr to `tracing`. A server must never block on a
/// full stderr pipe, so this reads until EOF whatever the subscriber does.
async fn drain(stderr: ChildStderr) {
    let mut reader = BufReader::with_capacity(512, stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_STDERR_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                tracing::debug!(target: "mcp_session_pool::stderr", "{}", text.trim_end());
            }
            Err(e) => {
                tracing::debug!(%e, "stopped reading server stderr");
                break;
            }
        }
    }
}
