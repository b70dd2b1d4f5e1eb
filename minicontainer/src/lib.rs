//! A minimal container runtime: every mechanism of the book, combined, by calling the demos'
//! own libraries (the code the chapters show):
//!
//! 1. `clone` with new UTS, IPC, PID, mount, network and cgroup namespaces, the child waiting on
//!    a pipe (rootless, minicontainer first enters a user namespace of its own with
//!    `labkit::rootless`, so every namespace of the container is owned by it);
//! 2. cgroups with the requested limits (`cgroup_demo::cg`), on v1, v2 or hybrid hosts;
//! 3. a root filesystem: an overlay (`cow_demo::mount_overlay`) of the image and a writable
//!    layer, `/proc`, `/sys` (read-only), a minimal `/dev`, masked and read-only paths, then
//!    `pivot_root` with the old root unmounted, all after making every mount private;
//! 4. a network namespace with only `lo` up (`net_demo::rtnl`), or with `--net bridge` an `eth0`
//!    whose veth peer is on the host's `nslab-br0` bridge ([`net`]);
//! 5. hostname, environment, working directory, user;
//! 6. capabilities cut to the set container runtimes grant by default, `no_new_privs`;
//! 7. PID 1 is `pid_demo::init` (reaps, forwards signals), unless `--init=false`;
//! 8. everything removed afterwards: on exit, on error, on Ctrl-C.
#![forbid(unsafe_code)]

pub mod console;
pub mod doctor;
pub mod image;
pub mod net;
pub mod oci;
pub mod pid1;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod store;

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use caps::{CapSet, Capability};
use cgroup_demo::cg::{self, Group, Version};
use labkit::child::{Reporter, clone_child};
use labkit::rootless::Privilege;
use labkit::{Narrator, bad_input};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid, chdir, pivot_root, sethostname, setresgid, setresuid};
use spec::Plan;

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone)]
pub enum Root {
    /// The embedded default: an empty skeleton with the host's `/usr` (and `/bin`, `/lib`, ...)
    /// mounted read-only, so common programs run without any download.
    Host,
    /// A directory, used as the single read-only lower layer.
    Dir(PathBuf),
    /// An image's unpacked layers ([`image::open`]), top-most first.
    Layers(Vec<PathBuf>),
    /// An OCI bundle's root filesystem, used as it is (no overlay: writes land in it), as runc
    /// does.
    Bundle(PathBuf),
}

/// Where unpacked image layers are kept: `$XDG_CACHE_HOME/nslab`, or `~/.cache/nslab`.
pub fn image_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"))
        .join("nslab")
}

/// The container's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Net {
    /// Its own network namespace with only `lo`.
    #[default]
    None,
    /// Also an `eth0`, a veth pair to the host's `nslab-br0` bridge.
    Bridge,
}

/// A host path bind-mounted into the container (`-v HOST:CONTAINER[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Absolute, resolved on the host.
    pub host: PathBuf,
    /// Absolute, inside the container.
    pub inside: PathBuf,
    pub read_only: bool,
}

impl std::str::FromStr for Volume {
    type Err = anyhow::Error;

    /// `HOST:CONTAINER[:ro|:rw]`; HOST must exist, CONTAINER must be absolute without `..`.
    fn from_str(text: &str) -> Result<Volume> {
        let bad = |why: &str| bad_input(format!("-v {text:?}: {why}"));
        let parts: Vec<&str> = text.split(':').collect();
        let (host, inside, read_only) = match parts[..] {
            [h, c] => (h, c, false),
            [h, c, "ro"] => (h, c, true),
            [h, c, "rw"] => (h, c, false),
            [_, _, _] => return Err(bad("the mode is ro or rw")),
            _ => return Err(bad("expected HOST:CONTAINER[:ro]")),
        };
        let host = fs::canonicalize(host).map_err(|e| bad(&format!("{host}: {e}")))?;
        let inside = PathBuf::from(inside);
        if !inside.is_absolute()
            || inside
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(bad("CONTAINER must be an absolute path without .."));
        }
        if inside == Path::new("/") {
            return Err(bad("CONTAINER cannot be / (use --rootfs)"));
        }
        // The runtime mounts these itself, and fills /dev: a host directory there would get
        // the container's device nodes and links written into it.
        if let Some(own) = ["/dev", "/proc", "/sys"]
            .iter()
            .find(|own| inside.starts_with(own))
        {
            return Err(bad(&format!(
                "CONTAINER cannot be {own} or below it (the runtime mounts its own {own})"
            )));
        }
        Ok(Volume {
            host,
            inside,
            read_only,
        })
    }
}

/// What to run, and how: the container as an OCI runtime spec ([`spec`]), and what the spec has
/// no field for (where the image's layers are, the network, the name).
#[derive(Debug, Clone)]
pub struct Config {
    /// The container, in the words of the OCI runtime specification (`config.json`).
    pub spec: oci_spec::runtime::Spec,
    /// The layers under the spec's `root` (made into an overlay).
    pub root: Root,
    pub net: Net,
    /// Its name for `ps`, `exec` and `stop` (default: `ctr-PID`, PID being minicontainer's).
    pub name: Option<String>,
    /// Run `pid_demo::init` as PID 1 (which runs the spec's process).
    pub init: bool,
    /// Send this process's output, and so the container's, to `log` in its work directory
    /// (`run -d`; `logs NAME` reads it).
    pub log: bool,
}

/// `UID[:GID]` as numbers (GID = UID when left out), each at most [`MAX_ID`].
pub fn parse_user(text: &str) -> Option<(u32, u32)> {
    let (u, g) = text.split_once(':').unwrap_or((text, text));
    let id = |t: &str| t.parse::<u32>().ok().filter(|id| *id <= MAX_ID);
    Some((id(u)?, id(g)?))
}

/// The largest user or group ID: 2^32 - 1 is `(uid_t) -1`, which setresuid(2) reads as "leave
/// this ID as it is" (the container would keep running as root).
pub const MAX_ID: u32 = u32::MAX - 1;

