//! Namespaces as `/proc` shows them: `/proc/PID/ns/<name>` is a symlink whose target reads
//! `type:[inode]`. Two processes share a namespace exactly when the inode numbers are equal.
//!
//! Besides the six namespaces of the classic container article (`uts ipc pid mnt net user`),
//! current kernels have `cgroup` (4.6) and `time` (5.6), plus the two `*_for_children` links:
//! the namespace that the process's *next children* will get, which differs from its own after
//! `unshare(CLONE_NEWPID)` or `setns` into a PID (or time) namespace.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::sched::CloneFlags;

use crate::errors::bad_input;

/// The eight namespace types of current kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsKind {
    Cgroup,
    Ipc,
    Mnt,
    Net,
    Pid,
    Time,
    User,
    Uts,
}

impl NsKind {
    /// Every kind, in the order `/proc/PID/ns` lists them.
    pub const ALL: [NsKind; 8] = [
        NsKind::Cgroup,
        NsKind::Ipc,
        NsKind::Mnt,
        NsKind::Net,
        NsKind::Pid,
        NsKind::Time,
        NsKind::User,
        NsKind::Uts,
    ];

    /// Its row of [`TABLE`].
    fn row(self) -> &'static (NsKind, &'static str, CloneFlags, &'static str) {
        TABLE
            .iter()
            .find(|row| row.0 == self)
            .expect("every kind has a row")
    }

    /// The name used in `/proc/PID/ns` and in link targets (`mnt`, `uts`, ...).
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The `CLONE_NEW*` flag for `clone`, `unshare` and `setns`.
    pub fn flag(self) -> CloneFlags {
        self.row().2
    }

    /// The flag's name as the man pages spell it.
    pub fn flag_name(self) -> &'static str {
        self.row().3
    }

    /// Parse a type name as `/proc` writes it (`mnt`; `pid_for_children` gives `pid`).
    pub fn from_name(name: &str) -> Option<NsKind> {
        let base = name.strip_suffix("_for_children").unwrap_or(name);
        NsKind::ALL.into_iter().find(|k| k.name() == base)
    }

    /// The kind whose `CLONE_NEW*` flag this is (what `ioctl(NS_GET_NSTYPE)` returns).
    pub fn from_flag(flag: i32) -> Option<NsKind> {
        NsKind::ALL.into_iter().find(|k| k.flag().bits() == flag)
    }
}

impl fmt::Display for NsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The one table of namespace types: the kind, its name in `/proc/PID/ns`, its `CLONE_NEW*`
/// flag and the flag's name as the man pages spell it. [`NsKind`]'s methods and
/// [`crate::child::flag_names`] read it (in this order: `CLONE_NEWTIME` last, as clone3(2) added
/// it last); a runtime that needs the flags by name uses it too.
///
/// `CLONE_NEWTIME` (0x80) shares its value with the `CSIGNAL` bits of clone(2), so nix has no
/// constant for it: it is written from libc's here, once.
pub const TABLE: [(NsKind, &str, CloneFlags, &str); 8] = [
    (
        NsKind::Cgroup,
        "cgroup",
        CloneFlags::CLONE_NEWCGROUP,
        "CLONE_NEWCGROUP",
    ),
    (NsKind::Ipc, "ipc", CloneFlags::CLONE_NEWIPC, "CLONE_NEWIPC"),
    (NsKind::Net, "net", CloneFlags::CLONE_NEWNET, "CLONE_NEWNET"),
    (NsKind::Mnt, "mnt", CloneFlags::CLONE_NEWNS, "CLONE_NEWNS"),
    (NsKind::Pid, "pid", CloneFlags::CLONE_NEWPID, "CLONE_NEWPID"),
    (
        NsKind::User,
        "user",
        CloneFlags::CLONE_NEWUSER,
        "CLONE_NEWUSER",
    ),
    (NsKind::Uts, "uts", CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS"),
    (
        NsKind::Time,
        "time",
        CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
        "CLONE_NEWTIME",
    ),
];

/// The order in which to join all of a process's namespaces (`uts-demo setns --target`,
/// `minicontainer exec`): the user namespace first (it may grant the capabilities the other
/// joins need), the mount namespace last (joining it changes the root and working directory).
pub const JOIN_ORDER: [NsKind; 8] = [
    NsKind::User,
    NsKind::Cgroup,
    NsKind::Ipc,
    NsKind::Uts,
    NsKind::Net,
    NsKind::Pid,
    NsKind::Time,
    NsKind::Mnt,
];

/// Open every namespace of `pid` that differs from the caller's, in [`JOIN_ORDER`], for
/// setns(2) (like `nsenter --all --target PID`). Shared ones are left out: there is nothing to
/// join, and setns to one's own user namespace is even EINVAL. All are opened before any is
/// joined: once in another mount namespace, `/proc` paths could mean other things.
pub fn to_join(pid: i32) -> Result<Vec<NsFile>> {
    let own = list(None)?;
    let mut files = Vec::new();
    for kind in JOIN_ORDER {
        let path = ns_dir(Some(pid)).join(kind.name());
        if !path.exists() {
            continue; // a namespace type this kernel does not have
        }
        let file = NsFile::open(&path)?;
        if !own
            .iter()
            .any(|l| l.name == kind.name() && l.inode == file.inode)
        {
            files.push(file);
        }
    }
    Ok(files)
}

/// One entry of `/proc/PID/ns`: its file name, the type in its target, the inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsLink {
    /// The file name: `uts`, `pid_for_children`, ...
    pub name: String,
    /// The namespace type the link points to.
    pub kind: NsKind,
    /// The namespace's inode number on the nsfs filesystem: its identity.
    pub inode: u64,
}

