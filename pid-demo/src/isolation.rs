//! isolation (PID-3, PID-4).

use crate::{block, host_pid};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::{clone_child, fork_child};
use labkit::sys::wait_signal;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, getpid, getppid};

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

pub(crate) fn errno_text<T>(result: nix::Result<T>) -> String {
    match result {
        Ok(_) => "0".into(),
        Err(e) => format!("{e}"),
    }
}
