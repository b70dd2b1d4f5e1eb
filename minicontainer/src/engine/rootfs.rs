//! Step 3: the root filesystem, in the container's new mount namespace (made private first, so
//! nothing reaches the host): the root (an overlay of the image's layers and a writable layer,
//! or a bundle's rootfs as it is, either `nodev`), the spec's mounts, `/dev`, the sysctls,
//! masked and read-only paths, then `pivot_root` with the old root unmounted. Every path that
//! comes from the image or the spec is resolved without following a link out of the root
//! ([`mount_target`]).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cgroup_demo::cg::{self, Version};
use labkit::bad_input;
use labkit::child::Reporter;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::unistd::{chdir, pivot_root};

use crate::Root;
use crate::spec::{self, Plan};

use super::step;

/// Inside the child: build the root filesystem and pivot into it.
pub(crate) fn build(
    r: &mut Reporter,
    cgroups: &[cg::Hierarchy],
    plan: &Plan,
    root: &Root,
    work: &Path,
    binds: &[(PathBuf, PathBuf)],
    before_pivot: &dyn Fn() -> Result<()>,
) -> Result<()> {
    // Unbindable only once the root is made (the masked paths and the host's binds need
    // bindable sources); slave and shared from the start, to stay joined to the host's mounts.
    match plan.root_propagation {
        Some(flags) if flags.intersects(MsFlags::MS_SLAVE | MsFlags::MS_SHARED) => {
            propagate(r, flags, root, work)?
        }
        _ => make_private(r)?,
    }
    let merged = mount_root(r, root, work)?;
    bind_host(r, &merged, binds)?;
    // ANCHOR: mounts
    for m in &plan.mounts {
        mount_one(&merged, m, cgroups)?;
    }
    // ANCHOR_END: mounts
    step(
        r,
        format!("mount(2) the config's mounts: {}", describe_mounts(plan)),
    );
    super::devices::populate(r, &merged, plan)?;
    // Per-namespace kernel settings, through the container's own /proc/sys, before it turns
    // read-only: the domain name (UTS) and the spec's sysctls (network, IPC).
    if !plan.sysctl.is_empty() {
        write_sysctls(&merged, &plan.sysctl)?;
        let shown: Vec<String> = plan
            .sysctl
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        step(
            r,
            format!("sysctl (write /proc/sys/...): {}", shown.join(" ")),
        );
    }
    mask(r, &merged, plan)?;
    // The spec's createContainer hooks: in the container's mount namespace, the host's tree
    // still there.
    before_pivot()?;
    if plan.no_pivot {
        move_root(r, &merged)?;
    } else {
        pivot(r, &merged, matches!(root, Root::Bundle(_)))?;
    }
    if let Some(flags) = plan.root_propagation {
        // Once more on the new root, as runc does: its mounts are made now.
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .with_context(|| format!("mount(\"/\", {flags:?}) (linux.rootfsPropagation)"))?;
    }
    if plan.root_readonly {
        remount_adding(Path::new("/"), MsFlags::MS_RDONLY)?;
        step(
            r,
            "mount(NULL, \"/\", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY): root.readonly",
        );
    }
    Ok(())
}

/// `linux.rootfsPropagation` other than private: the new namespace's mounts get it (slave:
/// the host's new mounts reach the container, shared: both ways), as runc does, and the mount
/// that holds the root-to-be and the root mount are made private (alone, not recursively), so
/// that the root's own mounts stay in the container and pivot_root(2) accepts it (it refuses
/// shared parents).
fn propagate(r: &mut Reporter, flags: MsFlags, root: &Root, work: &Path) -> Result<()> {
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .with_context(|| format!("mount(\"/\", {flags:?}) (linux.rootfsPropagation)"))?;
    // The root-to-be may be a mount itself (Docker's overlay) or lie on one.
    let (own, holder) = match root {
        Root::Bundle(dir) => (dir.as_path(), dir.parent().unwrap_or(dir)),
        _ => (work, work),
    };
    for at in [
        mount_point_of(own)?,
        mount_point_of(holder)?,
        PathBuf::from("/"),
    ] {
        mount(
            None::<&str>,
            &at,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .with_context(|| format!("mount({}, MS_PRIVATE)", at.display()))?;
    }
    step(
        r,
        format!(
            "mount(NULL, \"/\", NULL, {flags:?}): linux.rootfsPropagation; the root-to-be's parent mount private"
        ),
    );
    Ok(())
}

/// The mount point of the mount that holds `path` (the longest in this namespace's mountinfo).
fn mount_point_of(path: &Path) -> Result<PathBuf> {
    let path = fs::canonicalize(path).with_context(|| format!("realpath({})", path.display()))?;
    let table = fs::read_to_string("/proc/thread-self/mountinfo")
        .context("read /proc/thread-self/mountinfo")?;
    Ok(table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(labkit::cgroupfs::unescape(m)))
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.components().count())
        .unwrap_or_else(|| PathBuf::from("/")))
}

