//! Containers by name, docker-style: `ps`, `exec`, `stop`, `kill`, `logs`, on the records of the
//! state store ([`crate::store`]), which the OCI commands share.
//!
//! There is no daemon: `ps` reads the records, `exec` joins the namespaces of the container's
//! process with setns(2) as `docker exec` (runc's `exec`) does, and `stop` signals the
//! `minicontainer run` that waits for it. Only the caller's own store is read, and only records
//! the caller owns are trusted (see the store), so no other user can point these commands at a
//! process or file of theirs choosing.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use labkit::child::fork_child;
use labkit::{Narrator, bad_input};
use nix::sched::setns;
use oci_spec::runtime::ContainerState;

use crate::store::{Record, Store};

/// Check a `--name`: 1 to 64 of `[A-Za-z0-9_.-]`, starting with a letter or digit (Docker's rule).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad_input(format!(
            "--name {name:?}: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )))
    }
}

/// Every container of the store whose process runs (or waits for `start`), oldest first.
pub fn running(store: &Store) -> Result<Vec<Record>> {
    let mut found: Vec<Record> = store
        .list()?
        .into_iter()
        .filter(|r| store.status(r) != ContainerState::Stopped)
        .collect();
    found.sort_by_key(|r| (r.created, r.id.clone()));
    Ok(found)
}

/// The running container called `name`, from the caller's own store.
pub fn find(store: &Store, name: &str) -> Result<Record> {
    match store.load(name) {
        Ok(record) if store.status(&record) == ContainerState::Stopped => {
            return Err(bad_input(format!("container {name} is not running")));
        }
        Ok(record) => return Ok(record),
        // A store that is not the caller's to trust: that, not "no such container".
        Err(e) if e.chain().any(|c| c.is::<labkit::errors::MissingFeature>()) => return Err(e),
        Err(_) => {}
    }
    Err({
        let root = nix::unistd::geteuid().is_root();
        if !root && std::path::Path::new("/run/nslab").exists() {
            // Another user's store (root's) cannot even be looked into: say why, not "no such".
            anyhow::Error::new(labkit::errors::MissingFeature(format!(
                "no container of yours is called {name:?} (your store: {}); other users' containers, root's in /run/nslab among them, are not yours to reach",
                store.root.display()
            )))
        } else {
            // runc's words ("does not exist"), which clients such as podman look for.
            bad_input(format!(
                "container {name} does not exist: no running container is called {name:?} (see minicontainer ps)"
            ))
        }
    })
}

/// `ps`: a table of the running containers; with `all` (`ps -a`), of every container with a
/// record (those `run -d` kept after they ended too), with its status.
pub fn ps(store: &Store, all: bool) -> Result<String> {
    let mut header = vec!["NAME".to_string(), "PID".into(), "RUNNER".into()];
    if all {
        header.push("STATUS".into());
    }
    header.push("COMMAND".into());
    let mut rows = vec![header];
    let records = match all {
        true => {
            let mut every = store.list()?;
            every.sort_by_key(|r| (r.created, r.id.clone()));
            every
        }
        false => running(store)?,
    };
    for r in records {
        let ended = store.status(&r) == ContainerState::Stopped;
        let mut row = vec![
            r.id.clone(),
            if ended { "-".into() } else { r.pid.to_string() },
            r.runner.map_or_else(|| "-".into(), |p| p.pid.to_string()),
        ];
        if all {
            row.push(match crate::run::exited(store, &r.id) {
                Some(code) if ended => format!("exited ({code})"),
                _ => store.status_text(&r),
            });
        }
        row.push(r.command.clone());
        rows.push(row);
    }
    Ok(labkit::narrate::table(&rows))
}

/// A pidfd for the record's process, opened and then checked to be that process still (the PID
/// and its start time), so a signal never reaches a process that took a freed PID.
pub fn pidfd(proc: crate::store::Proc) -> Result<labkit::signals::PidFd> {
    let fd = labkit::signals::PidFd::open(proc.pid)?;
    if !proc.alive() {
        return Err(bad_input(format!("process {} has ended", proc.pid)));
    }
    Ok(fd)
}

