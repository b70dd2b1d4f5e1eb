//! The cgroup API is a filesystem: `mkdir` makes a group, writing a PID to `cgroup.procs` moves
//! a process, reading files gives statistics (CG-1). This module is a thin layer over
//! `std::fs` that names those operations and says which file each touched; no cgroup crate.
//!
//! Where groups are made: under the cgroup this process is already in, in each hierarchy (read
//! from `/proc/self/cgroup`), unless the caller names another parent; always with a unique
//! `nslab-...` name; always removed again (see [`Group`]'s `Drop`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use labkit::cgroupfs::{self, LayoutKind, parse_proc_cgroup};
use labkit::errors::MissingFeature;

/// cgroup v1 or v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// A mounted hierarchy and the cgroup this process is in there.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub version: Version,
    /// Where it is mounted (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup`).
    pub mount: PathBuf,
    /// Its controllers (v2: those available in this process's cgroup).
    pub controllers: Vec<String>,
    /// This process's cgroup in it, as a directory (`/sys/fs/cgroup/memory/user.slice/...`).
    pub own: PathBuf,
}

/// A parent the user named (`--parent DIR`): groups are made there instead of under this
/// process's own cgroup, in the hierarchy that contains it.
static PARENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The delegated subtree in use, said once, when the first group is made there (a run refused
/// for its input says nothing else).
static DELEGATED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
static ANNOUNCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Make groups under the caller's delegated subtree `dir` ([`delegated_subtree`]), saying so in
/// one line on stderr when the first one is made.
pub fn use_delegated(dir: &Path) -> Result<()> {
    set_parent(dir)?;
    let _ = DELEGATED.set(PARENT.get().cloned().unwrap_or_else(|| dir.to_path_buf()));
    Ok(())
}

/// Make groups under `dir` (a cgroup directory of some mounted hierarchy).
pub fn set_parent(dir: &Path) -> Result<()> {
    let dir = dir
        .canonicalize()
        .map_err(|_| labkit::bad_input(format!("--parent {}: no such directory", dir.display())))?;
    let is_cgroup = hierarchies_of_own()?
        .iter()
        .any(|h| dir.starts_with(&h.mount))
        && dir.join("cgroup.procs").exists();
    if !is_cgroup {
        return Err(labkit::bad_input(format!(
            "--parent {}: not a cgroup directory (no cgroup.procs, or no mounted hierarchy holds it)",
            dir.display()
        )));
    }
    let _ = PARENT.set(dir);
    Ok(())
}

/// The cgroup v2 subtree delegated to this (unprivileged) process, if it has one: the parent
/// of its own cgroup, when the caller may write that directory, its `cgroup.procs` (a process
/// moves only where it may write the common ancestor's) and its `cgroup.subtree_control` (to
/// pass controllers down), as systemd's `user@UID.service` (`Delegate=yes`) or root's
/// mkdir + chown give. Not its own cgroup: that one holds processes, and v2 lets a group with
/// processes pass no controller down (the "no internal processes" rule).
pub fn delegated_subtree() -> Option<PathBuf> {
    use nix::unistd::{AccessFlags, access};
    let h = hierarchies_of_own()
        .ok()?
        .into_iter()
        .find(|h| h.version == Version::V2)?;
    let dir = h
        .own
        .parent()
        .filter(|d| d.starts_with(&h.mount) && h.own != h.mount)?;
    let writable = |p: &Path| access(p, AccessFlags::W_OK).is_ok();
    (writable(dir)
        && writable(&dir.join("cgroup.procs"))
        && writable(&dir.join("cgroup.subtree_control")))
    .then(|| dir.to_path_buf())
}

/// Every hierarchy this process can see, with its own cgroup in each (or the `--parent` given,
/// in the hierarchy that holds it).
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    let mut all = hierarchies_of_own()?;
    if let Some(parent) = PARENT.get() {
        for h in all.iter_mut().filter(|h| parent.starts_with(&h.mount)) {
            h.own = parent.clone();
            if h.version == Version::V2 {
                h.controllers = fs::read_to_string(parent.join("cgroup.controllers"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect();
            }
        }
    }
    Ok(all)
}

fn hierarchies_of_own() -> Result<Vec<Hierarchy>> {
    let layout = cgroupfs::detect()?;
    let own =
        parse_proc_cgroup(&fs::read_to_string("/proc/self/cgroup").context("/proc/self/cgroup")?);
    let mut found = Vec::new();
    for h in layout.hierarchies {
        let membership = if h.version == 2 {
            own.iter().find(|m| m.id == 0 && m.controllers.is_empty())
        } else {
            own.iter().find(|m| {
                let mut a: Vec<&str> = m.controllers.split(',').collect();
                let mut b: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
                a.sort_unstable();
                b.sort_unstable();
                m.id != 0 && a == b
            })
        };
        let Some(m) = membership else { continue };
        let own_dir = h.mount_point.join(m.path.trim_start_matches('/'));
        let controllers = if h.version == 2 {
            fs::read_to_string(own_dir.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(String::from)
                .collect()
        } else {
            h.controllers.clone()
        };
        found.push(Hierarchy {
            version: if h.version == 2 {
                Version::V2
            } else {
                Version::V1
            },
            mount: h.mount_point,
            controllers,
            own: own_dir,
        });
    }
    Ok(found)
}

/// The layout this host has (v1, v2 or hybrid).
pub fn layout() -> Result<LayoutKind> {
    Ok(cgroupfs::detect()?.kind)
}

/// The hierarchy that offers `controller`: its v1 hierarchy if it has one, else the v2 one if
/// the controller is available to this process's cgroup there. `force` picks a version.
pub fn for_controller(controller: &str, force: Option<Version>) -> Result<Hierarchy> {
    let all = hierarchies()?;
    let pick = |v: Version| {
        all.iter()
            .find(|h| h.version == v && h.controllers.iter().any(|c| c == controller))
            .cloned()
    };
    let found = match force {
        Some(v) => pick(v),
        None => pick(Version::V1).or_else(|| pick(Version::V2)),
    };
    found.ok_or_else(|| {
        anyhow::Error::new(MissingFeature(format!(
            "no {} hierarchy offers the {controller} controller to this process's cgroup (nslab-doctor shows the layout)",
            force.map_or("cgroup".to_string(), |v| format!("cgroup {v}"))
        )))
    })
}

/// The v2 hierarchy (for what needs no controller: creating groups, freeze, kill, events).
pub fn unified() -> Result<Hierarchy> {
    hierarchies()?
        .into_iter()
        .find(|h| h.version == Version::V2)
        .ok_or_else(|| {
            anyhow::Error::new(MissingFeature("no cgroup2 filesystem is mounted".into()))
        })
}

/// A cgroup this program made. Dropping it removes it: every process still in it (all started
/// by this program) is killed first, then the directory is removed.
#[derive(Debug)]
pub struct Group {
    pub path: PathBuf,
    pub version: Version,
    removed: bool,
}

impl Group {
    /// `mkdir(parent/name)`: make a cgroup. The kernel fills it with its interface files.
    pub fn create(parent: &Path, name: &str, version: Version) -> Result<Group> {
        if DELEGATED.get().is_some_and(|d| d == parent)
            && !ANNOUNCED.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!(
                "cgroup-demo: rootless: groups in your delegated cgroup {}",
                parent.display()
            );
        }
        let path = parent.join(name);
        fs::create_dir(&path).with_context(|| format!("mkdir({})", path.display()))?;
        let group = Group {
            path,
            version,
            removed: false,
        };
        if version == Version::V1 && group.has("cpuset.cpus") {
            // A new v1 cpuset group starts with no CPUs and no memory nodes, and a child may
            // take only a subset of its parent's: give it the parent's sets first, or no process
            // could join it.
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let above = fs::read_to_string(parent.join(file))
                    .with_context(|| format!("read({})", parent.join(file).display()))?;
                group.write(file, above.trim())?;
            }
        }
        Ok(group)
    }

    /// Take charge of an existing group (one a killed earlier run of this program made), to
    /// remove it.
    pub fn adopt(path: PathBuf, version: Version) -> Group {
        Group {
            path,
            version,
            removed: false,
        }
    }

    /// A handle on an existing group that dropping leaves in place (to read, write, freeze).
    pub fn existing(path: PathBuf, version: Version) -> Group {
        Group {
            path,
            version,
            removed: true,
        }
    }

    /// A child group.
    pub fn child(&self, name: &str) -> Result<Group> {
        Group::create(&self.path, name, self.version)
    }

    /// The path of one of its files.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether the group has this file (depends on version, controllers, kernel).
    pub fn has(&self, name: &str) -> bool {
        self.file(name).exists()
    }

    /// Write a value to one of its files.
    pub fn write(&self, name: &str, value: &str) -> Result<()> {
        let path = self.file(name);
        fs::write(&path, value).with_context(|| format!("write({}, {value:?})", path.display()))
    }

    /// Read one of its files, trimmed.
    pub fn read(&self, name: &str) -> Result<String> {
        let path = self.file(name);
        Ok(fs::read_to_string(&path)
            .with_context(|| format!("read({})", path.display()))?
            .trim()
            .to_string())
    }

    /// A number from one of its files.
    pub fn read_u64(&self, name: &str) -> Result<u64> {
        let text = self.read(name)?;
        text.parse()
            .with_context(|| format!("{}: not a number: {text:?}", self.file(name).display()))
    }

    /// One `key value` line of a flat-keyed file (`cpu.stat`, `memory.events`, `cgroup.events`).
    pub fn key(&self, name: &str, key: &str) -> Result<u64> {
        let text = self.read(name)?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|r| r.strip_prefix(' '))
                    .and_then(|v| v.trim().parse().ok())
            })
            .with_context(|| format!("{}: no {key}", self.file(name).display()))
    }

    /// The processes in it (`cgroup.procs`).
    pub fn procs(&self) -> Result<Vec<i32>> {
        Ok(self
            .read("cgroup.procs")?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// The threads in it: v1 `tasks`, v2 `cgroup.threads`.
    pub fn threads(&self) -> Result<Vec<i32>> {
        let file = if self.version == Version::V1 {
            "tasks"
        } else {
            "cgroup.threads"
        };
        Ok(self
            .read(file)?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// Move a process (all its threads) here: write its PID to `cgroup.procs`.
    pub fn attach(&self, pid: i32) -> Result<()> {
        // lab:begin cg-attach
        self.write("cgroup.procs", &pid.to_string())
        // lab:end cg-attach
    }

    /// The directory's name.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Kill what is left in it (processes this program started) and remove it.
    pub fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        // Children first: a cgroup with sub-groups cannot be removed.
        if let Ok(entries) = fs::read_dir(&self.path) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let mut sub = Group {
                        path: e.path(),
                        version: self.version,
                        removed: false,
                    };
                    sub.remove()?;
                }
            }
        }
        // A frozen v1 group's tasks cannot act on SIGKILL until thawed (v2 kills frozen ones).
        if self.has("freezer.state") {
            let _ = self.write("freezer.state", "THAWED");
        }
        // Kill what is left (again, each time: a process may fork while dying) until the
        // group is empty. v2 announces it: cgroup.events is modified when `populated` changes
        // (inotify); v1 has no event (only the release agent), so back off between reads.
        let emptied = || -> Result<Option<()>> {
            let left = self.procs().unwrap_or_default();
            if left.is_empty() {
                return Ok(Some(()));
            }
            if self.version == Version::V2 && self.has("cgroup.kill") {
                let _ = self.write("cgroup.kill", "1");
            } else {
                for pid in left {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            Ok(None)
        };
        let limit = Duration::from_secs(10);
        let empty = if self.version == Version::V2 && self.has("cgroup.events") {
            labkit::wait::on_modify(&self.file("cgroup.events"), limit, emptied)?
        } else {
            labkit::wait::backoff(limit, emptied)?
        };
        if empty.is_none() {
            bail!("{} still has processes after 10 s", self.path.display());
        }
        // EBUSY while the last killed tasks finish exiting (no event: back off).
        let mut last = None;
        let removed = labkit::wait::backoff(Duration::from_secs(10), || {
            match fs::remove_dir(&self.path) {
                Ok(()) => Ok(Some(())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(())),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    last = Some(e);
                    Ok(None)
                }
                Err(e) => Err(e).with_context(|| format!("rmdir({})", self.path.display())),
            }
        })?;
        if removed.is_none() {
            let e = last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EBUSY));
            return Err(e).with_context(|| format!("rmdir({}) for 10 s", self.path.display()));
        }
        self.removed = true;
        Ok(())
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!(
                "cgroup-demo: could not remove {}: {e:#}",
                self.path.display()
            );
        }
    }
}

