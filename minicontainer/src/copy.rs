//! `cp SRC NAME:DST` and `cp NAME:SRC DST`: one regular file into or out of a running
//! container, as `docker cp` copies one.
//!
//! The container's side is resolved from a descriptor of its root, `/proc/PID/root` of its
//! PID 1 (opened, then checked to be that process still), with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`: every `..` and absolute symlink on the way stays inside the
//! container's root, and no `/proc/PID/...` magic link leads out of it. The last component is
//! never followed (`O_NOFOLLOW`): a symlink there is refused, read or written, so nothing is
//! copied or written through one. No host path is ever joined with a container's path.
//!
//! The host's side is the caller's: the destination is not followed either (another user may
//! have planted a link in /tmp), and a file copied out loses its set-user-ID and set-group-ID
//! bits (a container's program must not become a privileged program of the host).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use labkit::bad_input;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};

use crate::store::Store;

/// One side of a `cp`: a path of the host, or a container's name and a path in it.
#[derive(Debug, PartialEq, Eq)]
pub enum Side<'a> {
    Host(&'a str),
    Container(&'a str, &'a str),
}

/// `NAME:PATH` when what comes before the first ':' is a container's name (no '/' in it), as
/// docker cp tells them; anything else is a host path (`./a:b` is one).
pub fn side(arg: &str) -> Side<'_> {
    match arg.split_once(':') {
        Some((name, path)) if crate::store::validate_id(name).is_ok() => {
            Side::Container(name, path)
        }
        _ => Side::Host(arg),
    }
}

/// Copy `src` to `dst`, one of them in a running container; returns the bytes copied.
pub fn cp(store: &Store, src: &str, dst: &str) -> Result<u64> {
    match (side(src), side(dst)) {
        (Side::Container(name, from), Side::Host(to)) => {
            let root = container_root(store, name)?;
            let mut file = File::from(open_in(
                &root,
                name,
                from,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )?);
            let mode = regular(&file, name, from)?;
            let to = into_dir(Path::new(to), from);
            // Not through a link, and a new file's bits without set-ID.
            let mut target = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode & 0o777)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&to)
                .map_err(|e| host_error(&to, e))?;
            let st = fstat(&target).with_context(|| format!("fstat({})", to.display()))?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                return Err(bad_input(format!("{}: not a regular file", to.display())));
            }
            let n = std::io::copy(&mut file, &mut target)
                .with_context(|| format!("copy {name}:{from} to {}", to.display()))?;
            target
                .set_permissions(std::fs::Permissions::from_mode(mode & 0o777))
                .with_context(|| format!("chmod {}", to.display()))?;
            Ok(n)
        }
        (Side::Host(from), Side::Container(name, to)) => {
            let mut file = File::open(from).map_err(|e| host_error(Path::new(from), e))?;
            let meta = file.metadata().with_context(|| format!("stat {from}"))?;
            if !meta.is_file() {
                return Err(bad_input(format!(
                    "{from}: not a regular file (cp copies one file)"
                )));
            }
            let root = container_root(store, name)?;
            // An existing directory takes the file under its own name; anything else is the
            // file's own path, made in its directory (reached inside the root, links on the way
            // included) without following a link at its own name.
            let is_dir = open_in(
                &root,
                name,
                to,
                OFlag::O_PATH | OFlag::O_NOFOLLOW,
                Mode::empty(),
            )
            .ok()
            .and_then(|fd| fstat(&fd).ok())
            .is_some_and(|st| {
                SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
            });
            let (dir, leaf) = if is_dir {
                (to.to_string(), base(from)?)
            } else {
                let path = Path::new(to);
                let parent = path
                    .parent()
                    .map_or("/".into(), |p| p.display().to_string());
                let leaf = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| bad_input(format!("{name}:{to}: no file name")))?;
                (parent, leaf.to_string())
            };
            let parent = open_in(
                &root,
                name,
                &dir,
                OFlag::O_PATH | OFlag::O_DIRECTORY,
                Mode::empty(),
            )?;
            let shown = format!("{name}:{}", Path::new(&dir).join(&leaf).display());
            let mode = Mode::from_bits_truncate(meta.permissions().mode() & 0o777);
            let fd = openat(
                &parent,
                leaf.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_TRUNC
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_NONBLOCK
                    | OFlag::O_CLOEXEC,
                mode,
            )
            .map_err(|e| container_error(&shown, e))?;
            regular(&fd, name, &shown)?;
            let mut target = File::from(fd);
            let n = std::io::copy(&mut file, &mut target)
                .with_context(|| format!("copy {from} to {shown}"))?;
            target
                .set_permissions(std::fs::Permissions::from_mode(mode.bits()))
                .with_context(|| format!("chmod {shown}"))?;
            Ok(n)
        }
        (Side::Container(..), Side::Container(..)) => Err(bad_input(
            "cp: from one container to another is not supported (copy through the host)",
        )),
        (Side::Host(_), Side::Host(_)) => Err(bad_input(
            "cp: one side must be a container's (NAME:PATH); cp SRC NAME:DST or cp NAME:SRC DST",
        )),
    }
}

