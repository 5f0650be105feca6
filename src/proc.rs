//! Finding a server's processes through `/proc` (Linux): its process group,
//! and the descendants that left it. Elsewhere these find nothing, and only
//! the process group is reached.

use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::Pid,
};

/// `(state, ppid, pgrp, starttime)` of a process, from `/proc/<pid>/stat`.
fn stat(pid: &str) -> Option<(char, i32, i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`; comm may contain spaces and ')'.
    let (_, fields) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = fields.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let pgrp = fields.get(2)?.parse().ok()?;
    // Field 22 of the line, the 20th after `(comm)`.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, ppid, pgrp, start))
}

fn all_pids() -> Vec<String> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

/// Every descendant of `root` (not `root` itself), with its start time.
/// One pass over `/proc`, at teardown only.
pub(crate) fn descendants(root: Pid) -> Vec<(Pid, u64)> {
    let procs: Vec<(i32, i32, u64)> = all_pids()
        .iter()
        .filter_map(|p| {
            let (_, ppid, _, start) = stat(p)?;
            Some((p.parse().ok()?, ppid, start))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root.as_raw()];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &procs {
            if ppid == parent && !found.iter().any(|(p, _): &(Pid, u64)| p.as_raw() == pid) {
                found.push((Pid::from_raw(pid), start));
                frontier.push(pid);
            }
        }
    }
    found
}

/// Whether `pid` is still the process noted with `start`, and not a zombie.
fn still_running(pid: Pid, start: u64) -> bool {
    stat(&pid.as_raw().to_string()).is_some_and(|(state, _, _, s)| s == start && state != 'Z')
}

/// `SIGKILL` to each noted process that is still the one noted (a reused
/// pid is left alone).
pub(crate) fn kill_all(noted: &[(Pid, u64)]) {
    for &(pid, start) in noted {
        if still_running(pid, start) {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

pub(crate) fn any_running(noted: &[(Pid, u64)]) -> bool {
    noted.iter().any(|&(pid, start)| still_running(pid, start))
}

/// Whether any process of `group` still runs. Members that are zombies only
/// wait for init to reap them (they were reparented when the server died).
pub(crate) fn group_has_running_member(group: Pid) -> bool {
    if killpg(group, None) == Err(nix::errno::Errno::ESRCH) {
        return false;
    }
    let group = group.as_raw();
    all_pids()
        .iter()
        .any(|p| stat(p).is_some_and(|(state, _, pgrp, _)| pgrp == group && state != 'Z'))
}
