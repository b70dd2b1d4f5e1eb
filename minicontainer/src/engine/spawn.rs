//! Step 6: spawn. The container's first process: made by clone(2) with the spec's namespaces,
//! it sets itself up (steps 3 to 5, while the host does steps 1 and 2 for it), waits on its
//! exec FIFO until `start`, and execs: the init (`nslab-init`, from a sealed memfd) or the
//! command itself. Nothing of the caller crosses that exec.

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use cgroup_demo::cg;
use labkit::child::Reporter;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::spec::Plan;
use crate::store::Proc;
use crate::{Root, console, pid1};

use super::step;

/// What the child needs, prepared by the host before clone.
pub(crate) struct Prepared<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) root: &'a Root,
    pub(crate) work: &'a Path,
    pub(crate) binds: &'a [(PathBuf, PathBuf)],
    pub(crate) cgroup_view: &'a [cg::Hierarchy],
    pub(crate) filters: &'a [seccompiler::BpfProgram],
    /// The exec FIFO, `O_PATH` (its path means nothing in the new root).
    pub(crate) fifo: &'a OwnedFd,
    /// The container's end of the terminal's socket (`process.terminal`).
    pub(crate) console: Option<&'a UnixStream>,
    /// `nslab-init` in a sealed memfd (`--init`).
    pub(crate) init: Option<&'a OwnedFd>,
    /// Outlive this process (OCI `create`): no parent-death signal once set up.
    pub(crate) outlive: bool,
    /// The caller's descriptors from 3 that the process keeps (`--preserve-fds`).
    pub(crate) preserve_fds: u32,
    /// The spec's hooks run by the container's process itself.
    pub(crate) create_container: Vec<oci_spec::runtime::Hook>,
    pub(crate) start_container: Vec<oci_spec::runtime::Hook>,
    /// A mount namespace to enter (`linux.namespaces` with a path).
    pub(crate) join_mount: Option<&'a std::fs::File>,
    /// A user who is not root writes this process's uid_map and gid_map (a rootless OCI
    /// bundle): it may only while the process is dumpable (a process that is not has its
    /// /proc/PID files owned by root).
    pub(crate) maps_by_user: bool,
}

/// The body of the container's first process.
pub(crate) fn container_main(r: &mut Reporter, p: &Prepared) -> Result<i32> {
    let (eth0, state) = wait_for_host(r, p.maps_by_user)?;
    super::namespaces::settle(p.plan)?;
    let before_pivot = || {
        super::hooks::run(
            super::hooks::Kind::CreateContainer,
            &p.create_container,
            &state,
        )
    };
    if !p.plan.no_new_keyring {
        // Not the caller's session keyring (its keys, a login's tokens), as runc.
        match labkit::sys::join_new_session_keyring() {
            Ok(_) => step(
                r,
                "keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a session keyring of its own",
            ),
            // A kernel without keyrings has nothing to share.
            Err(nix::errno::Errno::ENOSYS) => {}
            Err(e) => return Err(e).context("keyctl(KEYCTL_JOIN_SESSION_KEYRING)"),
        }
    }
    if let Some(ns) = p.join_mount {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS)
            .context("setns(the config's mount namespace)")?;
        step(
            r,
            "setns(CLONE_NEWNS): the config's mount namespace, its tree as it is",
        );
    }
    if p.plan
        .clone_flags
        .contains(nix::sched::CloneFlags::CLONE_NEWNS)
    {
        super::rootfs::build(
            r,
            p.cgroup_view,
            p.plan,
            p.root,
            p.work,
            p.binds,
            &before_pivot,
        )?;
    } else {
        // No mount namespace of its own: no mount is made (as runc), the tree is the one it
        // has.
        before_pivot()?;
    }
    let tty = match p.console {
        Some(sock) => Some(console::open(r, sock, p.plan.console_size)?),
        None => None,
    };
    // The terminal is its standard streams from now on, as runc's: the caller's (a shim's
    // pipes, which it reads to their end before it takes the terminal) are let go before the
    // wait for `start`.
    console::stdio_to(tty.as_deref())?;
    super::identity::setup(r, p.plan, eth0, p.filters)?;
    let executable = find_executable(p.plan)?;
    // Held open (close-on-exec) until the exec: `start` returns when it closes.
    let mut gate = wait_for_start(r, p.fifo, p.outlive)?;
    // Started: in the container, just before its program (a failure fails the start: `start`
    // reads the "!" and the error this process writes before it ends).
    let hooks = super::hooks::run(
        super::hooks::Kind::StartContainer,
        &p.start_container,
        &state,
    );
    let ran = hooks.and_then(|()| exec(r, p, tty.as_deref(), &executable));
    if let Err(e) = &ran {
        let _ = gate.write_all(format!("!{e:#}").as_bytes());
    }
    ran
}

