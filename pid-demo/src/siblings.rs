//! siblings (PID-1).

use crate::host_pid;
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::clone_child;
use labkit::narrate::table;
use labkit::ns::{self};
use nix::sched::CloneFlags;
use nix::unistd::getpid;

/// `siblings`: two PID namespaces side by side, each with its own PID 1.
pub fn siblings(out: &mut Narrator) -> Result<()> {
    let mut children = Vec::new();
    for name in ["A", "B"] {
        let mut child = clone_child(CloneFlags::CLONE_NEWPID, |r| {
            r.speaker(name);
            r.step(format!("getpid() -> {}", getpid()));
            r.data(format!("{} {}", ns::inode(None, "pid")?, host_pid()?));
            // Stay alive until both exist, so the two PID 1s are there at the same time.
            r.ready_and_wait()?;
            Ok(0)
        })?;
        out.step(
            "host",
            format!(
                "clone(CLONE_NEWPID | SIGCHLD) -> child {name}, pid {}",
                child.pid()
            ),
        );
        let data = child.relay_until_ready(out, name)?;
        children.push((name, child, data));
    }
    let mut rows = vec![vec![
        "".to_string(),
        "getpid() inside".into(),
        "PID namespace".into(),
        "PID in the host".into(),
    ]];
    for (name, _, data) in &children {
        let (inode, host) = data[0].split_once(' ').context("sibling data")?;
        rows.push(vec![
            format!("child {name}"),
            "1".into(),
            format!("pid:[{inode}]"),
            format!("pid {host}"),
        ]);
    }
    out.raw("");
    out.raw(table(&rows).trim_end());
    out.raw("");
    for (name, mut child, _) in children {
        child.release()?;
        child.finish(out, name)?;
    }
    Ok(())
}