/// Every mount of the new namespace private, recursively.
fn make_private(r: &mut Reporter) -> Result<()> {
    // lab:begin ctr-private-root
    // ANCHOR: private
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("mount(\"/\", MS_REC | MS_PRIVATE)")?;
    // ANCHOR_END: private
    // lab:end ctr-private-root
    step(
        r,
        "mount(NULL, \"/\", NULL, MS_REC | MS_PRIVATE): nothing from here on reaches the host",
    );
    Ok(())
}

/// The root: a bundle's rootfs bound onto itself (pivot_root(2) wants a mount point), or an
/// overlay of the layers with a writable one on top; `nodev` either way, so that a device node
/// shipped in the root filesystem opens nothing (the container's /dev is a tmpfs of its own,
/// holding only the nodes the runtime puts there). Returns where it is.
fn mount_root(r: &mut Reporter, root: &Root, work: &Path) -> Result<PathBuf> {
    let lowers: Vec<PathBuf> = match root {
        Root::Host => vec![work.join("image")],
        Root::Dir(d) => vec![d.clone()],
        Root::Layers(layers) => layers.clone(),
        Root::Bundle(_) => Vec::new(),
    };
    Ok(match root {
        Root::Bundle(dir) => {
            bind(dir, dir)?;
            remount_adding(dir, MsFlags::MS_NODEV)?;
            step(
                r,
                format!(
                    "mount(\"{0}\", \"{0}\", NULL, MS_BIND | MS_REC), then MS_REMOUNT | MS_NODEV: the bundle's rootfs, as it is",
                    dir.display()
                ),
            );
            dir.clone()
        }
        _ => {
            let lowers: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
            let (upper, overlay_work, merged) =
                (work.join("upper"), work.join("work"), work.join("rootfs"));
            let options = cow_demo::mount_overlay(&lowers, &upper, &overlay_work, &merged, "")?;
            remount_adding(&merged, MsFlags::MS_NODEV)?;
            step(
                r,
                format!(
                    "mount(\"overlay\", rootfs, \"overlay\", \"{}\"), then MS_REMOUNT | MS_NODEV",
                    options.replace(&format!("{}/", work.display()), "")
                ),
            );
            merged
        }
    })
}

