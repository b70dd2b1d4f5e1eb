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
    /// Made for the device policy alone (no limit, no cgroupsPath).
    pub(crate) device_only: bool,
}

impl Drop for Limits {
    fn drop(&mut self) {
        for (h, leaf, top) in std::mem::take(&mut self.groups) {
            let (leaf_path, top_path) = (leaf.path.clone(), top.path.clone());
            // Removed here, the leaf's way: not by dropping the top group, which would kill
            // what another container left below a parent they share.
            std::mem::forget(leaf);
            std::mem::forget(top);
            if let Err(e) = remove_placed(&top_path, Some(&leaf_path), h.version) {
                eprintln!("minicontainer: {e:#}");
            }
        }
    }
}

/// Remove a container's group: its leaf (what is left in it killed first), then each directory
/// above it that this container made, up to `top`, while it is empty (another container's
/// group may sit below a parent they share: that parent stays, and nothing of it is killed).
pub(crate) fn remove_placed(top: &Path, leaf: Option<&Path>, version: Version) -> Result<()> {
    let Some(leaf) = leaf.filter(|l| l.starts_with(top)) else {
        if top.exists() {
            Group::adopt(top.to_path_buf(), version).remove()?;
        }
        return Ok(());
    };
    if leaf.exists() {
        Group::adopt(leaf.to_path_buf(), version).remove()?;
    }
    for dir in leaf.ancestors().skip(1).take_while(|d| d.starts_with(top)) {
        match fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Not empty, or busy: someone else's group is below it.
            Err(_) => break,
        }
    }
    Ok(())
}

impl Limits {
    /// The top group of each, with its cgroup version, as a record keeps them for `delete`.
    pub(crate) fn tops(&self) -> Vec<(PathBuf, String)> {
        self.groups
            .iter()
            .map(|(h, _, top)| (top.path.clone(), h.version.to_string()))
            .collect()
    }

