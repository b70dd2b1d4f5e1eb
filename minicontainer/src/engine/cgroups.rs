//! Step 2: cgroups. The groups for the spec's limits (`linux.resources`) and its device policy,
//! made with `cgroup_demo::cg` (the cgroups chapter's file layer) on v1, v2 or hybrid hosts:
//! on v1 a group per hierarchy, on v2 one group for every controller, each enabled from the
//! top down. Under `linux.cgroupsPath` when the spec names one, else under this process's own
//! cgroup. The container's first process is put in them before it is released.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cgroup_demo::cg::{self, Group, Version};
use labkit::{Narrator, bad_input};

use crate::spec::Plan;

/// The groups made for the limits: (hierarchy, the container's leaf, its parent), removed when
/// dropped, leaf first.
pub(crate) struct Limits {
    pub(crate) groups: Vec<(cg::Hierarchy, Group, Group)>,
}

impl Limits {
    /// The top group of each, with its cgroup version, as a record keeps them for `delete`.
    pub(crate) fn tops(&self) -> Vec<(PathBuf, String)> {
        self.groups
            .iter()
            .map(|(h, _, top)| (top.path.clone(), h.version.to_string()))
            .collect()
    }

    /// The `cgroup.procs` file of each leaf (what `exec` joins).
    pub(crate) fn procs(&self) -> Vec<PathBuf> {
        self.groups
            .iter()
            .map(|(_, leaf, _)| leaf.path.join("cgroup.procs"))
            .collect()
    }

    /// What a cgroup mount shows the container: in each hierarchy, its leaf, or else the group
    /// it inherits from this process (worked out here: inside, its cgroup namespace makes every
    /// path relative).
    pub(crate) fn view(&self) -> Result<Vec<cg::Hierarchy>> {
        Ok(cg::hierarchies()?
            .into_iter()
            .map(|mut h| {
                if let Some((_, leaf, _)) = self.groups.iter().find(|(l, _, _)| l.mount == h.mount)
                {
                    h.own = leaf.path.clone();
                }
                h
            })
            .collect())
    }
}

