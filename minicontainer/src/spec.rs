//! The container, described with the types of the OCI runtime specification (`config.json`,
//! the `oci-spec` crate): the same description runc and crun read from a bundle.
//!
//! `run`'s flags become a [`Spec`] ([`from_options`]); the engine never reads the flags, only a
//! [`Plan`]: the spec checked once ([`Plan::new`]), every field it does not support refused with
//! a message naming the field rather than ignored. `minicontainer run --print-spec` shows the
//! spec a command line makes.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use caps::CapsHashSet;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder,
    LinuxSeccomp, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::{DEFAULT_CAPS, MASKED, READ_ONLY, Volume, seccomp};

/// The version of the runtime specification these configs follow.
pub const OCI_VERSION: &str = "1.2.0";

/// What `minicontainer run` was asked for, in the words of its flags.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub hostname: String,
    pub memory: Option<u64>,
    pub pids: Option<u32>,
    /// CPUs, as a fraction (1.5 = one and a half CPUs).
    pub cpus: Option<f64>,
    /// `-e KEY=VALUE`, over the image's environment.
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    pub user: Option<(u32, u32)>,
    pub volumes: Vec<Volume>,
    pub seccomp: bool,
    pub tty: bool,
    pub cmd: Vec<String>,
}

/// The CPU period the `--cpus` quota is a share of, in microseconds (the kernel's default).
pub use crate::resources::CPU_PERIOD;

fn oci_cap(cap: caps::Capability) -> Result<Capability> {
    serde_json::from_value(serde_json::Value::String(cap.to_string()))
        .with_context(|| format!("{cap} has no name in the OCI spec"))
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    Ok(MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// The file systems every container gets, in order (as runc's default `config.json` has them;
/// without `gid=5` for devpts, which a rootless container may not have mapped).
pub fn default_mounts() -> Result<Vec<Mount>> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        // The container's own groups, read-only (its cgroup namespace makes them the root).
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
        mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"])?,
    ])
}

/// The environment every process of a container starts with, before the image's and `-e`.
pub fn base_env(hostname: &str) -> Vec<(String, String)> {
    vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOME".into(), "/root".into()),
        ("HOSTNAME".into(), hostname.into()),
        (
            "TERM".into(),
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
        ),
    ]
}

/// `KEY=VALUE` strings, a later KEY replacing an earlier one in its place.
fn env_list(pairs: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The namespaces `run` asks for. A user namespace is not among them: rootless,
/// `labkit::rootless` enters one before anything else, and the container's are made inside it.
pub const NAMESPACES: &[LinuxNamespaceType] = &[
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Cgroup,
];

/// The OCI spec for `run`'s flags.
pub fn from_options(o: &RunOptions) -> Result<Spec> {
    let keep: Vec<Capability> = DEFAULT_CAPS
        .iter()
        .map(|c| oci_cap(*c))
        .collect::<Result<_>>()?;
    let keep: oci_spec::runtime::Capabilities = keep.into_iter().collect();
    // A user other than root starts with empty permitted and effective sets (the kernel clears
    // them at setuid), as with Docker's --user.
    let is_root = o.user.is_none_or(|(uid, _)| uid == 0);
    let held = if is_root {
        keep.clone()
    } else {
        Default::default()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(keep.clone())
        // Empty, as in Docker and runc's defaults: a program run with file capabilities gets
        // no more than its own from the inheritable set.
        .inheritable(oci_spec::runtime::Capabilities::default())
        .permitted(held.clone())
        .effective(held)
        .ambient(oci_spec::runtime::Capabilities::default())
        .build()?;
    let (uid, gid) = o.user.unwrap_or((0, 0));
    let env = env_list(base_env(&o.hostname).into_iter().chain(o.env.clone()));
    let process = ProcessBuilder::default()
        .terminal(o.tty)
        .user(UserBuilder::default().uid(uid).gid(gid).build()?)
        .args(o.cmd.clone())
        .env(env)
        .cwd(o.workdir.clone())
        .capabilities(capabilities)
        .rlimits(Vec::new())
        .no_new_privileges(true)
        .build()?;
    let mut mounts = default_mounts()?;
    for v in &o.volumes {
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        if v.read_only {
            options.push("ro".into());
        }
        mounts.push(
            MountBuilder::default()
                .destination(&v.inside)
                .typ("bind")
                .source(&v.host)
                .options(options)
                .build()?,
        );
    }
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(bytes) = o.memory {
        let bytes = i64::try_from(bytes).context("--memory: too large")?;
        // swap = limit: memory + swap together may not exceed the limit, i.e. no swap.
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(bytes)
                .swap(bytes)
                .build()?,
        );
    }
    if let Some(pids) = o.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(i64::from(pids)).build()?);
    }
    if let Some(cpus) = o.cpus {
        let quota = (cpus * CPU_PERIOD as f64) as i64;
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(CPU_PERIOD)
                .build()?,
        );
    }
    let namespaces = NAMESPACES
        .iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(*t).build())
        .collect::<Result<Vec<_>, _>>()?;
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build()?)
        .masked_paths(MASKED.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .readonly_paths(READ_ONLY.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        .rootfs_propagation("rprivate");
    if o.seccomp {
        linux = linux.seccomp(seccomp::default_profile()?);
    }
    Ok(SpecBuilder::default()
        .version(OCI_VERSION)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()?,
        )
        .process(process)
        .hostname(o.hostname.clone())
        .mounts(mounts)
        .linux(linux.build()?)
        .build()?)
}