/// The host directories of the embedded default root (its /usr ...), read-only.
fn bind_host(r: &mut Reporter, merged: &Path, binds: &[(PathBuf, PathBuf)]) -> Result<()> {
    for (host, inside) in binds {
        bind_ro(host, &merged.join(inside))?;
    }
    if !binds.is_empty() {
        step(
            r,
            format!(
                "mount --bind -o ro: {}",
                binds
                    .iter()
                    .map(|(h, _)| h.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
    }
    Ok(())
}

/// The spec's mounts in one line, for the narration.
fn describe_mounts(plan: &Plan) -> String {
    let shown: Vec<String> = plan
        .mounts
        .iter()
        .map(|m| match m.bind {
            Some(_) => format!(
                "{} on {} (bind{})",
                m.source.display(),
                m.destination.display(),
                if m.flags.contains(MsFlags::MS_RDONLY) {
                    ", ro"
                } else {
                    ""
                }
            ),
            None => format!(
                "{} on {}{}",
                m.typ,
                m.destination.display(),
                if m.flags.contains(MsFlags::MS_RDONLY) {
                    " (ro)"
                } else {
                    ""
                }
            ),
        })
        .collect();
    shown.join(", ")
}

/// The spec's masked paths (behind an empty read-only tmpfs, or /dev/null for a file) and
/// read-only paths.
fn mask(r: &mut Reporter, merged: &Path, plan: &Plan) -> Result<()> {
    let dir = |p: &str| merged.join(p.trim_start_matches('/'));
    // ANCHOR: masked
    for path in &plan.masked {
        let target = dir(path);
        match fs::metadata(&target) {
            Ok(m) if m.is_dir() => mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .with_context(|| format!("mask {path}"))?,
            Ok(_) => mount(
                Some(Path::new("/dev/null")),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .with_context(|| format!("mask {path}"))?,
            Err(_) => {}
        }
    }
    for path in &plan.read_only {
        let target = dir(path);
        if target.exists() {
            bind_ro(&target, &target)?;
        }
    }
    // ANCHOR_END: masked
    step(
        r,
        format!(
            "masked: {}; read-only: {}",
            plan.masked.join(" "),
            plan.read_only.join(" ")
        ),
    );
    Ok(())
}

/// runc's `--no-pivot`: every mount outside the new root detached (deepest first; the old root
/// itself cannot be), then the new root moved onto `/` (MS_MOVE) and chroot(2) into it. For a
/// root that pivot_root(2) refuses (on ramfs); weaker, as a chroot is.
fn move_root(r: &mut Reporter, merged: &Path) -> Result<()> {
    let table = fs::read_to_string("/proc/thread-self/mountinfo")
        .context("read /proc/thread-self/mountinfo")?;
    let mut outside: Vec<PathBuf> = table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(labkit::cgroupfs::unescape(m)))
        .filter(|m| !m.starts_with(merged) && !merged.starts_with(m))
        .collect();
    outside.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    // Their unmounts must not travel to the host (a shared rootfsPropagation).
    old_root_receives_only("/")?;
    for m in &outside {
        // Already gone with a parent detached before it: fine.
        let _ = umount2(m, MntFlags::MNT_DETACH);
    }
    chdir(merged).context("chdir(rootfs)")?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .context("mount(\".\", \"/\", MS_MOVE)")?;
    nix::unistd::chroot(".").context("chroot(\".\")")?;
    chdir("/").context("chdir(\"/\")")?;
    step(
        r,
        format!(
            "--no-pivot: umount2(MNT_DETACH) {} mounts outside the root; mount(rootfs, \"/\", MS_MOVE); chroot(\".\")",
            outside.len()
        ),
    );
    Ok(())
}

/// The old root, before it is unmounted: a slave (recursively), so that its unmount does not
/// travel back to the host's mounts it shares a peer group with (with a shared
/// rootfsPropagation it does: the host would lose them), as runc does.
fn old_root_receives_only(old: &str) -> Result<()> {
    mount(
        None::<&str>,
        old,
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("mount(\"{old}\", MS_SLAVE | MS_REC)"))
}

/// `pivot_root` into `merged` and unmount the old root: from here the host's tree is gone.
fn pivot(r: &mut Reporter, merged: &Path, bundle: bool) -> Result<()> {
    if bundle {
        // A bundle's rootfs may not be writable by the container's root (a mapped one, or a
        // read-only tree): no directory for the old root, then. pivot_root(".", ".") stacks the
        // old root under the new one, on the same directory; unmounting "." takes it away.
        chdir(merged).context("chdir(rootfs)")?;
        pivot_root(".", ".").context("pivot_root(\".\", \".\")")?;
        old_root_receives_only(".")?;
        umount2(".", MntFlags::MNT_DETACH).context("umount2(\".\", MNT_DETACH)")?;
        chdir("/").context("chdir(\"/\")")?;
        step(
            r,
            "pivot_root(\".\", \".\"); umount2(\".\", MNT_DETACH): the host's tree is gone from here",
        );
    } else {
        // ANCHOR: pivot
        let old = merged.join(".oldroot");
        fs::create_dir_all(&old)?;
        chdir(merged).context("chdir(rootfs)")?;
        pivot_root(".", ".oldroot").context("pivot_root(\".\", \".oldroot\")")?;
        chdir("/").context("chdir(\"/\")")?;
        old_root_receives_only("/.oldroot")?;
        umount2("/.oldroot", MntFlags::MNT_DETACH).context("umount2(\"/.oldroot\", MNT_DETACH)")?;
        fs::remove_dir("/.oldroot").context("rmdir(\"/.oldroot\")")?;
        // ANCHOR_END: pivot
        step(
            r,
            "pivot_root(rootfs, rootfs/.oldroot); umount2(\"/.oldroot\", MNT_DETACH): the host's tree is gone from here",
        );
    }
    Ok(())
}

/// The embedded default root: a skeleton whose /usr (and merged-/usr symlinks or real
/// /bin, /lib, ...) come from the host, read-only.
pub(crate) fn host_skeleton(lower: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut binds = Vec::new();
    for dir in [
        "dev", "proc", "sys", "tmp", "etc", "root", "run", "var", "home",
    ] {
        fs::create_dir_all(lower.join(dir))?;
    }
    fs::write(
        lower.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n",
    )?;
    fs::write(lower.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    fs::write(
        lower.join("etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n",
    )?;
    fs::create_dir_all(lower.join("usr"))?;
    binds.push((PathBuf::from("/usr"), PathBuf::from("usr")));
    for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(top);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => symlink(fs::read_link(&host)?, lower.join(top))?,
            Ok(m) if m.is_dir() => {
                fs::create_dir_all(lower.join(top))?;
                binds.push((host, PathBuf::from(top)));
            }
            _ => {}
        }
    }
    Ok(binds)
}

pub(crate) fn bind(source: &Path, target: &Path) -> Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("mount --bind {} {}", source.display(), target.display()))
}

/// A bind mount takes the read-only flag only in a remount.
pub(crate) fn remount_ro(target: &Path) -> Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("mount -o remount,bind,ro {}", target.display()))
}