impl NsLink {
    /// The link target as `readlink` shows it: `uts:[4026531838]`.
    pub fn target(&self) -> String {
        format!("{}:[{}]", self.kind, self.inode)
    }
}

/// Parse a link target `type:[inode]`.
pub fn parse_target(target: &str) -> Option<(NsKind, u64)> {
    let (kind, rest) = target.split_once(':')?;
    let inode = rest.strip_prefix('[')?.strip_suffix(']')?.parse().ok()?;
    Some((NsKind::from_name(kind)?, inode))
}

/// `/proc/<pid>/ns`, or `/proc/self/ns` for `None`.
pub fn ns_dir(pid: Option<i32>) -> PathBuf {
    match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/ns")),
        None => PathBuf::from("/proc/self/ns"),
    }
}

/// Fail with a bad-input error unless `/proc/<pid>` exists.
pub fn check_pid(pid: i32) -> Result<()> {
    if pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(bad_input(format!(
            "no process with PID {pid} (/proc/{pid} does not exist)"
        )));
    }
    Ok(())
}

/// Every namespace link in `dir` (a `/proc/PID/ns` directory), sorted by name. Reads each link
/// with `readlink(2)`: that needs ptrace read access to the process (your own, or root).
pub fn list_in(dir: &Path) -> Result<Vec<NsLink>> {
    // lab:begin ns-list-links
    let mut links = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let entry = entry.with_context(|| format!("{}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let target =
            std::fs::read_link(&path).with_context(|| format!("readlink({})", path.display()))?;
        let target = target.to_string_lossy();
        let (kind, inode) = parse_target(&target)
            .with_context(|| format!("{}: unexpected target {target:?}", path.display()))?;
        links.push(NsLink { name, kind, inode });
    }
    links.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(links)
    // lab:end ns-list-links
}

/// Every namespace link of a process (`None`: this process).
pub fn list(pid: Option<i32>) -> Result<Vec<NsLink>> {
    if let Some(pid) = pid {
        check_pid(pid)?;
    }
    list_in(&ns_dir(pid))
}

/// The inode of one namespace link, e.g. `inode(None, "uts")` for this process's UTS namespace.
pub fn inode(pid: Option<i32>, name: &str) -> Result<u64> {
    let path = ns_dir(pid).join(name);
    let target =
        std::fs::read_link(&path).with_context(|| format!("readlink({})", path.display()))?;
    parse_target(&target.to_string_lossy())
        .map(|(_, inode)| inode)
        .with_context(|| format!("{}: unexpected target {target:?}", path.display()))
}

/// The namespace types this kernel has (those present in `/proc/self/ns`).
pub fn kinds_present() -> Result<Vec<NsKind>> {
    let mut kinds: Vec<NsKind> = list(None)?.into_iter().map(|l| l.kind).collect();
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

// NS_GET_NSTYPE from <linux/nsfs.h>: _IO(0xb7, 0x3), Linux 4.11.
nix::ioctl_none!(ns_get_nstype, 0xb7, 0x3);

// NS_GET_PARENT from <linux/nsfs.h>: _IO(0xb7, 0x2), Linux 4.9; returns a new fd.
nix::ioctl_none!(ns_get_parent, 0xb7, 0x2);
// NS_GET_USERNS from <linux/nsfs.h>: _IO(0xb7, 0x1), Linux 4.9; returns a new fd.
nix::ioctl_none!(ns_get_userns, 0xb7, 0x1);

/// An open namespace file: `/proc/PID/ns/X` or a bind mount of one (a "pin").
#[derive(Debug)]
pub struct NsFile {
    /// The path it was opened from.
    pub path: PathBuf,
    /// The open file: holding it keeps the namespace alive, passing it to `setns` joins it.
    pub file: File,
    /// Its type, as the kernel reports it (`ioctl(NS_GET_NSTYPE)`).
    pub kind: NsKind,
    /// Its inode: the namespace's identity.
    pub inode: u64,
}

impl NsFile {
    /// Open a namespace file read-only, checking that it is one (it lives on nsfs), and ask the
    /// kernel its type.
    pub fn open(path: &Path) -> Result<NsFile> {
        // ANCHOR: nsfs_check
        let file = File::open(path).with_context(|| format!("open({})", path.display()))?;
        let fs = nix::sys::statfs::fstatfs(file.as_fd())
            .with_context(|| format!("fstatfs({})", path.display()))?;
        // Namespace files live on nsfs (`NSFS_MAGIC` in <linux/magic.h>).
        if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
            return Err(bad_input(format!(
                "{} is not a namespace file (expected /proc/PID/ns/TYPE or a bind mount of one)",
                path.display()
            )));
        }
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the namespace the fd refers to
        // (ioctl_ns(2)); the fd is open for the whole call.
        let flag = unsafe { ns_get_nstype(file.as_raw_fd()) }
            .with_context(|| format!("ioctl({}, NS_GET_NSTYPE)", path.display()))?;
        let kind = NsKind::from_flag(flag)
            .with_context(|| format!("{}: unknown namespace type {flag:#x}", path.display()))?;
        let inode = file
            .metadata()
            .with_context(|| format!("fstat({})", path.display()))?
            .ino();
        // ANCHOR_END: nsfs_check
        Ok(NsFile {
            path: path.to_owned(),
            file,
            kind,
            inode,
        })
    }
}

impl NsFile {
    /// The parent of a PID (or user) namespace, `ioctl(NS_GET_PARENT)`: EPERM when the parent
    /// is outside the caller's own namespace tree, EINVAL for types without parents.
    pub fn parent(&self) -> Result<NsFile> {
        // SAFETY: NS_GET_PARENT takes no argument and returns a new file descriptor (or -1),
        // which we take ownership of right away (ioctl_ns(2)).
        let fd = unsafe { ns_get_parent(self.file.as_raw_fd()) }
            .with_context(|| format!("ioctl({}, NS_GET_PARENT)", self.path.display()))?;
        self.related(fd, self.kind, "parent")
    }

    /// The user namespace that owns this namespace, `ioctl(NS_GET_USERNS)`: the one whose
    /// capabilities count for operations on it. EPERM when that is outside the caller's tree.
    pub fn owner(&self) -> Result<NsFile> {
        // SAFETY: NS_GET_USERNS takes no argument and returns a new file descriptor (or -1),
        // which we take ownership of right away (ioctl_ns(2)).
        let fd = unsafe { ns_get_userns(self.file.as_raw_fd()) }
            .with_context(|| format!("ioctl({}, NS_GET_USERNS)", self.path.display()))?;
        self.related(fd, NsKind::User, "owner")
    }

    fn related(&self, fd: i32, kind: NsKind, what: &str) -> Result<NsFile> {
        // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
        let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let inode = file
            .metadata()
            .with_context(|| format!("fstat({what} namespace)"))?
            .ino();
        Ok(NsFile {
            path: PathBuf::from(format!("{what} of {}", self.path.display())),
            file,
            kind,
            inode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_into_type_and_inode() {
        assert_eq!(
            parse_target("uts:[4026531838]"),
            Some((NsKind::Uts, 4026531838))
        );
        assert_eq!(parse_target("pid_for_children:[1]"), Some((NsKind::Pid, 1)));
        assert_eq!(parse_target("uts:4026531838"), None);
        assert_eq!(parse_target("bogus:[1]"), None);
    }

    #[test]
    fn list_reads_fixture_links() {
        let dir = std::env::temp_dir().join(crate::unique_name("ns-fixture"));
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink("uts:[11]", dir.join("uts")).unwrap();
        std::os::unix::fs::symlink("pid:[22]", dir.join("pid_for_children")).unwrap();
        let links = list_in(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let links = links.unwrap();
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].name, "pid_for_children");
        assert_eq!(links[0].kind, NsKind::Pid);
        assert_eq!(links[1].target(), "uts:[11]");
    }

    #[test]
    fn this_process_has_the_classic_six() {
        let kinds = kinds_present().unwrap();
        for k in [
            NsKind::Uts,
            NsKind::Ipc,
            NsKind::Pid,
            NsKind::Mnt,
            NsKind::Net,
            NsKind::User,
        ] {
            assert!(kinds.contains(&k), "{k} missing");
        }
    }

    #[test]
    fn nsfs_files_report_their_type() {
        let f = NsFile::open(Path::new("/proc/self/ns/uts")).unwrap();
        assert_eq!(f.kind, NsKind::Uts);
        assert_eq!(f.inode, inode(None, "uts").unwrap());
        let err = NsFile::open(Path::new("/proc/self/status")).unwrap_err();
        assert!(err.to_string().contains("not a namespace file"), "{err}");
    }

    #[test]
    fn a_missing_pid_is_bad_input() {
        let err = list(Some(i32::MAX)).unwrap_err();
        assert_eq!(
            crate::errors::exit_code_for(&err),
            crate::errors::EXIT_BAD_INPUT
        );
    }
}
