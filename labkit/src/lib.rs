//! `labkit`: the one support crate of nslab.
//!
//! It holds only what every demo needs, so that each demo crate can show its lesson as plain
//! syscalls without repeating the plumbing:
//!
//! - [`child`]: run code in a child made by `clone(2)` (with `CLONE_NEW*` flags) or `fork(2)`,
//!   with pipes so the child reports to the parent and waits for it: output never races.
//! - [`ns`]: the namespace links of `/proc/PID/ns`, their types and inodes, and namespace files.
//! - [`procfs`]: `/proc/PID/status` (`NSpid:`), `stat` states, the process list.
//! - [`rootless`]: when not root, continue inside a new user namespace that maps the caller to 0.
//! - [`errors`]: errno to teaching hint, and the exit codes every demo shares.
//! - [`narrate`]: the `[who] N. step` output format, colour only on a terminal.
//! - [`cgroupfs`]: which cgroup layout the host has (v1, v2 or hybrid).
//! - [`doctor`]: what this machine can show, chapter by chapter.
//! - [`signals`]: hold off Ctrl-C while the host is in a half-made state.
//! - [`tempdir`]: `nslab-...` temp directories removed on drop.
//! - [`sys`], [`sysv`]: the few syscalls `nix` does not wrap (`setdomainname`, `sigwaitinfo`,
//!   `finit_module`, System V IPC).
//! - `testing` (feature `testing`): skip guards, snapshot filters, running as another user.
//!
//! This crate is the only place in the workspace with `unsafe` code (`clone`, `fork`, one ioctl).

pub mod cgroupfs;
pub mod child;
pub mod doctor;
pub mod errors;
pub mod narrate;
pub mod ns;
pub mod procfs;
pub mod rootless;
pub mod signals;
pub mod sys;
pub mod sysv;
pub mod tempdir;
#[cfg(feature = "testing")]
pub mod testing;

pub use errors::{BadInput, bad_input};
pub use narrate::Narrator;

/// The prefix of every object an nslab program creates on the host (temp dirs, pins, cgroups,
/// veths), so that leftovers are easy to find.
pub const PREFIX: &str = "nslab";

/// A name that is unique on this machine for this run: `nslab-<what>-<pid>-<counter>`.
pub fn unique_name(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}-{what}-{}-{n}", std::process::id())
}