/// Not dumpable, unblocked signals, then wait until the host has put this process in its
/// cgroups (then CLONE_NEWCGROUP's root is theirs) and plugged in its network: it answers
/// "eth0 ADDRESS/PREFIX" or "none", then the container's state (JSON, for the hooks).
fn wait_for_host(r: &mut Reporter, maps_by_user: bool) -> Result<(Option<(Ipv4Addr, u8)>, String)> {
    // First of all: not dumpable, so that no process of the container can open this one's
    // /proc/PID/{environ,fd,mem} (it still has the caller's environment and the pipes to the
    // host) before it execs; execve(2) makes the container's program dumpable again. When the
    // caller, not root, writes this process's ID maps, once the host has answered: no process
    // of the container exists before then, and the caller may open its own processes anyway.
    if !maps_by_user {
        nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    }
    r.speaker("container");
    // minicontainer holds Ctrl-C while it sets up and cleans up: the container must not.
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .context("sigprocmask(SIG_SETMASK, {})")?;
    r.ready();
    let answer = r.recv()?.context("minicontainer ended during setup")?;
    if maps_by_user {
        nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    }
    let eth0 = match answer.strip_prefix("eth0 ") {
        Some(a) => {
            let (ip, prefix) = a.split_once('/').context("eth0 ADDRESS/PREFIX")?;
            Some((ip.parse()?, prefix.parse()?))
        }
        None => None,
    };
    let state = r.recv()?.context("minicontainer ended during setup")?;
    Ok((eth0, state))
}

/// Set up: tell the host, then block in open(2) of the exec FIFO until `start` opens it, and
/// write one byte. The FIFO stays open (close-on-exec): its end of file tells `start` that the
/// program has been exec'd (after the startContainer hooks); a "!" that it did not get there.
fn wait_for_start(r: &mut Reporter, fifo: &OwnedFd, outlive: bool) -> Result<std::fs::File> {
    step(
        r,
        "waiting for start: open(exec.fifo, O_WRONLY) blocks until it is opened",
    );
    if outlive {
        // Outlive `create` (before telling it so: it ends as soon as it knows).
        nix::sys::prctl::set_pdeathsig(None).context("prctl(PR_SET_PDEATHSIG, 0)")?;
    }
    r.ready();
    let mut gate = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", fifo.as_raw_fd()))
        .context("open(exec.fifo)")?;
    gate.write_all(b"0").context("write(exec.fifo)")?;
    Ok(gate)
}

