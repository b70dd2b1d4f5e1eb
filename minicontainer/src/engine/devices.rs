//! Step 4: devices. What the container finds in its `/dev` (a tmpfs of its own: the host's
//! harmless nodes bound in, the spec's `linux.devices` made) and what it may open at all: a
//! policy like runc's (deny everything, the spec's rules, then the nodes every container gets),
//! on v1 in the devices controller ([`super::cgroups`] writes it), on v2 an eBPF program of
//! type `BPF_PROG_TYPE_CGROUP_DEVICE` attached to the container's group ([`v2_policy`], with
//! `labkit::devices` generating the program).

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::path::Path;

use anyhow::{Context, Result};
use cgroup_demo::cg::{self, Group, Version};
use labkit::child::Reporter;
use labkit::{Narrator, bad_input};
use nix::mount::{MsFlags, mount};
use nix::unistd::{Gid, Uid};

use crate::spec::Plan;

use super::rootfs::{bind, mount_target};
use super::step;

/// Device nodes bind-mounted from the host into the container's /dev (a bind mount works in a
/// user namespace, where mknod(2) of a device does not).
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Allowed after a config's device rules (runc's default list, without tun): [`DEVICES`],
/// `/dev/ptmx` and `/dev/pts/*`, and mknod(2) of any node (which CAP_MKNOD still guards).
pub const DEFAULT_DEVICE_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// The container's /dev, before pivot_root (`merged` is the new root): the host's harmless
/// nodes bound in (a bind mount works in a user namespace, where mknod(2) of a device does
/// not), the usual links, then the spec's devices.
pub(crate) fn populate(r: &mut Reporter, merged: &Path, plan: &Plan) -> Result<()> {
    let dir = |p: &str| merged.join(p.trim_start_matches('/'));
    // Through mount_target, like the mounts: a symlink the image put at /dev or /dev/null
    // would lead to the host's files before pivot_root.
    mount_target(merged, Path::new("/dev"), false)?;
    for dev in DEVICES {
        let target = mount_target(merged, &Path::new("/dev").join(dev), true)?;
        mount(
            Some(Path::new("/dev").join(dev).as_path()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("mount --bind /dev/{dev}"))?;
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dir(&format!("dev/{link}")))?;
    }
    step(
        r,
        format!(
            "mount --bind /dev/X for X in: {}; /dev/ptmx -> pts/ptmx, /dev/fd -> /proc/self/fd",
            DEVICES.join(" ")
        ),
    );
    make_nodes(r, merged, plan)
}

