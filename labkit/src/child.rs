//! Running code in a child process, made by `clone(2)` with `CLONE_NEW*` flags or by `fork(2)`.
//!
//! Two pipes join parent and child:
//! - child → parent: the child *reports* (numbered steps, results, data) and the parent prints
//!   them with its own [`Narrator`], so the output is in one order no matter how the scheduler runs
//!   the two processes;
//! - parent → child: the child can say it is [`Reporter::ready_and_wait`] and block until the parent
//!   has done its part (written a uid map, moved a veth, looked at `/proc/CHILD/ns`).
//!
//! Both pipes are `O_CLOEXEC`: when the child `exec`s a program, the parent sees end-of-file.
//! Children get `PR_SET_PDEATHSIG(SIGKILL)`, so a killed demo never leaves one behind, and a
//! [`Child`] that is dropped without being waited for is killed and reaped.

use std::fmt::Display;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, pipe2};

use crate::errors::exit_code_for;
use crate::narrate::Narrator;

/// Size of the stack given to a cloned child. `clone(2)` needs the caller to provide one; 1 MiB on
/// the heap is plenty for the small closures the demos run (Rust's own threads default to 2 MiB).
pub const STACK_SIZE: usize = 1024 * 1024;

/// One message from a child to its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// A numbered step (a syscall the child made).
    Step(String),
    /// A result line (what the kernel answered).
    Say(String),
    /// A value for the parent's code, not printed.
    Data(String),
    /// The child waits for the parent (see [`Reporter::ready_and_wait`]), or says it got
    /// somewhere (see [`Reporter::ready`]).
    Ready,
    /// From now on the messages on this pipe speak for `who` (see [`Reporter::speaker`]).
    Who(String),
    /// The child's work failed: the error's text and the kernel's errno at its root.
    Failed { errno: Option<i32>, text: String },
}

impl Msg {
    fn encode(&self) -> String {
        let (tag, text) = match self {
            Msg::Step(t) => ("S".to_string(), t.as_str()),
            Msg::Say(t) => ("I".to_string(), t.as_str()),
            Msg::Data(t) => ("D".to_string(), t.as_str()),
            Msg::Ready => ("R".to_string(), ""),
            Msg::Who(t) => ("W".to_string(), t.as_str()),
            Msg::Failed { errno, text } => (format!("E{}", errno.unwrap_or(0)), text.as_str()),
        };
        let text = text.replace('\\', "\\\\").replace('\n', "\\n");
        format!("{tag}\t{text}\n")
    }

    fn decode(line: &str) -> Result<Msg> {
        let (tag, text) = line
            .split_once('\t')
            .context("malformed message from child")?;
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match (c, c == '\\') {
                (_, true) => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                },
                (c, false) => out.push(c),
            }
        }
        Ok(match tag {
            "S" => Msg::Step(out),
            "I" => Msg::Say(out),
            "D" => Msg::Data(out),
            "R" => Msg::Ready,
            "W" => Msg::Who(out),
            e if e.starts_with('E') => {
                let errno: i32 = e[1..].parse().context("malformed errno from child")?;
                Msg::Failed {
                    errno: (errno != 0).then_some(errno),
                    text: out,
                }
            }
            other => bail!("unknown message tag {other:?} from child"),
        })
    }
}

/// The child's side of the pipes.
#[derive(Debug)]
pub struct Reporter {
    to_parent: File,
    from_parent: File,
    /// The name set by [`Reporter::speaker`], sent along with every message.
    name: Option<String>,
}

impl Reporter {
    fn send(&mut self, msg: &Msg) {
        // A named reporter sends its name and the message in one write(2): writes of up to
        // PIPE_BUF bytes are atomic, so processes sharing this pipe never split each other's.
        let mut bytes = match (&self.name, msg) {
            (Some(name), Msg::Step(_) | Msg::Say(_)) => Msg::Who(name.clone()).encode(),
            _ => String::new(),
        };
        bytes.push_str(&msg.encode());
        // The parent may be gone (then PR_SET_PDEATHSIG ends this child anyway): ignore EPIPE.
        let _ = self.to_parent.write_all(bytes.as_bytes());
    }

