//! The engine: one path from a spec to a running container, in the steps the container chapter
//! follows, a file each:
//!
//! 1. [`namespaces`]: the spec's new namespaces (made by clone in step 6), those joined by
//!    path, a user namespace's ID maps;
//! 2. [`cgroups`]: groups for the limits, under `cgroupsPath` or this process's own cgroup;
//! 3. [`rootfs`]: the root filesystem, private, `nodev`, with the spec's mounts, pivoted into;
//! 4. [`devices`]: the container's /dev, and the device policy (v1 controller, v2 eBPF);
//! 5. [`identity`]: hostname, network, user, capabilities, seccomp;
//! 6. [`spawn`]: clone, the exec FIFO, and the exec of the init or the command.
//!
//! Its two ends are [`create`], which returns once the container's process waits on its exec
//! FIFO, and [`start`], which lets it exec. Both faces of the runtime take this one path: the
//! OCI `create` and `start` are these two; docker-style `run` is create, start, wait, delete.

pub mod cgroups;
pub mod devices;
pub mod hooks;
pub mod identity;
pub mod namespaces;
pub mod rootfs;
pub mod spawn;

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use labkit::child::{Child, Reporter, clone_child, clone_child_into};
use labkit::rootless::Privilege;
use labkit::{Narrator, bad_input};
use nix::sched::CloneFlags;

use crate::spec::Plan;
use crate::store::Proc;
use crate::{Config, Net, Root, net, pid1};

pub use spawn::CommandNotFound;

pub(crate) fn step(r: &mut Reporter, text: impl std::fmt::Display) {
    r.step(text);
}

/// What [`create`] is asked for, besides the config.
#[derive(Debug)]
pub struct Request<'a> {
    /// The container's ID (its name) and bundle, as its state shows them to hooks.
    pub id: &'a str,
    pub bundle: &'a Path,
    pub config: &'a Config,
    pub privilege: Privilege,
    /// The exec FIFO the process waits on (made by the caller, in the container's directory).
    pub fifo: &'a Path,
    /// With `process.terminal`: the container's end of a socket the terminal's master side is
    /// sent through (a console socket, or one end of `run -t`'s pair).
    pub console: Option<UnixStream>,
    /// The layers' scratch directory (none for a bundle's rootfs, used as it is).
    pub work: &'a Path,
    /// With `--net bridge`: the record of the veth (written before the veth is made).
    pub veth_record: Option<&'a Path>,
    /// The process outlives this one (OCI `create`); else it dies with it (`run`).
    pub outlive: bool,
    /// runc's `--preserve-fds N`: the caller's descriptors 3 to 2 + N reach the process.
    pub preserve_fds: u32,
    /// runc's `--no-pivot`: MS_MOVE and chroot(2) instead of pivot_root(2) (for a root on
    /// ramfs, which pivot_root refuses), the host's other mounts detached first.
    pub no_pivot: bool,
    /// runc's `--no-new-keyring`: the process keeps its caller's session keyring.
    pub no_new_keyring: bool,
}

/// A container set up by [`create`], its process waiting on its FIFO; what it holds on the
/// host (its cgroups, its veth) goes with it when [`Container::wait`] returns, or stays for
/// `delete` after [`Container::leave`].
pub struct Container {
    child: Child,
    limits: cgroups::Limits,
    lease: Option<net::Lease>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("pid", &self.child.pid())
            .finish()
    }
}

/// What stays of a created container once `create` has left it: for its record.
#[derive(Debug, Clone)]
pub struct Created {
    /// Host PID of its process.
    pub pid: i32,
    /// The groups made for its limits (the top of each, with its cgroup version), for `delete`.
    pub cgroups: Vec<(PathBuf, String)>,
    /// The `cgroup.procs` file of each of its groups, for `exec`.
    pub procs: Vec<PathBuf>,
}

/// Refuse what cannot be done here before anything is made.
fn check(config: &Config, plan: &Plan, privilege: Privilege, console: bool) -> Result<()> {
    let missing = |why: &str| {
        Err(anyhow::Error::new(labkit::errors::MissingFeature(
            why.into(),
        )))
    };
    if let Root::Dir(d) | Root::Bundle(d) = &config.root {
        if !d.is_dir() {
            let what = if matches!(config.root, Root::Dir(_)) {
                "--rootfs"
            } else {
                "root.path"
            };
            return Err(bad_input(format!(
                "{what} {}: not a directory",
                d.display()
            )));
        }
    }
    if privilege.is_rootless() && plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER) {
        return missing(
            "a user namespace in the config, rootless: minicontainer already runs in one of its own; leave it out",
        );
    }
    if config.net == Net::Bridge && privilege.is_rootless() {
        return missing(
            "--net bridge needs root: the veth's host end and the bridge live in the host's network namespace, where a user namespace grants nothing (rootless runtimes use slirp4netns or pasta instead)",
        );
    }
    if config.net == Net::Bridge && !plan.clone_flags.contains(CloneFlags::CLONE_NEWNET) {
        return Err(bad_input(
            "--net bridge needs the container's own network namespace",
        ));
    }
    if plan.terminal && !console {
        return Err(bad_input(
            "process.terminal is true: create needs --console-socket to hand the terminal to",
        ));
    }
    Ok(())
}

