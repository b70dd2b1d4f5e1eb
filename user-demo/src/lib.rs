//! User namespaces: a process gets its own user and group IDs and its own capabilities, which
//! count only for what its user namespace owns. They are what lets an ordinary user run a
//! container (rootless), so these demos run as an ordinary user, and as root.
//!
//! A child in a new user namespace waits on a pipe while its parent, outside, writes its ID
//! maps (`/proc/CHILD/uid_map`, `gid_map`): the order of the two sides is always the same.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use labkit::child::{Child, Reporter, clone_child};
use labkit::{Narrator, bad_input};
use nix::sched::CloneFlags;
use nix::unistd::{getegid, geteuid};

/// The overflow ID ("nobody"): what an unmapped ID looks like (`/proc/sys/kernel/overflowuid`).
pub const NOBODY: u32 = 65534;

pub use labkit::idmap::IdRange;

/// Parse `inside:outside:count` (as `newuidmap` takes its ranges).
pub fn parse_range(text: &str) -> Result<IdRange> {
    let parts: Vec<&str> = text.split(':').collect();
    let [inside, outside, count] = parts[..] else {
        return Err(bad_input(format!(
            "--map {text:?}: expected INSIDE:OUTSIDE:COUNT, for example 0:1000:1"
        )));
    };
    let num = |what: &str, v: &str| -> Result<u32> {
        v.parse().map_err(|_| {
            bad_input(format!(
                "--map {text:?}: {what} {v:?} is not a number from 0 to 4294967295"
            ))
        })
    };
    let range = IdRange {
        inside: num("INSIDE", inside)?,
        outside: num("OUTSIDE", outside)?,
        count: num("COUNT", count)?,
    };
    if range.count == 0 {
        return Err(bad_input(format!(
            "--map {text:?}: COUNT must be at least 1"
        )));
    }
    for (what, start) in [("INSIDE", range.inside), ("OUTSIDE", range.outside)] {
        if u64::from(start) + u64::from(range.count) > u64::from(u32::MAX) {
            return Err(bad_input(format!(
                "--map {text:?}: {what} + COUNT goes past 4294967295"
            )));
        }
    }
    Ok(range)
}

/// Write a child's maps from outside, the way a runtime (or newuidmap) does, with labkit's one
/// writer ([`labkit::idmap::write_maps`]), and say what was written.
fn write_maps(out: &mut Narrator, pid: i32, uids: &[IdRange], gids: &[IdRange]) -> Result<()> {
    labkit::idmap::write_maps(&pid.to_string(), uids, gids)?;
    let show = |r: &[IdRange]| {
        r.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    out.step(
        "parent",
        format!("write(/proc/{pid}/uid_map, \"{}\")", show(uids)),
    );
    // The kernel's answer, not the intention: what /proc/PID/setgroups says now.
    let setgroups = std::fs::read_to_string(format!("/proc/{pid}/setgroups"))
        .with_context(|| format!("read /proc/{pid}/setgroups"))?;
    out.step(
        "parent",
        format!(
            "write(/proc/{pid}/gid_map, \"{}\") (/proc/{pid}/setgroups reads {:?})",
            show(gids),
            setgroups.trim()
        ),
    );
    Ok(())
}

/// Start a child in a new user namespace (and the namespaces in `more`) that reports what it is
/// before its maps exist and waits for them.
fn start_child<F>(out: &mut Narrator, more: CloneFlags, body: F) -> Result<Child>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let mut child = clone_child(CloneFlags::CLONE_NEWUSER | more, |c| {
        c.speaker("child");
        c.ready_and_wait()?; // until the parent has written the maps
        body(c)
    })?;
    let flags = labkit::child::flag_names(CloneFlags::CLONE_NEWUSER | more);
    out.step(
        "parent",
        format!("clone({flags} | SIGCHLD) -> child pid {}", child.pid()),
    );
    child.relay_until_ready(out, "child")?;
    Ok(child)
}

/// The maps to use by default: the caller's own IDs to 0 inside, the only map an unprivileged
/// process may write.
pub fn default_ranges() -> (Vec<IdRange>, Vec<IdRange>) {
    (
        vec![IdRange {
            inside: 0,
            outside: geteuid().as_raw(),
            count: 1,
        }],
        vec![IdRange {
            inside: 0,
            outside: getegid().as_raw(),
            count: 1,
        }],
    )
}

mod ids;
pub use ids::{check_ranges, ids};
mod capabilities;
pub use capabilities::capabilities;
mod setgroups;
pub use setgroups::setgroups_rule;
mod owner;
pub use owner::{check_privilege_for, ownership};