    /// Report a numbered step; the parent prints it.
    pub fn step(&mut self, text: impl Display) {
        self.send(&Msg::Step(text.to_string()));
    }

    /// Report what the kernel answered; the parent prints it.
    pub fn say(&mut self, text: impl Display) {
        self.send(&Msg::Say(text.to_string()));
    }

    /// Hand a value to the parent's code (not printed).
    pub fn data(&mut self, text: impl Display) {
        self.send(&Msg::Data(text.to_string()));
    }

    /// Name the speaker of this reporter's messages (`"pid 1"`, `"level 2"`). Processes further
    /// down may share the pipe (a forked process inherits it); each names itself, and the
    /// parent prints every message with the name sent along with it.
    pub fn speaker(&mut self, who: impl Display) {
        self.name = Some(who.to_string());
    }

    /// Tell the parent this process got somewhere, without waiting for anything back: the
    /// parent's [`Child::relay_until_ready`] returns.
    pub fn ready(&mut self) {
        self.send(&Msg::Ready);
    }

    /// Wait for the next command line the parent sends with [`Child::send`]; `None` once the
    /// parent has closed its end.
    pub fn recv(&mut self) -> Result<Option<String>> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.from_parent.read(&mut byte) {
                Ok(0) if line.is_empty() => return Ok(None),
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => line.push(byte[0]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("read(pipe from parent)"),
            }
        }
        Ok(Some(String::from_utf8_lossy(&line).into_owned()))
    }

    /// Tell the parent this child is ready, then block until the parent calls [`Child::release`].
    pub fn ready_and_wait(&mut self) -> Result<()> {
        self.send(&Msg::Ready);
        let mut byte = [0u8; 1];
        match self.from_parent.read(&mut byte) {
            Ok(1) => Ok(()),
            Ok(_) => bail!("the parent closed the pipe before releasing this child"),
            Err(e) => Err(e).context("read(pipe from parent)"),
        }
    }
}

/// The parent's handle on a child.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    from_child: BufReader<File>,
    to_child: Option<File>,
    status: Option<WaitStatus>,
    /// The speaker last named by a [`Msg::Who`] on this pipe.
    speaker: Option<String>,
}

/// What a finished child reported and how it ended.
#[derive(Debug)]
pub struct Finished {
    /// The values the child sent with [`Reporter::data`], in order.
    pub data: Vec<String>,
    /// How the child ended.
    pub status: WaitStatus,
}

impl Finished {
    /// The shell-style exit code: the exit status, or 128 + signal number.
    pub fn exit_code(&self) -> i32 {
        exit_code(self.status)
    }
}

/// The shell-style exit code of a wait status: the exit status, or 128 + signal number.
pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    }
}

impl Child {
    /// The child's PID, as the parent's PID namespace numbers it.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The next message, or `None` once the child has closed its end (exited or exec'd).
    pub fn next_msg(&mut self) -> Result<Option<Msg>> {
        let mut line = String::new();
        let n = self
            .from_child
            .read_line(&mut line)
            .context("read(pipe from child)")?;
        if n == 0 {
            return Ok(None);
        }
        Msg::decode(line.trim_end_matches('\n')).map(Some)
    }

