//! orphan (PID-5).

use crate::{block, host_pid};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::{clone_child, fork_child};
use labkit::procfs::Proc;
use labkit::sys::wait_signal;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, getppid};

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