/// A unique group name: `nslab-<what>-<pid>-<n>`.
pub fn unique(what: &str) -> String {
    labkit::unique_name(what)
}

/// Make a group for `controller` under this process's cgroup of the hierarchy that offers it,
/// with the controller enabled for its children on v2 (processes then go into a child: v2's
/// no-internal-processes rule).
pub fn group_for(controller: &str, force: Option<Version>) -> Result<(Hierarchy, Group)> {
    let h = for_controller(controller, force)?;
    if h.version == Version::V2 && PARENT.get() == Some(&h.own) {
        // A parent the user named or was delegated holds no process of this run: it passes the
        // controller down to the group made below it (the owner of a delegated subtree may).
        let control = h.own.join("cgroup.subtree_control");
        let enabled = fs::read_to_string(&control).unwrap_or_default();
        if !enabled.split_whitespace().any(|c| c == controller) {
            fs::write(&control, format!("+{controller}"))
                .with_context(|| format!("write({}, \"+{controller}\")", control.display()))?;
        }
    }
    let group = Group::create(&h.own, &unique(controller), h.version)?;
    if h.version == Version::V2 {
        group.write("cgroup.subtree_control", &format!("+{controller}")).map_err(|e| {
            e.context(format!(
                "enabling {controller} for the children of {} (v2 passes a controller down only through \
                 cgroup.subtree_control, and only from a cgroup without processes of its own: run as root \
                 from the root cgroup, or name a cgroup that delegates {controller} with --parent DIR)",
                group.path.display()
            ))
        })?;
    }
    Ok((h, group))
}

/// Whether `pid` is in the group at `path` (per its `cgroup.procs`).
pub fn contains(path: &Path, pid: i32) -> bool {
    fs::read_to_string(path.join("cgroup.procs"))
        .is_ok_and(|t| t.lines().any(|l| l.trim() == pid.to_string()))
}