    /// Print the child's steps and results as `who` until it is ready (or, with `until_ready`
    /// false, until it closes the pipe). Returns the data it sent.
    fn relay_inner(
        &mut self,
        out: &mut Narrator,
        who: &str,
        until_ready: bool,
    ) -> Result<Vec<String>> {
        let mut data = Vec::new();
        loop {
            let who = self.speaker.clone().unwrap_or_else(|| who.to_string());
            let who = who.as_str();
            match self.next_msg()? {
                Some(Msg::Who(w)) => self.speaker = Some(w),
                Some(Msg::Step(t)) => out.step(who, t),
                Some(Msg::Say(t)) => out.say(who, t),
                Some(Msg::Data(t)) => data.push(t),
                Some(Msg::Ready) if until_ready => return Ok(data),
                Some(Msg::Ready) => bail!("the {who} waits for a release that never comes"),
                Some(Msg::Failed { errno, text }) => {
                    let _ = self.wait();
                    return Err(child_error(errno, text));
                }
                None if until_ready => {
                    let status = self.wait()?;
                    bail!("the {who} ended before it was ready ({status:?})");
                }
                None => return Ok(data),
            }
        }
    }

    /// Print what the child reports until it calls [`Reporter::ready_and_wait`].
    pub fn relay_until_ready(&mut self, out: &mut Narrator, who: &str) -> Result<Vec<String>> {
        self.relay_inner(out, who, true)
    }

    /// Pass everything this child reports on to `up` (the reporter of the process that made it),
    /// until the child closes its pipe: nested children (a grandchild in a nested namespace)
    /// speak to the top-level parent through each level. Returns the data it sent, which is
    /// also forwarded. A failure of the child is returned as an error (with its errno).
    pub fn forward(&mut self, up: &mut Reporter) -> Result<Vec<String>> {
        self.forward_inner(up, false)
    }

    /// Like [`Child::forward`], but stop when the child is ready (see
    /// [`Reporter::ready_and_wait`]), which is not passed on.
    pub fn forward_until_ready(&mut self, up: &mut Reporter) -> Result<Vec<String>> {
        self.forward_inner(up, true)
    }

    fn forward_inner(&mut self, up: &mut Reporter, until_ready: bool) -> Result<Vec<String>> {
        let mut data = Vec::new();
        let mut who: Option<String> = None;
        loop {
            let Some(msg) = self.next_msg()? else {
                if until_ready {
                    let status = self.wait()?;
                    bail!("the child ended before it was ready ({status:?})");
                }
                break;
            };
            match msg {
                Msg::Ready if until_ready => return Ok(data),
                Msg::Failed { errno, text } => {
                    let _ = self.wait();
                    return Err(child_error(errno, text));
                }
                Msg::Data(d) => {
                    up.send(&Msg::Data(d.clone()));
                    data.push(d);
                }
                Msg::Who(w) => who = Some(w),
                other => {
                    // Forward a message with the speaker it came with, in one write.
                    let name = who.clone().or_else(|| up.name.clone());
                    let saved = std::mem::replace(&mut up.name, name);
                    up.send(&other);
                    up.name = saved;
                }
            }
        }
        Ok(data)
    }

    /// Read (and drop) what the child says until it is ready: for a parent with no one to print
    /// to (itself a child), that only needs to know the child got that far. Returns its data.
    pub fn wait_ready(&mut self) -> Result<Vec<String>> {
        let mut data = Vec::new();
        loop {
            match self.next_msg()? {
                Some(Msg::Ready) => return Ok(data),
                Some(Msg::Data(d)) => data.push(d),
                Some(Msg::Failed { errno, text }) => {
                    let _ = self.wait();
                    return Err(child_error(errno, text));
                }
                Some(_) => {}
                None => {
                    let status = self.wait()?;
                    bail!("the child ended before it was ready ({status:?})");
                }
            }
        }
    }

    /// Send the child a command line (read with [`Reporter::recv`]).
    pub fn send(&mut self, command: &str) -> Result<()> {
        let pipe = self
            .to_child
            .as_mut()
            .context("the pipe to the child is closed")?;
        pipe.write_all(format!("{command}\n").as_bytes())
            .context("write(pipe to child)")
    }

    /// Let a child that is waiting in [`Reporter::ready_and_wait`] go on.
    pub fn release(&mut self) -> Result<()> {
        let pipe = self.to_child.as_mut().context("child already released")?;
        pipe.write_all(b"g").context("write(pipe to child)")
    }