/// What `exec` runs: the command and how, over the container's own process description.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// runc's `--process FILE`: the whole process (an OCI `process` object) instead of the
    /// container's; the flags below then only add to it.
    pub process: Option<oci_spec::runtime::Process>,
    /// The command (required without a process file).
    pub cmd: Vec<String>,
    /// `KEY=VALUE`, added to (or replacing in) the container's environment.
    pub env: Vec<String>,
    pub cwd: Option<std::path::PathBuf>,
    pub user: Option<(u32, u32)>,
    /// Capabilities added to all five sets (`CAP_NET_ADMIN`, ...), as runc's `--cap`.
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    /// Give the command a terminal: with `console_socket`, its master side goes there (runc's
    /// `--tty --console-socket`); without, this process copies it to and from its own standard
    /// input and output (docker's `exec -t`).
    pub terminal: bool,
    /// Hand the command a terminal: its master side goes to this socket (runc's `--tty
    /// --console-socket`).
    pub console_socket: Option<std::path::PathBuf>,
    /// Return once the command runs (runc's `--detach`); its host PID goes to `pid_file`.
    pub detach: bool,
    pub pid_file: Option<std::path::PathBuf>,
    /// runc's `--preserve-fds N`: the caller's descriptors 3 to 2 + N reach the command.
    pub preserve_fds: u32,
}

/// The container's spec with its process replaced or amended as `opts` say.
fn exec_spec(
    mut spec: oci_spec::runtime::Spec,
    opts: &ExecOptions,
) -> Result<oci_spec::runtime::Spec> {
    let mut process = match &opts.process {
        Some(p) => p.clone(),
        None => spec
            .process()
            .clone()
            .context("the container's config has no process")?,
    };
    if !opts.cmd.is_empty() {
        process.set_args(Some(opts.cmd.clone()));
    }
    if !opts.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for kv in &opts.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        process.set_env(Some(env));
    }
    if let Some(cwd) = &opts.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some((uid, gid)) = opts.user {
        let mut user = process.user().clone();
        user.set_uid(uid).set_gid(gid);
        process.set_user(user);
    }
    if !opts.caps.is_empty() {
        let mut sets = process.capabilities().clone().unwrap_or_default();
        let add = |set: &Option<oci_spec::runtime::Capabilities>| -> Result<_> {
            let mut set = set.clone().unwrap_or_default();
            for name in &opts.caps {
                let cap = serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| bad_input(format!("--cap {name:?}: not a capability")))?;
                set.insert(cap);
            }
            Ok(Some(set))
        };
        // All five sets, as runc adds them (ambient too: a non-root user keeps them at exec).
        let (b, e, p, i, a) = (
            add(sets.bounding())?,
            add(sets.effective())?,
            add(sets.permitted())?,
            add(sets.inheritable())?,
            add(sets.ambient())?,
        );
        sets.set_bounding(b)
            .set_effective(e)
            .set_permitted(p)
            .set_inheritable(i)
            .set_ambient(a);
        process.set_capabilities(Some(sets));
    }
    if opts.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if opts.console_socket.is_some() || opts.terminal {
        process.set_terminal(Some(true));
    } else if opts.process.is_none() {
        // As runc exec and docker exec: a terminal only when asked for, whatever the
        // container's own process has.
        process.set_terminal(Some(false));
    }
    if process.terminal() == Some(true) && opts.console_socket.is_none() && !opts.terminal {
        return Err(bad_input(
            "exec with a terminal needs --console-socket to hand the terminal to",
        ));
    }
    spec.set_process(Some(process));
    Ok(spec)
}

