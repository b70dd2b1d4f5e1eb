//! ns (CG-16).

use std::fs;

use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::clone_child;
use nix::sched::CloneFlags;

/// `ns`: in a new cgroup namespace, `/proc/self/cgroup` shows the cgroups relative to where the
/// namespace was made: `/`.
pub fn cgroup_ns(out: &mut Narrator) -> Result<()> {
    let own = fs::read_to_string("/proc/self/cgroup").context("/proc/self/cgroup")?;
    out.step("demo", "read /proc/self/cgroup");
    for line in own.lines() {
        out.say("demo", line);
    }
    let child = clone_child(CloneFlags::CLONE_NEWCGROUP, |c| {
        c.speaker("child");
        // ANCHOR: cgroupns
        let inside = fs::read_to_string("/proc/self/cgroup").context("/proc/self/cgroup")?;
        // ANCHOR_END: cgroupns
        c.step("read /proc/self/cgroup in the new cgroup namespace");
        for line in inside.lines() {
            c.say(line);
        }
        c.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    out.step(
        "demo",
        format!("clone(CLONE_NEWCGROUP | SIGCHLD) -> child pid {pid}"),
    );
    let mut child = child;
    child.relay_until_ready(out, "child")?;
    let outside = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("/proc/{pid}/cgroup"))?;
    let differ = outside
        .lines()
        .zip(own.lines())
        .filter(|(a, b)| a == b)
        .count();
    out.step("demo", format!("read /proc/{pid}/cgroup from outside: {differ} of {} lines as above (the same cgroups, seen from here)", outside.lines().count()));
    child.release()?;
    child.finish(out, "child")?;
    Ok(())
}
