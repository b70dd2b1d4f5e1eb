//! The state store: one directory per container, for the docker-style commands (`run`, `ps`,
//! `exec`, `stop`, `kill`, `logs`, `gc`) and the OCI ones (`create`, `start`, `state`, `delete`,
//! `list`) alike, so that both are two faces of the same records.
//!
//! Where: `--root DIR` when given; else `/run/nslab` for root, `$XDG_RUNTIME_DIR/nslab` for
//! anyone else (or `$TMPDIR/nslab-UID` where that is unset). The store is made mode 0700.
//!
//! Whom it trusts: only what the caller made. Other users of the machine are attackers here (a
//! record they could plant would make root exec, kill, print or unmount what they chose), so
//! the store's root must be a directory (no symlink) owned by the caller and writable by nobody
//! else, and every record in it is opened relative to it with `O_NOFOLLOW` and must be owned by
//! the caller. Files that may hold secrets (`config.json` with `-e` values, the log) are 0600.
//!
//! A container's directory `STORE/ID`:
//! - `state.json`: its [`Record`] (PID with start time, so a reused PID is never taken for it;
//!   cgroups; for docker-style runs the `minicontainer run` that waits for it);
//! - `config.json`: the spec it was made from (`exec` joins with the same user, capabilities and
//!   seccomp filter);
//! - `runner` (docker-style only, written before the name is taken): the PID and start time of
//!   the `minicontainer run` that owns it, so that `gc` tells a live run from a killed one even
//!   before `state.json` exists; `scratch`: its layers' directory; `veth`; `log` (`run -d`);
//! - `exited` (`run -d` without `--rm`): the command's exit code, written when it ended; the
//!   record then stays (for `logs` and `inspect`) until `rm`;
//! - `exec.fifo` (OCI only, until `start`).
//!
//! A name is taken atomically: docker-style, the directory is made under a temporary name with
//! its `runner` file, then renamed to the name with `RENAME_NOREPLACE`; OCI, with mkdir(2).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use labkit::bad_input;
use nix::fcntl::{OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::{Mode, fstat};
use oci_spec::runtime::{ContainerState, State};
use serde::{Deserialize, Serialize};

/// The store when none is named: `/run/nslab` for root, else `$XDG_RUNTIME_DIR/nslab` (when it
/// is a directory of the caller's own), else `$TMPDIR/nslab-UID`.
pub fn default_root() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/nslab");
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|d| fs::symlink_metadata(d).is_ok_and(|m| m.is_dir() && m.uid() == uid.as_raw()));
    match runtime {
        Some(dir) => dir.join("nslab"),
        None => std::env::temp_dir().join(format!("nslab-{uid}")),
    }
}

/// A process's start time (field 22 of /proc/PID/stat), or `None` when it is gone or a zombie
/// (a zombie has ended: only its exit status is left to collect).
pub fn starttime(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, is in parentheses and may hold spaces: count after its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); starttime is field 22.
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// A process named by PID and start time: alive only while both still match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: i32,
    pub starttime: u64,
}

impl Proc {
    /// This process's own.
    pub fn me() -> Result<Proc> {
        let pid = std::process::id() as i32;
        Ok(Proc {
            pid,
            starttime: starttime(pid).context("read /proc/self/stat")?,
        })
    }

    pub fn alive(&self) -> bool {
        starttime(self.pid) == Some(self.starttime)
    }
}

/// What the store keeps of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub pid: i32,
    /// The process's start time (field 22 of /proc/PID/stat), against PID reuse.
    pub starttime: u64,
    pub bundle: PathBuf,
    /// Seconds since the epoch.
    pub created: u64,
    /// The top group of each limit, with its cgroup version (`v1`, `v2`), for `delete`.
    pub cgroups: Vec<(PathBuf, String)>,
    pub annotations: HashMap<String, String>,
    /// The `cgroup.procs` files of its groups (what `exec` joins).
    #[serde(default)]
    pub procs: Vec<PathBuf>,
    /// Docker-style: the `minicontainer run` that waits for it and removes it.
    #[serde(default)]
    pub runner: Option<Proc>,
    /// Its command line, for `ps`.
    #[serde(default)]
    pub command: String,
    /// `--net bridge`: its eth0's address (`ADDRESS/PREFIX`) and the bridge's (the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<(String, String)>,
    /// `-p`: (host port on 127.0.0.1, container port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<(u16, u16)>,
}

impl Record {
    /// Its process, by PID and start time.
    pub fn process(&self) -> Proc {
        Proc {
            pid: self.pid,
            starttime: self.starttime,
        }
    }
}

/// The specification's state with runc's statuses (`paused` too), its fields in the spec's order.
#[derive(Debug, Clone)]
pub struct RuncState {
    pub state: State,
    pub status: String,
}

