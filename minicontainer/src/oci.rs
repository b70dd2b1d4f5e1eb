//! The OCI runtime command line, with runc's names and meanings, on the same engine as `run`:
//! `create`, `start`, `state`, `kill`, `delete`, `run ID`, `spec`, `list`.
//!
//! A container made by `create` has a directory in the state root (`--root`, by default
//! `/run/nslab` as root): `state.json` (its PID, bundle, cgroups, and the PID's start time, so
//! that a reused PID is never mistaken for it) and `exec.fifo`. Its process waits, set up, in
//! open(2) of the FIFO for writing; `start` opens it for reading, which lets the process write
//! one byte and exec. The FIFO's absence means the process has been started. There is no
//! daemon: each command reads the directory and the kernel's `/proc/PID`.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use labkit::rootless::Privilege;
use labkit::{Narrator, bad_input};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::{ContainerState, Spec};

use crate::{Config, Net, Root};

pub use crate::store::{Record, Store, starttime, validate_id};

use crate::engine::hooks::Kind;

/// The bundle's config and root filesystem.
fn open_bundle(bundle: &Path) -> Result<(PathBuf, Spec, PathBuf)> {
    let bundle = fs::canonicalize(bundle)
        .map_err(|e| bad_input(format!("bundle {}: {e}", bundle.display())))?;
    let config = bundle.join("config.json");
    let text = fs::read(&config).map_err(|e| bad_input(format!("{}: {e}", config.display())))?;
    let spec: Spec = serde_json::from_slice(&text).map_err(|e| {
        bad_input(format!(
            "{}: not an OCI runtime config: {e}",
            config.display()
        ))
    })?;
    let rootfs = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .ok_or_else(|| bad_input(format!("{}: no root", config.display())))?;
    let rootfs = bundle.join(rootfs);
    let rootfs = fs::canonicalize(&rootfs)
        .map_err(|e| bad_input(format!("root.path {}: {e}", rootfs.display())))?;
    Ok((bundle, spec, rootfs))
}

/// `create`'s options.
#[derive(Debug, Clone, Default)]
pub struct CreateArgs {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// runc's `--preserve-fds N`: the caller's descriptors 3 to 2 + N reach the container.
    pub preserve_fds: u32,
    /// runc's `--no-pivot` and `--no-new-keyring`.
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// Check that the caller's descriptors 3 to 2 + `n` are open (`--preserve-fds`).
pub fn check_preserved(n: u32) -> Result<()> {
    if n > 1024 {
        return Err(bad_input(format!("--preserve-fds {n}: at most 1024")));
    }
    labkit::harden::pass_on(n).map_err(|e| {
        bad_input(format!(
            "--preserve-fds {n}: descriptors 3 to {} must all be open ({e})",
            2 + n
        ))
    })
}

/// Removes a half-made container unless told it is complete: its process (this process's
/// child until `create` ends: killed and reaped), its cgroups, and its directory.
struct Pending {
    dir: Option<PathBuf>,
    made: Option<crate::engine::Created>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(made) = self.made.take() {
            let pid = Pid::from_raw(made.pid);
            let _ = kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            if let Err(e) = remove_cgroups(&made.cgroups, &made.procs) {
                eprintln!("minicontainer: {e:#}");
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// `create ID`: set the container up from its bundle; its process waits for `start`.
pub fn create(out: &mut Narrator, store: &Store, id: &str, args: &CreateArgs) -> Result<Record> {
    validate_id(id)?;
    check_preserved(args.preserve_fds)?;
    let (bundle, spec, rootfs) = open_bundle(&args.bundle)?;
    store.ensure()?;
    let dir = store.dir(id);
    let mkdir = || fs::DirBuilder::new().mode(0o700).create(&dir);
    let made = match mkdir() {
        // The store emptied and tidied away by another command meanwhile: make it again.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            store.ensure()?;
            mkdir()
        }
        other => other,
    };
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(bad_input(format!("container {id} already exists")));
        }
        Err(e) => return Err(e).with_context(|| format!("mkdir {}", dir.display())),
    }
    let mut pending = Pending {
        dir: Some(dir.clone()),
        made: None,
    };
    let fifo = dir.join("exec.fifo");
    crate::run::make_fifo(&fifo)?;
    let annotations = spec.annotations().clone().unwrap_or_default();
    // A copy for `exec`, which joins with the same user, capabilities and seccomp filter.
    store.write_file(id, "config.json", crate::spec::to_json(&spec)?.as_bytes())?;
    let config = Config {
        spec,
        root: Root::Bundle(rootfs),
        net: Net::None,
        name: Some(id.to_string()),
        init: false,
        log: false,
        keep: false,
        publish: Vec::new(),
    };
    let command = config.args().join(" ");
    // The terminal's master side goes to the caller's console socket.
    let console = match &args.console_socket {
        Some(path) => Some(
            std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("connect({})", path.display()))?,
        ),
        None => None,
    };
    let ctr = crate::engine::create(
        out,
        crate::engine::Request {
            id,
            bundle: &bundle,
            config: &config,
            privilege: Privilege::Root,
            fifo: &fifo,
            console,
            work: Path::new(""),
            veth_record: None,
            outlive: true,
            preserve_fds: args.preserve_fds,
            no_pivot: args.no_pivot,
            no_new_keyring: args.no_new_keyring,
        },
    )?;
    let created = ctr.leave();
    // From here a failure must also take the process and its cgroups away.
    let created = pending.made.insert(created).clone();
    let record = Record {
        id: id.to_string(),
        pid: created.pid,
        starttime: starttime(created.pid).context("the container's process is gone")?,
        bundle,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cgroups: created.cgroups,
        annotations,
        procs: created.procs,
        runner: None,
        command,
        address: None,
        ports: Vec::new(),
    };
    store.write_file(id, "state.json", &serde_json::to_vec_pretty(&record)?)?;
    if let Some(pid_file) = &args.pid_file {
        write_pid_file(pid_file, created.pid)?;
    }
    std::mem::forget(pending);
    Ok(record)
}

