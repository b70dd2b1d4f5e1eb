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