/// Where the root comes from (`--rootfs`, `--image`, or the host's /usr), with an image's
/// defaults applied to `options` by Docker's rules: the image's Env first (`-e` overrides it),
/// arguments replace its Cmd but not its Entrypoint, its WorkingDir and User unless given.
pub fn resolve_root(
    out: &mut Narrator,
    rootfs: Option<PathBuf>,
    image: Option<PathBuf>,
    workdir: Option<PathBuf>,
    options: &mut spec::RunOptions,
) -> Result<Root> {
    let mut workdir = workdir;
    let root = match (rootfs, image) {
        (Some(dir), _) => Root::Dir(dir),
        (None, Some(path)) => {
            let cache = image_cache();
            let img = image::open(&path, &cache, true)?;
            out.step(
                "host",
                format!(
                    "image {}: {} layer(s) in {}",
                    path.display(),
                    img.layers.len(),
                    cache.display()
                ),
            );
            let mut env: Vec<(String, String)> = img
                .env
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            env.append(&mut options.env);
            options.env = env;
            let args = if options.cmd.is_empty() {
                img.cmd.clone()
            } else {
                std::mem::take(&mut options.cmd)
            };
            options.cmd = img.entrypoint.iter().cloned().chain(args).collect();
            if options.cmd.is_empty() {
                return Err(bad_input(format!(
                    "--image {}: it has no Entrypoint or Cmd; give a command after --",
                    path.display()
                )));
            }
            workdir = workdir.or_else(|| img.workdir.as_ref().map(PathBuf::from));
            if options.user.is_none() {
                if let Some(u) = &img.user {
                    options.user = Some(parse_user(u).ok_or_else(|| {
                        bad_input(format!(
                            "--image {}: its User {u:?} is not numeric; give --user UID[:GID]",
                            path.display()
                        ))
                    })?);
                }
            }
            Root::Layers(img.layers)
        }
        (None, None) => Root::Host,
    };
    options.workdir = workdir.unwrap_or_else(|| PathBuf::from("/"));
    Ok(root)
}

/// The capabilities container runtimes keep by default (Docker's list, less CAP_MKNOD: Docker
/// keeps it because its device policy stops the nodes being used; this runtime has the same
/// policy, and still does not let the container make device nodes at all); every other one is
/// dropped from the bounding set.
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Paths of /proc hidden behind /dev/null or an empty tmpfs, as common runtimes do.
pub const MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/acpi",
    "/proc/scsi",
    "/sys/firmware",
];
/// Paths of /proc made read-only.
pub const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

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

fn step(r: &mut Reporter, text: impl std::fmt::Display) {
    r.step(text);
}

/// The groups made for the limits: (hierarchy, the container's leaf, its parent), removed when
/// dropped, leaf first.
struct Limits {
    groups: Vec<(cg::Hierarchy, Group, Group)>,
}

