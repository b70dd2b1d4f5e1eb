//! copy (MNT-1, MNT-2).

use std::fs;
use std::path::PathBuf;

use crate::{LAB, in_lab, is_mount_point, mount_tmpfs, mountinfo};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::clone_child;
use nix::sched::CloneFlags;

/// The line of a `/proc/PID/<file>` that mentions `path` as a mount point.
fn line_for(pid: i32, file: &str, path: &str) -> Result<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/{file}"))
        .with_context(|| format!("/proc/{pid}/{file}"))?;
    let needle = format!(" {path} ");
    Ok(text
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or("(none)")
        .trim()
        .to_string())
}

/// `copy`: a new mount namespace starts with a copy of its parent's mounts; after that, mounts
/// on either side are invisible on the other. Shows the three `/proc` files that describe them.
pub fn copy(out: &mut Narrator) -> Result<()> {
    in_lab(out, |lab| {
        let inside = format!("{LAB}/inside");
        let outside = format!("{LAB}/outside");
        fs::create_dir_all(&inside)?;
        fs::create_dir_all(&outside)?;
        let parent = mountinfo(None)?;
        lab.step(format!(
            "read /proc/self/mountinfo: {} mounts",
            parent.len()
        ));
        let parent_points: Vec<PathBuf> = parent.iter().map(|m| m.mount_point.clone()).collect();
        let parent_ids: Vec<i32> = parent.iter().map(|m| m.mnt_id).collect();
        let mut child = clone_child(CloneFlags::CLONE_NEWNS, |c| {
            c.speaker("child");
            // ANCHOR: copy
            let copied = mountinfo(None)?;
            let same_points = copied
                .iter()
                .map(|m| &m.mount_point)
                .eq(parent_points.iter());
            let new_ids = copied.iter().all(|m| !parent_ids.contains(&m.mnt_id));
            // ANCHOR_END: copy
            c.step(format!(
                "read /proc/self/mountinfo: {} mounts; same mount points as the parent: {}; all mount IDs new: {}",
                copied.len(),
                yes(same_points),
                yes(new_ids)
            ));
            mount_tmpfs(&inside)?;
            c.step(format!("mount(\"tmpfs\", \"{inside}\", \"tmpfs\")"));
            c.ready_and_wait()?;
            c.step(format!(
                "is {outside} a mount point here? {}",
                yes(is_mount_point(None, &outside)?)
            ));
            Ok(0)
        })?;
        let pid = child.pid().as_raw();
        lab.step(format!("clone(CLONE_NEWNS | SIGCHLD) -> child pid {pid}"));
        child.forward_until_ready(lab)?;
        lab.step(format!(
            "is {inside} a mount point? in /proc/{pid}/mountinfo: {}; in /proc/self/mountinfo: {}",
            yes(is_mount_point(Some(pid), &inside)?),
            yes(is_mount_point(None, &inside)?)
        ));
        lab.say(format!(
            "the child's new mount, in the three files of /proc/{pid}:"
        ));
        lab.say(format!(
            "  mounts:     {}",
            line_for(pid, "mounts", &inside)?
        ));
        lab.say(format!(
            "  mountinfo:  {}",
            line_for(pid, "mountinfo", &inside)?
        ));
        lab.say(format!(
            "  mountstats: {}",
            line_for(pid, "mountstats", &inside)?
        ));
        mount_tmpfs(&outside)?;
        lab.step(format!("mount(\"tmpfs\", \"{outside}\", \"tmpfs\")"));
        child.release()?;
        child.forward(lab)?;
        Ok(0)
    })
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
