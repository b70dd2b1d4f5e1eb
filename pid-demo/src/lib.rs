//! PID namespaces: how processes are numbered, how namespaces nest, what PID 1 must do, and
//! which signals reach it. Each public function is one lesson; the book includes them between
//! the `ANCHOR` comments.
//!
//! Inside the demos, every process writes to the pipe of the namespace's first process, which
//! it inherits: the demo prints one ordered story told by several processes (`[pid 1]`,
//! `[pid 2]`, ...), each synchronised with the others by pipes or signals, never by sleeping.
#![forbid(unsafe_code)]

pub mod init;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use labkit::child::{Reporter, clone_child, exit_code, fork_child};
use labkit::errors::MissingFeature;
use labkit::narrate::table;
use labkit::ns::{self, NsFile};
use labkit::procfs::{Proc, status_field_in};
use labkit::sys::wait_signal;
use labkit::{Narrator, bad_input};
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::{Pid, getpid, getppid, pause, pipe2};

/// The kernel's limit on nesting: 32 levels of PID namespaces, the initial one included
/// (`MAX_PID_NS_LEVEL`).
pub const MAX_DEPTH: u32 = 31;

/// This process's `NSpid:` line: its PID in every namespace from the one of the mounted
/// `/proc` down to its own.
pub fn own_nspid() -> Result<Vec<i32>> {
    let status = std::fs::read_to_string("/proc/self/status").context("/proc/self/status")?;
    let line = status_field_in(&status, "NSpid").context("/proc/self/status: no NSpid: line")?;
    line.split_whitespace()
        .map(|n| n.parse().context("NSpid"))
        .collect()
}

/// This process's PID as the host numbers it (the first `NSpid:` entry, with the host's /proc).
fn host_pid() -> Result<i32> {
    own_nspid()?.first().copied().context("empty NSpid")
}