/// Write `pid` to `path` whole (a reader never sees half a number): into a new file beside it,
/// made with `O_CREAT | O_EXCL | O_NOFOLLOW` under a name no one can have planted (a symlink
/// there would make root write through it), then renamed over `path`.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    PidFile::open(path)?.write(pid)
}

/// A PID file's directory, opened ahead (`exec` writes the PID once it has joined the
/// container's mount namespace, where the path means nothing), and its name.
#[derive(Debug)]
pub struct PidFile {
    dir: std::os::fd::OwnedFd,
    name: String,
    shown: PathBuf,
}

impl PidFile {
    pub fn open(path: &Path) -> Result<PidFile> {
        let name = path
            .file_name()
            .ok_or_else(|| bad_input(format!("--pid-file {}: not a file name", path.display())))?
            .to_string_lossy()
            .into_owned();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = nix::fcntl::open(
            parent,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("write the PID file {}: open its directory", path.display()))?;
        Ok(PidFile {
            dir,
            name,
            shown: path.to_path_buf(),
        })
    }

    /// Write `pid` into a new temporary file beside it (`O_CREAT | O_EXCL | O_NOFOLLOW`), then
    /// rename it over the PID file.
    pub fn write(&self, pid: i32) -> Result<()> {
        use nix::fcntl::{OFlag, openat, renameat};
        let context = || format!("write the PID file {}", self.shown.display());
        let tmp = format!(".{}.{}", self.name, labkit::unique_name("pid"));
        let fd = openat(
            &self.dir,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .with_context(context)?;
        let written =
            std::io::Write::write_all(&mut fs::File::from(fd), pid.to_string().as_bytes())
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    renameat(&self.dir, tmp.as_str(), &self.dir, self.name.as_str())
                        .map_err(anyhow::Error::from)
                });
        if written.is_err() {
            let _ = nix::unistd::unlinkat(
                &self.dir,
                tmp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        written.with_context(context)
    }
}

/// `start ID`: let a created container's process exec.
pub fn start(store: &Store, id: &str) -> Result<()> {
    let record = store.load(id)?;
    match store.status(&record) {
        ContainerState::Created => {}
        other => {
            return Err(bad_input(format!(
                "container {id} is {other}: only a created container can be started"
            )));
        }
    }
    crate::engine::start(&store.dir(id).join("exec.fifo"), record.process())
        .with_context(|| format!("container {id}"))?;
    after_hooks(store, &record, Kind::Poststart, ContainerState::Running);
    Ok(())
}

/// The spec's poststart or poststop hooks: a failure is a warning, as the spec says (the
/// container runs, or is gone, either way).
fn after_hooks(store: &Store, record: &Record, kind: Kind, status: ContainerState) {
    let Ok(spec) = store
        .read_file(&record.id, "config.json")
        .and_then(|b| Ok(serde_json::from_slice::<Spec>(&b)?))
    else {
        return;
    };
    let hooks = crate::engine::hooks::of(&spec, kind);
    if hooks.is_empty() {
        return;
    }
    let pid = (status != ContainerState::Stopped).then_some(record.pid);
    let ran = crate::engine::hooks::state(&record.id, status, pid, &record.bundle, &spec)
        .and_then(|state| crate::engine::hooks::run(kind, &hooks, &state));
    if let Err(e) = ran {
        eprintln!("minicontainer: warning: {e:#}");
    }
}

/// `pause ID`: freeze a running container's processes (runc's pause: v1's freezer, v2's
/// `cgroup.freeze`); `resume ID` thaws a paused one.
pub fn pause(store: &Store, id: &str, pause: bool) -> Result<()> {
    let record = store.load(id)?;
    let (from, verb) = if pause {
        ("running", "paused")
    } else {
        ("paused", "resumed")
    };
    let status = store.status_text(&record);
    if status != from {
        return Err(bad_input(format!(
            "container {id} is {status}: only a {from} container can be {verb}"
        )));
    }
    crate::engine::cgroups::set_frozen(&record.procs, pause)
        .with_context(|| format!("container {id}"))
}

/// `update ID`: new resources for a created, running or paused container, written into its
/// groups (runc's update, which `docker update` reaches through containerd).
pub fn update(
    store: &Store,
    id: &str,
    resources: &oci_spec::runtime::LinuxResources,
) -> Result<()> {
    let record = store.load(id)?;
    if store.status(&record) == ContainerState::Stopped {
        return Err(bad_input(format!("container {id} is not running")));
    }
    let resources = crate::resources::Resources::new(Some(resources))?;
    crate::engine::cgroups::update(&record.procs, &resources)
        .with_context(|| format!("container {id}"))
}

/// One of runc's `events` lines: `{"type":"stats","id":ID,"data":{...}}`, the usage of a
/// container's groups.
pub fn stats_event(store: &Store, id: &str) -> Result<serde_json::Value> {
    let record = store.load(id)?;
    if store.status(&record) == ContainerState::Stopped {
        return Err(bad_input(format!("container {id} is not running")));
    }
    Ok(serde_json::json!({
        "type": "stats",
        "id": id,
        "data": crate::engine::cgroups::stats(&record.procs),
    }))
}

/// `kill ID [SIGNAL]`: signal a created or running container's process.
pub fn kill_container(store: &Store, id: &str, signal: Signal) -> Result<()> {
    let record = store.load(id)?;
    if store.status(&record) == ContainerState::Stopped {
        return Err(bad_input(format!("container {id} is not running")));
    }
    kill(Pid::from_raw(record.pid), signal)
        .with_context(|| format!("kill({}, {signal})", record.pid))
}

/// `delete [--force] ID`: remove a stopped container (with --force, kill it first).
pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    validate_id(id)?;
    if force && !store.dir(id).exists() {
        // As runc: forcing the deletion of what is not there succeeds.
        return Ok(());
    }
    if !store.dir(id).join("state.json").exists() {
        // As runc: a directory without state.json is what a create cut short left (killed
        // before it wrote it): it goes; only --force makes that a success.
        let _ = fs::remove_dir_all(store.dir(id));
        if force {
            return Ok(());
        }
    }
    let record = store.load(id)?;
    if store.status(&record) != ContainerState::Stopped {
        if !force {
            return Err(bad_input(format!(
                "container {id} is {}: stop it first, or delete --force",
                store.status(&record)
            )));
        }
        // Through a pidfd checked to be its process; waited for on the pidfd, not by polling.
        if let Ok(pidfd) = crate::state::pidfd(record.process()) {
            pidfd.send(Signal::SIGKILL)?;
            // A paused container's processes act on SIGKILL once thawed (v1's freezer).
            if crate::engine::cgroups::frozen(&record.procs) {
                crate::engine::cgroups::set_frozen(&record.procs, false)?;
            }
            if !pidfd.wait_exit(Duration::from_secs(10))? {
                bail!("container {id}: its process outlived SIGKILL for 10 s");
            }
        }
    }
    remove_cgroups(&record.cgroups, &record.procs)?;
    // Before the record goes: the hooks are in its config.json.
    after_hooks(store, &record, Kind::Poststop, ContainerState::Stopped);
    let dir = store.dir(id);
    fs::remove_dir_all(&dir).with_context(|| format!("rm -r {}", dir.display()))?;
    store.tidy();
    Ok(())
}

