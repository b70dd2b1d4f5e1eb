//! PID namespaces: how processes are numbered, how namespaces nest, what PID 1 must do, and
//! which signals reach it. Each public function is one lesson; the book includes them between
//! the `ANCHOR` comments.
//!
//! Inside the demos, every process writes to the pipe of the namespace's first process, which
//! it inherits: the demo prints one ordered story told by several processes (`[pid 1]`,
//! `[pid 2]`, ...), each synchronised with the others by pipes or signals, never by sleeping.
#![forbid(unsafe_code)]

pub mod init;

use anyhow::{Context, Result};
use labkit::procfs::Proc;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

/// This process's `NSpid:` line: its PID in every namespace from the one of the mounted
/// `/proc` down to its own.
pub fn own_nspid() -> Result<Vec<i32>> {
    Proc::host()
        .own_status()?
        .nspid
        .context("/proc/self/status: no NSpid: line")
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

mod tree;
pub use tree::{MAX_DEPTH, tree};
mod siblings;
pub use siblings::siblings;
mod isolation;
pub use isolation::isolation;
mod orphan;
pub use orphan::orphan;
mod init_signals;
pub use init_signals::init_signals;
mod init_exit;
pub use init_exit::init_exit;
mod proc;
pub use proc::proc_view;
mod monitor;
pub use monitor::{monitor_demo, monitor_pid};
mod zombies;
pub use zombies::zombies;
mod time;
pub use time::time_ns;