/// One mount of the spec, its options decoded into mount(2)'s flags and data.
#[derive(Debug, Clone)]
pub struct MountPlan {
    pub destination: PathBuf,
    pub typ: String,
    pub source: PathBuf,
    /// A bind mount (`bind`/`rbind`, or type `bind`): `MS_BIND`, recursive for `rbind`.
    pub bind: Option<bool>,
    pub flags: MsFlags,
    /// The options mount(2) passes to the file system (`mode=755,size=65536k`).
    pub data: String,
    /// `private`, `rslave`, ...: a second mount(2) call after the first.
    pub propagation: Option<MsFlags>,
}

/// The mount options that set or clear a flag of mount(2): (name, set, clear).
pub const FLAG_OPTIONS: &[(&str, MsFlags, MsFlags)] = &[
    ("ro", MsFlags::MS_RDONLY, MsFlags::empty()),
    ("rw", MsFlags::empty(), MsFlags::MS_RDONLY),
    ("nosuid", MsFlags::MS_NOSUID, MsFlags::empty()),
    ("suid", MsFlags::empty(), MsFlags::MS_NOSUID),
    ("nodev", MsFlags::MS_NODEV, MsFlags::empty()),
    ("dev", MsFlags::empty(), MsFlags::MS_NODEV),
    ("noexec", MsFlags::MS_NOEXEC, MsFlags::empty()),
    ("exec", MsFlags::empty(), MsFlags::MS_NOEXEC),
    ("sync", MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
    ("async", MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
    ("noatime", MsFlags::MS_NOATIME, MsFlags::empty()),
    ("atime", MsFlags::empty(), MsFlags::MS_NOATIME),
    ("nodiratime", MsFlags::MS_NODIRATIME, MsFlags::empty()),
    ("diratime", MsFlags::empty(), MsFlags::MS_NODIRATIME),
    ("relatime", MsFlags::MS_RELATIME, MsFlags::empty()),
    ("norelatime", MsFlags::empty(), MsFlags::MS_RELATIME),
    ("strictatime", MsFlags::MS_STRICTATIME, MsFlags::empty()),
    ("nostrictatime", MsFlags::empty(), MsFlags::MS_STRICTATIME),
    // Accepted and meaning nothing more (mandatory locks are gone from the kernel).
    ("mand", MsFlags::empty(), MsFlags::empty()),
    ("nomand", MsFlags::empty(), MsFlags::empty()),
    ("defaults", MsFlags::empty(), MsFlags::empty()),
];

/// The propagation options: a second mount(2) call after the first.
pub const PROPAGATION_OPTIONS: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Every mount option the engine knows (anything else goes to the file system as data).
pub fn mount_options() -> Vec<&'static str> {
    FLAG_OPTIONS
        .iter()
        .map(|(n, _, _)| *n)
        .chain(["bind", "rbind"])
        .chain(PROPAGATION_OPTIONS.iter().map(|(n, _)| *n))
        .collect()
}

/// Decode `options` the way mount(8) and runc do: flags, propagation, and the rest as data.
pub fn decode_options(options: &[String]) -> (MsFlags, Option<bool>, Option<MsFlags>, String) {
    let (mut flags, mut bind, mut propagation, mut data) =
        (MsFlags::empty(), None, None, Vec::new());
    for option in options {
        let name = option.as_str();
        if let Some((_, set, clear)) = FLAG_OPTIONS.iter().find(|(n, _, _)| *n == name) {
            flags.insert(*set);
            flags.remove(*clear);
        } else if name == "bind" {
            bind = Some(bind.unwrap_or(false));
        } else if name == "rbind" {
            bind = Some(true);
        } else if let Some((_, p)) = PROPAGATION_OPTIONS.iter().find(|(n, _)| *n == name) {
            propagation = Some(*p);
        } else {
            data.push(option.clone());
        }
    }
    (flags, bind, propagation, data.join(","))
}

/// A device node the spec asks for in the container's /dev.
#[derive(Debug, Clone)]
pub struct Device {
    pub path: PathBuf,
    /// `c`, `b`, `u` or `p`.
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The sysctls a container may set: those of its own IPC, UTS and network namespaces (runc's
/// list). The rest are the host's.
pub fn namespaced_sysctl(key: &str, flags: CloneFlags) -> bool {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    (flags.contains(CloneFlags::CLONE_NEWIPC)
        && (IPC.contains(&key) || key.starts_with("fs.mqueue.")))
        || (flags.contains(CloneFlags::CLONE_NEWNET) && key.starts_with("net."))
        || (flags.contains(CloneFlags::CLONE_NEWUTS)
            && matches!(key, "kernel.domainname" | "kernel.hostname"))
}

fn id_map(maps: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The five capability sets of the process.
#[derive(Debug, Clone, Default)]
pub struct CapSets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
}

/// What the engine does, read from a [`Spec`] once, with everything it cannot do refused.
#[derive(Debug, Clone)]
pub struct Plan {
    pub args: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub terminal: bool,
    pub hostname: String,
    /// The namespaces to make with clone(2).
    pub clone_flags: CloneFlags,
    pub mounts: Vec<MountPlan>,
    pub masked: Vec<String>,
    pub read_only: Vec<String>,
    pub caps: CapSets,
    pub no_new_privs: bool,
    /// setrlimit(2) for each: (resource, soft, hard).
    pub rlimits: Vec<(nix::sys::resource::Resource, u64, u64)>,
    pub seccomp: Option<LinuxSeccomp>,
    /// `root.path` (relative to the bundle) and `root.readonly`.
    pub root_path: Option<PathBuf>,
    pub root_readonly: bool,
    /// Written to the container's /proc/sys before it turns read-only (`domainname` is
    /// `kernel.domainname`).
    pub sysctl: Vec<(String, String)>,
    pub oom_score_adj: Option<i32>,
    pub umask: Option<u32>,
    /// Namespaces joined by path (setns) instead of made.
    pub join: Vec<(CloneFlags, PathBuf)>,
    /// With a user namespace: `linux.uidMappings` and `gidMappings` as `/proc/PID/uid_map` text.
    pub uid_map: Option<String>,
    pub gid_map: Option<String>,
    /// `linux.devices`: (path, type, major, minor, mode, uid, gid).
    pub devices: Vec<Device>,
    /// `linux.cgroupsPath`: from the root of each hierarchy when absolute, from this process's
    /// own cgroup when relative.
    pub cgroups_path: Option<PathBuf>,
    /// `linux.resources`, as cgroup files.
    pub resources: crate::resources::Resources,
    /// The runtime's own options, not the spec's (runc's `--no-pivot` and `--no-new-keyring`):
    /// set by the engine from its request.
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// `process.scheduler`, `process.ioPriority` (class, level) and `linux.personality`'s
    /// domain, set by the container's process before its capabilities go.
    pub scheduler: Option<labkit::sys::SchedAttr>,
    pub io_priority: Option<(u32, u32)>,
    pub personality: Option<u64>,
    /// A new time namespace (clone(2) cannot make one: the runtime unshares it for its next
    /// child), and `linux.timeOffsets` for it as `/proc/PID/timens_offsets` lines.
    pub new_time: bool,
    pub time_offsets: String,
    /// `process.consoleSize`: (rows, columns) of the terminal at its start.
    pub console_size: Option<(u16, u16)>,
    /// `linux.rootfsPropagation` as mount flags (`None`: private, this engine's default).
    pub root_propagation: Option<MsFlags>,
    /// A mount namespace to enter by path: the container's process joins it, and no mount is
    /// made (the namespace's own tree is its root).
    pub join_mount: Option<PathBuf>,
}

pub(crate) fn unsupported(field: &str) -> anyhow::Error {
    labkit::bad_input(format!(
        "config: {field} is not supported by minicontainer (it would be ignored, so it is refused)"
    ))
}

fn resource(typ: oci_spec::runtime::PosixRlimitType) -> Result<nix::sys::resource::Resource> {
    use nix::sys::resource::Resource as R;
    use oci_spec::runtime::PosixRlimitType as T;
    Ok(match typ {
        T::RlimitCpu => R::RLIMIT_CPU,
        T::RlimitFsize => R::RLIMIT_FSIZE,
        T::RlimitData => R::RLIMIT_DATA,
        T::RlimitStack => R::RLIMIT_STACK,
        T::RlimitCore => R::RLIMIT_CORE,
        T::RlimitRss => R::RLIMIT_RSS,
        T::RlimitNproc => R::RLIMIT_NPROC,
        T::RlimitNofile => R::RLIMIT_NOFILE,
        T::RlimitMemlock => R::RLIMIT_MEMLOCK,
        T::RlimitAs => R::RLIMIT_AS,
        T::RlimitLocks => R::RLIMIT_LOCKS,
        T::RlimitSigpending => R::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => R::RLIMIT_MSGQUEUE,
        T::RlimitNice => R::RLIMIT_NICE,
        T::RlimitRtprio => R::RLIMIT_RTPRIO,
        T::RlimitRttime => R::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        other => return Err(unsupported(&format!("process.rlimits {other:?}"))),
    })
}

fn caps_of(set: Option<&oci_spec::runtime::Capabilities>) -> Result<CapsHashSet> {
    set.into_iter()
        .flatten()
        .map(|c| {
            let name = serde_json::to_value(c)?;
            let name = name.as_str().context("capability name")?;
            caps::Capability::from_str(name).map_err(|e| anyhow::anyhow!("{name}: {e}"))
        })
        .collect()
}

/// Every field of `config.json` the engine reads, as JSON paths (`[]` for any element of an
/// array; a path covers everything below it). [`check_fields`] refuses, by name, any other
/// field that asks for something, so that nothing nobody wrote code for is silently ignored.
pub const HONOURED: &[&str] = &[
    "ociVersion",
    "hooks",
    "root.path",
    "root.readonly",
    "hostname",
    "domainname",
    "annotations",
    "mounts[].destination",
    "mounts[].type",
    "mounts[].source",
    "mounts[].options",
    "process.terminal",
    "process.consoleSize",
    "process.user.uid",
    "process.user.gid",
    "process.user.umask",
    "process.user.additionalGids",
    "process.args",
    "process.env",
    "process.cwd",
    "process.capabilities",
    "process.rlimits",
    "process.noNewPrivileges",
    "process.oomScoreAdj",
    "process.scheduler",
    "process.ioPriority",
    "linux.personality",
    // Refused below when non-empty where they would have to be applied.
    "process.apparmorProfile",
    "process.selinuxLabel",
    "linux.namespaces",
    "linux.timeOffsets",
    "linux.uidMappings",
    "linux.gidMappings",
    "linux.devices",
    "linux.cgroupsPath",
    // Every field of it: read by resources::Resources, which refuses what it cannot apply.
    "linux.resources",
    "linux.sysctl",
    "linux.seccomp",
    "linux.rootfsPropagation",
    "linux.maskedPaths",
    "linux.readonlyPaths",
];

/// Whether a JSON value asks for nothing: absent, null, false, "", [] or {} (what a client
/// writes for a field it leaves at its default).
fn asks_nothing(v: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match v {
        V::Null | V::Bool(false) => true,
        V::String(s) => s.is_empty(),
        V::Array(a) => a.iter().all(asks_nothing),
        V::Object(o) => o.values().all(asks_nothing),
        _ => false,
    }
}

/// Refuse the first field of `spec` that asks for something and is not [`HONOURED`].
fn check_fields(spec: &Spec) -> Result<()> {
    fn walk(v: &serde_json::Value, path: &str) -> Option<String> {
        let honoured = |p: &str| {
            HONOURED.iter().any(|h| {
                p == *h
                    || p.strip_prefix(h)
                        .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
            })
        };
        if asks_nothing(v) || honoured(path) {
            return None;
        }
        // Nothing honoured below: name this field itself (`hooks`, not `hooks.prestart[]...`).
        let inside = HONOURED.iter().any(|h| {
            h.strip_prefix(path)
                .is_some_and(|r| r.starts_with('.') || r.starts_with('['))
        });
        if !path.is_empty() && !inside {
            return Some(path.to_string());
        }
        match v {
            serde_json::Value::Object(o) => o.iter().find_map(|(k, v)| {
                let below = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(v, &below)
            }),
            serde_json::Value::Array(a) => a.iter().find_map(|v| walk(v, &format!("{path}[]"))),
            _ => Some(path.to_string()),
        }
    }
    match walk(&serde_json::to_value(spec)?, "") {
        Some(field) => Err(unsupported(&field)),
        None => Ok(()),
    }
}

/// `ociVersion`: a semantic version of the major version these configs follow (1).
fn check_version(version: &str) -> Result<()> {
    let parts: Vec<&str> = version.split(['.', '-', '+']).collect();
    let numeric = parts.len() >= 3 && parts[..3].iter().all(|p| p.parse::<u32>().is_ok());
    if !numeric || parts[0] != "1" {
        return Err(labkit::bad_input(format!(
            "config: ociVersion {version:?} is not a version 1.x.y of the runtime specification"
        )));
    }
    Ok(())
}

/// The security labels of the process this host cannot apply.
fn check_labels(process: &oci_spec::runtime::Process) -> Result<()> {
    // As runc: a profile is applied only where the kernel has AppArmor; without it, there
    // is nothing to apply.
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        && apparmor
    {
        return Err(unsupported(
            "process.apparmorProfile (AppArmor is enabled here)",
        ));
    }
    if process
        .selinux_label()
        .as_deref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err(unsupported("process.selinuxLabel"));
    }
    Ok(())
}

/// `linux.timeOffsets` (`monotonic` and `boottime`, seconds and nanoseconds) as the lines of
/// `/proc/PID/timens_offsets`; only for a time namespace the runtime makes.
fn time_offsets(linux: &oci_spec::runtime::Linux, new_time: bool) -> Result<String> {
    let Some(offsets) = linux.time_offsets().as_ref().filter(|o| !o.is_empty()) else {
        return Ok(String::new());
    };
    if !new_time {
        return Err(labkit::bad_input(
            "config: linux.timeOffsets needs a new time namespace in linux.namespaces",
        ));
    }
    let mut lines = Vec::new();
    for (clock, offset) in offsets {
        if !matches!(clock.as_str(), "monotonic" | "boottime") {
            return Err(labkit::bad_input(format!(
                "config: linux.timeOffsets {clock:?}: monotonic or boottime"
            )));
        }
        lines.push(format!(
            "{clock} {} {}",
            offset.secs().unwrap_or(0),
            offset.nanosecs().unwrap_or(0)
        ));
    }
    lines.sort();
    Ok(lines.join("\n") + "\n")
}

/// `process.scheduler` as sched_setattr(2)'s attributes.
fn scheduler(s: &oci_spec::runtime::Scheduler) -> Result<labkit::sys::SchedAttr> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let policy = match s.policy() {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => {
            return Err(unsupported(
                "process.scheduler.policy SCHED_ISO (not in Linux)",
            ));
        }
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    };
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            // They need clamp values, which the spec does not carry.
            F::SchedFlagUtilClampMin | F::SchedFlagUtilClampMax => {
                return Err(unsupported(&format!("process.scheduler.flags {f:?}")));
            }
        };
    }
    let priority = s.priority().unwrap_or(0);
    Ok(labkit::sys::SchedAttr {
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: u32::try_from(priority).map_err(|_| {
            labkit::bad_input(format!(
                "config: process.scheduler.priority {priority}: 0 or more"
            ))
        })?,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

/// `process.ioPriority` as ioprio_set(2)'s class and level.
fn io_priority(p: &oci_spec::runtime::LinuxIOPriority) -> Result<(u32, u32)> {
    use oci_spec::runtime::IOPriorityClass as C;
    let class = match p.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    match u32::try_from(p.priority()) {
        Ok(level) if level <= 7 => Ok((class, level)),
        _ => Err(labkit::bad_input(format!(
            "config: process.ioPriority.priority {}: 0 to 7",
            p.priority()
        ))),
    }
}

/// `linux.personality`: the execution domain; its flags are not defined by the spec.
fn personality(p: &oci_spec::runtime::LinuxPersonality) -> Result<u64> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(unsupported("linux.personality.flags"));
    }
    Ok(match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    })
}

