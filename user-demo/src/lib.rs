//! User namespaces: a process gets its own user and group IDs and its own capabilities, which
//! count only for what its user namespace owns. They are what lets an ordinary user run a
//! container (rootless), so these demos run as an ordinary user, and as root.
//!
//! A child in a new user namespace waits on a pipe while its parent, outside, writes its ID
//! maps (`/proc/CHILD/uid_map`, `gid_map`): the order of the two sides is always the same.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;

use anyhow::{Context, Result};
use labkit::child::{Child, Reporter, clone_child};
use labkit::{Narrator, bad_input};
use nix::sched::CloneFlags;
use nix::unistd::{getegid, geteuid};

/// The overflow ID ("nobody"): what an unmapped ID looks like (`/proc/sys/kernel/overflowuid`).
pub const NOBODY: u32 = 65534;

/// One line of a uid_map or gid_map: `count` IDs from `inside` map to `count` IDs from `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

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

fn map_text(ranges: &[IdRange]) -> String {
    ranges.iter().map(|r| format!("{r}\n")).collect()
}

// ANCHOR: write_maps
/// Write a child's maps from outside, the way a runtime (or newuidmap) does.
fn write_maps(out: &mut Narrator, pid: i32, uids: &[IdRange], gids: &[IdRange]) -> Result<()> {
    let base = format!("/proc/{pid}");
    // lab:begin user-write-maps tests=ids_are_nobody_until_mapped,ids_with_a_range_map_as_root
    // TODO(lab): write the child's uid_map and gid_map from outside, as a runtime does.
    // TODO(lab): Each map is written once, whole, in one write(2) of "INSIDE OUTSIDE COUNT" lines.
    // TODO(lab): For gid_map, setgroups(2) must be denied in that process first (USER-4).
    // lab:hint fs::write(format!("{base}/uid_map"), map_text(uids)); then "deny" into
    // lab:hint {base}/setgroups; then fs::write(format!("{base}/gid_map"), map_text(gids)).
    fs::write(format!("{base}/uid_map"), map_text(uids))
        .with_context(|| format!("write({base}/uid_map)"))?;
    // gid_map: an unprivileged writer must deny setgroups(2) first (USER-4).
    fs::write(format!("{base}/setgroups"), "deny")
        .with_context(|| format!("write({base}/setgroups)"))?;
    fs::write(format!("{base}/gid_map"), map_text(gids))
        .with_context(|| format!("write({base}/gid_map)"))?;
    // lab:end user-write-maps
    // ANCHOR_END: write_maps
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
    out.step(
        "parent",
        format!(
            "write(/proc/{pid}/setgroups, \"deny\"); write(/proc/{pid}/gid_map, \"{}\")",
            show(gids)
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
