//! `labkit`: the one support crate of nslab.
//!
//! It holds only what every demo needs, so that each demo crate can show its lesson as plain
//! syscalls without repeating the plumbing:
//!
//! - [`child`]: run code in a child made by `clone(2)` (with `CLONE_NEW*` flags) or `fork(2)`,
//!   with pipes so the child reports to the parent and waits for it: output never races.
//! - [`ns`]: the namespace links of `/proc/PID/ns`, their types and inodes, and namespace files.
//! - [`procfs`]: `/proc/PID/status` (`NSpid:`), `stat` states, the process list.
//! - [`idmap`]: the one writer of `uid_map` and `gid_map`.
//! - [`lab`]: the lab child every demo works in, its mounts made private first.
//! - [`rootless`]: when not root, continue inside a new user namespace that maps the caller to 0.
//! - [`errors`]: errno to teaching hint, and the exit codes every demo shares.
//! - [`narrate`]: the `[who] N. step` output format, colour only on a terminal.
//! - [`cgroupfs`]: which cgroup layout the host has (v1, v2 or hybrid).
//! - [`doctor`]: what this machine can show, chapter by chapter.
//! - [`devices`]: cgroup v2's device policy, an eBPF program generated from v1-style rules.
//! - [`harden`]: keep the caller's descriptors out of a container (`close_range`).
//! - [`signals`]: hold off Ctrl-C while the host is in a half-made state.
//! - [`tempdir`]: `nslab-...` temp directories removed on drop.
//! - [`wait`]: waiting with a deadline, on the kernel's event (pidfd, poll, inotify) where
//!   there is one, with a backoff where there is none.
//! - [`sys`], [`sysv`]: the few syscalls `nix` does not wrap (`setdomainname`, `sigwaitinfo`,
//!   `finit_module`, System V IPC).
//! - `testing` (feature `testing`): skip guards, snapshot filters, running as another user.
//!
//! This crate is the only place in the workspace with `unsafe` code (`clone`, `fork`, one ioctl).

pub mod cgroupfs;
pub mod child;
pub mod devices;
pub mod doctor;
pub mod errors;
pub mod harden;
pub mod idmap;
pub mod lab;
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
pub mod wait;

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

/// Parse a size: `64M`, `512K`, `1G` (binary units) or a plain number of bytes; 0 is refused.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = num.parse().map_err(|_| {
        bad_input(format!(
            "{text:?} is not a size (examples: 64M, 512K, 1G, 1048576)"
        ))
    })?;
    n.checked_mul(mult).filter(|s| *s > 0).ok_or_else(|| {
        bad_input(format!(
            "{text:?}: the size must be above 0 and below 16 EiB"
        ))
    })
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(super::parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(super::parse_size("4k").unwrap(), 4096);
        assert_eq!(super::parse_size("1048576").unwrap(), 1 << 20);
        assert!(
            super::parse_size("lots")
                .unwrap_err()
                .to_string()
                .contains("is not a size")
        );
        assert!(
            super::parse_size("0")
                .unwrap_err()
                .to_string()
                .contains("above 0")
        );
    }
}