/// The controllers the spec's limits need, and with a cgroupsPath those a manager reads usage
/// from (memory, pids and cpu, where this host has them and this process may write: rootless,
/// runc skips what it cannot place too).
fn wanted(plan: &Plan, v1_devices: bool) -> Vec<&'static str> {
    let mut wanted: Vec<&str> = [
        plan.memory.map(|_| "memory"),
        plan.pids.map(|_| "pids"),
        (plan.cpu.is_some() || plan.cpu_shares.is_some()).then_some("cpu"),
        plan.cpuset.as_ref().map(|_| "cpuset"),
        v1_devices.then_some("devices"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if plan.cgroups_path.is_some() {
        for controller in ["memory", "pids", "cpu"] {
            let writable = cg::for_controller(controller, None)
                .is_ok_and(|h| nix::unistd::access(&h.own, nix::unistd::AccessFlags::W_OK).is_ok());
            if !wanted.contains(&controller) && writable {
                wanted.push(controller);
            }
        }
    }
    wanted
}

/// Make the groups for the spec's limits and, with `device_policy`, its device rules.
pub(crate) fn make(out: &mut Narrator, plan: &Plan, device_policy: bool) -> Result<Limits> {
    // The device policy goes to v1's devices controller where there is one, else to an eBPF
    // program on the v2 group. NSLAB_DEVICE_POLICY=bpf takes the v2 way on a hybrid host too
    // (the program then sits on the container's group in the unified hierarchy).
    let bpf = std::env::var_os("NSLAB_DEVICE_POLICY").is_some_and(|v| v == "bpf");
    let v1_devices = device_policy
        && !bpf
        && cg::for_controller("devices", None).is_ok_and(|h| h.version == Version::V1);
    let mut groups = Vec::new();
    // ANCHOR: make
    for controller in wanted(plan, v1_devices) {
        let at = group_for(&mut groups, plan, controller)?;
        let (h, leaf, _) = &groups[at];
        write_limits(plan, controller, h.version, leaf)?;
        out.step(
            "host",
            format!("{} {controller}: mkdir {}", h.version, leaf.path.display()),
        );
    }
    if device_policy && !v1_devices {
        super::devices::v2_policy(out, plan, &mut groups)?;
    }
    // ANCHOR_END: make
    Ok(Limits { groups })
}

/// The index in `groups` of the group that takes `controller`: on v2 the one group, with the
/// controller enabled from its top down; on v1 a new group in the controller's hierarchy.
fn group_for(
    groups: &mut Vec<(cg::Hierarchy, Group, Group)>,
    plan: &Plan,
    controller: &str,
) -> Result<usize> {
    let h = cg::for_controller(controller, None)?;
    let same = groups.iter().position(|(g, _, _)| {
        g.version == Version::V2 && h.version == Version::V2 && g.mount == h.mount
    });
    if let Some(at) = same {
        let (_, leaf, top) = &groups[at];
        enable_down(top, leaf, controller)?;
        return Ok(at);
    }
    let (h, top, leaf) = match &plan.cgroups_path {
        None => {
            let (h, top) = cg::group_for(controller, None)?;
            let leaf = top.child("container")?;
            (h, top, leaf)
        }
        Some(path) => {
            let (h, top, leaf) = nested_in(&h, path)?;
            if h.version == Version::V2 {
                enable_down(&top, &leaf, controller)?;
            }
            (h, top, leaf)
        }
    };
    groups.push((h, leaf, top));
    Ok(groups.len() - 1)
}

/// Write the spec's values for `controller` into the leaf, in the files of its version.
fn write_limits(plan: &Plan, controller: &str, version: Version, leaf: &Group) -> Result<()> {
    match (controller, version) {
        ("memory", _) if plan.memory.is_none() => {}
        ("memory", Version::V1) => {
            let limit = plan.memory.unwrap_or_default().to_string();
            leaf.write("memory.limit_in_bytes", &limit)?;
            // The spec's swap is memory + swap together: memsw in v1.
            let swap = plan.memory_swap.map_or(limit, |s| s.to_string());
            if leaf.has("memory.memsw.limit_in_bytes") {
                leaf.write("memory.memsw.limit_in_bytes", &swap)?;
            }
        }
        ("memory", Version::V2) => {
            let (max, swap) = v2_memory(plan.memory.unwrap_or_default(), plan.memory_swap)?;
            leaf.write("memory.max", &max)?;
            if leaf.has("memory.swap.max") {
                leaf.write("memory.swap.max", &swap)?;
            }
        }
        ("pids", _) => {
            // 0 or less: no limit (runc's reading; pids.max takes "max", not -1).
            let max = plan
                .pids
                .filter(|p| *p > 0)
                .map_or_else(|| "max".to_string(), |p| p.to_string());
            leaf.write("pids.max", &max)?
        }
        ("cpu", _) => write_cpu(plan, version, leaf)?,
        ("devices", Version::V1) => {
            for (allow, rule) in super::devices::rules(plan) {
                let file = if allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                leaf.write(file, &rule)?;
            }
        }
        ("cpuset", _) => {
            // What is not asked for stays as the group got it (v1: its parent's sets).
            let (cpus, mems) = plan.cpuset.clone().unwrap_or_default();
            if let Some(mems) = mems {
                leaf.write("cpuset.mems", &mems)?;
            }
            if let Some(cpus) = cpus {
                leaf.write("cpuset.cpus", &cpus)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The spec's CPU quota, period and shares, in v1's or v2's files.
fn write_cpu(plan: &Plan, version: Version, leaf: &Group) -> Result<()> {
    match version {
        Version::V1 => {
            if let Some((quota, period)) = plan.cpu {
                leaf.write("cpu.cfs_period_us", &period.to_string())?;
                leaf.write("cpu.cfs_quota_us", &quota.to_string())?;
            }
            if let Some(shares) = plan.cpu_shares {
                leaf.write("cpu.shares", &shares.to_string())?;
            }
        }
        Version::V2 => {
            if let Some((quota, period)) = plan.cpu {
                let quota = if quota < 0 {
                    "max".to_string()
                } else {
                    quota.to_string()
                };
                leaf.write("cpu.max", &format!("{quota} {period}"))?;
            }
            if let Some(shares) = plan.cpu_shares {
                // v1 shares (2..262144) onto v2 weights (1..10000), as runc converts them.
                let weight = 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142;
                leaf.write("cpu.weight", &weight.to_string())?;
            }
        }
    }
    Ok(())
}

/// On v2, a controller reaches a group only through `cgroup.subtree_control` of each group
/// above it: enable `controller` in the groups made, from `top` down to the leaf's parent.
pub(crate) fn enable_down(top: &Group, leaf: &Group, controller: &str) -> Result<()> {
    for dir in groups_above(&top.path, &leaf.path) {
        let file = dir.join("cgroup.subtree_control");
        fs::write(&file, format!("+{controller}"))
            .with_context(|| format!("write({}, \"+{controller}\")", file.display()))?;
    }
    Ok(())
}

/// The groups from `top` down to `leaf`'s parent, top first (none when `leaf` is `top`).
fn groups_above(top: &Path, leaf: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = leaf
        .ancestors()
        .skip(1)
        .take_while(|a| a.starts_with(top))
        .map(Path::to_path_buf)
        .collect();
    dirs.reverse();
    dirs
}

/// The spec's memory limit and swap (memory and swap together; -1 for no limit) as v2's
/// `memory.max` and `memory.swap.max` (swap alone), as runc converts them. No swap without one
/// in the spec, as in v1.
fn v2_memory(limit: i64, swap: Option<i64>) -> Result<(String, String)> {
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    let swap = match swap {
        _ if limit < 0 => "max".to_string(),
        None => "0".to_string(),
        Some(s) if s < 0 => "max".to_string(),
        Some(s) if s >= limit => (s - limit).to_string(),
        Some(s) => {
            return Err(bad_input(format!(
                "config: linux.resources.memory.swap {s} is below the limit {limit} (it counts memory and swap together)"
            )));
        }
    };
    Ok((max(limit), swap))
}

/// `linux.cgroupsPath`, made under this process's own cgroup in hierarchy `h`: minicontainer
/// never writes outside the cgroup it runs in, so an absolute path is taken as relative to it
/// (the same value always gives the same place, as the spec asks). Returns the hierarchy, the
/// first directory made (removed with everything below it), and the leaf.
pub(crate) fn nested_in(h: &cg::Hierarchy, path: &Path) -> Result<(cg::Hierarchy, Group, Group)> {
    let h = h.clone();
    let mut dir = h.own.clone();
    let mut top: Option<Group> = None;
    let parts: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_owned()),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return Err(bad_input(format!(
            "linux.cgroupsPath {}: no directory named",
            path.display()
        )));
    }
    for (i, part) in parts.iter().enumerate() {
        let next = dir.join(part);
        if next.exists() {
            if i + 1 == parts.len() {
                return Err(bad_input(format!(
                    "linux.cgroupsPath {}: {} exists already",
                    path.display(),
                    next.display()
                )));
            }
        } else {
            let made = Group::create(&dir, &part.to_string_lossy(), h.version)?;
            if top.is_none() {
                top = Some(made);
            } else {
                // Removed with the top one.
                std::mem::forget(made);
            }
        }
        dir = next;
    }
    let top = top.expect("the leaf is made");
    let leaf = Group::adopt(dir, h.version);
    Ok((h, top, leaf))
}

/// For `gc`: remove the groups named nslab-memory-*, nslab-pids-*, nslab-cpu-*, nslab-cpuset-*,
/// nslab-devices-* under this process's cgroup that the caller owns, whose maker (the PID in the
/// name) is gone, and with no process left in them (an OCI container's outlive the `create`
/// whose PID they carry). Returns the groups removed.
pub(crate) fn gc(out: &mut Narrator) -> Result<usize> {
    let mut removed = 0;
    for h in cg::hierarchies()? {
        let Ok(entries) = fs::read_dir(&h.own) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = ["memory", "pids", "cpu", "cpuset", "devices"]
                .iter()
                .any(|c| name.starts_with(&format!("nslab-{c}-")));
            let pid: Option<i32> = name.split('-').nth(2).and_then(|p| p.parse().ok());
            let mine = e
                .metadata()
                .is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw());
            let maker_gone = pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
            // A killed run's container dies with it (its parent-death signal), a moment later:
            // give its processes that moment. An OCI container's stay: its group is kept.
            let emptied = || {
                labkit::wait::until(std::time::Duration::from_secs(2), || {
                    Ok(!has_processes(&e.path()))
                })
                .unwrap_or(false)
            };
            if ours && mine && maker_gone && emptied() {
                let mut g = Group::adopt(e.path(), h.version);
                g.remove()?;
                out.step("gc", format!("rmdir {}", e.path().display()));
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Whether a group or one below it has a process (read only: nothing is adopted or removed).
fn has_processes(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|t| !t.trim().is_empty())
        || fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()) && has_processes(&e.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_are_enabled_from_the_top_group_down_to_the_leafs_parent() {
        let above = |top: &str, leaf: &str| groups_above(Path::new(top), Path::new(leaf));
        assert_eq!(
            above("/cg/own/t", "/cg/own/t/container"),
            [PathBuf::from("/cg/own/t")]
        );
        assert_eq!(
            above("/cg/own/a", "/cg/own/a/b/c"),
            [PathBuf::from("/cg/own/a"), PathBuf::from("/cg/own/a/b")]
        );
        assert!(
            above("/cg/own/a", "/cg/own/a").is_empty(),
            "the leaf is the top"
        );
    }

    #[test]
    fn v2_memory_values_follow_runc() {
        let v = |limit, swap| v2_memory(limit, swap).unwrap();
        assert_eq!(
            v(64, None),
            ("64".into(), "0".into()),
            "no swap unless asked"
        );
        assert_eq!(v(64, Some(64)), ("64".into(), "0".into()));
        assert_eq!(v(64, Some(100)), ("64".into(), "36".into()), "swap alone");
        assert_eq!(v(64, Some(-1)), ("64".into(), "max".into()), "-1: no limit");
        assert_eq!(v(-1, None), ("max".into(), "max".into()));
        assert!(v2_memory(64, Some(32)).is_err());
    }
}