/// `process.consoleSize` as (rows, columns), each fitting the kernel's 16 bits.
fn console_size(b: &oci_spec::runtime::Box) -> Result<(u16, u16)> {
    let fit = |v: u64, what: &str| {
        u16::try_from(v).map_err(|_| {
            labkit::bad_input(format!(
                "config: process.consoleSize.{what} {v}: at most 65535"
            ))
        })
    };
    Ok((fit(b.height(), "height")?, fit(b.width(), "width")?))
}

/// `linux.rootfsPropagation`: private (the default), slave, shared or unbindable, recursive
/// with an `r`.
fn root_propagation(linux: &oci_spec::runtime::Linux) -> Result<Option<MsFlags>> {
    let Some(p) = linux
        .rootfs_propagation()
        .as_deref()
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    let (_, _, propagation, _) = decode_options(&[p.to_string()]);
    match propagation {
        Some(flags) if flags.contains(MsFlags::MS_PRIVATE) => Ok(None),
        Some(flags) => Ok(Some(flags)),
        None => Err(labkit::bad_input(format!(
            "config: linux.rootfsPropagation {p:?}: private, slave, shared or unbindable (r for recursive)"
        ))),
    }
}

/// Without a mount namespace of its own the container's process makes no mount (as runc),
/// so what would need one is refused by name rather than left undone.
fn no_mounts_without_a_namespace(
    spec: &Spec,
    linux: &oci_spec::runtime::Linux,
    propagation: Option<MsFlags>,
) -> Result<()> {
    let asked = [
        (
            "mounts",
            spec.mounts().as_ref().is_some_and(|m| !m.is_empty()),
        ),
        (
            "linux.maskedPaths",
            linux.masked_paths().as_ref().is_some_and(|m| !m.is_empty()),
        ),
        (
            "linux.readonlyPaths",
            linux
                .readonly_paths()
                .as_ref()
                .is_some_and(|m| !m.is_empty()),
        ),
        (
            "linux.devices",
            linux.devices().as_ref().is_some_and(|d| !d.is_empty()),
        ),
        (
            "linux.sysctl",
            linux.sysctl().as_ref().is_some_and(|s| !s.is_empty()),
        ),
        (
            "root.readonly",
            spec.root()
                .as_ref()
                .is_some_and(|r| r.readonly() == Some(true)),
        ),
        ("linux.rootfsPropagation", propagation.is_some()),
        (
            "domainname",
            spec.domainname().as_ref().is_some_and(|d| !d.is_empty()),
        ),
    ];
    match asked.iter().find(|(_, a)| *a) {
        Some((field, _)) => Err(labkit::bad_input(format!(
            "config: {field} needs a mount namespace of its own, and the config makes none (it joins one, or has none)"
        ))),
        None => Ok(()),
    }
}

