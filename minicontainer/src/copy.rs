//! `cp SRC NAME:DST` and `cp NAME:SRC DST`: a regular file, or a directory with what it holds,
//! into or out of a running container, as `docker cp` copies them. A directory is copied
//! entry by entry through descriptors (each opened relative to its directory, no link
//! followed) into a new directory; links inside it are copied as links where they stay inside
//! it, and anything else is refused, the half-made copy removed.
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
use std::os::unix::ffi::OsStrExt;
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
            if is_dir(&file) {
                return tree_out(file, name, from, Path::new(to));
            }
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
            let root = container_root(store, name)?;
            if meta.is_dir() {
                return tree_in(file, from, &root, name, to);
            }
            if !meta.is_file() {
                return Err(bad_input(format!(
                    "{from}: not a regular file or a directory"
                )));
            }
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

/// Whether an open file is a directory.
fn is_dir(fd: &impl std::os::fd::AsFd) -> bool {
    fstat(fd.as_fd())
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}

/// `cp NAME:DIR DST`: the container's directory as a new one on the host, `DST` (or
/// `DST/NAME` where `DST` is a directory); one that exists already is refused (no merging).
/// What was made is removed again when the copy fails.
fn tree_out(src: File, name: &str, from: &str, to: &Path) -> Result<u64> {
    let target = match (to.is_dir(), Path::new(from).file_name()) {
        (true, Some(leaf)) => to.join(leaf),
        (true, None) => {
            return Err(bad_input(format!(
                "{name}:{from}: name a directory below / to copy into {}",
                to.display()
            )));
        }
        (false, _) => to.to_path_buf(),
    };
    let (parent, leaf) = match (target.parent(), target.file_name()) {
        (Some(p), Some(l)) => (
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            l,
        ),
        _ => {
            return Err(bad_input(format!(
                "{}: no directory name",
                target.display()
            )));
        }
    };
    let parent = open(
        parent,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| host_error(parent, e.into()))?;
    let shown = target.display().to_string();
    make_tree(&parent, leaf, &shown, |dst| {
        copy_tree(&src, dst, 0, &format!("{name}:{from}"))
    })
}

/// `cp DIR NAME:DST`: the host's directory as a new one in the container, at `DST` (or
/// `DST/NAME` where `DST` is a directory), made from a descriptor of its parent reached inside
/// the root; one that exists already is refused (no merging). What was made is removed again
/// when the copy fails.
fn tree_in(src: File, from: &str, root: &OwnedFd, name: &str, to: &str) -> Result<u64> {
    let into_existing = open_in(
        root,
        name,
        to,
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .ok()
    .is_some_and(|fd| is_dir(&fd));
    let (dir, leaf) = if into_existing {
        (to.to_string(), base(from)?)
    } else {
        let path = Path::new(to);
        let leaf = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| bad_input(format!("{name}:{to}: no directory name")))?;
        (
            path.parent()
                .map_or("/".into(), |p| p.display().to_string()),
            leaf.to_string(),
        )
    };
    let parent = open_in(
        root,
        name,
        &dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )?;
    let shown = format!("{name}:{}", Path::new(&dir).join(&leaf).display());
    make_tree(&parent, std::ffi::OsStr::new(&leaf), &shown, |dst| {
        copy_tree(&src, dst, 0, from)
    })
}