/// The file name of a host path.
fn base(path: &str) -> Result<String> {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
        .ok_or_else(|| bad_input(format!("{path}: no file name")))
}

/// `to`, or `to/NAME` (NAME the last part of `from`) where `to` is a directory.
fn into_dir(to: &Path, from: &str) -> std::path::PathBuf {
    match (to.is_dir(), Path::new(from).file_name()) {
        (true, Some(name)) => to.join(name),
        _ => to.to_path_buf(),
    }
}

/// A descriptor of the running container's root: `/proc/PID/root` of its PID 1, opened, then
/// checked to be that process still (its start time), so a reused PID is never taken for it.
fn container_root(store: &Store, name: &str) -> Result<OwnedFd> {
    let ctr = crate::state::find(store, name)?;
    let path = format!("/proc/{}/root", ctr.pid);
    let root = open(
        path.as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open({path}, O_PATH)"))?;
    if !ctr.process().alive() {
        return Err(bad_input(format!("container {name} has ended")));
    }
    Ok(root)
}

/// Open `path` in the container's root: links on the way resolved inside it (at its end too
/// unless `flags` has `O_NOFOLLOW`).
fn open_in(root: &OwnedFd, name: &str, path: &str, flags: OFlag, mode: Mode) -> Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    // O_NONBLOCK: a FIFO planted at the path does not hang the open (openat2 takes no flag
    // beyond these with O_PATH).
    let extra = match flags.contains(OFlag::O_PATH) {
        true => OFlag::empty(),
        false => OFlag::O_NONBLOCK,
    };
    let how = OpenHow::new()
        .flags(flags | extra | OFlag::O_CLOEXEC)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, rel, how).map_err(|e| container_error(&format!("{name}:{path}"), e))
}

/// The mode of an open file that must be a regular one (blocking again for reading).
fn regular(fd: &impl std::os::fd::AsFd, name: &str, path: &str) -> Result<u32> {
    let st = fstat(fd.as_fd()).with_context(|| format!("fstat({name}:{path})"))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(bad_input(format!(
            "{name}:{path}: not a regular file (cp copies one file)"
        )));
    }
    nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
    Ok(st.st_mode & 0o7777)
}

fn container_error(shown: &str, e: Errno) -> anyhow::Error {
    match e {
        Errno::ELOOP => bad_input(format!(
            "{shown}: a symlink where cp follows none (at the end of the path, or a /proc magic link); nothing was copied through it"
        )),
        Errno::ENOENT => bad_input(format!(
            "{shown}: no such file or directory in the container"
        )),
        Errno::ENOTDIR => bad_input(format!("{shown}: a part of the path is not a directory")),
        Errno::EISDIR => bad_input(format!("{shown}: a directory (cp copies one file)")),
        e => anyhow::Error::new(e).context(format!("openat2({shown}, RESOLVE_IN_ROOT)")),
    }
}

fn host_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => bad_input(format!(
            "{}: a symlink; cp does not write through one",
            path.display()
        )),
        Some(libc::ENOENT) => bad_input(format!("{}: no such file or directory", path.display())),
        _ => anyhow::Error::new(e).context(format!("open {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_before_a_colon_is_a_container() {
        assert_eq!(side("web:/etc/hosts"), Side::Container("web", "/etc/hosts"));
        assert_eq!(side("web:"), Side::Container("web", ""));
        assert_eq!(side("./a:b"), Side::Host("./a:b"));
        assert_eq!(side("/tmp/x"), Side::Host("/tmp/x"));
        assert_eq!(side("a b:c"), Side::Host("a b:c"));
    }
}