/// `exec NAME CMD...`: run CMD in a running container, as `docker exec` and `runc exec` do: join
/// its cgroups, then its namespaces with setns(2) (user first, mount last), fork (a PID
/// namespace takes only the children of a process that joins it), take the container's user,
/// capabilities and seccomp filter (or those `opts` give), and exec. Returns CMD's exit status
/// (0 at once with `detach`).
pub fn exec(out: &mut Narrator, store: &Store, name: &str, opts: &ExecOptions) -> Result<i32> {
    let ctr = find(store, name)?;
    let pid = ctr.pid;
    // The container's own description (read before setns: the store is the host's).
    let spec = serde_json::from_slice(&store.read_file(name, "config.json")?)
        .with_context(|| format!("parse {}", store.dir(name).join("config.json").display()))?;
    let plan = crate::spec::Plan::new(&exec_spec(spec, opts)?)?;
    let filters = plan.seccomp_programs()?;
    let mut console = match &opts.console_socket {
        Some(path) => Some(
            std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("connect({})", path.display()))?,
        ),
        None => None,
    };
    // docker's `exec -t`: the master side comes to this process, which copies it to and from
    // the caller's terminal, as `run -t` does.
    let mut relay = None;
    if plan.terminal && console.is_none() {
        if let Some((host_end, container_end)) = crate::console::pair(true)? {
            relay = Some(host_end);
            console = Some(container_end);
        }
    }
    // Open every namespace file first: after setns(mnt), /proc is the container's (and the
    // PID file's directory: its path means nothing there either).
    let files = labkit::ns::to_join(pid)?;
    let pid_file = opts
        .pid_file
        .as_deref()
        .map(crate::oci::PidFile::open)
        .transpose()?;
    if !ctr.process().alive() {
        return Err(bad_input(format!("container {name} has ended")));
    }
    // Not dumpable (and so its child, until it execs): no process of the container may read
    // the caller's environment or open the pipes to this process through /proc/PID.
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    // The terminal's copier is a process of its own, forked before the joins: no thread may
    // start once this one has joined the container's PID namespace (clone(2): EINVAL for
    // CLONE_THREAD), nor run while it joins the mount and user namespaces (setns(2): EINVAL).
    let relay = match relay {
        Some(host_end) => Some(fork_child(move |_| {
            let mut quiet = Narrator::new();
            quiet.set_quiet(true);
            // Copies until the command's side of the terminal is closed everywhere.
            drop(crate::console::Console::attach(&mut quiet, &host_end)?);
            Ok(0)
        })?),
        None => None,
    };
    join(out, &ctr, &files)?;
    let detach = opts.detach;
    let opts_preserve = opts.preserve_fds;
    let mut child = fork_child(move |r| {
        r.speaker("container");
        if detach {
            // Outlive this process (runc exec --detach): the caller's subreaper takes it.
            nix::sys::prctl::set_pdeathsig(None).context("prctl(PR_SET_PDEATHSIG, 0)")?;
        }
        let tty = match &console {
            Some(sock) => Some(crate::console::open(r, sock, plan.console_size)?),
            None => None,
        };
        nix::unistd::chdir(&plan.cwd).with_context(|| format!("chdir({})", plan.cwd.display()))?;
        // As at create: without no_new_privs the filter goes on while CAP_SYS_ADMIN is held.
        crate::engine::identity::apply_scheduling(&plan)?;
        let early = plan.seccomp.is_some() && !plan.no_new_privs;
        if early {
            crate::seccomp::install(&filters)?;
        }
        crate::apply_identity(&plan)?;
        if plan.seccomp.is_some() && !early {
            crate::seccomp::install(&filters)?;
        }
        // A command that cannot be found fails the exec here, while the caller still listens.
        crate::engine::spawn::find_executable(&plan)?;
        r.step(format!(
            "fork() -> pid {} in the container; the config's user, capabilities, seccomp; execvp({:?})",
            nix::unistd::getpid(),
            plan.args.join(" ")
        ));
        r.ready_and_wait()?;
        // Nothing of the caller's crosses the exec: its descriptors above 2 close, and the
        // command gets a session of its own, away from the caller's terminal (or one with the
        // container's terminal).
        crate::engine::spawn::keep_only(opts_preserve)?;
        match &tty {
            Some(tty) => crate::console::login(Some(tty))?,
            None => {
                nix::unistd::setsid().context("setsid()")?;
            }
        }
        // No signal blocked across the exec (-t blocks SIGWINCH here for its relay thread).
        nix::sys::signal::sigprocmask(
            nix::sys::signal::SigmaskHow::SIG_SETMASK,
            Some(&nix::sys::signal::SigSet::empty()),
            None,
        )
        .context("sigprocmask(SIG_SETMASK, {})")?;
        let mut command = Command::new(&plan.args[0]);
        command
            .args(&plan.args[1..])
            .env_clear()
            .envs(plan.env_pairs());
        let err = command.exec();
        Err(err).with_context(|| format!("execvp(\"{}\")", plan.args[0]))
    })?;
    child.relay_until_ready(out, "container")?;
    if let Some(pid_file) = &pid_file {
        pid_file.write(child.pid().as_raw())?;
    }
    child.release()?;
    if detach {
        child.detach();
        return Ok(0);
    }
    let done = child.finish(out, "container")?;
    if let Some(relay) = relay {
        // The terminal restored, the command's last output copied.
        relay.finish(out, "host")?;
    }
    Ok(done.exit_code())
}

