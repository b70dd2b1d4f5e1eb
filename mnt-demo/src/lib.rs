//! Mount namespaces: each has its own list of mounts, copied from its parent's at creation;
//! propagation (shared, slave, private, unbindable) decides which later mount events cross from
//! one mount to another; `pivot_root` locks a process into a new root where `chroot` does not.
//!
//! Every lesson runs in a **lab**: a child in a new mount namespace that first makes every mount
//! private (so nothing it does can reach the host), then mounts a tmpfs on `/tmp` as its scratch
//! area (so nothing it creates touches the host's disk). The host's mount table is the same
//! before and after, and there is nothing to clean up: the lab's mounts end with its namespace.
#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use labkit::child::Reporter;
use labkit::{Narrator, bad_input};
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;
use procfs::process::{MountInfo, MountOptFields, Process};

/// Where the lab works: under its own tmpfs on /tmp.
pub const LAB: &str = "/tmp/lab";

/// The mount table of a process (`None`: this one), from `/proc/PID/mountinfo`.
pub fn mountinfo(pid: Option<i32>) -> Result<Vec<MountInfo>> {
    let process = match pid {
        Some(pid) => Process::new(pid).map_err(|_| {
            bad_input(format!(
                "no process with PID {pid} (/proc/{pid} does not exist)"
            ))
        })?,
        None => Process::myself().context("/proc/self")?,
    };
    let path = format!(
        "/proc/{}/mountinfo",
        pid.map_or("self".to_string(), |p| p.to_string())
    );
    Ok(process.mountinfo().with_context(|| path)?.0)
}

/// The mount on top at `path` (the last one listed there), if `path` is a mount point.
pub fn mount_at<'a>(table: &'a [MountInfo], path: &str) -> Option<&'a MountInfo> {
    table
        .iter()
        .rev()
        .find(|m| m.mount_point == Path::new(path))
}

/// Whether `path` is a mount point in the mount namespace of `pid` (`None`: this process).
fn is_mount_point(pid: Option<i32>, path: &str) -> Result<bool> {
    Ok(mount_at(&mountinfo(pid)?, path).is_some())
}

/// A mount's propagation as mountinfo shows it: `shared:N`, `master:N`, both, `unbindable`, or
/// (no optional field) `private`.
pub fn propagation(m: &MountInfo) -> String {
    let fields: Vec<String> = m
        .opt_fields
        .iter()
        .map(|f| match f {
            MountOptFields::Shared(n) => format!("shared:{n}"),
            MountOptFields::Master(n) => format!("master:{n}"),
            MountOptFields::PropagateFrom(n) => format!("propagate_from:{n}"),
            MountOptFields::Unbindable => "unbindable".to_string(),
        })
        .collect();
    if fields.is_empty() {
        "private".to_string()
    } else {
        fields.join(" ")
    }
}

fn mount_tmpfs(path: &str) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("mkdir({path})"))?;
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=4m"),
    )
    .with_context(|| format!("mount(\"tmpfs\", \"{path}\", \"tmpfs\")"))
}

fn bind(from: &str, to: &str) -> nix::Result<()> {
    mount(Some(from), to, None::<&str>, MsFlags::MS_BIND, None::<&str>)
}

/// Run `body` in a lab: a child in a new mount namespace whose mounts were all made private,
/// with a tmpfs on /tmp as its scratch area. Says whether the host's mount table changed.
pub fn in_lab<F>(out: &mut Narrator, body: F) -> Result<()>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let before = fs::read_to_string("/proc/self/mountinfo").context("/proc/self/mountinfo")?;
    // First, labkit::lab::in_lab cuts propagation to and from the host (make_root_private).
    labkit::lab::in_lab(out, CloneFlags::empty(), "", |r| {
        // ANCHOR: lab
        // A scratch area only this namespace sees: nothing is written to the host's /tmp.
        mount(
            Some("tmpfs"),
            "/tmp",
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=16m"),
        )
        .context("mount(\"tmpfs\", \"/tmp\", \"tmpfs\")")?;
        // ANCHOR_END: lab
        r.step("mount(NULL, \"/\", NULL, MS_REC | MS_PRIVATE, NULL)");
        r.step(
            "mount(\"tmpfs\", \"/tmp\", \"tmpfs\", 0, NULL): scratch space for this namespace only",
        );
        fs::create_dir_all(LAB).with_context(|| format!("mkdir({LAB})"))?;
        body(r)
    })?;
    let after = fs::read_to_string("/proc/self/mountinfo").context("/proc/self/mountinfo")?;
    // What the lab could have leaked is a mount that appears here. (One may disappear while it
    // runs: removing a mount point elsewhere on the machine detaches its copies in every mount
    // namespace, and another process may do that at any time.)
    let n = before.lines().count();
    let new: Vec<&str> = after
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .collect();
    out.say(
        "host",
        match new.first() {
            None => format!("/proc/self/mountinfo: {n} mounts before, and no new one after"),
            Some(line) => format!(
                "/proc/self/mountinfo has {} new mount(s) after the lab, the first: {line}",
                new.len()
            ),
        },
    );
    Ok(())
}

mod show;
pub use show::show;
mod copy;
pub use copy::copy;
mod propagation;
pub use propagation::propagation_lab;
mod root;
pub use root::root_propagation;
mod chroot;
pub use chroot::chroot_vs_pivot;