    /// Wait for the child to end (`waitpid(2)`), once.
    pub fn wait(&mut self) -> Result<WaitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        // Closing our end first lets a child blocked in ready_and_wait see end-of-file.
        self.to_child = None;
        let status = loop {
            match waitpid(self.pid, None) {
                Err(Errno::EINTR) => continue,
                other => break other.with_context(|| format!("waitpid({})", self.pid))?,
            }
        };
        self.status = Some(status);
        Ok(status)
    }

    /// `waitpid(2)` with flags (`WUNTRACED` to see it stop, `WCONTINUED` to see it go on):
    /// returns the status change; an exit or death is remembered as the child's end.
    pub fn wait_with(&mut self, flags: nix::sys::wait::WaitPidFlag) -> Result<WaitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = loop {
            match waitpid(self.pid, Some(flags)) {
                Err(Errno::EINTR) => continue,
                other => break other.with_context(|| format!("waitpid({})", self.pid))?,
            }
        };
        if matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
            self.status = Some(status);
        }
        Ok(status)
    }

    /// Let the child go its own way: neither killed nor reaped by this handle. Who reaps it
    /// then is the lesson (an orphan goes to the nearest subreaper or its namespace's PID 1).
    pub fn detach(mut self) -> Pid {
        self.status = Some(WaitStatus::StillAlive);
        self.pid
    }

    /// Print everything the child reports until it ends, then reap it. A child whose work failed
    /// makes this an error carrying the child's errno.
    pub fn finish(mut self, out: &mut Narrator, who: &str) -> Result<Finished> {
        let data = self.relay_inner(out, who, false)?;
        let status = self.wait()?;
        Ok(Finished { data, status })
    }
}

/// Rebuild a child's error in the parent: the errno at the root, the child's text around it.
fn child_error(errno: Option<i32>, text: String) -> anyhow::Error {
    match errno {
        Some(e) => anyhow::Error::new(Errno::from_raw(e)).context(text),
        None => anyhow::anyhow!(text),
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// The body run in the child: report the closure's outcome, then `_exit` (never return into the
/// parent's code, never run its exit handlers twice).
fn child_main<F>(ends: ChildEnds, f: F) -> !
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let ChildEnds {
        to_parent,
        from_parent,
        parents_read,
        parents_write,
    } = ends;
    drop(parents_read);
    drop(parents_write);
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut reporter = Reporter {
        to_parent: File::from(to_parent),
        from_parent: File::from(from_parent),
        name: None,
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut reporter)));
    let code = match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            let errno = crate::errors::errno_of(&err);
            // The text without the errno itself: the parent puts the errno back at the root.
            let causes: Vec<String> = err.chain().map(ToString::to_string).collect();
            let text = match errno {
                Some(_) if causes.len() > 1 => causes[..causes.len() - 1].join(": "),
                _ => causes.join(": "),
            };
            reporter.send(&Msg::Failed {
                errno: errno.map(|e| e as i32),
                text,
            });
            i32::from(exit_code_for(&err))
        }
        Err(_) => {
            reporter.send(&Msg::Failed {
                errno: None,
                text: "the child panicked".into(),
            });
            101
        }
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit(2) ends this process at once; it is always safe to call (it is unsafe only
    // because it is a foreign function). Unlike exit(3) it runs no exit handlers that belong to
    // the parent's copy of the program.
    unsafe { libc::_exit(code) }
}

#[derive(Debug)]
struct ChildEnds {
    to_parent: OwnedFd,
    from_parent: OwnedFd,
    parents_read: OwnedFd,
    parents_write: OwnedFd,
}

fn pipes() -> Result<ChildEnds> {
    let (parents_read, to_parent) = pipe2(OFlag::O_CLOEXEC).context("pipe2(O_CLOEXEC)")?;
    let (from_parent, parents_write) = pipe2(OFlag::O_CLOEXEC).context("pipe2(O_CLOEXEC)")?;
    Ok(ChildEnds {
        to_parent,
        from_parent,
        parents_read,
        parents_write,
    })
}

