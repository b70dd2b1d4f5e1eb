//! User and group ID maps: `/proc/PID/uid_map` and `gid_map` (user_namespaces(7), "User and
//! group ID mappings"). The one writer of them in the workspace: [`crate::rootless`] writes the
//! one-line maps of rootless mode with it, `user-demo` the maps its lessons write from outside,
//! and a runtime can write a container's.

use std::fmt;

use anyhow::{Context, Result};

/// One line of a uid_map or gid_map: `count` IDs from `inside` map to `count` IDs from `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdRange {
    /// One ID: `outside` is `inside` in the namespace.
    pub fn one(inside: u32, outside: u32) -> IdRange {
        IdRange {
            inside,
            outside,
            count: 1,
        }
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

/// The text of a map: one `INSIDE OUTSIDE COUNT` line per range.
pub fn map_text(ranges: &[IdRange]) -> String {
    ranges.iter().map(|r| format!("{r}\n")).collect()
}

/// Write the maps of process `pid` (a PID, or `"self"`): `uid_map`, then `deny` into
/// `setgroups`, then `gid_map`. A parent writes a child's from outside while the child waits
/// (as a runtime, or newuidmap(1), does); a process that has just unshared its user namespace
/// writes its own.
pub fn write_maps(pid: &str, uids: &[IdRange], gids: &[IdRange]) -> Result<()> {
    let base = format!("/proc/{pid}");
    // lab:begin user-write-maps
    std::fs::write(format!("{base}/uid_map"), map_text(uids))
        .with_context(|| format!("write({base}/uid_map)"))?;
    // gid_map: an unprivileged writer must deny setgroups(2) first (USER-4).
    std::fs::write(format!("{base}/setgroups"), "deny")
        .with_context(|| format!("write({base}/setgroups)"))?;
    std::fs::write(format!("{base}/gid_map"), map_text(gids))
        .with_context(|| format!("write({base}/gid_map)"))?;
    // lab:end user-write-maps
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_written_one_line_per_range() {
        let ranges = [
            IdRange::one(0, 1000),
            IdRange {
                inside: 1,
                outside: 100_000,
                count: 65536,
            },
        ];
        assert_eq!(map_text(&ranges), "0 1000 1\n1 100000 65536\n");
    }
}
