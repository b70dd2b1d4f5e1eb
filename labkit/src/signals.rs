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