fn parent_side(pid: Pid, ends: ChildEnds) -> Child {
    // Close the child's ends here, so that end-of-file means "the child is gone".
    let ChildEnds {
        to_parent,
        from_parent,
        parents_read,
        parents_write,
    } = ends;
    drop(to_parent);
    drop(from_parent);
    Child {
        pid,
        from_child: BufReader::new(File::from(parents_read)),
        to_child: Some(File::from(parents_write)),
        status: None,
        speaker: None,
    }
}

/// Run `f` in a child created by `clone(2)` with `flags` (the `CLONE_NEW*` namespaces it gets)
/// and `SIGCHLD` as its exit signal, on a fresh 1 MiB heap stack. The child's return value is its
/// exit status; an error is reported to the parent (see [`Child::finish`]).
///
/// Never pass `CLONE_VM`: the child must get its own copy of memory, as with `fork`.
pub fn clone_child<F>(flags: CloneFlags, f: F) -> Result<Child>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    anyhow::ensure!(
        !flags.contains(CloneFlags::CLONE_VM),
        "clone_child never shares memory (CLONE_VM)"
    );
    single_threaded("clone")?;
    // ANCHOR: clone_call
    let mut stack = vec![0u8; STACK_SIZE];
    let mut work = Some((pipes()?, f));
    flush_std();
    // The callback runs only in the child, on its own copy of `work`; in the parent `work` is
    // still full after clone returns.
    let callback = Box::new(|| {
        let (ends, f) = work.take().expect("the clone callback runs once");
        child_main(ends, f)
    });
    // SAFETY: clone(2) without CLONE_VM gives the child a private copy of this address space, as
    // fork(2) does; the callback runs on `stack` (a live heap buffer of STACK_SIZE bytes, copied
    // in the child) and never returns: child_main ends with _exit(2). The process has one
    // thread (checked above), so no lock is held by another thread at the time of the copy.
    let pid =
        unsafe { nix::sched::clone(callback, &mut stack, flags, Some(Signal::SIGCHLD as i32)) };
    let pid = pid.with_context(|| format!("clone({})", flag_names(flags)))?;
    // ANCHOR_END: clone_call
    let (ends, _) = work.take().expect("the parent's copy is untouched");
    Ok(parent_side(pid, ends))
}

/// [`clone_child`], with the child started by the kernel in the cgroup v2 group `cgroup` (an open
/// directory of it): clone3(2) with `CLONE_INTO_CGROUP` (Linux 5.7). Nobody then writes the
/// child's PID to `cgroup.procs`, a migration that waits on the lock every other migration on
/// the machine takes. Like fork(2) it gives no new stack: the child goes on on its copy of
/// this one. Returns `Ok(None)` where the kernel has no clone3 or no `CLONE_INTO_CGROUP`
/// (ENOSYS, E2BIG): the caller uses [`clone_child`] then.
pub fn clone_child_into<F>(
    flags: CloneFlags,
    cgroup: std::os::fd::BorrowedFd<'_>,
    f: F,
) -> Result<Option<Child>>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    use std::os::fd::AsRawFd;
    anyhow::ensure!(
        !flags.contains(CloneFlags::CLONE_VM),
        "clone_child_into never shares memory (CLONE_VM)"
    );
    single_threaded("clone3")?;
    // struct clone_args, as far as `cgroup` (CLONE_ARGS_SIZE_VER2, 88 bytes).
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let ends = pipes()?;
    let args = CloneArgs {
        flags: flags.bits() as u32 as u64 | CLONE_INTO_CGROUP,
        exit_signal: Signal::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    flush_std();
    // SAFETY: clone3(2) without CLONE_VM and without a stack behaves as fork(2): the child gets a
    // private copy of this address space and goes on from here on its copy of the stack; the
    // process has one thread (checked above), so no lock is held by another thread at the time
    // of the copy; child_main ends the child with _exit(2), so it never returns into the
    // caller. `args` is initialised and outlives the call; the kernel only reads it.
    let res = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &raw const args,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(res) {
        Ok(0) => child_main(ends, f),
        Ok(pid) => Ok(Some(parent_side(Pid::from_raw(pid as i32), ends))),
        Err(Errno::ENOSYS | Errno::E2BIG) => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("clone3({} | CLONE_INTO_CGROUP)", flag_names(flags)))
        }
    }
}