/// Make the spec's device nodes in the container's /dev (before pivot_root: `dev` is the new
/// root's). As root, mknod(2); in a user namespace, where mknod of a device is refused, a bind
/// mount of the host's node, as runc does rootless.
fn make_nodes(r: &mut Reporter, merged: &Path, plan: &Plan) -> Result<()> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    for d in &plan.devices {
        let target = merged.join(d.path.strip_prefix("/")?);
        // Its directory made with no symlink followed (outside pivot_root one would lead to the
        // host); the node itself is unlinked, never followed.
        if let Some(parent) = d.path.parent() {
            mount_target(merged, parent, false)?;
        }
        let _ = fs::remove_file(&target);
        let kind = match d.kind {
            'b' => SFlag::S_IFBLK,
            'p' => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let dev = makedev(d.major as u64, d.minor as u64);
        match mknod(&target, kind, Mode::from_bits_truncate(d.mode), dev) {
            Ok(()) => {
                nix::unistd::chown(
                    &target,
                    Some(Uid::from_raw(d.uid)),
                    Some(Gid::from_raw(d.gid)),
                )
                .with_context(|| format!("chown {}", d.path.display()))?;
                // mknod(2) applied the umask: the mode exactly as the spec gives it.
                nix::sys::stat::fchmodat(
                    nix::fcntl::AT_FDCWD,
                    &target,
                    Mode::from_bits_truncate(d.mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .with_context(|| format!("chmod {:o} {}", d.mode, d.path.display()))?;
            }
            Err(nix::errno::Errno::EPERM) if d.path.exists() => {
                fs::write(&target, "")?;
                bind(&d.path, &target)?;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("mknod({}, {})", d.path.display(), d.kind));
            }
        }
    }
    if !plan.devices.is_empty() {
        step(
            r,
            format!(
                "mknod(2) the config's devices: {}",
                plan.devices
                    .iter()
                    .map(|d| format!("{} ({} {}:{})", d.path.display(), d.kind, d.major, d.minor))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    Ok(())
}

/// The rules every container's devices follow: everything denied, the config's rules in order,
/// then the nodes every container gets ([`DEFAULT_DEVICE_RULES`]), as runc writes them.
pub(crate) fn rules(plan: &Plan) -> Vec<(bool, String)> {
    std::iter::once((false, "a".to_string()))
        .chain(plan.resources.device_rules.iter().cloned())
        .chain(DEFAULT_DEVICE_RULES.iter().map(|r| (true, r.to_string())))
        .collect()
}

/// cgroup v2 has no devices controller: the rules become an eBPF program
/// (`BPF_PROG_TYPE_CGROUP_DEVICE`, [`labkit::devices`]) attached to the container's v2 group,
/// made for it when no limit made one.
pub(crate) fn v2_policy(
    out: &mut Narrator,
    plan: &Plan,
    groups: &mut Vec<(cg::Hierarchy, Group, Group)>,
) -> Result<()> {
    let at = match groups.iter().position(|(h, _, _)| h.version == Version::V2) {
        Some(at) => at,
        None => {
            let h = cg::unified()?;
            let (top, leaf) = match &plan.cgroups_path {
                Some(path) => match super::cgroups::nested_in(&h, path)? {
                    Some((_, top, leaf)) => (top, leaf),
                    None => {
                        return Err(labkit::errors::MissingFeature(format!(
                            "linux.cgroupsPath {}: the v2 hierarchy is not writable (the device policy goes there)",
                            path.display()
                        ))
                        .into());
                    }
                },
                None => {
                    let top = Group::create(&h.own, &cg::unique("devices"), Version::V2)?;
                    let leaf = top.child("container")?;
                    (top, leaf)
                }
            };
            groups.push((h, leaf, top));
            groups.len() - 1
        }
    };
    let rules: Vec<labkit::devices::Rule> = rules(plan)
        .iter()
        .map(|(allow, text)| {
            labkit::devices::Rule::parse(*allow, text).ok_or_else(|| {
                bad_input(format!("device rule {text:?}: not TYPE MAJOR:MINOR ACCESS"))
            })
        })
        .collect::<Result<_>>()?;
    // ANCHOR: bpf
    let program = labkit::devices::program(&rules);
    let prog = labkit::devices::load(&program).map_err(|(errno, log)| {
        anyhow::Error::new(errno).context(format!(
            "bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE): {}",
            log.trim_end().replace('\n', "; ")
        ))
    })?;
    let leaf = &groups[at].1;
    let dir =
        fs::File::open(&leaf.path).with_context(|| format!("open({})", leaf.path.display()))?;
    labkit::devices::attach(prog.as_fd(), dir.as_fd()).with_context(|| {
        format!(
            "bpf(BPF_PROG_ATTACH, {}, BPF_CGROUP_DEVICE)",
            leaf.path.display()
        )
    })?;
    // ANCHOR_END: bpf
    out.step(
        "host",
        format!(
            "v2 devices: bpf(BPF_PROG_LOAD) a {}-instruction BPF_PROG_TYPE_CGROUP_DEVICE program ({} rules), BPF_PROG_ATTACH to {}",
            program.len(),
            rules.len(),
            leaf.path.display()
        ),
    );
    Ok(())
}
