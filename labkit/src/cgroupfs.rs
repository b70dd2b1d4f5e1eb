//! Which cgroup layout the host has, from `/proc/self/mountinfo`:
//!
//! - **v1** (legacy): one `cgroup` mount per hierarchy, each with its controllers
//!   (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/cpu,cpuacct`, ...);
//! - **v2** (unified): a single `cgroup2` mount, its controllers in `cgroup.controllers`;
//! - **hybrid**: v1 hierarchies for the controllers plus a `cgroup2` mount (often
//!   `/sys/fs/cgroup/unified`) holding whatever controllers no v1 hierarchy took.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The three layouts (and none at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    V1,
    V2,
    Hybrid,
    None,
}

impl fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayoutKind::V1 => "cgroup v1 (legacy)",
            LayoutKind::V2 => "cgroup v2 (unified)",
            LayoutKind::Hybrid => "hybrid (v1 controllers plus a cgroup2 mount)",
            LayoutKind::None => "no cgroup filesystem mounted",
        })
    }
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// 1 or 2.
    pub version: u8,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its controllers (v1: from the mount options, including `name=...`; v2: `cgroup.controllers`).
    pub controllers: Vec<String>,
}

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub kind: LayoutKind,
    pub hierarchies: Vec<Hierarchy>,
}

/// Undo mountinfo's octal escapes (`\040` for a space).
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// v1 super options that are not controllers.
const V1_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "clone_children",
    "xattr",
    "cpuset_v2_mode",
    "favordynmods",
];

/// Work out the layout from mountinfo text; `controllers_of` reads a v2 mount's
/// `cgroup.controllers` (a parameter so tests can use fixtures).
pub fn layout_from(mountinfo: &str, controllers_of: impl Fn(&Path) -> Option<String>) -> Layout {
    let mut hierarchies = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(mount_point), Some(fstype)) = (left.get(4), right.first()) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape(mount_point));
        match *fstype {
            "cgroup" => {
                let opts = right.get(2).copied().unwrap_or("");
                let controllers = opts
                    .split(',')
                    .filter(|o| !V1_OPTIONS.contains(o) && !o.starts_with("release_agent="))
                    .map(String::from)
                    .collect();
                hierarchies.push(Hierarchy {
                    version: 1,
                    mount_point,
                    controllers,
                });
            }
            "cgroup2" => {
                let controllers = controllers_of(&mount_point)
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
                hierarchies.push(Hierarchy {
                    version: 2,
                    mount_point,
                    controllers,
                });
            }
            _ => {}
        }
    }
    let v1 = hierarchies.iter().any(|h| h.version == 1);
    let v2 = hierarchies.iter().any(|h| h.version == 2);
    let kind = match (v1, v2) {
        (true, true) => LayoutKind::Hybrid,
        (true, false) => LayoutKind::V1,
        (false, true) => LayoutKind::V2,
        (false, false) => LayoutKind::None,
    };
    Layout { kind, hierarchies }
}

/// The layout of this host, as this process sees it.
pub fn detect() -> Result<Layout> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("/proc/self/mountinfo")?;
    Ok(layout_from(&mountinfo, |mp| {
        std::fs::read_to_string(mp.join("cgroup.controllers")).ok()
    }))
}

/// One line of `/proc/PID/cgroup`: `hierarchy-ID:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The hierarchy ID (0 for v2).
    pub id: u32,
    /// The controllers of that hierarchy, empty for v2.
    pub controllers: String,
    /// The cgroup's path from the hierarchy's root.
    pub path: String,
}

/// Parse `/proc/PID/cgroup` text.
pub fn parse_proc_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?.parse().ok()?;
            let controllers = parts.next()?.to_string();
            let path = parts.next()?.to_string();
            Some(Membership {
                id,
                controllers,
                path,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_hosts_are_recognised() {
        let layout = layout_from(HYBRID, |_| Some("hugetlb\n".into()));
        assert_eq!(layout.kind, LayoutKind::Hybrid);
        assert_eq!(layout.hierarchies.len(), 4);
        assert_eq!(layout.hierarchies[2].controllers, vec!["name=systemd"]);
        assert_eq!(layout.hierarchies[3].controllers, vec!["hugetlb"]);
    }

    #[test]
    fn pure_v2_and_v1_hosts_are_recognised() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let layout = layout_from(v2, |p| {
            assert_eq!(p, Path::new("/sys/fs/cgroup"));
            Some("cpuset cpu io memory pids".into())
        });
        assert_eq!(layout.kind, LayoutKind::V2);
        assert_eq!(layout.hierarchies[0].controllers.len(), 5);
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        assert_eq!(layout_from(v1, |_| None).kind, LayoutKind::V1);
        assert_eq!(layout_from("", |_| None).kind, LayoutKind::None);
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn proc_cgroup_lines_are_parsed() {
        let m = parse_proc_cgroup("4:memory:/a/b\n0::/\n");
        assert_eq!(
            m[0],
            Membership {
                id: 4,
                controllers: "memory".into(),
                path: "/a/b".into()
            }
        );
        assert_eq!(m[1].id, 0);
        assert_eq!(m[1].path, "/");
    }
}