/// Remove a container's cgroups (the top group of each hierarchy, with its version, and its
/// leaves, the directories of `procs`), killing what is still in them.
pub(crate) fn remove_cgroups(cgroups: &[(PathBuf, String)], procs: &[PathBuf]) -> Result<()> {
    for (top, version) in cgroups {
        let version = if version == "v1" {
            cgroup_demo::cg::Version::V1
        } else {
            cgroup_demo::cg::Version::V2
        };
        let leaf = procs
            .iter()
            .filter_map(|p| p.parent())
            .find(|l| l.starts_with(top));
        // Group::remove kills what is left and waits for the group to empty (on v2's
        // cgroup.events) and for its rmdir to stop answering EBUSY.
        crate::engine::cgroups::remove_placed(top, leaf, version)?;
    }
    Ok(())
}

/// runc's `ps ID`: the host PIDs and command lines of the processes in the container's PID
/// namespace (those whose /proc/PID/ns/pid is the same namespace as its process's).
pub fn processes(store: &Store, id: &str) -> Result<Vec<(i32, String)>> {
    let record = store.load(id)?;
    if store.status(&record) == ContainerState::Stopped {
        return Err(bad_input(format!("container {id} is not running")));
    }
    let ns = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let theirs = ns(record.pid).context("the container's PID namespace")?;
    let mut found: Vec<(i32, String)> = fs::read_dir("/proc")
        .context("read /proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| ns(*pid).as_ref() == Some(&theirs))
        .map(|pid| {
            let cmd = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            (pid, cmd)
        })
        .collect();
    found.sort();
    Ok(found)
}

/// `list`: one row per container, as runc prints them.
pub fn list(store: &Store) -> Result<String> {
    let mut rows = vec![vec![
        "ID".to_string(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
    ]];
    for r in store.list()? {
        let status = store.status(&r);
        rows.push(vec![
            r.id.clone(),
            if status == ContainerState::Stopped {
                "0".into()
            } else {
                r.pid.to_string()
            },
            store.status_text(&r),
            r.bundle.display().to_string(),
        ]);
    }
    Ok(labkit::narrate::table(&rows))
}

/// `spec`: a default `config.json` in `bundle`, as `runc spec` writes one: `sh` on a terminal,
/// the root in `rootfs`; with `rootless`, a user namespace that maps the caller to root.
pub fn write_default_spec(bundle: &Path, rootless: bool) -> Result<PathBuf> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(bad_input(format!("{} exists already", path.display())));
    }
    let mut spec = crate::spec::from_options(&crate::spec::RunOptions {
        hostname: "minicontainer".into(),
        workdir: PathBuf::from("/"),
        seccomp: true,
        tty: true,
        cmd: vec!["sh".into()],
        ..Default::default()
    })?;
    if rootless {
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        namespaces.push(
            oci_spec::runtime::LinuxNamespaceBuilder::default()
                .typ(oci_spec::runtime::LinuxNamespaceType::User)
                .build()?,
        );
        let map = |host: u32| {
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host)
                .size(1u32)
                .build()
        };
        linux
            .set_namespaces(Some(namespaces))
            .set_uid_mappings(Some(vec![map(uid.as_raw())?]))
            .set_gid_mappings(Some(vec![map(gid.as_raw())?]))
            .set_resources(None);
        spec.set_linux(Some(linux));
    }
    fs::write(&path, crate::spec::to_json(&spec)?)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// `features`: what this runtime implements, as the runtime specification's features.md
/// defines the JSON (fixed by the code, not by what this host offers). Read from the engine's
/// own tables where it has them: the hooks, the mount options, the namespaces, the seccomp
/// actions and operators.
pub fn features() -> serde_json::Value {
    use crate::engine::hooks::Kind;
    let hooks: Vec<&str> = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ]
    .iter()
    .map(|k| k.name())
    .collect();
    let capabilities: Vec<String> = {
        let mut all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        all.sort();
        all
    };
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::spec::OCI_VERSION,
        "hooks": hooks,
        "mountOptions": crate::spec::mount_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": capabilities,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": crate::seccomp::SUPPORTED_ACTIONS,
                "operators": [
                    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                    "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"
                ],
                "archs": [if cfg!(target_arch = "aarch64") { "SCMP_ARCH_AARCH64" } else { "SCMP_ARCH_X86_64" }],
                "knownFlags": [],
                "supportedFlags": []
            },
            // A profile or label is refused where it would have to be applied.
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false}
        }
    })
}