/// Join the container's cgroups and namespaces (the files opened before the first setns).
fn join(out: &mut Narrator, ctr: &Record, files: &[labkit::ns::NsFile]) -> Result<()> {
    let pid = ctr.pid;
    // ANCHOR: exec
    for procs in &ctr.procs {
        fs::write(procs, std::process::id().to_string())
            .with_context(|| format!("echo {} > {}", std::process::id(), procs.display()))?;
    }
    if !ctr.procs.is_empty() {
        out.step(
            "exec",
            "echo $$ > cgroup.procs of each of the container's limit groups",
        );
    }
    for file in files {
        setns(&file.file, file.kind.flag()).with_context(|| {
            format!(
                "setns(/proc/{pid}/ns/{}, {})",
                file.kind.name(),
                file.kind.flag_name()
            )
        })?;
    }
    // ANCHOR_END: exec
    let names: Vec<&str> = files.iter().map(|f| f.kind.name()).collect();
    out.step(
        "exec",
        format!("setns(/proc/{pid}/ns/X) for X in: {}", names.join(" ")),
    );
    Ok(())
}

/// `stop NAME`: SIGTERM, then SIGKILL after `grace`. A docker-style container's SIGTERM goes to
/// its `minicontainer run` (which passes it on and cleans up); an OCI container's to its process.
/// Returns what it took.
pub fn stop(
    out: &mut Narrator,
    store: &Store,
    name: &str,
    grace: Duration,
) -> Result<&'static str> {
    let ctr = find(store, name)?;
    let init = pidfd(ctr.process())?;
    let (first, who) = match ctr.runner.filter(|r| r.alive()) {
        Some(runner) => (pidfd(runner)?, format!("minicontainer {}", runner.pid)),
        None => (pidfd(ctr.process())?, format!("PID 1 = {}", ctr.pid)),
    };
    first.send(nix::sys::signal::Signal::SIGTERM)?;
    out.step(
        "stop",
        format!("pidfd_send_signal({who}, SIGTERM): passed on to the container"),
    );
    let started = Instant::now();
    if first.wait_exit(grace)? {
        out.step(
            "stop",
            format!("ended after {:.1} s", started.elapsed().as_secs_f64()),
        );
        return Ok("SIGTERM");
    }
    init.send(nix::sys::signal::Signal::SIGKILL)?;
    out.step(
        "stop",
        format!(
            "still running after {} s: pidfd_send_signal(PID 1 = {}, SIGKILL)",
            grace.as_secs(),
            ctr.pid
        ),
    );
    first.wait_exit(Duration::from_secs(10))?;
    Ok("SIGKILL")
}