/// The namespaces to make (clone flags) and those to join by path.
fn namespaces(
    linux: &oci_spec::runtime::Linux,
) -> Result<(CloneFlags, Vec<(CloneFlags, PathBuf)>)> {
    let mut clone_flags = CloneFlags::empty();
    let mut join = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        let flag = match ns.typ() {
            LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
            LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
            LinuxNamespaceType::Time => labkit::ns::NsKind::Time.flag(),
        };
        match ns.path() {
            // The runtime joins the others before clone and goes on with the host's cgroups
            // and files; in another user namespace it would have no privilege over them.
            Some(path) if ns.typ() == LinuxNamespaceType::User => {
                return Err(unsupported(&format!(
                    "joining a user namespace by path ({}): minicontainer makes its own",
                    path.display()
                )));
            }
            Some(path) => join.push((flag, path.clone())),
            None => clone_flags |= flag,
        }
    }
    Ok((clone_flags, join))
}

/// A user namespace's maps, as /proc/PID/uid_map and gid_map text.
fn id_maps(
    linux: &oci_spec::runtime::Linux,
    clone_flags: CloneFlags,
) -> Result<(Option<String>, Option<String>)> {
    let has_user = clone_flags.contains(CloneFlags::CLONE_NEWUSER);
    match (linux.uid_mappings(), linux.gid_mappings()) {
        (Some(u), Some(g)) if has_user && !u.is_empty() && !g.is_empty() => {
            Ok((Some(id_map(u)), Some(id_map(g))))
        }
        (None, None) if !has_user => Ok((None, None)),
        _ => Err(labkit::bad_input(
            "config: a user namespace needs linux.uidMappings and gidMappings, and mappings need a user namespace",
        )),
    }
}

