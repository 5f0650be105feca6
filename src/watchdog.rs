//! A host that dies takes its servers with it: one small `/bin/sh` process
//! per pool holds the read end of a pipe from the host and the list of the
//! pool's server process groups, sent over that pipe as they come and go.
//! When the pipe reaches EOF (the host exited, however it exited: `kill -9`,
//! the OOM killer, an abort), it kills every group it still knows and exits.
//!
//! Orderly closes do not involve it: a server's group is taken off its list
//! once the pool has reaped the server.

use std::{
    io::Write,
    os::unix::process::CommandExt,
    process::{Child, ChildStdin, Command, Stdio},
    time::Duration,
};

use parking_lot::Mutex;

/// The watchdog's program: read `+ PGID` and `- PGID` lines until EOF, then
/// kill what is left. A shell, so the crate ships no binary and needs no
/// `unsafe`; it reads a line per server start and end.
const SCRIPT: &str = r#"
groups=" "
while IFS= read -r line; do
  case "$line" in
    "+ "*) groups="$groups${line#+ } " ;;
    "- "*) g=${line#- }
           case "$groups" in *" $g "*) groups="${groups%% $g *} ${groups#* $g }" ;; esac ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
"#;

/// The pool's watchdog, started with its first stdio server.
#[derive(Default)]
pub(crate) struct Watchdog(Mutex<Option<Running>>);

struct Running {
    child: Child,
    pipe: ChildStdin,
}

impl Watchdog {
    /// Puts a server's process group on the watchdog's list.
    pub(crate) fn watch(&self, group: u32) {
        self.send(&format!("+ {group}\n"), true);
    }

    /// Takes a reaped server's group off the list.
    pub(crate) fn forget(&self, group: u32) {
        self.send(&format!("- {group}\n"), false);
    }

    fn send(&self, line: &str, start: bool) {
        let mut running = self.0.lock();
        if running.is_none() && start {
            match start_watchdog() {
                Ok(started) => *running = Some(started),
                Err(e) => {
                    tracing::warn!(%e, "could not start the watchdog; servers may outlive a host that dies");
                    return;
                }
            }
        }
        if let Some(r) = running.as_mut()
            && let Err(e) = r.pipe.write_all(line.as_bytes())
        {
            tracing::warn!(%e, "the watchdog is gone; servers may outlive a host that dies");
            *running = None;
        }
    }
}

fn start_watchdog() -> std::io::Result<Running> {
    let mut child = Command::new("/bin/sh")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group: a Ctrl-C for the host's group must not reach it.
        .process_group(0)
        .spawn()?;
    let pipe = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("watchdog stdin was not piped"))?;
    Ok(Running { child, pipe })
}

impl Drop for Watchdog {
    /// The pool is gone and its servers with it: EOF ends the watchdog,
    /// which is then reaped off the dropping thread.
    fn drop(&mut self) {
        let Some(Running { mut child, pipe }) = self.0.get_mut().take() else {
            return;
        };
        drop(pipe);
        let reap = move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("mcp-pool-reap".into())
            .spawn(reap)
        {
            tracing::warn!(%e, "could not start a thread to reap the watchdog");
        }
    }
}