/// The exec: nothing of the caller crosses it. Every descriptor the caller left open above 2
/// is closed by it (the pipes to the host runtime, the FIFO and the console socket are
/// close-on-exec already); without a terminal of its own the container gets a session of its
/// own, away from the caller's terminal (no TIOCSTI into its input).
fn exec(r: &mut Reporter, p: &Prepared, tty: Option<&Path>, executable: &Path) -> Result<i32> {
    keep_only(p.preserve_fds)?;
    if tty.is_none() {
        nix::unistd::setsid().context("setsid()")?;
    }
    let shown = p.plan.args.join(" ");
    if let Some(init) = p.init {
        step(
            r,
            format!("PID 1 is pid_demo::init: fexecve(sealed memfd nslab-init); it runs {shown:?}"),
        );
        let argv = pid1::argv(tty, &p.plan.args)?;
        let envp = p
            .plan
            .env
            .iter()
            .map(|kv| CString::new(kv.as_str()))
            .collect::<Result<Vec<_>, _>>()
            .context("process.env holds a NUL byte")?;
        let err = nix::unistd::fexecve(init, &argv, &envp).unwrap_err();
        Err(err).context("fexecve(memfd nslab-init)")
    } else {
        step(
            r,
            format!("execvp({shown:?}) as PID 1 ({})", executable.display()),
        );
        console::login(tty)?;
        let err = command(p.plan).exec();
        Err(err).with_context(|| format!("execvp(\"{}\")", p.plan.args[0]))
    }
}

/// Before the exec: every descriptor above 2 closes on exec but the `preserve` the caller passes
/// on on purpose (runc's `--preserve-fds`).
pub(crate) fn keep_only(preserve: u32) -> Result<()> {
    let first = 3u32.saturating_add(preserve);
    labkit::harden::cloexec_from(first)
        .with_context(|| format!("close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)"))?;
    labkit::harden::pass_on(preserve)
        .with_context(|| format!("fcntl(3 to {}, F_SETFD, 0) (--preserve-fds)", first - 1))
}

/// `start`'s side of the FIFO: open it for reading (`O_NONBLOCK`: never waiting on a process
/// that is gone), then wait in poll(2) for the process's byte or its end (its pidfd), and
/// remove it. Its absence means the process was started.
pub(crate) fn release(fifo: &Path, process: Proc) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let pidfd = crate::state::pidfd(process)?;
    let mut gate = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .with_context(|| format!("open({}, O_RDONLY | O_NONBLOCK)", fifo.display()))?;
    let mut fds = [
        PollFd::new(gate.as_fd(), PollFlags::POLLIN),
        PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
    ];
    let ready = poll(&mut fds, PollTimeout::from(10_000u16)).context("poll(exec.fifo, pidfd)")?;
    let mut byte = [0u8; 1];
    let got = ready > 0 && matches!(gate.read(&mut byte), Ok(1));
    if !got {
        if !process.alive() {
            let _ = std::fs::remove_file(fifo);
            bail!("its process ended before it could start");
        }
        bail!("its process did not take the start within 10 s");
    }
    std::fs::remove_file(fifo).with_context(|| format!("rm {}", fifo.display()))?;
    // Then its end of file: the process has exec'd its program (its startContainer hooks are
    // done), so what comes after start (poststart hooks, the caller) comes after the exec.
    let mut said = Vec::new();
    loop {
        let mut fds = [PollFd::new(gate.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::NONE).context("poll(exec.fifo) for its end")?;
        let mut chunk = [0u8; 512];
        match gate.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("read(exec.fifo)"),
        }
    }
    match said.strip_prefix(b"!") {
        Some(why) => bail!("{}", String::from_utf8_lossy(why)),
        None => Ok(()),
    }
}

/// Where execvp(3) will find the command (runc looks it up the same way before it starts the
/// container): a missing one fails here, while the runtime still listens, with its name,
/// instead of a container that stops silently.
pub(crate) fn find_executable(plan: &Plan) -> Result<PathBuf> {
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
pub(crate) fn typed(err: anyhow::Error) -> anyhow::Error {
    let text = format!("{err:#}");
    if text.contains(NOT_FOUND) {
        anyhow::Error::new(CommandNotFound(text))
    } else {
        err
    }
}

fn command(plan: &Plan) -> Command {
    let mut cmd = Command::new(&plan.args[0]);
    cmd.args(&plan.args[1..]).env_clear().envs(plan.env_pairs());
    cmd
}