/// The sysctls (the domain name among them), each one of the container's own namespaces.
fn sysctls(
    spec: &Spec,
    linux: &oci_spec::runtime::Linux,
    clone_flags: CloneFlags,
) -> Result<Vec<(String, String)>> {
    let mut sysctl: Vec<(String, String)> = linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    sysctl.sort();
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sysctl.push(("kernel.domainname".into(), d.to_string()));
    }
    if let Some((key, _)) = sysctl
        .iter()
        .find(|(k, _)| !namespaced_sysctl(k, clone_flags))
    {
        return Err(labkit::bad_input(format!(
            "config: sysctl {key} is not one of the container's namespaces (it would change the host)"
        )));
    }
    Ok(sysctl)
}

/// `linux.devices`: the nodes to make in the container's /dev.
fn devices(linux: &oci_spec::runtime::Linux) -> Result<Vec<Device>> {
    linux
        .devices()
        .iter()
        .flatten()
        .map(|d| {
            let kind = match d.typ() {
                oci_spec::runtime::LinuxDeviceType::C => 'c',
                oci_spec::runtime::LinuxDeviceType::B => 'b',
                oci_spec::runtime::LinuxDeviceType::U => 'u',
                oci_spec::runtime::LinuxDeviceType::P => 'p',
                oci_spec::runtime::LinuxDeviceType::A => 'a',
            };
            if kind == 'a' || !d.path().starts_with("/dev") {
                return Err(labkit::bad_input(format!(
                    "config: device {}: a node of type c, b, u or p under /dev",
                    d.path().display()
                )));
            }
            Ok(Device {
                path: d.path().clone(),
                kind,
                major: d.major(),
                minor: d.minor(),
                mode: d.file_mode().unwrap_or(0o666),
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>>>()
}

/// The spec's mounts, their options decoded; types the engine cannot mount refused.
fn mounts(spec: &Spec) -> Result<Vec<MountPlan>> {
    let mut mounts = Vec::new();
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            bail!(labkit::bad_input(format!(
                "config: mount destination {} is not absolute",
                m.destination().display()
            )));
        }
        let options = m.options().clone().unwrap_or_default();
        let (flags, mut bind, propagation, data) = decode_options(&options);
        let typ = m.typ().clone().unwrap_or_default();
        if typ == "bind" {
            bind = Some(bind.unwrap_or(false));
        }
        if !matches!(
            typ.as_str(),
            "bind" | "proc" | "sysfs" | "tmpfs" | "devpts" | "mqueue" | "cgroup" | "cgroup2" | ""
        ) {
            return Err(unsupported(&format!(
                "a mount of type {typ:?} on {}",
                m.destination().display()
            )));
        }
        mounts.push(MountPlan {
            destination: m.destination().clone(),
            typ,
            source: m.source().clone().unwrap_or_default(),
            bind,
            flags,
            data,
            propagation,
        });
    }
    Ok(mounts)
}

/// The five capability sets.
fn capabilities(process: &oci_spec::runtime::Process) -> Result<CapSets> {
    let c = process.capabilities().as_ref();
    Ok(CapSets {
        bounding: caps_of(c.and_then(|c| c.bounding().as_ref()))?,
        effective: caps_of(c.and_then(|c| c.effective().as_ref()))?,
        permitted: caps_of(c.and_then(|c| c.permitted().as_ref()))?,
        inheritable: caps_of(c.and_then(|c| c.inheritable().as_ref()))?,
        ambient: caps_of(c.and_then(|c| c.ambient().as_ref()))?,
    })
}

/// No user or group ID that setresuid(2) would read as "unchanged".
fn check_ids(user: &oci_spec::runtime::User) -> Result<()> {
    let ids = [user.uid(), user.gid()]
        .into_iter()
        .chain(user.additional_gids().iter().flatten().copied());
    if let Some(id) = ids.into_iter().find(|id| *id > crate::MAX_ID) {
        return Err(labkit::bad_input(format!(
            "config: process.user ID {id} is above {} ((uid_t) -1 would leave the ID unchanged)",
            crate::MAX_ID
        )));
    }
    Ok(())
}

impl Plan {
    /// Check a spec and read it into a plan: every field of it that asks for something must be
    /// one the engine honours ([`HONOURED`]), then each part is read and checked.
    pub fn new(spec: &Spec) -> Result<Plan> {
        check_version(spec.version())?;
        check_fields(spec)?;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| labkit::bad_input("config: no process to run"))?;
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            bail!(labkit::bad_input(
                "no command to run (minicontainer run [OPTIONS] -- CMD [ARGS...])"
            ));
        }
        check_labels(process)?;
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| labkit::bad_input("config: no linux section"))?;
        let root_propagation = root_propagation(linux)?;
        let (mut clone_flags, mut join) = namespaces(linux)?;
        let time = labkit::ns::NsKind::Time.flag();
        let new_time = clone_flags.contains(time);
        clone_flags.remove(time);
        let time_offsets = time_offsets(linux, new_time)?;
        // A mount namespace joined by path is entered by the container's process itself (the
        // runtime keeps its own view of the host's files for the steps it does).
        let join_mount = join
            .iter()
            .position(|(f, _)| *f == CloneFlags::CLONE_NEWNS)
            .map(|at| join.remove(at).1);
        if !clone_flags.contains(CloneFlags::CLONE_NEWNS) {
            no_mounts_without_a_namespace(spec, linux, root_propagation)?;
        }
        let (uid_map, gid_map) = id_maps(linux, clone_flags)?;
        let resources = crate::resources::Resources::new(linux.resources().as_ref())?;
        let user = process.user();
        check_ids(user)?;
        Ok(Plan {
            args,
            env: process.env().clone().unwrap_or_default(),
            cwd: process.cwd().clone(),
            uid: user.uid(),
            gid: user.gid(),
            additional_gids: user.additional_gids().clone().unwrap_or_default(),
            terminal: process.terminal().unwrap_or(false),
            hostname: spec.hostname().clone().unwrap_or_default(),
            clone_flags,
            mounts: mounts(spec)?,
            masked: linux.masked_paths().clone().unwrap_or_default(),
            read_only: linux.readonly_paths().clone().unwrap_or_default(),
            caps: capabilities(process)?,
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            rlimits: process
                .rlimits()
                .iter()
                .flatten()
                .map(|l| Ok((resource(l.typ())?, l.soft(), l.hard())))
                .collect::<Result<_>>()?,
            seccomp: linux.seccomp().clone(),
            root_path: spec.root().as_ref().map(|r| r.path().clone()),
            root_readonly: spec
                .root()
                .as_ref()
                .is_some_and(|r| r.readonly() == Some(true)),
            sysctl: sysctls(spec, linux, clone_flags)?,
            oom_score_adj: process.oom_score_adj(),
            umask: process.user().umask(),
            join,
            uid_map,
            gid_map,
            devices: devices(linux)?,
            cgroups_path: linux.cgroups_path().clone(),
            resources,
            root_propagation,
            join_mount,
            console_size: process
                .console_size()
                .as_ref()
                .map(console_size)
                .transpose()?,
            no_pivot: false,
            no_new_keyring: false,
            new_time,
            time_offsets,
            scheduler: process.scheduler().as_ref().map(scheduler).transpose()?,
            io_priority: process
                .io_priority()
                .as_ref()
                .map(io_priority)
                .transpose()?,
            personality: linux.personality().as_ref().map(personality).transpose()?,
        })
    }

    /// Whether the spec asks for any limit (and so for cgroups; the device policy, which every
    /// container gets as root, is not counted).
    pub fn has_limits(&self) -> bool {
        self.resources.any()
    }

    /// The seccomp profile compiled to BPF programs (none without a profile).
    pub fn seccomp_programs(&self) -> Result<Vec<seccompiler::BpfProgram>> {
        match &self.seccomp {
            Some(profile) => seccomp::compile(profile),
            None => Ok(Vec::new()),
        }
    }

    /// The environment as pairs, for `Command::envs`.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect()
    }
}