/// Remount the mount at `target` with `flags` added to the per-mount flags it has (read back
/// with statvfs(2): a bind remount sets them all at once, and would clear any left out).
pub(crate) fn remount_adding(target: &Path, flags: MsFlags) -> Result<()> {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let have = statvfs(target)
        .with_context(|| format!("statvfs({})", target.display()))?
        .flags();
    let mut all = flags;
    for (fs, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(fs) {
            all |= ms;
        }
    }
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | all,
        None::<&str>,
    )
    .with_context(|| format!("mount -o remount,bind,{all:?} {}", target.display()))
}

pub(crate) fn bind_ro(source: &Path, target: &Path) -> Result<()> {
    bind(source, target)?;
    remount_ro(target)
}

/// The mount point for a mount inside the (not yet pivoted) root `merged`, made when missing (a
/// directory, or an empty file when a bind mount's source is a file). No component may be a
/// symlink: before `pivot_root`, a link in the image such as `/data -> /etc` would resolve on the
/// host.
pub(crate) fn mount_target(merged: &Path, destination: &Path, file: bool) -> Result<PathBuf> {
    let mut path = merged.to_path_buf();
    let parts: Vec<_> = destination.components().skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        if matches!(part, std::path::Component::ParentDir) {
            return Err(bad_input(format!(
                "mount on {}: .. is not allowed",
                destination.display()
            )));
        }
        path.push(part);
        let last = i + 1 == parts.len();
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(bad_input(format!(
                    "mount on {}: {} is a symlink in the image; refusing to follow it outside pivot_root",
                    destination.display(),
                    Path::new("/").join(path.strip_prefix(merged)?).display()
                )));
            }
            Ok(_) => {}
            Err(_) if last && file => {
                fs::write(&path, "").with_context(|| format!("touch {}", path.display()))?
            }
            Err(_) => fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?,
        }
    }
    Ok(path)
}

