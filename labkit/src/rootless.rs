//! Rootless mode: without root, a demo continues inside a new user namespace of its own.
//!
//! `unshare(CLONE_NEWUSER)` needs no privilege (where the kernel allows unprivileged user
//! namespaces). In the new namespace the process holds every capability, so it can then create
//! UTS, IPC, mount, PID and network namespaces *owned by* that user namespace, while the host's
//! own resources (its hostname, its files, its devices) stay out of reach.
//!
//! The maps written are the smallest an unprivileged process may write (user_namespaces(7)):
//! one line mapping its own UID (and GID) to 0, after writing `deny` to `setgroups`.
//! `unshare(CLONE_NEWUSER)` fails in a multithreaded process, so call this first thing in `main`.

use crate::idmap::IdRange;
use anyhow::{Context, Result};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{getegid, geteuid};

use crate::narrate::Narrator;

/// How a demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// As real root, in the host's user namespace.
    Root,
    /// In a user namespace of its own, where the caller's IDs map to 0.
    Rootless {
        /// The caller's UID outside (in the parent user namespace).
        outer_uid: u32,
        /// The caller's GID outside.
        outer_gid: u32,
    },
}

impl Privilege {
    /// Whether the demo runs in a user namespace of its own.
    pub fn is_rootless(self) -> bool {
        matches!(self, Privilege::Rootless { .. })
    }
}

/// As root (and without `force`), do nothing. Otherwise create a user namespace, map the
/// caller's UID and GID to 0 in it, and say so in one line.
pub fn enter(force: bool, out: &Narrator) -> Result<Privilege> {
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
    if uid == 0 && !force {
        return Ok(Privilege::Root);
    }
    // ANCHOR: enter
    unshare(CloneFlags::CLONE_NEWUSER).context("unshare(CLONE_NEWUSER)")?;
    write_maps(uid, gid)?;
    // ANCHOR_END: enter
    // The same line whether forced (--rootless as root) or not root: the UID tells which.
    out.say(
        "nslab",
        format!(
            "rootless: continuing in a new user namespace (unshare(CLONE_NEWUSER)) where uid \
             {uid} is 0; the host's own resources stay out of reach"
        ),
    );
    Ok(Privilege::Rootless {
        outer_uid: uid,
        outer_gid: gid,
    })
}

/// Write `/proc/self/{uid_map,setgroups,gid_map}` so that `uid`/`gid` outside are 0 inside.
pub fn write_maps(uid: u32, gid: u32) -> Result<()> {
    write_maps_of("self", uid, gid)
}

/// Write the maps of another process (`pid`, or `"self"`): the parent of a child cloned with
/// `CLONE_NEWUSER` does this while the child waits.
pub fn write_maps_of(pid: &str, uid: u32, gid: u32) -> Result<()> {
    // ANCHOR: write_maps
    // One line each, this UID (GID) as 0: the smallest maps an unprivileged process may write.
    crate::idmap::write_maps(pid, &[IdRange::one(0, uid)], &[IdRange::one(0, gid)])
    // ANCHOR_END: write_maps
}