impl Serialize for RuncState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let st = &self.state;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("ociVersion", st.version())?;
        m.serialize_entry("id", st.id())?;
        m.serialize_entry("status", &self.status)?;
        if let Some(pid) = st.pid() {
            m.serialize_entry("pid", &pid)?;
        }
        m.serialize_entry("bundle", st.bundle())?;
        if let Some(a) = st.annotations() {
            m.serialize_entry("annotations", a)?;
        }
        m.end()
    }
}

/// A container's ID (its name): 1 to 1024 of `[A-Za-z0-9_+.-]` (runc's rule), not starting with
/// `.` (the store's own temporary names do).
pub fn validate_id(id: &str) -> Result<()> {
    let ok = (1..=1024).contains(&id.len())
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad_input(format!(
            "container ID {id:?}: letters, digits, '_', '+', '.' or '-' only, not starting with '.'"
        )))
    }
}

/// The state store (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
    /// The default store is removed once empty ([`Store::tidy`]); one named with `--root` is
    /// the caller's (a container manager's) and stays, as runc leaves it.
    default: bool,
}

/// The store's root is not the caller's to trust.
fn untrusted(path: &Path, why: &str) -> anyhow::Error {
    anyhow::Error::new(labkit::errors::MissingFeature(format!(
        "state store {}: {why}; it is not yours to trust (choose another with --root)",
        path.display()
    )))
}

/// Whether an open file is the caller's: owned by this effective UID.
fn owned(fd: impl AsFd, path: &Path) -> Result<nix::sys::stat::FileStat> {
    let st = fstat(fd).with_context(|| format!("fstat({})", path.display()))?;
    if st.st_uid != nix::unistd::geteuid().as_raw() {
        return Err(untrusted(
            path,
            &format!("owned by UID {}, not by you", st.st_uid),
        ));
    }
    Ok(st)
}

impl Store {
    pub fn new(root: Option<PathBuf>) -> Store {
        Store {
            default: root.is_none(),
            root: root.unwrap_or_else(default_root),
        }
    }

    /// A container's directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The store's root, opened and checked: a directory of the caller's (no symlink), that no
    /// one else may write. `None` when it does not exist yet.
    fn open_root(&self) -> Result<Option<OwnedFd>> {
        let fd = match nix::fcntl::open(
            &self.root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {
                return Err(untrusted(&self.root, "not a directory (a symlink?)"));
            }
            other => other.with_context(|| format!("open({})", self.root.display()))?,
        };
        let st = owned(&fd, &self.root)?;
        if st.st_mode & 0o022 != 0 {
            return Err(untrusted(
                &self.root,
                &format!("others may write it (mode {:o})", st.st_mode & 0o7777),
            ));
        }
        Ok(Some(fd))
    }

