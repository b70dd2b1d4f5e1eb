//! Ctrl-C without leftovers: hold off SIGINT, SIGTERM and SIGHUP while the host is in a half-made
//! state (a file created but not yet mounted on, a cgroup made but not yet filled).
//!
//! The signals are blocked, not ignored: one that arrives meanwhile stays pending and is delivered
//! when the guard is dropped, after the state is whole again (finished, or cleaned up on error).

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

/// While alive, SIGINT, SIGTERM and SIGHUP are blocked for this thread (the demos have one).
#[derive(Debug)]
pub struct InterruptGuard {
    previous: SigSet,
}

/// Block SIGINT, SIGTERM and SIGHUP until the guard is dropped.
pub fn hold_interrupts() -> Result<InterruptGuard> {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    let mut previous = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut previous))
        .context("sigprocmask(SIG_BLOCK)")?;
    Ok(InterruptGuard { previous })
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        // Pending signals are delivered here, with their default action (usually: terminate).
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

/// Take (and drop) a SIGINT, SIGTERM or SIGHUP that is pending while held: one that was meant
/// for a foreground child (a container got the same Ctrl-C from the terminal), so that the
/// guard's drop does not end this process with it.
pub fn discard_pending() {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: a valid signal set and timeout for the whole call, no siginfo buffer (null is
        // allowed); sigtimedwait(2) only takes a pending signal off the queue.
        let taken = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &zero) };
        if taken <= 0 {
            break;
        }
    }
}

/// A process by pidfd (pidfd_open(2)): signals sent through it reach that process or nobody,
/// never a later process that got the same PID.
#[derive(Debug)]
pub struct PidFd {
    fd: std::os::fd::OwnedFd,
    pid: i32,
}

/// For poll(2): a pidfd turns readable when its process ends.
impl std::os::fd::AsFd for PidFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl PidFd {
    /// `pidfd_open(pid, 0)` (with rustix's wrapper: nix has none).
    pub fn open(pid: i32) -> Result<PidFd> {
        let target = rustix::process::Pid::from_raw(pid)
            .with_context(|| format!("pidfd_open({pid}): not a PID"))?;
        let fd = rustix::process::pidfd_open(target, rustix::process::PidfdFlags::empty())
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error()))
            .with_context(|| format!("pidfd_open({pid})"))?;
        Ok(PidFd { fd, pid })
    }

    /// `pidfd_send_signal(fd, sig, NULL, 0)`.
    pub fn send(&self, sig: Signal) -> Result<()> {
        let signal = rustix::process::Signal::from_named_raw(sig as i32)
            .with_context(|| format!("{sig}: not a signal rustix names"))?;
        rustix::process::pidfd_send_signal(&self.fd, signal)
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error()))
            .with_context(|| format!("pidfd_send_signal({}, {sig})", self.pid))
    }

    /// Wait until the process has ended (its pidfd turns readable), at most `timeout`; returns
    /// whether it ended.
    pub fn wait_exit(&self, timeout: std::time::Duration) -> Result<bool> {
        crate::wait::readable(std::os::fd::AsFd::as_fd(self), timeout)
    }
}

/// Pass SIGINT, SIGTERM and SIGHUP sent to this process on to process `pid` (a container's PID 1), the
/// way `docker run` proxies signals: `kill -TERM <minicontainer>` stops the container, and
/// minicontainer ends once it has cleaned up.
///
/// The signals must be held ([`hold_interrupts`]) when this is called: a thread then takes them
/// with `sigwait(2)` and sends each with `pidfd_send_signal(2)`, through a pidfd opened now, so
/// a signal that comes after `pid` ended can never reach a new process that got the same PID.
/// SIGINT is passed on too: the container runs in a session of its own, away from the caller's
/// terminal (which it could otherwise push input into), so Ctrl-C reaches only this process.
pub fn forward_to(pid: i32) -> Result<()> {
    let target = PidFd::open(pid)?;
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    std::thread::Builder::new()
        .name(format!("forward-to-{pid}"))
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                if target.send(sig).is_err() {
                    return; // ESRCH: it has ended; later signals stay pending for discard_pending
                }
            }
        })
        .context("spawn the signal-forwarding thread")?;
    Ok(())
}
