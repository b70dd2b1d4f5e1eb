//! A minimal init: what the first process of a PID namespace owes the others.
//!
//! PID 1 of a namespace has two duties no ordinary program performs (claim PID-11):
//!
//! - **reap**: every orphan in the namespace is re-parented to PID 1, and only its parent can
//!   collect a dead child's exit status with `wait`. A PID 1 that never calls `wait` collects
//!   zombies, each holding a PID, until the namespace runs out of them.
//! - **forward signals**: the kernel drops every signal PID 1 has no handler for (even SIGKILL
//!   from inside the namespace). An application that runs as PID 1 and relies on the default
//!   action of SIGTERM therefore never stops on `docker stop`. An init catches the signals and
//!   passes them on to the application.
//!
//! [`run`] is that init, in the style of tini and `docker run --init`: it blocks the signals it
//! handles and takes them one at a time with `sigwaitinfo(2)` (no handler runs at an awkward
//! moment), starts the main process, forwards every signal to it, reaps every child that ends,
//! and ends with the main process's exit status. `minicontainer` runs it as its PID 1.

use anyhow::{Context, Result};
use labkit::child::{Reporter, exit_code, fork_child};
use labkit::sys::wait_signal;
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How the init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitReport {
    /// The main process's exit code (128 + N when killed by signal N): init's own exit code.
    pub exit_code: i32,
    /// Children other than the main process that init reaped (orphans).
    pub reaped_orphans: usize,
    /// Signals init forwarded to the main process.
    pub forwarded: usize,
}

/// The signals init takes and forwards: all that a process can catch, except the ones the
/// kernel raises for a fault of the process itself (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP,
/// SIGSYS), and SIGCHLD, which init keeps for itself.
pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in Signal::iterator() {
        let own = matches!(
            sig,
            Signal::SIGKILL
                | Signal::SIGSTOP
                | Signal::SIGSEGV
                | Signal::SIGBUS
                | Signal::SIGILL
                | Signal::SIGFPE
                | Signal::SIGTRAP
                | Signal::SIGSYS
                | Signal::SIGCHLD
        );
        if !own {
            set.add(sig);
        }
    }
    set
}

// ANCHOR: init_loop
/// Be PID 1: start `main` in a child, forward signals to it, reap every child, and return when
/// `main` has ended, with its exit status.
pub fn run<F>(main: F) -> Result<InitReport>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let mut handled = forwarded_signals();
    handled.add(Signal::SIGCHLD);
    // Blocked signals wait in the pending set until sigwaitinfo takes them. (For PID 1 this also
    // matters to the kernel: a blocked signal is queued even without a handler.)
    let mut before = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), Some(&mut before))
        .context("sigprocmask(SIG_BLOCK)")?;
    let child = fork_child(move |report| {
        // The main process starts with the mask init had: signals reach it as usual.
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None)
            .context("sigprocmask(SIG_SETMASK)")?;
        main(report)
    })?;
    // From here on init reaps with waitpid(-1): the handle must neither kill nor reap it.
    let main_pid = child.detach();
    let mut report = InitReport {
        exit_code: 0,
        reaped_orphans: 0,
        forwarded: 0,
    };
    loop {
        let got = wait_signal(&handled).context("sigwaitinfo()")?;
        if got.signal != Signal::SIGCHLD {
            // ESRCH: the main process is already gone; its SIGCHLD is on the way.
            if kill(main_pid, got.signal).is_ok() {
                report.forwarded += 1;
            }
            continue;
        }
        // One SIGCHLD may stand for many children (standard signals do not queue): reap all.
        let mut main_status = None;
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("waitpid(-1, WNOHANG)"),
                Ok(status) if status.pid() == Some(main_pid) => main_status = Some(status),
                Ok(_) => report.reaped_orphans += 1,
            }
        }
        if let Some(status) = main_status {
            report.exit_code = exit_code(status);
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None)
                .context("sigprocmask(SIG_SETMASK)")?;
            return Ok(report);
        }
    }
}
// ANCHOR_END: init_loop