fn make_cgroups(out: &mut Narrator, plan: &Plan, device_policy: bool) -> Result<Limits> {
    let mut groups = Vec::new();
    // The device policy goes to v1's devices controller where there is one, else to an eBPF
    // program on the v2 group (after the loop).
    // NSLAB_DEVICE_POLICY=bpf takes the v2 way on a hybrid host too (the program then sits on
    // the container's group in the unified hierarchy): the v2 mechanism, shown and tested here.
    let bpf = std::env::var_os("NSLAB_DEVICE_POLICY").is_some_and(|v| v == "bpf");
    let v1_devices = device_policy
        && !bpf
        && cg::for_controller("devices", None).is_ok_and(|h| h.version == Version::V1);
    let wanted: Vec<&str> = [
        plan.memory.map(|_| "memory"),
        plan.pids.map(|_| "pids"),
        (plan.cpu.is_some() || plan.cpu_shares.is_some()).then_some("cpu"),
        plan.cpuset.as_ref().map(|_| "cpuset"),
        v1_devices.then_some("devices"),
    ]
    .into_iter()
    .flatten()
    .collect();
    // With a cgroupsPath the container goes there even without limits, as runc places it (a
    // manager reads its usage there): in the memory, pids and cpu hierarchies at least, those
    // this host has and this process may write (rootless, runc skips what it cannot place too).
    let mut wanted = wanted;
    if plan.cgroups_path.is_some() {
        for controller in ["memory", "pids", "cpu"] {
            let writable = cg::for_controller(controller, None)
                .is_ok_and(|h| nix::unistd::access(&h.own, nix::unistd::AccessFlags::W_OK).is_ok());
            if !wanted.contains(&controller) && writable {
                wanted.push(controller);
            }
        }
    }
    for controller in wanted {
        // v2 has one hierarchy, and a process one group in it: every controller goes to the
        // same group, enabled from its top down (v1: a group per hierarchy, as before).
        let h = cg::for_controller(controller, None)?;
        let at = groups
            .iter()
            .position(|(g, _, _): &(cg::Hierarchy, Group, Group)| {
                g.version == Version::V2 && h.version == Version::V2 && g.mount == h.mount
            });
        let at = match at {
            Some(at) => {
                let (_, leaf, top) = &groups[at];
                enable_down(top, leaf, controller)?;
                at
            }
            None => {
                let (h, top, leaf) = match &plan.cgroups_path {
                    None => {
                        let (h, top) = cg::group_for(controller, None)?;
                        let leaf = top.child("container")?;
                        (h, top, leaf)
                    }
                    Some(path) => {
                        let (h, top, leaf) = nested_group(controller, path)?;
                        if h.version == Version::V2 {
                            enable_down(&top, &leaf, controller)?;
                        }
                        (h, top, leaf)
                    }
                };
                groups.push((h, leaf, top));
                groups.len() - 1
            }
        };
        let (h, leaf, _) = &groups[at];
        match (controller, h.version) {
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
            ("cpu", Version::V1) => {
                if let Some((quota, period)) = plan.cpu {
                    leaf.write("cpu.cfs_period_us", &period.to_string())?;
                    leaf.write("cpu.cfs_quota_us", &quota.to_string())?;
                }
                if let Some(shares) = plan.cpu_shares {
                    leaf.write("cpu.shares", &shares.to_string())?;
                }
            }
            ("cpu", Version::V2) => {
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
            ("devices", Version::V1) => {
                for (allow, rule) in device_rules(plan) {
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
        out.step(
            "host",
            format!("{} {controller}: mkdir {}", h.version, leaf.path.display()),
        );
    }
    if device_policy && !v1_devices {
        v2_device_policy(out, plan, &mut groups)?;
    }
    Ok(Limits { groups })
}

/// The rules every container's devices follow: everything denied, the config's rules in order,
/// then the nodes every container gets ([`DEFAULT_DEVICE_RULES`]), as runc writes them.
fn device_rules(plan: &Plan) -> Vec<(bool, String)> {
    std::iter::once((false, "a".to_string()))
        .chain(plan.device_rules.iter().cloned())
        .chain(DEFAULT_DEVICE_RULES.iter().map(|r| (true, r.to_string())))
        .collect()
}

/// cgroup v2 has no devices controller: the rules become an eBPF program
/// (`BPF_PROG_TYPE_CGROUP_DEVICE`, [`labkit::devices`]) attached to the container's v2 group,
/// made for it when no limit made one.
fn v2_device_policy(
    out: &mut Narrator,
    plan: &Plan,
    groups: &mut Vec<(cg::Hierarchy, Group, Group)>,
) -> Result<()> {
    let at = match groups.iter().position(|(h, _, _)| h.version == Version::V2) {
        Some(at) => at,
        None => {
            let h = cg::unified()?;
            let (top, leaf) = match &plan.cgroups_path {
                Some(path) => {
                    let (_, top, leaf) = nested_in(&h, path)?;
                    (top, leaf)
                }
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
    let rules: Vec<labkit::devices::Rule> = device_rules(plan)
        .iter()
        .map(|(allow, text)| {
            labkit::devices::Rule::parse(*allow, text).ok_or_else(|| {
                bad_input(format!("device rule {text:?}: not TYPE MAJOR:MINOR ACCESS"))
            })
        })
        .collect::<Result<_>>()?;
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
    use std::os::fd::AsFd;
    labkit::devices::attach(prog.as_fd(), dir.as_fd()).with_context(|| {
        format!(
            "bpf(BPF_PROG_ATTACH, {}, BPF_CGROUP_DEVICE)",
            leaf.path.display()
        )
    })?;
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

/// On v2, a controller reaches a group only through `cgroup.subtree_control` of each group
/// above it: enable `controller` in the groups made, from `top` down to the leaf's parent.
fn enable_down(top: &Group, leaf: &Group, controller: &str) -> Result<()> {
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

/// `linux.cgroupsPath`, made under this process's own cgroup in the controller's hierarchy:
/// minicontainer never writes outside the cgroup it runs in, so an absolute path is taken as
/// relative to it (the same value always gives the same place, as the spec asks). Returns the
/// hierarchy, the first directory made (removed with everything below it), and the leaf.
fn nested_group(controller: &str, path: &Path) -> Result<(cg::Hierarchy, Group, Group)> {
    nested_in(&cg::for_controller(controller, None)?, path)
}

/// [`nested_group`] in hierarchy `h`.
fn nested_in(h: &cg::Hierarchy, path: &Path) -> Result<(cg::Hierarchy, Group, Group)> {
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

/// The embedded default root: a skeleton whose /usr (and merged-/usr symlinks or real
/// /bin, /lib, ...) come from the host, read-only.
fn host_skeleton(lower: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
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

fn bind(source: &Path, target: &Path) -> Result<()> {
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
fn remount_ro(target: &Path) -> Result<()> {
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
fn remount_adding(target: &Path, flags: MsFlags) -> Result<()> {
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

fn bind_ro(source: &Path, target: &Path) -> Result<()> {
    bind(source, target)?;
    remount_ro(target)
}

/// The mount point for a mount inside the (not yet pivoted) root `merged`, made when missing (a
/// directory, or an empty file when a bind mount's source is a file). No component may be a
/// symlink: before `pivot_root`, a link in the image such as `/data -> /etc` would resolve on the
/// host.
fn mount_target(merged: &Path, destination: &Path, file: bool) -> Result<PathBuf> {
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
        return mount(
            Some("cgroup2"),
            &target,
            Some("cgroup2"),
            m.flags,
            None::<&str>,
        )
        .with_context(|| format!("mount cgroup2 on {}", m.destination.display()));
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

/// Inside the child: build the root filesystem and pivot into it.
fn setup_root(
    r: &mut Reporter,
    cgroups: &[cg::Hierarchy],
    plan: &Plan,
    root: &Root,
    work: &Path,
    binds: &[(PathBuf, PathBuf)],
) -> Result<()> {
    // lab:begin ctr-private-root tests=explain_names_every_step,inside_a_container_every_chapter_holds
    // TODO(lab): make every mount of the container's new mount namespace private, recursively.
    // TODO(lab): the namespace starts as a copy of the host's, with the host's shared peer groups:
    // TODO(lab): without this, the overlay and every mount below would propagate to the host, and
    // TODO(lab): pivot_root(2) refuses a new root whose parent mount is shared (EINVAL).
    // lab:hint nix::mount::mount(None::<&str>, "/", None::<&str>, MS_REC | MS_PRIVATE, None::<&str>)
    // lab:hint see the mount chapter: a runtime must make its root private (MNT-*).
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
    let lowers: Vec<PathBuf> = match root {
        Root::Host => vec![work.join("image")],
        Root::Dir(d) => vec![d.clone()],
        Root::Layers(layers) => layers.clone(),
        Root::Bundle(_) => Vec::new(),
    };
    let merged = match root {
        Root::Bundle(dir) => {
            // pivot_root(2) wants the new root to be a mount point: bind it onto itself; nodev,
            // so that a device node shipped in the root filesystem opens nothing.
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
            // nodev: a device node in an image layer opens nothing (the container's /dev is a
            // tmpfs of its own, holding only the nodes the runtime puts there).
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
    };
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
    // ANCHOR: mounts
    for m in &plan.mounts {
        mount_one(&merged, m, cgroups)?;
    }
    // ANCHOR_END: mounts
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
    step(
        r,
        format!("mount(2) the config's mounts: {}", shown.join(", ")),
    );
    let dir = |p: &str| merged.join(p.trim_start_matches('/'));
    // Through mount_target, like the mounts: a symlink the image put at /dev or /dev/null
    // would lead to the host's files before pivot_root.
    mount_target(&merged, Path::new("/dev"), false)?;
    for dev in DEVICES {
        let target = mount_target(&merged, &Path::new("/dev").join(dev), true)?;
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
    make_devices(r, &merged, plan)?;
    // Per-namespace kernel settings, through the container's own /proc/sys, before it turns
    // read-only: the domain name (UTS) and the spec's sysctls (network, IPC).
    if !plan.sysctl.is_empty() {
        write_sysctls(&merged, &plan.sysctl)?;
    }
    if !plan.sysctl.is_empty() {
        step(
            r,
            format!(
                "sysctl (write /proc/sys/...): {}",
                plan.sysctl
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
    }
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
    if matches!(root, Root::Bundle(_)) {
        // A bundle's rootfs may not be writable by the container's root (a mapped one, or a
        // read-only tree): no directory for the old root, then. pivot_root(".", ".") stacks the
        // old root under the new one, on the same directory; unmounting "." takes it away.
        chdir(&merged).context("chdir(rootfs)")?;
        pivot_root(".", ".").context("pivot_root(\".\", \".\")")?;
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
        chdir(&merged).context("chdir(rootfs)")?;
        pivot_root(".", ".oldroot").context("pivot_root(\".\", \".oldroot\")")?;
        chdir("/").context("chdir(\"/\")")?;
        umount2("/.oldroot", MntFlags::MNT_DETACH).context("umount2(\"/.oldroot\", MNT_DETACH)")?;
        fs::remove_dir("/.oldroot").context("rmdir(\"/.oldroot\")")?;
        // ANCHOR_END: pivot
        step(
            r,
            "pivot_root(rootfs, rootfs/.oldroot); umount2(\"/.oldroot\", MNT_DETACH): the host's tree is gone from here",
        );
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

/// Where execvp(3) will find the command (runc looks it up the same way before it starts the
/// container): a missing one fails here, while the runtime still listens, with its name,
/// instead of a container that stops silently.
fn find_executable(plan: &Plan) -> Result<PathBuf> {
    use nix::unistd::{AccessFlags, access};
    let name = &plan.args[0];
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        plan.env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .split(':')
            .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(name))
            .collect()
    };
    candidates
        .into_iter()
        .find(|p| p.is_file() && access(p, AccessFlags::X_OK).is_ok())
        .ok_or_else(|| {
            anyhow::Error::new(CommandNotFound(format!(
                "execvp(\"{name}\"): {NOT_FOUND}{}",
                if name.contains('/') { "" } else { "'s $PATH" }
            )))
        })
}

/// The container's command cannot be found: `run` exits 127 for it, as a shell (and
/// `docker run`) does; `create` fails with it, as runc's does.
#[derive(Debug)]
pub struct CommandNotFound(pub String);

impl std::fmt::Display for CommandNotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommandNotFound {}

/// What a child's report of [`CommandNotFound`] says (errors cross the pipe as text).
const NOT_FOUND: &str = "not found in the container";

/// A child's error, typed again where it is a [`CommandNotFound`].
fn typed(err: anyhow::Error) -> anyhow::Error {
    let text = format!("{err:#}");
    if text.contains(NOT_FOUND) {
        anyhow::Error::new(CommandNotFound(text))
    } else {
        err
    }
}

/// Give the process the spec's user and capabilities: the bounding set cut, the inheritable
/// set, then (keeping the permitted set across the change of user, `PR_SET_KEEPCAPS`) groups,
/// GID and UID, then the permitted, effective and ambient sets; `no_new_privs` when asked.
pub(crate) fn apply_identity(plan: &Plan) -> Result<()> {
    let sets = &plan.caps;
    for (resource, soft, hard) in &plan.rlimits {
        nix::sys::resource::setrlimit(*resource, *soft, *hard)
            .with_context(|| format!("setrlimit({resource:?}, {soft}, {hard})"))?;
    }
    // ANCHOR: capabilities
    for cap in caps::all() {
        if !sets.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("prctl(PR_CAPBSET_DROP, {cap})"))?;
        }
    }
    caps::set(None, CapSet::Inheritable, &sets.inheritable).context("capset(inheritable)")?;
    nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS, 1)")?;
    let groups: Vec<Gid> = plan
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&groups) {
        // Rootless, /proc/self/setgroups says "deny": there are no groups to drop anyway.
        Err(nix::errno::Errno::EPERM) if groups.is_empty() => {}
        other => other.context("setgroups")?,
    }
    let (uid, gid) = (Uid::from_raw(plan.uid), Gid::from_raw(plan.gid));
    setresgid(gid, gid, gid).with_context(|| format!("setresgid({gid})"))?;
    setresuid(uid, uid, uid).with_context(|| format!("setresuid({uid})"))?;
    // Effective first: it must stay within the permitted set at every step.
    caps::set(None, CapSet::Effective, &sets.effective).context("capset(effective)")?;
    caps::set(None, CapSet::Permitted, &sets.permitted).context("capset(permitted)")?;
    for cap in &sets.ambient {
        caps::raise(None, CapSet::Ambient, *cap)
            .with_context(|| format!("prctl(PR_CAP_AMBIENT_RAISE, {cap})"))?;
    }
    if plan.no_new_privs {
        nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    // ANCHOR_END: capabilities
    Ok(())
}

/// Inside the child, after the root: hostname, network, identity, capabilities, seccomp.
fn setup_process(
    r: &mut Reporter,
    plan: &Plan,
    eth0: Option<(Ipv4Addr, u8)>,
    filters: &[seccompiler::BpfProgram],
) -> Result<()> {
    if plan.clone_flags.contains(CloneFlags::CLONE_NEWUTS) {
        sethostname(&plan.hostname)
            .with_context(|| format!("sethostname(\"{}\")", plan.hostname))?;
        step(r, format!("sethostname(\"{}\")", plan.hostname));
    }
    if !plan.clone_flags.contains(CloneFlags::CLONE_NEWNET) {
        step(
            r,
            "no network namespace of its own: the host's, or the one joined",
        );
    } else {
        let rtnl = net_demo::rtnl::Rtnl::open()?;
        rtnl.set_up("lo")?;
        setup_net(r, &rtnl, eth0)?;
    }
    if let Some(score) = plan.oom_score_adj {
        fs::write("/proc/self/oom_score_adj", score.to_string())
            .context("write /proc/self/oom_score_adj")?;
        step(r, format!("echo {score} > /proc/self/oom_score_adj"));
    }
    if let Some(mask) = plan.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        step(r, format!("umask({mask:#o})"));
    }
    apply_identity(plan)?;
    step(
        r,
        format!(
            "capabilities: the bounding set cut to {}{}; setresgid({gid}), setresuid({uid}); {} effective{}",
            plan.caps.bounding.len(),
            if plan.caps.bounding.len() == DEFAULT_CAPS.len() {
                " (Docker's default less CAP_MKNOD)"
            } else {
                ""
            },
            plan.caps.effective.len(),
            if plan.no_new_privs {
                "; PR_SET_NO_NEW_PRIVS"
            } else {
                ""
            },
            gid = plan.gid,
            uid = plan.uid,
        ),
    );
    chdir(&plan.cwd).with_context(|| format!("chdir({})", plan.cwd.display()))?;
    if let Some(profile) = &plan.seccomp {
        // ANCHOR: seccomp
        seccomp::install(filters)?;
        // ANCHOR_END: seccomp
        step(r, seccomp::describe(profile));
    }
    Ok(())
}

/// `lo` is up; with a lease, `eth0` too.
fn setup_net(
    r: &mut Reporter,
    rtnl: &net_demo::rtnl::Rtnl,
    eth0: Option<(Ipv4Addr, u8)>,
) -> Result<()> {
    match eth0 {
        None => step(
            r,
            "RTM_SETLINK lo up (ip link set lo up): the network namespace has nothing else",
        ),
        Some((address, prefix)) => {
            net::configure_inside(rtnl, address, prefix)?;
            step(
                r,
                format!(
                    "RTM_SETLINK lo up; RTM_NEWADDR {address}/{prefix} dev eth0; eth0 up (no default route: only the bridge's subnet is reachable)"
                ),
            );
        }
    }
    Ok(())
}

fn command(plan: &Plan) -> Command {
    let mut cmd = Command::new(&plan.args[0]);
    cmd.args(&plan.args[1..]).env_clear().envs(plan.env_pairs());
    cmd
}

/// `create`'s extras (the OCI runtime command line): the FIFO the container's process waits on
/// before exec until `start` opens it, and the caller's console socket for `process.terminal`.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub fifo: PathBuf,
    pub console_socket: Option<PathBuf>,
}

/// A container made by `create`, set up and waiting for `start`.
#[derive(Debug, Clone)]
pub struct Created {
    /// Host PID of its process.
    pub pid: i32,
    /// The groups made for its limits (the top of each, with its cgroup version), for `delete`.
    pub cgroups: Vec<(PathBuf, String)>,
    /// The `cgroup.procs` file of each of its groups, for `exec`.
    pub procs: Vec<PathBuf>,
}

enum Outcome {
    Exited(i32),
    Created(Created),
}

/// Run a container; returns the exit code of its command (128 + N if killed by signal N).
pub fn run(
    out: &mut Narrator,
    store: &store::Store,
    config: &Config,
    privilege: Privilege,
) -> Result<i32> {
    match engine(out, store, config, privilege, None)? {
        Outcome::Exited(code) => Ok(code),
        Outcome::Created(_) => unreachable!("run waits for its container"),
    }
}

/// Set up a container up to the exec of its process, which waits on `options.fifo`; returns
/// once it waits. Its cgroups stay until `delete`; nothing waits for it here (`create` ends,
/// and the process goes to the caller's subreaper, as with runc).
pub fn create(
    out: &mut Narrator,
    store: &store::Store,
    config: &Config,
    privilege: Privilege,
    options: &CreateOptions,
) -> Result<Created> {
    match engine(out, store, config, privilege, Some(options))? {
        Outcome::Created(c) => Ok(c),
        Outcome::Exited(_) => unreachable!("create does not wait"),
    }
}

/// Make the spec's device nodes in the container's /dev (before pivot_root: `dev` is the new
/// root's). As root, mknod(2); in a user namespace, where mknod of a device is refused, a bind
/// mount of the host's node, as runc does rootless.
fn make_devices(r: &mut Reporter, merged: &Path, plan: &Plan) -> Result<()> {
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
            Ok(()) => nix::unistd::chown(
                &target,
                Some(Uid::from_raw(d.uid)),
                Some(Gid::from_raw(d.gid)),
            )
            .with_context(|| format!("chown {}", d.path.display()))?,
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

fn engine(
    out: &mut Narrator,
    store: &store::Store,
    config: &Config,
    privilege: Privilege,
    create: Option<&CreateOptions>,
) -> Result<Outcome> {
    let plan = Plan::new(&config.spec)?;
    if let Root::Dir(d) | Root::Bundle(d) = &config.root {
        if !d.is_dir() {
            return Err(bad_input(format!(
                "{} {}: not a directory",
                if matches!(config.root, Root::Dir(_)) {
                    "--rootfs"
                } else {
                    "root.path"
                },
                d.display()
            )));
        }
    }
    if privilege.is_rootless() && plan.has_limits() {
        return Err(anyhow::Error::new(labkit::errors::MissingFeature(
            "--memory, --pids-limit and --cpus need cgroups, which need root (or a delegated cgroup); run without them rootless".into(),
        )));
    }
    if privilege.is_rootless() && plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER) {
        return Err(anyhow::Error::new(labkit::errors::MissingFeature(
            "a user namespace in the config, rootless: minicontainer already runs in one of its own; leave it out".into(),
        )));
    }
    if config.net == Net::Bridge && privilege.is_rootless() {
        return Err(anyhow::Error::new(labkit::errors::MissingFeature(
            "--net bridge needs root: the veth's host end and the bridge live in the host's network namespace, where a user namespace grants nothing (rootless runtimes use slirp4netns or pasta instead)".into(),
        )));
    }
    if config.net == Net::Bridge && !plan.clone_flags.contains(CloneFlags::CLONE_NEWNET) {
        return Err(bad_input(
            "--net bridge needs the container's own network namespace",
        ));
    }
    if create.is_some_and(|c| c.console_socket.is_none()) && plan.terminal {
        return Err(bad_input(
            "process.terminal is true: create needs --console-socket to hand the terminal to",
        ));
    }
    // Compiled before clone: a profile the compiler refuses is an error of the command line.
    let filters = plan.seccomp_programs()?;
    // Namespaces joined by path: opened here, joined by the child first of all.
    let joins: Vec<(CloneFlags, fs::File)> = plan
        .join
        .iter()
        .map(|(flag, path)| {
            fs::File::open(path)
                .map(|f| (*flag, f))
                .with_context(|| format!("open({}) to join it", path.display()))
        })
        .collect::<Result<_>>()?;
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| format!("ctr-{}", std::process::id()));
    // Docker-style, the name is taken in the store first (atomically: two runs never share
    // one), then a scratch directory for the layers, recorded before it is made so that `gc`
    // finds it whatever happens next. `create` has its store directory already.
    let claim = match create {
        None => {
            state::validate_name(&name)?;
            Some(store.claim(&name)?)
        }
        Some(_) => None,
    };
    let work = match &claim {
        Some(_) => {
            let path = std::env::temp_dir().join(labkit::unique_name("ctr"));
            store.write_file(&name, "scratch", path.as_os_str().as_encoded_bytes())?;
            Some(Scratch::create(path)?)
        }
        None => None,
    };
    let work_path = work
        .as_ref()
        .map_or_else(PathBuf::new, |w| w.path().to_path_buf());
    if let Some(claim) = &claim {
        store.write_file(
            &name,
            "config.json",
            spec::to_json(&config.spec)?.as_bytes(),
        )?;
        if config.log {
            let log = store::create_private(&claim.path().join("log"))?;
            nix::unistd::dup2_stdout(&log).context("dup2(log, 1)")?;
            nix::unistd::dup2_stderr(&log).context("dup2(log, 2)")?;
        }
    }
    let binds = match config.root {
        Root::Host => host_skeleton(&work_path.join("image"))?,
        Root::Dir(_) | Root::Layers(_) | Root::Bundle(_) => Vec::new(),
    };
    if !matches!(config.root, Root::Bundle(_)) {
        for d in ["upper", "work", "rootfs"] {
            fs::create_dir_all(work_path.join(d))?;
        }
        out.step(
            "host",
            format!(
                "mkdir {} (image skeleton, upper and work layers, rootfs)",
                work_path.display()
            ),
        );
    }
    let limits = make_cgroups(out, &plan, !privilege.is_rootless())?;
    // The exec FIFO, opened O_PATH: the child reopens it through /proc/self/fd once it is in
    // its new root, where the FIFO's path means nothing.
    let fifo = match create {
        Some(c) => Some(
            nix::fcntl::open(
                &c.fifo,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .with_context(|| format!("open({}, O_PATH)", c.fifo.display()))?,
        ),
        None => None,
    };
    // The terminal's master side goes to our own end of a socket pair (`run -t`), or to the
    // caller's console socket (`create`).
    let (host_end, container_end) = match (create, plan.terminal) {
        (_, false) => (None, None),
        (Some(c), true) => {
            let path = c.console_socket.as_ref().expect("checked above");
            let sock = std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("connect({})", path.display()))?;
            (None, Some(sock))
        }
        (None, true) => match console::pair(true)? {
            Some((h, c)) => (Some(h), Some(c)),
            None => (None, None),
        },
    };
    // Namespaces joined by path: this process joins them just before clone, and the child,
    // which makes no namespace of those types, inherits them. (Joined from inside a new user
    // namespace, they would be refused: they belong to the host's.) The cgroups are made.
    for (flag, file) in &joins {
        nix::sched::setns(file, *flag)
            .with_context(|| format!("setns({})", labkit::child::flag_names(*flag)))?;
    }
    if !joins.is_empty() {
        out.step(
            "host",
            format!(
                "setns(2) into the config's namespaces before clone: {}",
                plan.join
                    .iter()
                    .map(|(_, p)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
    }
    // A cgroup mount shows the container its own groups: in each hierarchy, its limit group, or
    // else the group it inherits from this process. Worked out here: inside, its cgroup
    // namespace makes every path relative.
    let cgroup_view: Vec<cg::Hierarchy> = if plan.mounts.iter().any(|m| m.typ.starts_with("cgroup"))
    {
        cg::hierarchies()?
            .into_iter()
            .map(|mut h| {
                if let Some((_, leaf, _)) =
                    limits.groups.iter().find(|(l, _, _)| l.mount == h.mount)
                {
                    h.own = leaf.path.clone();
                }
                h
            })
            .collect()
    } else {
        Vec::new()
    };
    // The init, in a sealed memfd the child execs as PID 1.
    let init = if config.init {
        Some(pid1::sealed()?)
    } else {
        None
    };
    // ANCHOR: clone
    // The namespaces of the spec (all six from `run`). The cgroup namespace is made again with
    // unshare once the parent has put the child in its cgroups, so that its root is theirs.
    let flags = plan.clone_flags;
    let mut child = clone_child(flags, |r| {
        // First of all: not dumpable, so that no process of the container can open this one's
        // /proc/PID/{environ,fd,mem} (it still has the caller's environment and the pipes to
        // the host) before it execs; execve(2) makes the container's program dumpable again.
        nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
        r.speaker("container");
        // minicontainer holds Ctrl-C while it sets up and cleans up: the container must not.
        nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&nix::sys::signal::SigSet::empty()),
            None,
        )
        .context("sigprocmask(SIG_SETMASK, {})")?;
        // Wait until the parent has put us in our cgroups (then CLONE_NEWCGROUP's root is ours)
        // and plugged in our network: it answers "eth0 ADDRESS/PREFIX" or "none".
        r.ready();
        let answer = r.recv()?.context("minicontainer ended during setup")?;
        let eth0 = match answer.strip_prefix("eth0 ") {
            Some(a) => {
                let (ip, prefix) = a.split_once('/').context("eth0 ADDRESS/PREFIX")?;
                Some((ip.parse()?, prefix.parse()?))
            }
            None => None,
        };
        if plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER) {
            // The maps are written: become the namespace's root (still the host's root's IDs,
            // which the map does not name, until now).
            let zero = (Uid::from_raw(0), Gid::from_raw(0));
            setresgid(zero.1, zero.1, zero.1).context("setresgid(0) in the user namespace")?;
            setresuid(zero.0, zero.0, zero.0).context("setresuid(0) in the user namespace")?;
        }
        if plan.clone_flags.contains(CloneFlags::CLONE_NEWCGROUP) {
            nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).context("unshare(CLONE_NEWCGROUP)")?;
        }
        setup_root(r, &cgroup_view, &plan, &config.root, &work_path, &binds)?;
        let tty = match &container_end {
            Some(sock) => Some(console::open(r, sock)?),
            None => None,
        };
        setup_process(r, &plan, eth0, &filters)?;
        let executable = find_executable(&plan)?;
        let shown = plan.args.join(" ");
        if let Some(fifo) = &fifo {
            // Set up: `create` may return. From here this process outlives it.
            step(
                r,
                "waiting for start: open(exec.fifo, O_WRONLY) blocks until it is opened",
            );
            // Outlive `create` (before telling it so: it ends as soon as it knows).
            nix::sys::prctl::set_pdeathsig(None).context("prctl(PR_SET_PDEATHSIG, 0)")?;
            r.ready();
            use std::os::fd::AsRawFd;
            let mut gate = fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/self/fd/{}", fifo.as_raw_fd()))
                .context("open(exec.fifo)")?;
            std::io::Write::write_all(&mut gate, b"0").context("write(exec.fifo)")?;
        }
        // Nothing of the caller crosses the exec: every descriptor it left open above 2 is
        // closed by it (the pipes to the host runtime, the FIFO and the console socket are
        // close-on-exec already), and without a terminal of its own the container gets a
        // session of its own, away from the caller's terminal (no TIOCSTI into its input).
        labkit::harden::cloexec_from(3).context("close_range(3, ~0, CLOSE_RANGE_CLOEXEC)")?;
        if tty.is_none() {
            nix::unistd::setsid().context("setsid()")?;
        }
        if let Some(init) = &init {
            step(
                r,
                format!(
                    "PID 1 is pid_demo::init: fexecve(sealed memfd nslab-init); it runs {shown:?}"
                ),
            );
            let argv = pid1::argv(tty.as_deref(), &plan.args)?;
            let envp = plan
                .env
                .iter()
                .map(|kv| std::ffi::CString::new(kv.as_str()))
                .collect::<Result<Vec<_>, _>>()
                .context("process.env holds a NUL byte")?;
            let err = nix::unistd::fexecve(init, &argv, &envp).unwrap_err();
            Err(err).context("fexecve(memfd nslab-init)")
        } else {
            step(
                r,
                format!("execvp({shown:?}) as PID 1 ({})", executable.display()),
            );
            console::login(tty.as_deref())?;
            let err = command(&plan).exec();
            Err(err).with_context(|| format!("execvp(\"{}\")", plan.args[0]))
        }
    })?;
    // ANCHOR_END: clone
    out.step(
        "host",
        format!(
            "clone({} | SIGCHLD) -> container pid {}",
            labkit::child::flag_names(flags),
            child.pid()
        ),
    );
    // SIGTERM and SIGHUP sent to minicontainer (held since it started) go to the container.
    labkit::signals::forward_to(child.pid().as_raw())?;
    child.relay_until_ready(out, "container").map_err(typed)?;
    if let (Some(uid_map), Some(gid_map)) = (&plan.uid_map, &plan.gid_map) {
        let pid = child.pid();
        if !nix::unistd::geteuid().is_root() {
            // Without CAP_SETGID in the parent namespace, gid_map needs setgroups denied.
            fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .with_context(|| format!("write /proc/{pid}/setgroups"))?;
        }
        fs::write(format!("/proc/{pid}/uid_map"), uid_map)
            .with_context(|| format!("write /proc/{pid}/uid_map"))?;
        fs::write(format!("/proc/{pid}/gid_map"), gid_map)
            .with_context(|| format!("write /proc/{pid}/gid_map"))?;
        out.step(
            "host",
            format!(
                "write /proc/{pid}/uid_map ({}), gid_map ({})",
                uid_map.trim().replace('\n', ", "),
                gid_map.trim().replace('\n', ", ")
            ),
        );
    }
    // lab:begin ctr-join-cgroups tests=limits_are_enforced
    // TODO(lab): put the container's first process into each limit group (leaf) made above,
    // TODO(lab): before it is released: its children are born there, and the cgroup namespace
    // TODO(lab): it makes next takes this group as its root.
    // lab:hint limits.groups holds (hierarchy, leaf, top): Group::attach(pid) writes the PID to
    // lab:hint the leaf's cgroup.procs; child.pid().as_raw() is the host PID.
    for (_, leaf, _) in &limits.groups {
        leaf.attach(child.pid().as_raw())?;
    }
    // lab:end ctr-join-cgroups
    if !limits.groups.is_empty() {
        out.step(
            "host",
            format!("echo {} > cgroup.procs of each limit group", child.pid()),
        );
    }
    let procs: Vec<PathBuf> = limits
        .groups
        .iter()
        .map(|(_, leaf, _)| leaf.path.join("cgroup.procs"))
        .collect();
    if claim.is_some() {
        let pid = child.pid().as_raw();
        let record = store::Record {
            id: name.clone(),
            pid,
            starttime: store::starttime(pid).context("the container's process is gone")?,
            bundle: work_path.clone(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            cgroups: limits
                .groups
                .iter()
                .map(|(h, _, top)| (top.path.clone(), h.version.to_string()))
                .collect(),
            annotations: Default::default(),
            procs: procs.clone(),
            runner: Some(store::Proc::me()?),
            command: plan.args.join(" "),
        };
        store.write_file(&name, "state.json", &serde_json::to_vec_pretty(&record)?)?;
    }
    let lease = match (config.net, &claim) {
        (Net::Bridge, Some(claim)) => Some(net::attach(
            child.pid().as_raw(),
            &claim.path().join("veth"),
            &mut |s| out.step("host", s),
        )?),
        _ => None,
    };
    child.send(&match &lease {
        Some(l) => format!("eth0 {}/{}", l.address, l.prefix),
        None => "none".into(),
    })?;
    if create.is_some() {
        // Set up and waiting on the FIFO: leave it to the caller; its cgroups stay for delete.
        child.relay_until_ready(out, "container").map_err(typed)?;
        let cgroups = limits
            .groups
            .iter()
            .map(|(h, _, top)| (top.path.clone(), h.version.to_string()))
            .collect();
        std::mem::forget(limits);
        let pid = child.detach().as_raw();
        return Ok(Outcome::Created(Created {
            pid,
            cgroups,
            procs,
        }));
    }
    drop(container_end);
    let console = match host_end {
        Some(host_end) => console::Console::attach(out, &host_end)?,
        None => None,
    };
    let done = child.finish(out, "container").map_err(typed)?;
    drop(console); // the terminal restored, the container's last output copied
    let code = done.exit_code();
    out.step(
        "host",
        format!(
            "waitpid({}) -> exit code {code}; removing the cgroups and {}",
            child_pid(&done),
            work_path.display()
        ),
    );
    if let Some(lease) = lease {
        let veth = lease.veth.clone();
        let bridge_gone = lease.release()?;
        out.step(
            "host",
            format!(
                "RTM_DELLINK {veth}{}",
                if bridge_gone {
                    format!("; RTM_DELLINK {} (no other container on it)", net::BRIDGE)
                } else {
                    String::new()
                }
            ),
        );
    }
    drop(limits);
    drop(work);
    drop(claim);
    Ok(Outcome::Exited(code))
}

/// A run's scratch directory (the layers: image skeleton, upper, work, the merged root), made
/// mode 0700 and new (a name someone planted fails the mkdir), removed when dropped.
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn create(path: PathBuf) -> Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("mkdir {}", path.display()))?;
        Ok(Scratch(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = remove_tree(&self.0);
    }
}

fn child_pid(done: &labkit::child::Finished) -> i32 {
    done.status.pid().map_or(0, nix::unistd::Pid::as_raw)
}

/// Remove a tree even where overlayfs left a directory without permissions (its `work/work`).
fn remove_tree(path: &Path) -> Result<()> {
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

/// `gc`: remove what a killed `minicontainer run` left, from the caller's own store only: each
/// record whose runner is gone (its scratch directory, unmounted first; its cgroups; the record),
/// temporary claims of runs killed before they took their name, and groups named
/// nslab-memory-*, nslab-pids-*, nslab-cpu-*, nslab-cpuset-*, nslab-devices-* made under this
/// process's cgroup by a process that is gone, with no process left in them (an OCI
/// container's outlive the `create` whose PID they carry). OCI containers are `delete`'s.
pub fn gc(out: &mut Narrator, store: &store::Store) -> Result<usize> {
    let mut removed = 0;
    let mut dead_veths = Vec::new();
    for id in store.ids()? {
        let Some(runner) = store.runner(&id) else {
            continue;
        };
        if runner.alive() {
            continue;
        }
        if let Ok(veth) = store.read_file(&id, "veth") {
            dead_veths.push(String::from_utf8_lossy(&veth).into_owned());
        }
        if let Some(scratch) = store
            .read_file(&id, "scratch")
            .ok()
            .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()))
            .filter(|p| store::is_own_dir(p))
        {
            // Its mounts may outlive it while its mount namespace is still held: lazily.
            let _ = umount2(&scratch.join("rootfs"), MntFlags::MNT_DETACH);
            remove_tree(&scratch)?;
            out.step("gc", format!("rm -r {}", scratch.display()));
        }
        if let Ok(record) = store.load(&id) {
            oci::remove_cgroups(&record.cgroups)?;
        }
        remove_tree(&store.dir(&id))?;
        out.step("gc", format!("rm -r {}", store.dir(&id).display()));
        removed += 1;
    }
    for claim in store.stale_claims() {
        remove_tree(&claim)?;
        out.step("gc", format!("rm -r {}", claim.display()));
        removed += 1;
    }
    for h in cg::hierarchies()? {
        let Ok(entries) = fs::read_dir(&h.own) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = [
                "nslab-memory-",
                "nslab-pids-",
                "nslab-cpu-",
                "nslab-cpuset-",
                "nslab-devices-",
            ]
            .iter()
            .any(|p| name.starts_with(p));
            // Only groups of processes that are gone: the PID in the name no longer runs, and
            // nothing runs in them (a created container's process outlives its `create`).
            let pid: Option<i32> = name.split('-').nth(2).and_then(|p| p.parse().ok());
            let mine = e
                .metadata()
                .is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw());
            if ours
                && mine
                && pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists())
                && !has_processes(&e.path())
            {
                let mut g = Group::adopt(e.path(), h.version);
                g.remove()?;
                out.step("gc", format!("rmdir {}", e.path().display()));
                removed += 1;
            }
        }
    }
    if removed > 0 {
        store.tidy();
    }
    for link in net::gc(store, &dead_veths)? {
        out.step("gc", format!("ip link del {link}"));
        removed += 1;
    }
    if removed == 0 {
        out.step("gc", "nothing left behind");
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