/// Write `spec` as `config.json` into `dir`.
pub fn save(spec: &Spec, dir: &Path) -> Result<()> {
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_vec_pretty(spec)?)
        .with_context(|| format!("write {}", path.display()))
}

/// Read `config.json` from `dir`.
pub fn load(dir: &Path) -> Result<Spec> {
    let path = dir.join("config.json");
    let text = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parse {}", path.display()))
}

/// The spec as `config.json` text.
pub fn to_json(spec: &Spec) -> Result<String> {
    Ok(serde_json::to_string_pretty(spec)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn options() -> RunOptions {
        RunOptions {
            hostname: "box".into(),
            memory: Some(64 << 20),
            pids: Some(20),
            cpus: Some(0.5),
            env: vec![("PATH".into(), "/bin".into()), ("A".into(), "1".into())],
            workdir: "/".into(),
            seccomp: true,
            cmd: vec!["sh".into()],
            ..Default::default()
        }
    }

    #[test]
    fn flags_become_a_spec_and_the_spec_a_plan() {
        let spec = from_options(&options()).unwrap();
        let plan = Plan::new(&spec).unwrap();
        assert_eq!(plan.resources.memory, Some(64 << 20));
        assert_eq!(plan.resources.pids, Some(20));
        assert_eq!(plan.resources.cpu, Some((50_000, CPU_PERIOD)));
        assert_eq!(plan.hostname, "box");
        assert!(
            plan.env.contains(&"PATH=/bin".to_string()),
            "{:?}",
            plan.env
        );
        assert_eq!(plan.env[0], "PATH=/bin", "-e replaces in place");
        assert!(plan.env.contains(&"A=1".to_string()));
        assert!(plan.clone_flags.contains(CloneFlags::CLONE_NEWCGROUP));
        assert_eq!(plan.caps.bounding.len(), DEFAULT_CAPS.len());
        assert!(plan.no_new_privs && plan.seccomp.is_some());
        assert_eq!(plan.mounts[0].typ, "proc");
        // The JSON round trip is what a bundle's config.json is.
        let json = to_json(&spec).unwrap();
        let back: Spec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
        assert!(json.contains("\"CAP_CHOWN\""), "{json}");
    }

    #[test]
    fn unsupported_fields_are_refused_by_name() {
        let mut spec = from_options(&options()).unwrap();
        let mut linux = spec.linux().clone().unwrap();
        // A sysctl of the container's network namespace is fine; one of the host's is not.
        linux.set_sysctl(Some(HashMap::from([(
            "net.ipv4.ip_forward".into(),
            "1".into(),
        )])));
        spec.set_linux(Some(linux.clone()));
        assert_eq!(Plan::new(&spec).unwrap().sysctl.len(), 1);
        linux.set_sysctl(Some(HashMap::from([("kernel.panic".into(), "1".into())])));
        spec.set_linux(Some(linux));
        let err = Plan::new(&spec).unwrap_err().to_string();
        assert!(err.contains("kernel.panic"), "{err}");
        // Any field nobody wrote code for is refused by its name, not ignored; one left at its
        // default (empty hooks, a false flag) asks for nothing and passes.
        let base = serde_json::to_value(from_options(&options()).unwrap()).unwrap();
        let with = |path: &[&str], value: serde_json::Value| {
            let mut v = base.clone();
            let mut at = &mut v;
            for key in &path[..path.len() - 1] {
                at = at
                    .as_object_mut()
                    .unwrap()
                    .entry(key.to_string())
                    .or_insert(serde_json::json!({}));
            }
            at[path[path.len() - 1]] = value;
            let spec: Spec = serde_json::from_value(v).unwrap();
            Plan::new(&spec).map(drop).map_err(|e| e.to_string())
        };
        assert!(with(&["hooks"], serde_json::json!({})).is_ok());
        for (path, value, named) in [
            (
                &["linux", "intelRdt"][..],
                serde_json::json!({"closID": "x"}),
                "linux.intelRdt",
            ),
            (
                &["linux", "mountLabel"],
                serde_json::json!("system_u:object_r:container_file_t:s0"),
                "linux.mountLabel",
            ),
            (
                &["linux", "resources", "rdma"],
                serde_json::json!({"mlx5_1": {"hcaHandles": 3}}),
                "linux.resources.rdma",
            ),
        ] {
            let err = with(path, value).unwrap_err();
            assert!(err.contains(&format!("{named} is not supported")), "{err}");
        }
    }

    #[test]
    fn mount_options_decode_like_mount8() {
        let opts: Vec<String> = ["nosuid", "ro", "rbind", "rslave", "mode=755", "size=1k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, bind, prop, data) = decode_options(&opts);
        assert_eq!(flags, MsFlags::MS_NOSUID | MsFlags::MS_RDONLY);
        assert_eq!(bind, Some(true));
        assert_eq!(prop, Some(MsFlags::MS_SLAVE | MsFlags::MS_REC));
        assert_eq!(data, "mode=755,size=1k");
    }
}