    /// Make the store (mode 0700) if it is not there, and check it.
    pub fn ensure(&self) -> Result<OwnedFd> {
        if let Some(parent) = self.root.parent() {
            fs::create_dir_all(parent).with_context(|| format!("mkdir -p {}", parent.display()))?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.root) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).with_context(|| format!("mkdir {}", self.root.display()));
            }
            _ => {}
        }
        self.open_root()?
            .with_context(|| format!("{} is gone", self.root.display()))
    }

    /// A container's directory, opened relative to the checked root without following links,
    /// and checked to be the caller's.
    fn open_dir(&self, id: &str) -> Result<OwnedFd> {
        validate_id(id)?;
        let missing = || {
            bad_input(format!(
                "no container is called {id:?} in {}",
                self.root.display()
            ))
        };
        let root = self.open_root()?.ok_or_else(missing)?;
        let fd = match openat(
            &root,
            id,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Err(nix::errno::Errno::ENOENT) => return Err(missing()),
            other => other.with_context(|| format!("open({})", self.dir(id).display()))?,
        };
        owned(&fd, &self.dir(id))?;
        Ok(fd)
    }

    /// Open a file of a container's record: relative to its checked directory, `O_NOFOLLOW`, a
    /// regular file of the caller's.
    pub fn open_file(&self, id: &str, name: &str) -> Result<File> {
        let dir = self.open_dir(id)?;
        let path = self.dir(id).join(name);
        let fd = openat(
            &dir,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .with_context(|| format!("open({}, O_NOFOLLOW)", path.display()))?;
        let st = owned(&fd, &path)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(untrusted(&path, "not a regular file"));
        }
        let file = File::from(fd);
        // Blocking again for the reader (O_NONBLOCK only kept a planted FIFO from hanging open).
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
        Ok(file)
    }

    /// Read a file of a container's record ([`Store::open_file`]).
    pub fn read_file(&self, id: &str, name: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open_file(id, name)?
            .read_to_end(&mut bytes)
            .with_context(|| format!("read {}", self.dir(id).join(name).display()))?;
        Ok(bytes)
    }

    /// Write a file of a container's record whole, mode 0600: a new file beside it (made with
    /// `O_EXCL | O_NOFOLLOW`), renamed over it.
    pub fn write_file(&self, id: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let dir = self.open_dir(id)?;
        write_at(&dir, &self.dir(id), name, bytes)
    }

    /// The record of `id`, or an error naming it.
    pub fn load(&self, id: &str) -> Result<Record> {
        let path = self.dir(id).join("state.json");
        let text = self.read_file(id, "state.json").map_err(|e| {
            if e.chain().any(|c| c.is::<labkit::errors::MissingFeature>()) {
                e
            } else {
                bad_input(format!(
                    "container {id} does not exist (no {})",
                    path.display()
                ))
            }
        })?;
        serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))
    }

    /// The status the kernel shows now.
    pub fn status(&self, record: &Record) -> ContainerState {
        if !record.process().alive() {
            ContainerState::Stopped
        } else if self.dir(&record.id).join("exec.fifo").exists() {
            ContainerState::Created
        } else {
            ContainerState::Running
        }
    }

    /// Whether a running container is paused (its freezer group frozen). The specification's
    /// states have no "paused"; runc's `state` and `list` print it, and clients read it.
    pub fn paused(&self, record: &Record) -> bool {
        self.status(record) == ContainerState::Running
            && crate::engine::cgroups::frozen(&record.procs)
    }

    /// The status as runc prints it: the specification's, or `paused`.
    pub fn status_text(&self, record: &Record) -> String {
        if self.paused(record) {
            "paused".into()
        } else {
            self.status(record).to_string()
        }
    }

    /// The state of `id` as runc prints it: the specification's, with `paused` as a status.
    pub fn state_json(&self, id: &str) -> Result<RuncState> {
        let state = self.state(id)?;
        let record = self.load(id)?;
        Ok(RuncState {
            status: self.status_text(&record),
            state,
        })
    }

    /// The OCI state of `id`, as the specification defines it.
    pub fn state(&self, id: &str) -> Result<State> {
        let record = self.load(id)?;
        let status = self.status(&record);
        let mut state = State::default();
        state
            .set_version(crate::spec::OCI_VERSION.to_string())
            .set_id(record.id.clone())
            .set_status(status)
            .set_pid(match status {
                ContainerState::Stopped => None,
                _ => Some(record.pid),
            })
            .set_bundle(record.bundle.clone())
            .set_annotations(Some(record.annotations.clone()));
        Ok(state)
    }

    /// The IDs in the store (temporary names left out); an error when the store is not the
    /// caller's to trust.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = match self.open_root()? {
            Some(_) => fs::read_dir(&self.root)
                .with_context(|| format!("read {}", self.root.display()))?
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| validate_id(n).is_ok())
                .collect(),
            None => Vec::new(),
        };
        ids.sort();
        Ok(ids)
    }

    /// Every container with a record, by ID.
    pub fn list(&self) -> Result<Vec<Record>> {
        Ok(self
            .ids()?
            .iter()
            .filter_map(|id| self.load(id).ok())
            .collect())
    }

    /// Take the name `id` for a docker-style run by this process: its directory, with a
    /// `runner` file naming this process, appears under the name at once or not at all.
    pub fn claim(&self, id: &str) -> Result<Claim> {
        validate_id(id)?;
        let root = self.ensure()?;
        let tmp = format!(".new-{}", labkit::unique_name("ctr"));
        let mkdir = |root: &OwnedFd| {
            nix::sys::stat::mkdirat(root, tmp.as_str(), Mode::from_bits_truncate(0o700))
        };
        let root = match mkdir(&root) {
            // A store emptied by another run's last removal (see Store::tidy): make it again.
            Err(nix::errno::Errno::ENOENT) => {
                let root = self.ensure()?;
                mkdir(&root).map(|()| root)
            }
            other => other.map(|()| root),
        }
        .with_context(|| format!("mkdir {}", self.root.join(&tmp).display()))?;
        let made = Claim {
            dir: self.root.join(&tmp),
            store: None,
        };
        let tmp_fd = openat(
            &root,
            tmp.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        write_at(
            &tmp_fd,
            &made.dir,
            "runner",
            &serde_json::to_vec(&Proc::me()?)?,
        )?;
        match renameat2(
            &root,
            tmp.as_str(),
            &root,
            id,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {
                drop(made); // its temporary name is gone: nothing to remove there
                Ok(Claim {
                    dir: self.dir(id),
                    store: Some(self.clone()),
                })
            }
            Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY) => {
                let hint = match self.runner(id) {
                    _ if self.read_file(id, "exited").is_ok() => {
                        format!("; it has ended: minicontainer rm {id} removes it")
                    }
                    Some(r) if !r.alive() => {
                        "; it was left by a run that was killed: minicontainer gc removes it".into()
                    }
                    _ => String::new(),
                };
                Err(bad_input(format!(
                    "--name {id}: already in use (see minicontainer ps){hint}"
                )))
            }
            Err(e) => Err(e).with_context(|| format!("rename into {}", self.dir(id).display())),
        }
    }

    /// Remove the store's root once it holds nothing (after a container's directory went), so
    /// that a machine without containers has no store left; a store still in use stays (its
    /// rmdir(2) fails).
    pub fn tidy(&self) {
        if self.default {
            let _ = fs::remove_dir(&self.root);
        }
    }

    /// The `minicontainer run` that took `id`, if a docker-style run did.
    pub fn runner(&self, id: &str) -> Option<Proc> {
        serde_json::from_slice(&self.read_file(id, "runner").ok()?).ok()
    }

    /// Temporary claims (`.new-*`) whose maker is gone, for `gc`.
    pub fn stale_claims(&self) -> Vec<PathBuf> {
        if !matches!(self.open_root(), Ok(Some(_))) {
            return Vec::new();
        }
        fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".new-"))
            .filter(|e| {
                e.metadata()
                    .is_ok_and(|m| m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw())
            })
            .filter(|e| {
                fs::read(e.path().join("runner"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Proc>(&b).ok())
                    .is_none_or(|p| !p.alive())
            })
            .map(|e| e.path())
            .collect()
    }
}