/// A mount of type `cgroup`: on a pure v2 host, the container's cgroup2 (its cgroup namespace
/// makes its own group the root); on v1 and hybrid hosts, as runc does, a tmpfs with one
/// directory per hierarchy and the container's group of each bound there.
fn mount_cgroups(merged: &Path, m: &spec::MountPlan, cgroups: &[cg::Hierarchy]) -> Result<()> {
    let target = mount_target(merged, &m.destination, false)?;
    let read_only = m.flags.contains(MsFlags::MS_RDONLY);
    if cgroups.len() == 1 && cgroups[0].version == Version::V2 {
        return match mount(
            Some("cgroup2"),
            &target,
            Some("cgroup2"),
            m.flags,
            None::<&str>,
        ) {
            // EBUSY: the same cgroup2 is already mounted there (a second cgroup mount in the
            // config, or an rbind of /sys that brought the host's); EPERM: a user namespace
            // without a cgroup namespace of its own. As runc does, bind the container's own
            // group there instead.
            Err(nix::errno::Errno::EBUSY | nix::errno::Errno::EPERM) => {
                bind(&cgroups[0].own, &target)?;
                if read_only {
                    remount_ro(&target)?;
                }
                Ok(())
            }
            other => other.with_context(|| format!("mount cgroup2 on {}", m.destination.display())),
        };
    }
    mount(
        Some("tmpfs"),
        &target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .with_context(|| format!("mount tmpfs on {}", m.destination.display()))?;
    for h in cgroups {
        let Some(name) = h.mount.file_name() else {
            continue;
        };
        let dir = target.join(name);
        fs::create_dir_all(&dir)?;
        bind(&h.own, &dir)?;
        if read_only {
            remount_ro(&dir)?;
        }
    }
    if read_only {
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .with_context(|| format!("mount -o remount,ro {}", m.destination.display()))?;
    }
    Ok(())
}

/// One mount of the spec, inside `merged`: a bind mount (read-only by a second call, as the
/// kernel wants it), or a file system of its type with its flags and data; then its propagation.
fn mount_one(merged: &Path, m: &spec::MountPlan, cgroups: &[cg::Hierarchy]) -> Result<()> {
    if m.typ == "cgroup" || m.typ == "cgroup2" {
        return mount_cgroups(merged, m, cgroups);
    }
    let target = mount_target(
        merged,
        &m.destination,
        m.bind.is_some() && !m.source.is_dir(),
    )?;
    let shown = || format!("{} on {}", m.typ, m.destination.display());
    match m.bind {
        Some(recursive) => {
            let mut flags = MsFlags::MS_BIND;
            if recursive {
                flags |= MsFlags::MS_REC;
            }
            mount(Some(&m.source), &target, None::<&str>, flags, None::<&str>).with_context(
                || {
                    format!(
                        "mount --bind {} {}",
                        m.source.display(),
                        m.destination.display()
                    )
                },
            )?;
            let extra = m.flags - MsFlags::MS_BIND;
            if !extra.is_empty() {
                mount(
                    None::<&str>,
                    &target,
                    None::<&str>,
                    flags | MsFlags::MS_REMOUNT | extra,
                    None::<&str>,
                )
                .with_context(|| format!("mount -o remount,bind {}", m.destination.display()))?;
            }
        }
        None => match mount(
            Some(&m.source),
            &target,
            Some(m.typ.as_str()),
            m.flags,
            (!m.data.is_empty()).then_some(m.data.as_str()),
        ) {
            // A sysfs needs the network namespace to belong to our user namespace; a joined
            // one of the host's does not: bind the host's /sys instead, read-only (as runc).
            Err(nix::errno::Errno::EPERM) if m.typ == "sysfs" => {
                bind(Path::new("/sys"), &target)?;
                remount_ro(&target)?;
            }
            other => other.with_context(|| format!("mount {}", shown()))?,
        },
    }
    if let Some(propagation) = m.propagation {
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            propagation,
            None::<&str>,
        )
        .with_context(|| format!("mount --make-{propagation:?} {}", shown()))?;
    }
    Ok(())
}

/// Write the spec's sysctls through the container's own procfs only: `/proc` of the new root
/// must be a proc mount (not a symlink an image put there, nor a directory), and each file is
/// opened beneath it with no symlink followed (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_XDEV)`): nothing a root filesystem holds can turn the write onto a host file.
fn write_sysctls(merged: &Path, sysctl: &[(String, String)]) -> Result<()> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
    let not_proc =
        || bad_input("config: sysctls need the container's own /proc (a mount of type proc)");
    let proc = match open(
        &merged.join("proc"),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        // A symlink (or no directory at all) where /proc should be.
        Err(nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP | nix::errno::Errno::ENOENT) => {
            return Err(not_proc());
        }
        other => other.context("open(rootfs/proc, O_NOFOLLOW) for the sysctls")?,
    };
    let fs = nix::sys::statfs::fstatfs(&proc).context("fstatfs(rootfs/proc)")?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return Err(not_proc());
    }
    for (key, value) in sysctl {
        let path = format!("sys/{}", key.replace('.', "/"));
        let how = OpenHow::new()
            .flags(OFlag::O_WRONLY | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_NO_XDEV,
            );
        let fd = openat2(&proc, path.as_str(), how)
            .with_context(|| format!("sysctl {key}: openat2(/proc/{path})"))?;
        nix::unistd::write(&fd, value.as_bytes())
            .with_context(|| format!("sysctl {key}={value}"))?;
    }
    Ok(())
}

/// Remove a tree even where overlayfs left a directory without permissions (its `work/work`).
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    fs::remove_dir_all(path).with_context(|| format!("rm -r {}", path.display()))
}

/// A run's scratch directory (the layers: image skeleton, upper, work, the merged root), made
/// mode 0700 and new (a name someone planted fails the mkdir), removed when dropped.
#[derive(Debug)]
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn create(path: PathBuf) -> Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("mkdir {}", path.display()))?;
        Ok(Scratch(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = remove_tree(&self.0);
    }
}
