//! init-exit (PID-8).

use crate::host_pid;
use crate::init_signals::describe;
use anyhow::{Context, Result, bail, ensure};
use labkit::Narrator;
use labkit::child::{clone_child, fork_child};
use labkit::ns::{self, NsFile};
use labkit::procfs::Proc;
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitPidFlag;
use nix::unistd::pause;

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