    /// The group a container with no limit is born into (clone3 `CLONE_INTO_CGROUP`): its one
    /// group when that is the v2 group of its device policy alone. With limits the runtime
    /// moves the process itself, the step the ctr-join-cgroups exercise is about.
    pub(crate) fn born_into(&self) -> Result<Option<fs::File>> {
        let [(h, leaf, _)] = self.groups.as_slice() else {
            return Ok(None);
        };
        if h.version != Version::V2 || !self.device_only {
            return Ok(None);
        }
        let dir =
            fs::File::open(&leaf.path).with_context(|| format!("open({})", leaf.path.display()))?;
        Ok(Some(dir))
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

/// The controllers the spec's limits need, with the v1 devices controller for the device
/// policy.
fn wanted(plan: &Plan, v1_devices: bool) -> Vec<String> {
    let mut wanted = plan.resources.controllers();
    if v1_devices {
        wanted.push("devices".into());
    }
    wanted
}

/// The hierarchy that has `controller` here: v1's `blkio` is v2's `io`.
pub(crate) fn hierarchy_of(controller: &str) -> Result<cg::Hierarchy> {
    let found = match controller {
        "blkio" | "io" => cg::for_controller("blkio", Some(Version::V1))
            .or_else(|_| cg::for_controller("io", Some(Version::V2))),
        c => cg::for_controller(c, None),
    };
    found.map_err(|e| {
        e.context(format!(
            "linux.resources asks for the {controller} controller"
        ))
    })
}

/// Where a rootless container's groups go: the nearest cgroup above this process's own that
/// the caller may write, whose `cgroup.procs` it may write too (a process moves only within a
/// subtree whose common ancestor's `cgroup.procs` is writable), and that passes every wanted
/// controller down (`cgroup.subtree_control`, enabled here with `enable` when the caller may).
/// That is a
/// delegated v2 subtree, as systemd's `user@UID.service` (`Delegate=yes`) gives; v1 hierarchies
/// are root's. The error says exactly what is missing, and how to delegate.
pub fn delegated_parent(wanted: &[String], enable: bool) -> Result<PathBuf> {
    use nix::unistd::{AccessFlags, access};
    let missing = |why: String| anyhow::Error::new(labkit::errors::MissingFeature(why));
    for c in wanted {
        if cg::for_controller(c, Some(Version::V1)).is_ok() {
            return Err(missing(format!(
                "rootless limits: the {c} controller is cgroup v1 here, and v1 hierarchies are root's (no delegation): run as root for --memory, --pids-limit and --cpus"
            )));
        }
    }
    // (Not yet available to this process's own cgroup, maybe: the parent found below passes
    // them down.)
    let h = cg::unified()
        .map_err(|_| missing("rootless limits: no cgroup v2 hierarchy is mounted".into()))?;
    let names: Vec<&str> = wanted
        .iter()
        .map(|c| if c == "blkio" { "io" } else { c.as_str() })
        .collect();
    let writable = |p: &Path| access(p, AccessFlags::W_OK).is_ok();
    let recipe = format!(
        "delegate a cgroup v2 subtree to yourself: with systemd, `systemd-run --user --scope -p Delegate=yes minicontainer run ...`; by hand, as root: `mkdir {m}/nslab-$USER {m}/nslab-$USER/shell && chown -R $USER {m}/nslab-$USER && echo '+{c}' > {m}/cgroup.subtree_control`, then move your shell there: `echo $$ > {m}/nslab-$USER/shell/cgroup.procs` (as root)",
        m = h.mount.display(),
        c = names.join(" +")
    );
    // The parent of the caller's own cgroup: the container's groups go next to it (its own
    // holds processes, so it cannot pass controllers down: v2's no-internal-processes rule).
    let Some(dir) = h
        .own
        .parent()
        .filter(|d| d.starts_with(&h.mount) && h.own != h.mount)
    else {
        return Err(missing(format!(
            "rootless limits: your cgroup {} is the hierarchy's root, which is not yours; {recipe}",
            h.own.display()
        )));
    };
    if !writable(dir) || !writable(&dir.join("cgroup.procs")) {
        return Err(missing(format!(
            "rootless limits need a cgroup subtree of your own: your cgroup {} is in {}, whose {} you may not write; {recipe}",
            h.own.display(),
            dir.display(),
            if writable(dir) {
                "cgroup.procs"
            } else {
                "directory"
            },
        )));
    }
    let control = dir.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control).unwrap_or_default();
    for c in names
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
    {
        let written = match enable {
            true => fs::write(&control, format!("+{c}")),
            false => Err(std::io::Error::other("not enabled")),
        };
        written.map_err(|e| {
            missing(format!(
                "rootless limits: {} does not pass the {c} controller down (write +{c} to {}: {e}); {recipe}",
                dir.display(),
                control.display()
            ))
        })?;
    }
    Ok(dir.to_path_buf())
}

/// Make the groups for the spec's limits and, with `device_policy`, its device rules. With a
/// `cgroupsPath` the container gets a group in every hierarchy it may write to, as runc does
/// (a container manager reads its usage, freezes it and updates it there); without one, only
/// in those of the controllers its limits need.
pub(crate) fn make(
    out: &mut Narrator,
    plan: &Plan,
    device_policy: bool,
    rootless: bool,
) -> Result<Limits> {
    // The device policy is an eBPF program on the container's v2 group wherever a cgroup2
    // hierarchy is mounted, a hybrid host's unified one included: the kernel checks it as it
    // checks v1's devices controller, and the container is then born in that group
    // (CLONE_INTO_CGROUP), with no v1 group to make, write, join and remove (a write to a v1
    // cgroup.procs waits for an RCU grace period). v1's devices controller where there is no
    // cgroup2 mount, or with NSLAB_DEVICE_POLICY=v1 (as runc does on a hybrid host).
    let want_v1 = std::env::var_os("NSLAB_DEVICE_POLICY").is_some_and(|v| v == "v1");
    let v1_devices = device_policy
        && (want_v1 || cg::unified().is_err())
        && cg::for_controller("devices", None).is_ok_and(|h| h.version == Version::V1);
    // Rootless: under the caller's delegated subtree, said in one line.
    let parent = match rootless && plan.cgroups_path.is_none() && plan.has_limits() {
        true => {
            let p = delegated_parent(&plan.resources.controllers(), true)?;
            eprintln!(
                "minicontainer: rootless: limits in your delegated cgroup {}",
                p.display()
            );
            Some(p)
        }
        false => None,
    };
    // Everything asked is checked against this host's versions before any group is made.
    let mut writes = Vec::new();
    for controller in wanted(plan, v1_devices) {
        let h = hierarchy_of(&controller)?;
        let files = plan.resources.writes(&controller, h.version)?;
        writes.push((controller, h, files));
    }
    let mut groups = Vec::new();
    if let Some(path) = &plan.cgroups_path {
        for h in cg::hierarchies()? {
            if let Some((h, top, leaf)) = nested_in(&h, path)? {
                if h.version == Version::V2 {
                    // As runc: every controller the group may have reaches the leaf, so a
                    // manager finds memory.current, cpu.stat, pids.current there.
                    for c in top
                        .read("cgroup.controllers")
                        .unwrap_or_default()
                        .split(' ')
                    {
                        let _ = enable_down(&top, &leaf, c);
                    }
                }
                groups.push((h, leaf, top));
            }
        }
    }
    // ANCHOR: make
    for (controller, h, files) in writes {
        let at = group_for(&mut groups, plan, &controller, &h, parent.as_deref())?;
        let (h, leaf, _) = &groups[at];
        if controller == "devices" {
            write_device_rules(plan, leaf)?;
        }
        for (file, value) in files {
            write_setting(leaf, &file, &value)?;
        }
        out.step(
            "host",
            format!("{} {controller}: mkdir {}", h.version, leaf.path.display()),
        );
    }
    if device_policy && !v1_devices {
        super::devices::v2_policy(out, plan, &mut groups)?;
    }
    // ANCHOR_END: make
    let device_only = !plan.has_limits() && plan.cgroups_path.is_none();
    Ok(Limits {
        groups,
        device_only,
    })
}

/// The v1 devices controller's rules: runc's defaults, then the spec's.
fn write_device_rules(plan: &Plan, leaf: &Group) -> Result<()> {
    for (allow, rule) in super::devices::rules(plan) {
        let file = if allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        leaf.write(file, &rule)?;
    }
    Ok(())
}

/// Write one setting; a file this kernel does not have is refused by its name (never
/// skipped). Weights fall back to the BFQ scheduler's files, as runc's do.
pub(crate) fn write_setting(leaf: &Group, file: &str, value: &str) -> Result<()> {
    let bfq = match file {
        "blkio.weight" => Some("blkio.bfq.weight"),
        "blkio.weight_device" => Some("blkio.bfq.weight_device"),
        "io.weight" => Some("io.bfq.weight"),
        _ => None,
    };
    let file = match bfq {
        Some(alt) if !leaf.has(file) && leaf.has(alt) => alt,
        _ => file,
    };
    if !leaf.has(file) {
        return Err(labkit::bad_input(format!(
            "config: {} (what linux.resources asks for) does not exist on this kernel; refused, not ignored",
            leaf.file(file).display()
        )));
    }
    leaf.write(file, value)
}

/// The index in `groups` of the group that takes `controller`: the container's group in that
/// hierarchy when it has one (on v2 with the controller enabled from its top down), else a new
/// group in it.
fn group_for(
    groups: &mut Vec<(cg::Hierarchy, Group, Group)>,
    plan: &Plan,
    controller: &str,
    h: &cg::Hierarchy,
    parent: Option<&Path>,
) -> Result<usize> {
    let v2_name = if controller == "blkio" {
        "io"
    } else {
        controller
    };
    if let Some(at) = groups.iter().position(|(g, _, _)| g.mount == h.mount) {
        let (_, leaf, top) = &groups[at];
        if h.version == Version::V2 {
            enable_down(top, leaf, v2_name)?;
        }
        return Ok(at);
    }
    let (h, top, leaf) = match &plan.cgroups_path {
        None => {
            let top = Group::create(parent.unwrap_or(&h.own), &cg::unique(controller), h.version)?;
            if h.version == Version::V2 {
                top.write("cgroup.subtree_control", &format!("+{v2_name}"))?;
            }
            let leaf = top.child("container")?;
            (h.clone(), top, leaf)
        }
        Some(path) => {
            let Some((h, top, leaf)) = nested_in(h, path)? else {
                return Err(labkit::errors::MissingFeature(format!(
                    "linux.cgroupsPath {}: the {controller} hierarchy ({}) is not writable",
                    path.display(),
                    h.mount.display()
                ))
                .into());
            };
            if h.version == Version::V2 {
                enable_down(&top, &leaf, v2_name)?;
            }
            (h, top, leaf)
        }
    };
    groups.push((h, leaf, top));
    Ok(groups.len() - 1)
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

/// `linux.cgroupsPath` in hierarchy `h`, as the spec and runc read it: an absolute path from the
/// hierarchy's root (as this process sees it: a manager chooses where its containers go), a
/// relative one from this process's own cgroup. Missing directories on the way are made.
/// Returns the hierarchy, the first directory made (removed with everything below it), and the
/// leaf; `None` where the place is not this process's to write (rootless, as runc skips it).
pub(crate) fn nested_in(
    h: &cg::Hierarchy,
    path: &Path,
) -> Result<Option<(cg::Hierarchy, Group, Group)>> {
    let h = h.clone();
    let mut dir = if path.is_absolute() {
        h.mount.clone()
    } else {
        h.own.clone()
    };
    let parts: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_owned()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    if parts.is_empty() || parts.iter().any(|p| p == "..") {
        return Err(bad_input(format!(
            "linux.cgroupsPath {}: a path of directory names (no '..')",
            path.display()
        )));
    }
    let mut top: Option<Group> = None;
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
            if top.is_none() && nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_err() {
                return Ok(None);
            }
            match Group::create(&dir, &part.to_string_lossy(), h.version) {
                Ok(made) => match &top {
                    None => top = Some(made),
                    // Removed with the top one.
                    Some(_) => std::mem::forget(made),
                },
                // A parent that another runtime made meanwhile is a parent all the same.
                Err(_) if i + 1 < parts.len() && next.is_dir() && top.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        dir = next;
    }
    let top = top.expect("the leaf is made");
    let leaf = Group::adopt(dir, h.version);
    Ok(Some((h, top, leaf)))
}

/// The group that freezes a container, of its leaves (the directories of its `cgroup.procs`
/// files): its v1 freezer group, else its v2 group.
fn freezer(procs: &[PathBuf]) -> Option<Group> {
    let leaves = || procs.iter().filter_map(|p| p.parent());
    leaves()
        .find(|l| l.join("freezer.state").exists())
        .map(|l| Group::existing(l.to_path_buf(), Version::V1))
        .or_else(|| {
            leaves()
                .find(|l| l.join("cgroup.freeze").exists())
                .map(|l| Group::existing(l.to_path_buf(), Version::V2))
        })
}

/// Whether the container's freezer group is frozen (v1 `freezer.state`, v2 `cgroup.events`).
pub(crate) fn frozen(procs: &[PathBuf]) -> bool {
    let Some(g) = freezer(procs) else {
        return false;
    };
    match g.version {
        Version::V1 => g.read("freezer.state").is_ok_and(|s| s != "THAWED"),
        Version::V2 => g.key("cgroup.events", "frozen").is_ok_and(|f| f == 1),
    }
}

/// Freeze or thaw the container's processes (runc's pause and resume): v1's freezer, v2's
/// `cgroup.freeze`, then wait until the kernel says it is done (v2 announces it in
/// `cgroup.events`; v1's state goes FREEZING to FROZEN with no event, so back off).
pub(crate) fn set_frozen(procs: &[PathBuf], frozen: bool) -> Result<()> {
    let g = freezer(procs).ok_or_else(|| {
        bad_input(
            "it has no cgroup of its own to freeze (its config named no cgroupsPath and no limits)",
        )
    })?;
    let limit = std::time::Duration::from_secs(10);
    let done = match g.version {
        Version::V1 => {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            g.write("freezer.state", want)?;
            labkit::wait::until(limit, || Ok(g.read("freezer.state")? == want))?
        }
        Version::V2 => {
            g.write("cgroup.freeze", if frozen { "1" } else { "0" })?;
            let want = u64::from(frozen);
            labkit::wait::on_modify(&g.file("cgroup.events"), limit, || {
                Ok((g.key("cgroup.events", "frozen")? == want).then_some(()))
            })?
            .is_some()
        }
    };
    if !done {
        anyhow::bail!(
            "{}: the kernel did not finish {} in 10 s",
            g.path.display(),
            if frozen { "freezing" } else { "thawing" }
        );
    }
    Ok(())
}

/// The processes in the container's groups (the first leaf that lists any).
pub(crate) fn processes(procs: &[PathBuf]) -> Vec<i32> {
    procs
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .find(|l| !l.is_empty())
        .unwrap_or_default()
}

/// The container's leaf in hierarchy `h`, of its leaves (the directories of its
/// `cgroup.procs` files).
fn leaf_in(procs: &[PathBuf], h: &cg::Hierarchy) -> Option<Group> {
    procs
        .iter()
        .filter_map(|p| p.parent())
        .find(|l| l.starts_with(&h.mount))
        .map(|l| Group::existing(l.to_path_buf(), h.version))
}

/// runc's `update`: write new resources into a container's existing groups. Everything is
/// checked against this host's versions before the first write.
pub(crate) fn update(procs: &[PathBuf], resources: &crate::resources::Resources) -> Result<()> {
    let mut plan = Vec::new();
    for controller in resources.controllers() {
        let h = hierarchy_of(&controller)?;
        let leaf = leaf_in(procs, &h).ok_or_else(|| {
            bad_input(format!(
                "it has no group in the {controller} hierarchy (it was created with no cgroupsPath and no {controller} limit)"
            ))
        })?;
        plan.push((leaf, resources.writes(&controller, h.version)?));
    }
    for (leaf, writes) in plan {
        let write_all = |order: &mut dyn Iterator<Item = &(String, String)>| -> Result<()> {
            for (file, value) in order {
                write_setting(&leaf, file, value)?;
            }
            Ok(())
        };
        // v1 keeps memory.limit_in_bytes at most memsw's at every moment: raising both
        // needs memsw first, lowering both the limit first. Try one order, then the other.
        if write_all(&mut writes.iter()).is_err() {
            write_all(&mut writes.iter().rev())?;
        }
    }
    Ok(())
}

/// The usage runc's `events` reports (its `types.Stats` field names), read from the container's
/// groups: CPU time, memory, PIDs.
pub(crate) fn stats(procs: &[PathBuf]) -> serde_json::Value {
    let leaves: Vec<Group> = procs
        .iter()
        .filter_map(|p| p.parent())
        .map(|l| {
            let v2 = l.join("cgroup.controllers").exists();
            Group::existing(l.to_path_buf(), if v2 { Version::V2 } else { Version::V1 })
        })
        .collect();
    let num = |file: &str| leaves.iter().find_map(|g| g.read_u64(file).ok());
    let key = |file: &str, k: &str| leaves.iter().find_map(|g| g.key(file, k).ok());
    let limit = |file: &str| {
        leaves
            .iter()
            .find_map(|g| g.read(file).ok())
            .map(|v| v.parse::<u64>().unwrap_or(u64::MAX))
    };
    let raw: serde_json::Map<String, serde_json::Value> = leaves
        .iter()
        .find_map(|g| g.read("memory.stat").ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((
                k.to_string(),
                serde_json::json!(v.trim().parse::<u64>().ok()?),
            ))
        })
        .collect();
    let usec = |k: &str| key("cpu.stat", k).map(|u| u * 1000);
    serde_json::json!({
        "cpu": {
            "usage": {
                "total": num("cpuacct.usage").or_else(|| usec("usage_usec")),
                "user": num("cpuacct.usage_user").or_else(|| usec("user_usec")),
                "kernel": num("cpuacct.usage_sys").or_else(|| usec("system_usec")),
            },
            "throttling": {
                "periods": key("cpu.stat", "nr_periods"),
                "throttled_periods": key("cpu.stat", "nr_throttled"),
                "throttled_time": key("cpu.stat", "throttled_time").or_else(|| usec("throttled_usec")),
            }
        },
        "memory": {
            "usage": {
                "usage": num("memory.usage_in_bytes").or_else(|| num("memory.current")),
                "max": num("memory.max_usage_in_bytes").or_else(|| num("memory.peak")),
                "limit": limit("memory.limit_in_bytes").or_else(|| limit("memory.max")),
                "failcnt": num("memory.failcnt").or_else(|| key("memory.events", "max")),
            },
            "raw": raw,
        },
        "pids": {
            "current": num("pids.current"),
            "limit": limit("pids.max"),
        }
    })
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
}
