//! init-signals (PID-6, PID-7).

use std::time::Duration;

use crate::host_pid;
use crate::isolation::errno_text;
use anyhow::{Context, Result, ensure};
use labkit::Narrator;
use labkit::child::{clone_child, fork_child};
use labkit::procfs::Proc;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

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

pub(crate) fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        WaitStatus::Stopped(_, sig) => format!("stopped by {sig}"),
        WaitStatus::Continued(_) => "continued".into(),
        other => format!("{other:?}"),
    }
}
