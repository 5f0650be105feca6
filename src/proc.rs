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
/// At teardown only. Walks the kernel's per-thread `children` lists, so the
/// cost grows with the server's own tree, not with every process on the
/// machine (a scan of `/proc` per teardown made closing 1000 servers take
/// seconds); kernels without those lists get the scan.
pub(crate) fn descendants(root: Pid) -> Vec<(Pid, u64)> {
    let mut found: Vec<(Pid, u64)> = Vec::new();
    let mut frontier = vec![root.as_raw()];
    while let Some(parent) = frontier.pop() {
        let Some(children) = children_of(parent) else {
            return descendants_by_scan(root);
        };
        for pid in children {
            if found.iter().any(|(p, _)| p.as_raw() == pid) {
                continue;
            }
            if let Some((_, _, _, start)) = stat(&pid.to_string()) {
                found.push((Pid::from_raw(pid), start));
                frontier.push(pid);
            }
        }
    }
    found
}

/// The children of every thread of `pid` (a child's parent is the thread
/// that forked it); empty if `pid` is gone, `None` if this kernel does not
/// list children.
fn children_of(pid: i32) -> Option<Vec<i32>> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Some(Vec::new());
    };
    let mut children = Vec::new();
    for thread in threads.flatten() {
        match std::fs::read_to_string(thread.path().join("children")) {
            Ok(list) => children.extend(
                list.split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The thread may just have exited; the kernel may lack the
                // file altogether.
                if thread.path().exists() {
                    return None;
                }
            }
            Err(_) => {}
        }
    }
    Some(children)
}

/// [`descendants`] through one pass over all of `/proc`.
fn descendants_by_scan(root: Pid) -> Vec<(Pid, u64)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_lists_find_what_a_scan_finds() {
        // A shell with two children, one of which has a child of its own.
        let mut sh = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30 & (sleep 30 & wait) & wait"])
            .spawn()
            .unwrap();
        let root = Pid::from_raw(sh.id() as i32);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let found = loop {
            let found = descendants(root);
            if found.len() == 3 || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let mut by_lists: Vec<_> = found.iter().map(|(p, s)| (p.as_raw(), *s)).collect();
        let mut by_scan: Vec<_> = descendants_by_scan(root)
            .iter()
            .map(|(p, s)| (p.as_raw(), *s))
            .collect();
        by_lists.sort();
        by_scan.sort();
        kill_all(&found);
        let _ = sh.kill();
        let _ = sh.wait();
        assert_eq!(by_lists.len(), 3, "{by_lists:?}");
        assert_eq!(by_lists, by_scan);
    }

    #[test]
    fn a_child_forked_by_another_thread_is_found() {
        // Servers on Node, Go or the JVM fork from threads other than their
        // main one; the child is listed under that thread.
        let mut child = std::thread::spawn(|| {
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap()
        })
        .join()
        .unwrap();
        let me = Pid::from_raw(std::process::id() as i32);
        let found = descendants(me)
            .iter()
            .any(|(p, _)| p.as_raw() == child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "a child forked by another thread was missed");
    }
}