/// Set a container up, up to its process waiting on its exec FIFO (steps 1 to 6).
pub fn create(out: &mut Narrator, req: Request) -> Result<Container> {
    let config = req.config;
    let mut plan = Plan::new(&config.spec)?;
    plan.no_pivot = req.no_pivot;
    plan.no_new_keyring = req.no_new_keyring;
    check(config, &plan, req.privilege, req.console.is_some())?;
    // Compiled before clone: a profile the compiler refuses is an error of the command line.
    let filters = plan.seccomp_programs()?;
    let joins = namespaces::open_joins(&plan)?;
    let join_mount = namespaces::open_mount_join(&plan)?;
    let own_pid = namespaces::own_pid_namespace(&plan)?;
    let binds = match config.root {
        Root::Host => rootfs::host_skeleton(&req.work.join("image"))?,
        Root::Dir(_) | Root::Layers(_) | Root::Bundle(_) => Vec::new(),
    };
    if !matches!(config.root, Root::Bundle(_)) {
        for d in ["upper", "work", "rootfs"] {
            std::fs::create_dir_all(req.work.join(d))?;
        }
        let work = req.work.display();
        out.step(
            "host",
            format!("mkdir {work} (image skeleton, upper and work layers, rootfs)"),
        );
    }
    // Unprivileged: rootless `run`, which has entered its own user namespace, or an OCI create
    // by a user who is not root (its config brings the user namespace, as runc's rootless
    // spec does). Either way no device policy (the container's user namespace cannot open a
    // device node the user could not), and the limits only in a delegated subtree.
    let unprivileged = req.privilege.is_rootless() || !nix::unistd::geteuid().is_root();
    let limits = cgroups::make(out, &plan, !unprivileged, unprivileged)?;
    // Opened O_PATH: the child reopens it through /proc/self/fd once it is in its new root.
    let fifo = nix::fcntl::open(
        req.fifo,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open({}, O_PATH)", req.fifo.display()))?;
    // Before the joins: this process's own time namespace is what it comes back to.
    let own_time = namespaces::time_for_child(out, &plan)?;
    namespaces::join(out, &plan, &joins)?;
    let cgroup_view = match plan.mounts.iter().any(|m| m.typ.starts_with("cgroup")) {
        true => limits.view()?,
        false => Vec::new(),
    };
    let init = if config.init {
        Some(pid1::sealed()?)
    } else {
        None
    };
    let prepared = spawn::Prepared {
        plan: &plan,
        root: &config.root,
        work: req.work,
        binds: &binds,
        cgroup_view: &cgroup_view,
        filters: &filters,
        fifo: &fifo,
        console: req.console.as_ref(),
        init: init.as_ref(),
        outlive: req.outlive,
        preserve_fds: req.preserve_fds,
        create_container: hooks::of(&config.spec, hooks::Kind::CreateContainer),
        start_container: hooks::of(&config.spec, hooks::Kind::StartContainer),
        join_mount: join_mount.as_ref(),
        maps_by_user: plan.uid_map.is_some() && !nix::unistd::geteuid().is_root(),
    };
    // ANCHOR: clone
    // The namespaces of the spec (all six from `run`). The cgroup namespace is made again with
    // unshare once the parent has put the child in its cgroups, so that its root is theirs.
    let flags = plan.clone_flags;
    let (mut child, placed) = match limits.born_into()? {
        // The device policy's own v2 group (no limit asked): the kernel starts the child in it.
        Some(group) => match clone_child_into(flags, group.as_fd(), |r| {
            spawn::container_main(r, &prepared)
        })? {
            Some(child) => (child, true),
            None => (
                clone_child(flags, |r| spawn::container_main(r, &prepared))?,
                false,
            ),
        },
        None => (
            clone_child(flags, |r| spawn::container_main(r, &prepared))?,
            false,
        ),
    };
    // ANCHOR_END: clone
    namespaces::back_to_own_pid_namespace(own_pid)?;
    namespaces::back_to_own_time_namespace(own_time)?;
    let pid = child.pid().as_raw();
    let shown = labkit::child::flag_names(flags);
    out.step(
        "host",
        format!("clone({shown} | SIGCHLD) -> container pid {pid}"),
    );
    // SIGINT, SIGTERM and SIGHUP sent to minicontainer (held since it started) go to it.
    labkit::signals::forward_to(pid)?;
    child
        .relay_until_ready(out, "container")
        .map_err(spawn::typed)?;
    namespaces::write_id_maps(out, &plan, pid)?;
    if placed {
        out.step(
            "host",
            "clone3(CLONE_INTO_CGROUP): born in its device-policy group, no cgroup.procs write",
        );
    } else {
        attach(out, &limits, pid)?;
    }
    let lease = match (config.net, req.veth_record) {
        (Net::Bridge, Some(record)) => {
            Some(net::attach(pid, record, &mut |s| out.step("host", s))?)
        }
        _ => None,
    };
    // The container's namespaces exist: the runtime's hooks, then the state for the child's.
    let state = hooks::state(
        req.id,
        oci_spec::runtime::ContainerState::Creating,
        Some(pid),
        req.bundle,
        &config.spec,
    )?;
    for kind in [hooks::Kind::Prestart, hooks::Kind::CreateRuntime] {
        hooks::run(kind, &hooks::of(&config.spec, kind), &state)?;
    }
    child.send(&match &lease {
        Some(l) => format!("eth0 {}/{}", l.address, l.prefix),
        None => "none".into(),
    })?;
    child.send(&state)?;
    child
        .relay_until_ready(out, "container")
        .map_err(spawn::typed)?;
    Ok(Container {
        child,
        limits,
        lease,
    })
}

/// Put the container's first process in its groups before it is released.
fn attach(out: &mut Narrator, limits: &cgroups::Limits, pid: i32) -> Result<()> {
    // lab:begin ctr-join-cgroups
    for (_, leaf, _) in &limits.groups {
        leaf.attach(pid)?;
    }
    // lab:end ctr-join-cgroups
    if !limits.groups.is_empty() {
        out.step(
            "host",
            format!("echo {pid} > cgroup.procs of each limit group"),
        );
    }
    Ok(())
}

/// `start`: let a created container's process exec (see [`spawn::release`]).
pub fn start(fifo: &Path, process: Proc) -> Result<()> {
    spawn::release(fifo, process)
}

impl Container {
    /// Host PID of its process, and the start time that makes it that process.
    pub fn process(&self) -> Result<Proc> {
        let pid = self.child.pid().as_raw();
        Ok(Proc {
            pid,
            starttime: crate::store::starttime(pid).context("the container's process is gone")?,
        })
    }

    /// What its record keeps: the top group of each limit, with its version.
    pub fn cgroups(&self) -> Vec<(PathBuf, String)> {
        self.limits.tops()
    }

    /// The `cgroup.procs` files of its groups.
    pub fn procs(&self) -> Vec<PathBuf> {
        self.limits.procs()
    }

    /// `--net bridge`: its eth0's `ADDRESS/PREFIX` and the gateway's address.
    pub fn address(&self) -> Option<(String, String)> {
        self.lease
            .as_ref()
            .map(|l| (format!("{}/{}", l.address, l.prefix), l.gateway.to_string()))
    }

    /// Leave it to its record (OCI `create`): its cgroups stay for `delete`, its process goes
    /// to the caller's subreaper once this process ends, as with runc.
    pub fn leave(self) -> Created {
        let Container {
            child,
            limits,
            lease,
        } = self;
        let created = Created {
            pid: child.pid().as_raw(),
            cgroups: limits.tops(),
            procs: limits.procs(),
        };
        std::mem::forget(limits);
        std::mem::forget(lease);
        child.detach();
        created
    }

    /// Wait for it to end (it is this process's child), then remove its veth and cgroups.
    /// Returns its exit code (128 + N if killed by signal N).
    pub fn wait(self, out: &mut Narrator, work: &Path) -> Result<i32> {
        let Container {
            child,
            limits,
            lease,
        } = self;
        let done = child.finish(out, "container").map_err(spawn::typed)?;
        let code = done.exit_code();
        let pid = done.status.pid().map_or(0, nix::unistd::Pid::as_raw);
        out.step(
            "host",
            format!(
                "waitpid({pid}) -> exit code {code}; removing the cgroups and {}",
                work.display()
            ),
        );
        if let Some(lease) = lease {
            let veth = lease.veth.clone();
            let gone = match lease.release()? {
                true => format!("; RTM_DELLINK {} (no other container on it)", net::BRIDGE),
                false => String::new(),
            };
            out.step("host", format!("RTM_DELLINK {veth}{gone}"));
        }
        drop(limits);
        Ok(code)
    }
}