/// Make the directory `leaf` in `parent` (mode 0700 while it is filled), fill it with `fill`,
/// or remove it again if that fails.
fn make_tree(
    parent: &OwnedFd,
    leaf: &std::ffi::OsStr,
    shown: &str,
    fill: impl FnOnce(&OwnedFd) -> Result<(u64, u32)>,
) -> Result<u64> {
    match nix::sys::stat::mkdirat(parent, leaf, Mode::from_bits_truncate(0o700)) {
        Err(Errno::EEXIST) => {
            return Err(bad_input(format!(
                "{shown}: exists already (cp makes a new directory; it does not merge)"
            )));
        }
        other => other.with_context(|| format!("mkdir {shown}"))?,
    }
    let made = openat(
        parent,
        leaf,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {shown}"));
    let filled = made.and_then(|dst| {
        let (bytes, mode) = fill(&dst)?;
        nix::sys::stat::fchmod(&dst, Mode::from_bits_truncate(mode & 0o777))
            .with_context(|| format!("chmod {shown}"))?;
        Ok(bytes)
    });
    if filled.is_err() {
        let _ = remove_at(parent, leaf);
    }
    filled
}

/// Copy the directory `src` into the empty directory `dst`, entry by entry, each opened
/// relative to its directory's descriptor without following a link: directories and regular
/// files (without set-ID bits), and symlinks as links, only where they stay inside the copied
/// tree (relative, never climbing above its top: `depth` is how deep `src` is in it). Anything
/// else is refused, naming it. Returns the bytes copied and `src`'s mode.
fn copy_tree(src: &File, dst: &OwnedFd, depth: usize, shown: &str) -> Result<(u64, u32)> {
    use nix::fcntl::AtFlags;
    let mode = fstat(src)
        .with_context(|| format!("fstat({shown})"))?
        .st_mode;
    let listing = nix::dir::Dir::from_fd(OwnedFd::from(
        src.try_clone().with_context(|| format!("dup({shown})"))?,
    ))
    .with_context(|| format!("opendir({shown})"))?;
    let mut bytes = 0;
    for entry in listing {
        let entry = entry.with_context(|| format!("readdir({shown})"))?;
        let leaf = entry.file_name().to_owned();
        let leaf = std::ffi::OsStr::from_bytes(leaf.to_bytes()).to_os_string();
        if leaf == "." || leaf == ".." {
            continue;
        }
        let path = format!("{shown}/{}", leaf.to_string_lossy());
        let st = nix::sys::stat::fstatat(src, leaf.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .with_context(|| format!("lstat({path})"))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFDIR {
            let child = File::from(
                openat(
                    src,
                    leaf.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| format!("open({path})"))?,
            );
            nix::sys::stat::mkdirat(dst, leaf.as_os_str(), Mode::from_bits_truncate(0o700))
                .with_context(|| format!("mkdir for {path}"))?;
            let made = openat(
                dst,
                leaf.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("open the copy of {path}"))?;
            let (n, mode) = copy_tree(&child, &made, depth + 1, &path)?;
            nix::sys::stat::fchmod(&made, Mode::from_bits_truncate(mode & 0o777))?;
            bytes += n;
        } else if kind == SFlag::S_IFREG {
            let mut from = File::from(
                openat(
                    src,
                    leaf.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .with_context(|| format!("open({path})"))?,
            );
            let mode = regular(&from, "", &path)?;
            let mut to = File::from(
                openat(
                    dst,
                    leaf.as_os_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(mode & 0o777),
                )
                .with_context(|| format!("create the copy of {path}"))?,
            );
            bytes += std::io::copy(&mut from, &mut to).with_context(|| format!("copy {path}"))?;
            nix::sys::stat::fchmod(&to, Mode::from_bits_truncate(mode & 0o777))?;
        } else if kind == SFlag::S_IFLNK {
            let target = nix::fcntl::readlinkat(src, leaf.as_os_str())
                .with_context(|| format!("readlink({path})"))?;
            if !stays_inside(Path::new(&target), depth) {
                return Err(bad_input(format!(
                    "{path}: a symlink to {} leads out of the copied directory; nothing was copied",
                    Path::new(&target).display()
                )));
            }
            nix::unistd::symlinkat(target.as_os_str(), dst, leaf.as_os_str())
                .with_context(|| format!("symlink for {path}"))?;
        } else {
            return Err(bad_input(format!(
                "{path}: a device, FIFO or socket (cp copies files, directories and links inside them); nothing was copied"
            )));
        }
    }
    Ok((bytes, mode))
}

/// Whether a link's target, read in a directory `depth` levels below the copied tree's top,
/// stays inside that tree: relative, and never climbing above the top.
fn stays_inside(target: &Path, depth: usize) -> bool {
    let mut level = depth;
    for part in target.components() {
        match part {
            std::path::Component::Normal(_) => level += 1,
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir if level > 0 => level -= 1,
            _ => return false, // absolute, or above the top
        }
    }
    true
}

/// Remove `leaf` of `parent` and everything in it, each opened relative to its directory
/// without following a link (what a failed copy made).
fn remove_at(parent: &OwnedFd, leaf: &std::ffi::OsStr) -> Result<()> {
    use nix::unistd::{UnlinkatFlags, unlinkat};
    if unlinkat(parent, leaf, UnlinkatFlags::NoRemoveDir).is_ok() {
        return Ok(());
    }
    let dir = openat(
        parent,
        leaf,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let names: Vec<std::ffi::OsString> = nix::dir::Dir::from_fd(dir.try_clone()?)?
        .into_iter()
        .flatten()
        .map(|e| std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    for name in names {
        remove_at(&dir, &name)?;
    }
    unlinkat(parent, leaf, UnlinkatFlags::RemoveDir)?;
    Ok(())
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
            "{name}:{path}: not a regular file or a directory"
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
    fn a_link_stays_inside_the_tree_only_relative_and_below_its_top() {
        assert!(stays_inside(Path::new("b/c"), 0));
        assert!(stays_inside(Path::new("../x"), 1));
        assert!(stays_inside(Path::new("./x/../y"), 0));
        assert!(!stays_inside(Path::new("../x"), 0));
        assert!(!stays_inside(Path::new("a/../../x"), 0));
        assert!(!stays_inside(Path::new("/etc/passwd"), 3));
    }

    #[test]
    fn a_name_before_a_colon_is_a_container() {
        assert_eq!(side("web:/etc/hosts"), Side::Container("web", "/etc/hosts"));
        assert_eq!(side("web:"), Side::Container("web", ""));
        assert_eq!(side("./a:b"), Side::Host("./a:b"));
        assert_eq!(side("/tmp/x"), Side::Host("/tmp/x"));
        assert_eq!(side("a b:c"), Side::Host("a b:c"));
    }
}