/// Write `name` in the directory `dir` (shown as `shown`) whole, mode 0600.
fn write_at(dir: &OwnedFd, shown: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = format!(".{name}.{}", labkit::unique_name("tmp"));
    let fd = openat(
        dir,
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .with_context(|| format!("create {}", shown.join(&tmp).display()))?;
    let written = File::from(fd)
        .write_all(bytes)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            nix::fcntl::renameat(dir, tmp.as_str(), dir, name).map_err(anyhow::Error::from)
        });
    if written.is_err() {
        let _ = nix::unistd::unlinkat(dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    written.with_context(|| format!("write {}", shown.join(name).display()))
}

/// A container's directory in the store, removed with everything in it when dropped (unless
/// [`Claim::keep`] is called).
#[derive(Debug)]
pub struct Claim {
    dir: PathBuf,
    /// The store to tidy once the directory is gone.
    store: Option<Store>,
}

impl Claim {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Leave the directory in place.
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(store) = &self.store {
            store.tidy();
        }
    }
}

/// A file of the caller's own, created new with mode 0600 and no link followed (a container's
/// log).
pub fn create_private(path: &Path) -> Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("create {}", path.display()))
}

/// Set a directory's mode (the container's scratch directory: 0700).
pub fn chmod(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Whether `path` is a directory of the caller's (no symlink), for removing what a record
/// names.
pub fn is_own_dir(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runcs_rule() {
        for good in ["a", "web-1", "x_y.z+2"] {
            validate_id(good).unwrap();
        }
        for bad in ["", ".", "..", ".new-x", "a/b", "a b", "ä"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn our_own_start_time_is_read() {
        let me = Proc::me().unwrap();
        assert!(me.alive());
        assert!(
            !Proc {
                starttime: me.starttime + 1,
                ..me
            }
            .alive(),
            "a PID with another start time is another process"
        );
    }

    #[test]
    fn a_store_that_others_may_write_is_refused() {
        let dir = labkit::tempdir::TempDir::new("store-test");
        let store = Store::new(Some(dir.path().join("s")));
        store.ensure().unwrap();
        chmod(&store.root, 0o777).unwrap();
        let err = format!("{:#}", store.ensure().unwrap_err());
        assert!(err.contains("others may write it"), "{err}");
        chmod(&store.root, 0o700).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&store.root, &link).unwrap();
        let err = format!("{:#}", Store::new(Some(link)).ensure().unwrap_err());
        assert!(err.contains("not a directory"), "{err}");
    }

    #[test]
    fn a_name_is_taken_once_and_records_are_opened_without_links() {
        let dir = labkit::tempdir::TempDir::new("store-test");
        let store = Store::new(Some(dir.path().join("s")));
        let claim = store.claim("web").unwrap();
        assert!(store.runner("web").is_some_and(|r| r.alive()));
        let again = format!("{:#}", store.claim("web").unwrap_err());
        assert!(again.contains("already in use"), "{again}");
        store.write_file("web", "config.json", b"{}").unwrap();
        let mode = fs::metadata(claim.path().join("config.json"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::os::unix::fs::symlink("/etc/hostname", claim.path().join("log")).unwrap();
        assert!(
            store.read_file("web", "log").is_err(),
            "a symlink is not followed"
        );
        drop(claim);
        assert!(store.ids().unwrap().is_empty());
        assert!(store.root.exists(), "a store named with --root stays");
    }
}