fn join(pids: &[i32]) -> String {
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn block(signal: Signal) -> Result<SigSet> {
    let mut set = SigSet::empty();
    set.add(signal);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("sigprocmask(SIG_BLOCK)")?;
    Ok(set)
}

// ---------------------------------------------------------------------------------------------
// tree (PID-1, PID-2)

/// One level of the nested demo: report this process's view, then make the next level.
// ANCHOR: level
fn level(report: &mut Reporter, k: u32, depth: u32) -> Result<i32> {
    report.speaker(format!("level {k}"));
    let nspid = own_nspid()?;
    // In its own namespace this process is PID 1, and its parent is in another namespace:
    // not visible from here, so getppid() returns 0.
    report.step(format!(
        "getpid() -> {}, getppid() -> {}",
        getpid(),
        getppid()
    ));
    report.say(format!("NSpid: {} (/proc/self/status)", join(&nspid)));
    report.data(format!("{k} {} {}", ns::inode(None, "pid")?, join(&nspid)));
    // lab:begin pid-nested-level tests=tree_numbers_each_process
    // TODO(lab): below the deepest level, make the next level in a new PID namespace.
    // TODO(lab): The next level is a child in a new PID namespace that runs level(k + 1):
    // TODO(lab): report the clone, pass its report lines up, and wait for it.
    // lab:hint clone_child(CloneFlags::CLONE_NEWPID, |r| level(r, k + 1, depth))?; then
    // lab:hint report.step("clone(CLONE_NEWPID | SIGCHLD) -> child pid N"), next.forward(report)?
    // lab:hint (its lines come before ours end) and next.wait()?. Return Ok(0).
    if k < depth {
        let mut next = clone_child(CloneFlags::CLONE_NEWPID, |r| level(r, k + 1, depth))?;
        report.step(format!(
            "clone(CLONE_NEWPID | SIGCHLD) -> child pid {}",
            next.pid()
        ));
        next.forward(report)?;
        next.wait()?;
    }
    Ok(0)
    // lab:end pid-nested-level
}
// ANCHOR_END: level

/// `tree --depth N`: N nested PID namespaces, each made by the first process of the one above
/// with `clone(CLONE_NEWPID)`. Each process is PID 1 in its own namespace and has a PID in
/// every namespace above it, none in those below: the table and the tree show all of them.
pub fn tree(out: &mut Narrator, depth: u32) -> Result<()> {
    if !(1..=MAX_DEPTH).contains(&depth) {
        return Err(bad_input(format!(
            "--depth {depth}: the kernel nests at most 32 PID namespaces, the host's included, so 1 to {MAX_DEPTH}"
        )));
    }
    let host_ns = ns::inode(None, "pid")?;
    let top = clone_child(CloneFlags::CLONE_NEWPID, |r| level(r, 1, depth))?;
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {}", top.pid()),
    );
    let finished = top.finish(out, "level 1")?;
    ensure!(
        finished.exit_code() == 0,
        "level 1 ended with {:?}",
        finished.status
    );

    // Each data line: level, namespace inode, NSpid (host first).
    let levels: Vec<(u32, u64, Vec<i32>)> = finished
        .data
        .iter()
        .map(|line| {
            let mut f = line.split(' ');
            let k = f.next().unwrap_or_default().parse()?;
            let inode = f.next().unwrap_or_default().parse()?;
            let nspid = f.map(str::parse).collect::<Result<Vec<i32>, _>>()?;
            Ok((k, inode, nspid))
        })
        .collect::<Result<_>>()?;

    out.raw("");
    out.raw(
        "Each process's PID as every namespace numbers it (NSpid:); - : not visible from there",
    );
    let mut header = vec!["process".to_string()];
    header.extend((1..=depth).map(|k| format!("in level {k}")));
    header.push("in the host".into());
    let mut rows = vec![header];
    for (k, _, nspid) in &levels {
        let mut row = vec![format!("level-{k} init")];
        // nspid[0] is the host's number, nspid[j] the number in level j.
        row.extend((1..=depth as usize).map(|j| nspid.get(j).map_or("-".into(), i32::to_string)));
        row.push(format!("pid {}", nspid[0]));
        rows.push(row);
    }
    out.raw(table(&rows).trim_end());
    out.raw("");
    out.raw(format!("host  pid:[{host_ns}]"));
    for (k, inode, nspid) in &levels {
        let indent = "    ".repeat(*k as usize - 1);
        let seen: Vec<String> = (1..*k as usize)
            .rev()
            .map(|j| format!("level {j}: {}", nspid[j]))
            .collect();
        let above = if seen.is_empty() {
            String::new()
        } else {
            format!(", {}", seen.join(", "))
        };
        out.raw(format!(
            "{indent}└── level {k}  pid:[{inode}]  its PID 1 is host pid {}{above}",
            nspid[0]
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// siblings (PID-1)

/// `siblings`: two PID namespaces side by side, each with its own PID 1.
pub fn siblings(out: &mut Narrator) -> Result<()> {
    let mut children = Vec::new();
    for name in ["A", "B"] {
        let mut child = clone_child(CloneFlags::CLONE_NEWPID, |r| {
            r.speaker(name);
            r.step(format!("getpid() -> {}", getpid()));
            r.data(format!("{} {}", ns::inode(None, "pid")?, host_pid()?));
            // Stay alive until both exist, so the two PID 1s are there at the same time.
            r.ready_and_wait()?;
            Ok(0)
        })?;
        out.step(
            "host",
            format!(
                "clone(CLONE_NEWPID | SIGCHLD) -> child {name}, pid {}",
                child.pid()
            ),
        );
        let data = child.relay_until_ready(out, name)?;
        children.push((name, child, data));
    }
    let mut rows = vec![vec![
        "".to_string(),
        "getpid() inside".into(),
        "PID namespace".into(),
        "PID in the host".into(),
    ]];
    for (name, _, data) in &children {
        let (inode, host) = data[0].split_once(' ').context("sibling data")?;
        rows.push(vec![
            format!("child {name}"),
            "1".into(),
            format!("pid:[{inode}]"),
            format!("pid {host}"),
        ]);
    }
    out.raw("");
    out.raw(table(&rows).trim_end());
    out.raw("");
    for (name, mut child, _) in children {
        child.release()?;
        child.finish(out, name)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// isolation (PID-3, PID-4)

/// `isolation`: from inside, the parent namespace's processes are not there (ESRCH from kill and
/// ptrace, 0 from getppid); from outside, the namespace's processes are ordinary targets.
pub fn isolation(out: &mut Narrator) -> Result<()> {
    let outside = getpid();
    let mut first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1");
        top.step(format!(
            "getppid() -> {}: the parent is in the parent namespace, invisible here",
            getppid()
        ));
        let mut worker = fork_child(|w| {
            // Speak only after the parent has said it forked us: we share its pipe.
            w.ready_and_wait()?;
            top.speaker("pid 2");
            let usr1 = block(Signal::SIGUSR1)?;
            // ANCHOR: outward
            // The host PID of our parent means nothing here: numbers are looked up in the
            // caller's own PID namespace, which has no process with that number.
            let killed = kill(outside, None);
            top.step(format!("kill({outside}, 0) -> {}", errno_text(killed)));
            let traced = nix::sys::ptrace::attach(outside);
            top.step(format!(
                "ptrace(PTRACE_ATTACH, {outside}) -> {}",
                errno_text(traced)
            ));
            // ANCHOR_END: outward
            top.data(host_pid()?);
            top.step("sigwaitinfo(SIGUSR1): waiting for a signal from outside");
            w.ready();
            let got = wait_signal(&usr1).context("sigwaitinfo(SIGUSR1)")?;
            top.say(format!(
                "got {:?} from pid {} (si_pid: the sender is outside, so it has no number here)",
                got.signal, got.sender
            ));
            Ok(0)
        })?;
        top.step(format!("fork() -> pid {}", worker.pid()));
        worker.wait_ready()?;
        worker.release()?;
        worker.wait_ready()?;
        top.ready();
        worker.wait()?;
        Ok(0)
    })?;
    out.step(
        "host",
        format!(
            "clone(CLONE_NEWPID | SIGCHLD) -> child pid {} (pid {outside} is this process)",
            first.pid()
        ),
    );
    let data = first.relay_until_ready(out, "pid 1")?;
    let worker: i32 = data.first().context("worker's host pid")?.parse()?;
    // ANCHOR: inward
    kill(Pid::from_raw(worker), Signal::SIGUSR1)
        .with_context(|| format!("kill({worker}, SIGUSR1)"))?;
    // ANCHOR_END: inward
    out.step(
        "host",
        format!("kill({worker}, SIGUSR1) -> 0: the namespace's pid 2 is host pid {worker}"),
    );
    first.finish(out, "pid 2")?;
    Ok(())
}

fn errno_text<T>(result: nix::Result<T>) -> String {
    match result {
        Ok(_) => "0".into(),
        Err(e) => format!("{e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// orphan (PID-5)

/// `orphan`: a process whose parent exits is re-parented to PID 1 of its own namespace, not to
/// the host's init.
pub fn orphan(out: &mut Narrator) -> Result<()> {
    let first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1");
        let init_host = host_pid()?;
        let mut middle = fork_child(|m| {
            // Each process here speaks only after its parent has said it forked it: they all
            // share the first process's pipe.
            m.ready_and_wait()?;
            let mut grandchild = fork_child(|g| {
                g.ready_and_wait()?;
                top.speaker("pid 3");
                // Be told (SIGUSR1) when the parent dies: the kernel sends it right after it has
                // given this process its new parent.
                let usr1 = block(Signal::SIGUSR1)?;
                nix::sys::prctl::set_pdeathsig(Signal::SIGUSR1)
                    .context("prctl(PR_SET_PDEATHSIG)")?;
                top.step(format!("getppid() -> {} (the middle process)", getppid()));
                g.ready();
                wait_signal(&usr1).context("sigwaitinfo(SIGUSR1)")?;
                // ANCHOR: reparented
                let ppid = getppid();
                let host_ppid = Proc::host().status_field(host_pid()?, "PPid")?;
                // ANCHOR_END: reparented
                top.step(format!(
                    "parent died; getppid() -> {ppid}: the namespace's init adopted this orphan"
                ));
                top.say(format!("PPid in the host's /proc: pid {host_ppid} = host pid of the namespace's init, not the host's init (pid 1)"));
                Ok(0)
            })?;
            top.speaker("pid 2");
            top.step(format!("fork() -> pid {}", grandchild.pid()));
            grandchild.wait_ready()?;
            grandchild.release()?;
            grandchild.wait_ready()?;
            grandchild.detach();
            top.step("exit(0), leaving pid 3 behind");
            Ok(0)
        })?;
        top.speaker("pid 1");
        top.step(format!(
            "fork() -> pid {} (host pid {init_host} is this init)",
            middle.pid()
        ));
        middle.wait_ready()?;
        middle.release()?;
        middle.wait()?;
        top.speaker("pid 1");
        // The orphan is now this process's child: wait for it like for any child.
        let status = nix::sys::wait::waitpid(Pid::from_raw(-1), None).context("waitpid(-1)")?;
        top.step(format!(
            "waitpid(-1) -> pid {} exited: the orphan's new parent reaped it",
            status.pid().map_or(0, Pid::as_raw)
        ));
        Ok(0)
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {}", first.pid()),
    );
    first.finish(out, "pid 1")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// init-signals (PID-6, PID-7)

fn pending(pid: i32) -> Result<String> {
    Proc::host().status_field(pid, "ShdPnd")
}

/// `init-signals`: PID 1 without handlers ignores every signal sent from inside its namespace,
/// SIGKILL included; from the parent namespace, SIGKILL and SIGSTOP take effect, and other
/// signals without a handler are dropped too.
pub fn init_signals(out: &mut Narrator) -> Result<()> {
    let mut first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1");
        let me = host_pid()?;
        top.step("no signal handlers: every disposition is SIG_DFL");
        let mut sender = fork_child(|c| {
            c.ready_and_wait()?; // speak after the parent's "fork()" line: we share its pipe
            top.speaker("pid 2");
            // ANCHOR: inside_kill
            for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGKILL] {
                let sent = kill(Pid::from_raw(1), signal);
                top.step(format!("kill(1, {signal}) -> {}", errno_text(sent)));
            }
            // ANCHOR_END: inside_kill
            // Had pid 1 died, the kernel would have killed this process too.
            let alive = Proc::host().state(me)? != 'Z';
            top.say(format!(
                "pid 1 {}, pending signals {}",
                if alive { "is alive" } else { "died" },
                pending(me)?
            ));
            Ok(0)
        })?;
        top.speaker("pid 1");
        top.step(format!("fork() -> pid {}", sender.pid()));
        sender.wait_ready()?;
        sender.release()?;
        sender.wait()?;
        top.speaker("pid 1");
        top.step("read(2) on a pipe: waiting for the parent namespace's turn");
        top.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = first.pid();
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {pid}"),
    );
    first.relay_until_ready(out, "pid 1")?;
    let proc = Proc::host();
    let raw = pid.as_raw();
    // PID 1 said it is ready; let it reach its read(2) first, so the state below is its own.
    proc.wait_for_state(raw, 'S', Duration::from_secs(10))?;

    kill(pid, Signal::SIGTERM).context("kill(SIGTERM)")?;
    out.step("host", format!("kill({pid}, SIGTERM) -> 0"));
    out.say(
        "host",
        format!(
            "state {}, pending {}: dropped (PID 1 has no handler)",
            proc.state(raw)?,
            pending(raw)?
        ),
    );

    kill(pid, Signal::SIGSTOP).context("kill(SIGSTOP)")?;
    let stopped = first.wait_with(WaitPidFlag::WUNTRACED)?;
    out.step(
        "host",
        format!(
            "kill({pid}, SIGSTOP) -> 0; waitpid(WUNTRACED) -> {}",
            describe(stopped)
        ),
    );
    out.say("host", format!("state {}: stopped", proc.state(raw)?));

    kill(pid, Signal::SIGCONT).context("kill(SIGCONT)")?;
    let continued = first.wait_with(WaitPidFlag::WCONTINUED)?;
    out.step(
        "host",
        format!(
            "kill({pid}, SIGCONT) -> 0; waitpid(WCONTINUED) -> {}",
            describe(continued)
        ),
    );

    kill(pid, Signal::SIGKILL).context("kill(SIGKILL)")?;
    let killed = first.wait_with(WaitPidFlag::empty())?;
    out.step(
        "host",
        format!(
            "kill({pid}, SIGKILL) -> 0; waitpid() -> {}",
            describe(killed)
        ),
    );
    ensure!(
        matches!(killed, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        "PID 1 survived SIGKILL: {killed:?}"
    );
    Ok(())
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        WaitStatus::Stopped(_, sig) => format!("stopped by {sig}"),
        WaitStatus::Continued(_) => "continued".into(),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// init-exit (PID-8)

/// `init-exit`: when PID 1 of a namespace dies, the kernel kills every other process in it, and
/// no process can be created in it any more.
pub fn init_exit(out: &mut Narrator) -> Result<()> {
    let mut first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1");
        for _ in 0..2 {
            let mut worker = fork_child(|w| {
                w.data(host_pid()?);
                w.ready();
                pause(); // until a signal ends it
                Ok(0)
            })?;
            let host = worker.wait_ready()?;
            top.step(format!(
                "fork() -> pid {} (host pid {}), which waits in pause()",
                worker.pid(),
                host.join("")
            ));
            top.data(host.join(""));
            worker.detach();
        }
        top.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = first.pid();
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {pid}"),
    );
    let workers: Vec<i32> = first
        .relay_until_ready(out, "pid 1")?
        .iter()
        .map(|w| w.parse())
        .collect::<Result<_, _>>()?;
    // Keep the namespace itself, to try to enter it once it is empty.
    let held = NsFile::open(&ns::ns_dir(Some(pid.as_raw())).join("pid"))?;
    out.step(
        "host",
        format!(
            "open(/proc/{pid}/ns/pid) -> pid:[{}], kept open",
            held.inode
        ),
    );

    kill(pid, Signal::SIGKILL).context("kill(SIGKILL)")?;
    let status = first.wait_with(WaitPidFlag::empty())?;
    out.step(
        "host",
        format!(
            "kill({pid}, SIGKILL) -> 0; waitpid() -> {}",
            describe(status)
        ),
    );
    let proc = Proc::host();
    for w in &workers {
        let state = if proc.exists(*w) {
            "still there"
        } else {
            "gone: the kernel killed it with its init"
        };
        out.say("host", format!("pid {w}: {state}"));
    }
    ensure!(
        workers.iter().all(|w| !proc.exists(*w)),
        "a process outlived its namespace's init"
    );

    // ANCHOR: fork_into_dead
    let helper = fork_child(|h| {
        setns(&held.file, CloneFlags::CLONE_NEWPID).context("setns(CLONE_NEWPID)")?;
        h.step("setns(held fd, CLONE_NEWPID) -> 0: pid_for_children is the dead namespace");
        match fork_child(|_| Ok(0)) {
            Ok(_) => bail!("fork() into a namespace without init succeeded"),
            Err(e) => h.step(format!(
                "fork() -> {}",
                labkit::errors::errno_of(&e).map_or(format!("{e:#}"), |e| e.to_string())
            )),
        }
        Ok(0)
    })?;
    // ANCHOR_END: fork_into_dead
    out.step("host", format!("fork() -> helper pid {}", helper.pid()));
    helper.finish(out, "helper")?;
    drop(held);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// proc (PID-9)

/// `proc`: a process in a new PID namespace still sees the host's processes in `/proc`, because
/// `/proc` is the host's procfs; once it mounts a new procfs (in a new mount namespace, made
/// private first), it sees only its own namespace.
pub fn proc_view(out: &mut Narrator) -> Result<()> {
    let child = clone_child(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS, |r| {
        r.speaker("pid 1");
        r.step(format!("getpid() -> {}", getpid()));
        let before = Proc::host().pids()?;
        r.step(format!(
            "ls /proc -> {} processes: still the host's procfs",
            before.len()
        ));
        r.say(format!(
            "readlink(/proc/self) -> pid {}",
            std::fs::read_link("/proc/self")?.display()
        ));
        // ANCHOR: mount_proc
        // Private first: without it, on a host whose / is shared, the new /proc would
        // propagate back into the host's mount namespace.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("mount(\"/\", MS_REC | MS_PRIVATE)")?;
        // lab:begin pid-mount-proc tests=proc_shows_the_namespace_only
        // TODO(lab): mount a new procfs on /proc: one that shows this PID namespace.
        // TODO(lab): A procfs shows the PID namespace of the process that mounted it; the /proc
        // TODO(lab): this child inherited is the host's. (The mounts were made private above.)
        // lab:hint mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>) with the flags
        // lab:hint every distribution uses for /proc: MS_NOSUID | MS_NODEV | MS_NOEXEC.
        mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .context("mount(\"proc\", \"/proc\", \"proc\")")?;
        // lab:end pid-mount-proc
        // ANCHOR_END: mount_proc
        r.step("mount(NULL, \"/\", NULL, MS_REC | MS_PRIVATE)");
        r.step("mount(\"proc\", \"/proc\", \"proc\", MS_NOSUID | MS_NODEV | MS_NOEXEC)");
        let after = Proc::host().pids()?;
        r.step(format!(
            "ls /proc -> {} process{}:",
            after.len(),
            if after.len() == 1 { "" } else { "es" }
        ));
        for pid in &after {
            r.say(format!("{pid:>5}  {}", Proc::host().comm(*pid)?));
        }
        r.say(format!(
            "readlink(/proc/self) -> {}",
            std::fs::read_link("/proc/self")?.display()
        ));
        Ok(0)
    })?;
    out.step(
        "host",
        format!(
            "clone(CLONE_NEWPID | CLONE_NEWNS | SIGCHLD) -> child pid {}",
            child.pid()
        ),
    );
    child.finish(out, "pid 1")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// monitor (PID-10)

/// A process seen from the host, as a member of the watched namespace.
#[derive(Debug, Clone)]
struct Member {
    host: i32,
    inside: i32,
    ppid: i32,
    comm: String,
}

/// The processes of the PID namespace of `pid` (and of namespaces below it), from the host's
/// `/proc`: each one's host PID, its PID in that namespace, and its parent.
fn members(pid: i32) -> Result<(u64, usize, Vec<Member>)> {
    ns::check_pid(pid)?;
    let proc = Proc::host();
    let target = NsFile::open(&ns::ns_dir(Some(pid)).join("pid"))?;
    let level = proc.nspid(pid)?.len();
    let mut found = Vec::new();
    for p in proc.pids()? {
        // A process of the namespace or of one below it has a number at the namespace's level.
        let Ok(nspid) = proc.nspid(p) else { continue }; // gone meanwhile
        if nspid.len() < level {
            continue;
        }
        let Ok(own) = ns::inode(Some(p), "pid") else {
            continue;
        };
        if own != target.inode && !descends_from(p, target.inode, nspid.len() - level)? {
            continue;
        }
        found.push(Member {
            host: p,
            inside: nspid[level - 1],
            ppid: proc.ppid(p).unwrap_or(0),
            comm: proc.comm(p).unwrap_or_default(),
        });
    }
    Ok((target.inode, level, found))
}

/// Whether the PID namespace of `pid` has `ancestor` among its first `hops` parents
/// (`ioctl(NS_GET_PARENT)`).
fn descends_from(pid: i32, ancestor: u64, hops: usize) -> Result<bool> {
    let Ok(mut ns) = NsFile::open(&ns::ns_dir(Some(pid)).join("pid")) else {
        return Ok(false);
    };
    for _ in 0..hops {
        ns = match ns.parent() {
            Ok(parent) => parent,
            Err(_) => return Ok(false),
        };
        if ns.inode == ancestor {
            return Ok(true);
        }
    }
    Ok(false)
}

fn print_tree(out: &Narrator, members: &[Member]) {
    let hosts: Vec<i32> = members.iter().map(|m| m.host).collect();
    let roots: Vec<&Member> = members
        .iter()
        .filter(|m| !hosts.contains(&m.ppid))
        .collect();
    fn walk(out: &Narrator, all: &[Member], m: &Member, prefix: &str, last: bool, root: bool) {
        let branch = if root {
            ""
        } else if last {
            "└── "
        } else {
            "├── "
        };
        out.raw(format!(
            "{prefix}{branch}{} {}  (host pid {})",
            m.inside, m.comm, m.host
        ));
        let kids: Vec<&Member> = all.iter().filter(|c| c.ppid == m.host).collect();
        let next = if root {
            prefix.to_string()
        } else {
            format!("{prefix}{}", if last { "    " } else { "│   " })
        };
        for (i, k) in kids.iter().enumerate() {
            walk(out, all, k, &next, i + 1 == kids.len(), false);
        }
    }
    for r in roots {
        walk(out, members, r, "", true, true);
    }
}

/// `monitor PID`: from the host, every process of the PID namespace that PID is in, with its
/// host PID and its PID inside, as a tree.
pub fn monitor_pid(out: &mut Narrator, pid: i32) -> Result<()> {
    let (inode, level, mut found) = members(pid)?;
    found.sort_by_key(|m| (m.inside, m.host));
    out.step(
        "host",
        format!(
            "readlink(/proc/{pid}/ns/pid) -> pid:[{inode}], level {} below the host's",
            level - 1
        ),
    );
    out.step(
        "host",
        format!(
            "scan /proc/*/status (NSpid:) and /proc/*/ns/pid: {} process{}",
            found.len(),
            if found.len() == 1 { "" } else { "es" }
        ),
    );
    out.raw("PID inside, command, (PID in the host):");
    print_tree(out, &found);
    Ok(())
}

/// `monitor` without a PID: start a small namespace (an init, two workers, one of them with a
/// child), watch it from the host, then end it.
pub fn monitor_demo(out: &mut Narrator) -> Result<()> {
    let mut first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1");
        let spawn = |grandchild: bool| {
            fork_child(move |w| {
                if grandchild {
                    let mut gc = fork_child(|g| {
                        g.ready();
                        pause();
                        Ok(0)
                    })?;
                    gc.wait_ready()?;
                    gc.detach();
                }
                w.ready();
                pause();
                Ok(0)
            })
        };
        for grandchild in [true, false] {
            let mut worker = spawn(grandchild)?;
            worker.wait_ready()?;
            top.step(format!("fork() -> pid {}", worker.pid()));
            worker.detach();
        }
        top.ready_and_wait()?;
        Ok(0)
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {}", first.pid()),
    );
    first.relay_until_ready(out, "pid 1")?;
    monitor_pid(out, first.pid().as_raw())?;
    kill(first.pid(), Signal::SIGKILL).context("kill(SIGKILL)")?;
    first.wait()?;
    out.step(
        "host",
        format!(
            "kill({}, SIGKILL): the namespace ends with its init",
            first.pid()
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// zombies (PID-11)

/// Leave `n` orphans behind, the way a daemon does: fork a middle process that forks the
/// orphan-to-be and exits. Each orphan waits until it has been re-parented (PR_SET_PDEATHSIG),
/// writes "PID-inside host-PID" to a pipe, and exits. Returns once all have exited.
fn leave_orphans(top: &mut Reporter, n: usize) -> Result<Vec<(i32, i32)>> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2()")?;
    for _ in 0..n {
        let mut middle = fork_child(|_| {
            let mut orphan = fork_child(|o| {
                let usr1 = block(Signal::SIGUSR1)?;
                nix::sys::prctl::set_pdeathsig(Signal::SIGUSR1)
                    .context("prctl(PR_SET_PDEATHSIG)")?;
                o.ready();
                wait_signal(&usr1).context("sigwaitinfo(SIGUSR1)")?;
                let mut pipe = std::fs::File::from(write_end.try_clone()?);
                // One write(2) of less than PIPE_BUF bytes: atomic, never mixed with another
                // orphan's line (writeln! may split a line into several writes).
                pipe.write_all(format!("{} {}\n", getpid(), host_pid()?).as_bytes())?;
                Ok(0)
            })?;
            orphan.wait_ready()?;
            orphan.detach();
            Ok(0)
        })?;
        middle.wait()?;
    }
    // Every orphan holds the write end until it exits: end-of-file means all have exited.
    drop(write_end);
    let mut orphans = Vec::new();
    for line in BufReader::new(std::fs::File::from(read_end)).lines() {
        let line = line?;
        let (inside, host) = line.split_once(' ').context("orphan line")?;
        orphans.push((inside.parse()?, host.parse()?));
    }
    orphans.sort_unstable();
    top.step(format!(
        "fork() x{n}, each child forks and exits: {} orphans, re-parented, exit",
        orphans
            .iter()
            .map(|(p, _)| format!("pid {p}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(orphans)
}

/// `zombies`: the same application twice. First it is PID 1 itself and never reaps the orphans
/// its daemons leave: they stay zombies. Then [`init::run`] is PID 1 and the application its
/// child: init reaps the orphans, and forwards the SIGTERM sent to it from the host.
pub fn zombies(out: &mut Narrator) -> Result<()> {
    out.heading("PID 1 is the application: nobody reaps the orphans");
    let first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1: app");
        let orphans = leave_orphans(top, 3)?;
        for (inside, host) in orphans {
            // WNOWAIT: wait until the orphan is dead, but leave it a zombie.
            waitid(
                Id::Pid(Pid::from_raw(inside)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
            )
            .with_context(|| format!("waitid({inside}, WEXITED | WNOWAIT)"))?;
            let state = Proc::host().state(host)?;
            top.say(format!(
                "pid {inside}: state {state}{}",
                if state == 'Z' {
                    " (zombie: dead, never reaped)"
                } else {
                    ""
                }
            ));
            top.data(format!("{host} {state}"));
        }
        Ok(0)
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {}", first.pid()),
    );
    let done = first.finish(out, "pid 1: app")?;
    let zombies = done.data.iter().filter(|d| d.ends_with(" Z")).count();
    out.say(
        "host",
        format!("{zombies} zombies until the namespace ended"),
    );

    out.heading("PID 1 is an init: it reaps orphans and forwards signals");
    let mut first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1: init");
        top.step("init::run(app): block signals, fork the app, sigwaitinfo() in a loop");
        let report = init::run(|_| {
            top.speaker("pid 2: app");
            let orphans = leave_orphans(top, 3)?;
            for (inside, host) in orphans {
                // Reaped by init: the entry disappears from /proc (a state change, not a sleep).
                let gone = wait_until_gone(host, Duration::from_secs(10));
                top.say(format!(
                    "pid {inside}: {}",
                    if gone {
                        "gone: init reaped it"
                    } else {
                        "still there"
                    }
                ));
                top.data(format!("{host} {}", if gone { "reaped" } else { "left" }));
            }
            top.step("pause(): waiting for a signal");
            top.ready();
            pause();
            Ok(0)
        })?;
        top.speaker("pid 1: init");
        top.step(format!(
            "the app ended with {} ({}); init reaped {} orphans, forwarded {} signal{}",
            report.exit_code,
            if report.exit_code > 128 {
                format!("killed by signal {}", report.exit_code - 128)
            } else {
                "its exit status".into()
            },
            report.reaped_orphans,
            report.forwarded,
            if report.forwarded == 1 { "" } else { "s" }
        ));
        Ok(report.exit_code)
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {}", first.pid()),
    );
    first.relay_until_ready(out, "pid 1: init")?;
    // ANCHOR: stop
    kill(first.pid(), Signal::SIGTERM).context("kill(SIGTERM)")?;
    // ANCHOR_END: stop
    out.step(
        "host",
        format!(
            "kill({}, SIGTERM) -> 0  (what `docker stop` sends first)",
            first.pid()
        ),
    );
    let done = first.finish(out, "pid 1: init")?;
    out.step(
        "host",
        format!(
            "waitpid({}) -> exit code {}",
            done.status.pid().map_or(0, Pid::as_raw),
            exit_code(done.status)
        ),
    );
    Ok(())
}

/// Wait until `/proc/PID` is gone (the process was reaped), for at most `limit`.
fn wait_until_gone(host: i32, limit: Duration) -> bool {
    let proc = Proc::host();
    let deadline = Instant::now() + limit;
    while proc.exists(host) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

// ---------------------------------------------------------------------------------------------
// time (TIME-1)

fn seconds(clock: ClockId) -> Result<f64> {
    let t = clock_gettime(clock).context("clock_gettime()")?;
    Ok(t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}

/// `time --offset SECONDS`: `unshare(CLONE_NEWTIME)` moves only later children into the new
/// time namespace, whose CLOCK_MONOTONIC and CLOCK_BOOTTIME are offset by what was written to
/// `/proc/self/timens_offsets`; CLOCK_REALTIME is the same everywhere.
pub fn time_ns(out: &mut Narrator, offset: i64) -> Result<()> {
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        return Err(anyhow::Error::new(MissingFeature(
            "this kernel has no time namespaces (Linux 5.6+, CONFIG_TIME_NS)".into(),
        )));
    }
    let time_before = ns::inode(None, "time")?;
    // ANCHOR: timens
    unshare(labkit::ns::NsKind::Time.flag()).context("unshare(CLONE_NEWTIME)")?;
    // Offsets can be set only while no process is in the new namespace yet.
    let offsets = format!("monotonic {offset} 0\nboottime {offset} 0\n");
    std::fs::write("/proc/self/timens_offsets", &offsets)
        .context("write(/proc/self/timens_offsets)")?;
    // ANCHOR_END: timens
    out.step("parent", "unshare(CLONE_NEWTIME)");
    out.say(
        "parent",
        format!(
            "time -> time:[{}] (unchanged), time_for_children -> time:[{}] (new)",
            ns::inode(None, "time")?,
            ns::inode(None, "time_for_children")?
        ),
    );
    ensure!(
        ns::inode(None, "time")? == time_before,
        "the caller itself moved"
    );
    out.step(
        "parent",
        format!("write(/proc/self/timens_offsets, \"monotonic {offset} 0\\nboottime {offset} 0\")"),
    );
    let clocks = [
        ClockId::CLOCK_MONOTONIC,
        ClockId::CLOCK_BOOTTIME,
        ClockId::CLOCK_REALTIME,
    ];
    let names = ["CLOCK_MONOTONIC", "CLOCK_BOOTTIME", "CLOCK_REALTIME"];
    let parent: Vec<f64> = clocks.iter().map(|c| seconds(*c)).collect::<Result<_>>()?;
    let child = fork_child(|c| {
        for clock in clocks {
            c.data(seconds(clock)?);
        }
        c.step(format!(
            "/proc/self/ns/time -> time:[{}]",
            ns::inode(None, "time")?
        ));
        let offsets = std::fs::read_to_string("/proc/self/timens_offsets")?;
        let offsets: Vec<String> = offsets
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        c.say(format!("/proc/self/timens_offsets: {}", offsets.join(", ")));
        Ok(0)
    })?;
    out.step("parent", format!("fork() -> child pid {}", child.pid()));
    let done = child.finish(out, "child")?;
    for (i, name) in names.iter().enumerate() {
        let c: f64 = done.data[i].parse()?;
        // The child read its clocks a moment after the parent: round that moment away.
        let delta = (c - parent[i]).round() as i64;
        out.say(
            "parent",
            format!(
                "{name:<15} child - parent = {delta:+} s  (parent {:.3} s, child {c:.3} s)",
                parent[i]
            ),
        );
    }
    Ok(())
}