/// Run `f` in a child created by `fork(2)`. See [`clone_child`].
pub fn fork_child<F>(f: F) -> Result<Child>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    single_threaded("fork")?;
    let ends = pipes()?;
    flush_std();
    // SAFETY: fork(2) in a process with one thread (checked just above): no other thread can
    // hold a lock (the allocator's, stdout's) that the child would inherit locked, so the child
    // may use any function; child_main ends it with _exit(2), so it never returns into the caller.
    match unsafe { nix::unistd::fork() }.context("fork()")? {
        ForkResult::Child => child_main(ends, f),
        ForkResult::Parent { child } => Ok(parent_side(child, ends)),
    }
}

/// The rule that makes [`clone_child`] and [`fork_child`] sound: the caller is this process's only
/// thread. A child of a multithreaded process gets a copy of memory in which another thread may
/// hold a lock (the allocator's, stdout's) that nobody will ever release there (fork(2), "the
/// child process is created with a single thread"; signal-safety(7)). `Threads:` of
/// `/proc/self/status` says how many there are.
fn single_threaded(call: &str) -> Result<()> {
    // The count needs a procfs that shows this process. After joining a mount namespace whose
    // /proc belongs to another PID namespace (an `exec` into a container), /proc/self does not
    // exist and there is no other place to ask: the check is skipped, and the caller's order of
    // calls (setns before any thread) is the guarantee.
    if !std::path::Path::new("/proc/self/status").exists() {
        return Ok(());
    }
    let threads = thread_count()?;
    anyhow::ensure!(
        threads == 1,
        "{call}() refused: this process has {threads} threads (Threads: in /proc/self/status), \
         and labkit forks or clones only a single-threaded process (a child of a multithreaded \
         one may inherit locks held by the other threads); run the demo as its own program, \
         not inside a test harness's threads"
    );
    Ok(())
}

/// How many threads this process has (`Threads:` of `/proc/self/status`).
pub fn thread_count() -> Result<usize> {
    let threads = crate::procfs::Proc::host().own_status()?.threads;
    usize::try_from(threads).context("Threads: out of range")
}

fn flush_std() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// `CLONE_NEWUTS | CLONE_NEWPID`: flag names as the man pages write them (for step lines).
pub fn flag_names(flags: CloneFlags) -> String {
    let names: Vec<&str> = crate::ns::TABLE
        .iter()
        .filter(|(_, _, flag, _)| flags.contains(*flag))
        .map(|(_, _, _, name)| *name)
        .collect();
    if names.is_empty() {
        return "0".to_string();
    }
    names.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_the_pipe_encoding() {
        for msg in [
            Msg::Step("sethostname(\"a\\b\")".into()),
            Msg::Say("two\nlines".into()),
            Msg::Data("42".into()),
            Msg::Ready,
            Msg::Failed {
                errno: Some(1),
                text: "setns: x".into(),
            },
            Msg::Failed {
                errno: None,
                text: String::new(),
            },
        ] {
            let line = msg.encode();
            assert_eq!(line.matches('\n').count(), 1, "one line per message");
            assert_eq!(Msg::decode(line.trim_end_matches('\n')).unwrap(), msg);
        }
    }

    #[test]
    fn flag_names_read_like_the_man_page() {
        assert_eq!(
            flag_names(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID),
            "CLONE_NEWPID | CLONE_NEWUTS"
        );
        assert_eq!(flag_names(CloneFlags::empty()), "0");
    }
}