/// `kill [-s SIGNAL] NAME`: send a signal to the container's process (through a pidfd).
pub fn kill(
    out: &mut Narrator,
    store: &Store,
    name: &str,
    signal: nix::sys::signal::Signal,
    all: bool,
) -> Result<()> {
    let ctr = find(store, name)?;
    if all {
        let pids = every_process(&ctr)?;
        for pid in &pids {
            // A process that ended meanwhile is no error (runc's --all ignores ESRCH too).
            match nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => return Err(e).with_context(|| format!("kill({pid}, {signal})")),
            }
        }
        out.step(
            "kill",
            format!("kill(2) {signal} to each of the container's processes: {pids:?}"),
        );
        return Ok(());
    }
    pidfd(ctr.process())?.send(signal)?;
    out.step(
        "kill",
        format!("pidfd_send_signal(PID 1 = {}, {signal})", ctr.pid),
    );
    Ok(())
}

/// Every process of a container (runc's `kill --all`): those in its cgroup, else, where it has
/// a PID namespace of its own, those in that namespace.
fn every_process(ctr: &Record) -> Result<Vec<i32>> {
    let in_groups = crate::engine::cgroups::processes(&ctr.procs);
    if !in_groups.is_empty() {
        return Ok(in_groups);
    }
    let ns = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let theirs = ns(ctr.pid).context("the container's PID namespace")?;
    if ns(std::process::id() as i32).as_ref() == Some(&theirs) {
        return Err(bad_input(format!(
            "kill --all: container {} has neither a cgroup nor a PID namespace of its own, so its processes cannot be told from others",
            ctr.id
        )));
    }
    Ok(fs::read_dir("/proc")
        .context("read /proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| ns(*pid).as_ref() == Some(&theirs))
        .collect())
}

/// `logs [-f] [--tail N] NAME`: what a detached container has written (the last `tail` lines of
/// it), from its record (opened without following links, the caller's own file); with
/// `follow`, then what it writes, until its `minicontainer run` has ended. Waits on the kernel's
/// events: inotify `IN_MODIFY` on the open log, and the runner's pidfd.
pub fn logs(
    store: &Store,
    name: &str,
    tail: Option<usize>,
    follow: bool,
    to: &mut dyn std::io::Write,
) -> Result<()> {
    use std::io::Read;
    use std::os::fd::{AsFd, AsRawFd};
    let record = store.load(name)?;
    let mut log = store
        .open_file(name, "log")
        .map_err(|_| bad_input(format!("{name} was not started with -d: it has no log")))?;
    let mut text = Vec::new();
    log.read_to_end(&mut text)
        .with_context(|| format!("read {}", store.dir(name).join("log").display()))?;
    let shown = match tail {
        Some(n) => last_lines(&text, n),
        None => &text[..],
    };
    to.write_all(shown)?;
    to.flush()?;
    let Some(runner) = record.runner.filter(|_| follow) else {
        return Ok(());
    };
    // The watch first, on the file already open (its /proc/self/fd link, not its path): no
    // write after the read above is missed, and no other file is watched.
    let inotify = nix::sys::inotify::Inotify::init(
        nix::sys::inotify::InitFlags::IN_CLOEXEC | nix::sys::inotify::InitFlags::IN_NONBLOCK,
    )
    .context("inotify_init1")?;
    inotify
        .add_watch(
            format!("/proc/self/fd/{}", log.as_raw_fd()).as_str(),
            nix::sys::inotify::AddWatchFlags::IN_MODIFY,
        )
        .context("inotify_add_watch(log, IN_MODIFY)")?;
    let runner = pidfd(runner).ok();
    let mut copy = |log: &mut fs::File| -> Result<()> {
        let mut more = Vec::new();
        log.read_to_end(&mut more).context("read the log")?;
        to.write_all(&more)?;
        to.flush()?;
        Ok(())
    };
    loop {
        copy(&mut log)?;
        let Some(runner) = &runner else {
            return Ok(()); // it had ended already: everything is read
        };
        let mut fds = [
            nix::poll::PollFd::new(inotify.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(runner.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll(inotify, pidfd)"),
        }
        if fds[1].any().unwrap_or(false) {
            // Its run has ended: the last bytes, then done.
            return copy(&mut log);
        }
        match inotify.read_events() {
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(e) => return Err(e).context("read(inotify)"),
        }
    }
}

/// The last `n` lines of `text` (a final newline ends the last line, it starts none).
fn last_lines(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1);
    &text[start..]
}

/// `inspect NAME`: what the store knows of a container, and the kernel of its process, as one
/// JSON object with Docker's names where Docker has one: `Id`, `Created`, `Path` and `Args`,
/// `State` (`Status`, `Running`, `Paused`, `Pid`, `ExitCode`), `Config` (the OCI runtime spec
/// it was made from, where Docker shows its own config), `Cgroups` (each limit's top group and
/// version), `NetworkSettings` (its bridge address and gateway), `Mounts` (the bind mounts),
/// `LogPath` and `Runner` (the `minicontainer run` that waits for it).
pub fn inspect(store: &Store, name: &str) -> Result<serde_json::Value> {
    use serde_json::json;
    let record = store.load(name)?;
    let spec: serde_json::Value = serde_json::from_slice(&store.read_file(name, "config.json")?)
        .with_context(|| format!("parse {}", store.dir(name).join("config.json").display()))?;
    let status = store.status_text(&record);
    let running = store.status(&record) != ContainerState::Stopped;
    let exit_code = crate::run::exited(store, name);
    let args: Vec<String> = spec["process"]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mounts: Vec<serde_json::Value> = spec["mounts"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|m| {
                    m["type"] == "bind"
                        || m["options"]
                            .as_array()
                            .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
                })
                .map(|m| {
                    let ro = m["options"]
                        .as_array()
                        .is_some_and(|o| o.iter().any(|x| x == "ro"));
                    json!({
                        "Type": "bind",
                        "Source": m["source"],
                        "Destination": m["destination"],
                        "RW": !ro,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let log = store.dir(name).join("log");
    Ok(json!({
        "Id": record.id,
        "Created": record.created,
        "Path": args.first(),
        "Args": args.get(1..).unwrap_or_default(),
        "State": {
            "Status": if exit_code.is_some() && !running { "exited".to_string() } else { status },
            "Running": running,
            "Paused": store.paused(&record),
            "Pid": if running { record.pid } else { 0 },
            "ExitCode": exit_code,
        },
        "Config": spec,
        "Cgroups": record.cgroups.iter().map(|(path, version)| json!({
            "Path": path, "Version": version,
        })).collect::<Vec<_>>(),
        "NetworkSettings": match &record.address {
            Some((address, gateway)) => json!({
                "IPAddress": address.split('/').next(),
                "IPPrefixLen": address.split('/').nth(1).and_then(|p| p.parse::<u8>().ok()),
                "Gateway": gateway,
                "Ports": record.ports.iter().fold(serde_json::Map::new(), |mut ports, (host, inside)| {
                    let bound = ports.entry(format!("{inside}/tcp")).or_insert_with(|| json!([]));
                    if let Some(list) = bound.as_array_mut() {
                        list.push(json!({ "HostIp": "127.0.0.1", "HostPort": host.to_string() }));
                    }
                    ports
                }),
            }),
            None => json!({}),
        },
        "Mounts": mounts,
        "LogPath": if store.open_file(name, "log").is_ok() { Some(log) } else { None },
        "Runner": record.runner.map(|r| r.pid),
    }))
}

/// A signal by name (`TERM`, `SIGTERM`) or number (`15`).
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    let upper = text.to_ascii_uppercase();
    let named = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    text.parse::<i32>()
        .ok()
        .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
        .or_else(|| nix::sys::signal::Signal::from_str(&named).ok())
        .ok_or_else(|| {
            bad_input(format!(
                "signal {text:?}: not a signal name or number (TERM, SIGKILL, HUP, 9, ...)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("1").unwrap(), Signal::SIGHUP);
        assert!(parse_signal("NOPE").is_err());
        assert!(validate_name("web-1.a_b").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("a/b").is_err());
    }

    #[test]
    fn tail_takes_the_last_lines() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(last_lines(b"", 3), b"");
    }
}
