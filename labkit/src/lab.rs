//! The demos' "lab": a child in new namespaces that plays the host, so that nothing a lesson
//! does reaches the real one. Every new mount namespace of the demos starts the same way, with
//! [`make_root_private`]; [`in_lab`] makes the child and reports it.

use anyhow::{Context, Result};
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;

use crate::child::{Finished, Reporter, clone_child, flag_names};
use crate::narrate::Narrator;

/// `mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)`: every mount of this (new) mount namespace
/// becomes private, recursively, before anything is mounted. On a host whose `/` is shared
/// (systemd makes it so), a mount made below would otherwise appear on the host too, and the
/// host's would appear here (mount_namespaces(7), "Shared subtrees").
pub fn make_root_private() -> Result<()> {
    // ANCHOR: private_root
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("mount(\"/\", MS_REC | MS_PRIVATE)")
    // ANCHOR_END: private_root
}

/// Run `body` in a lab: a child cloned with `flags` and a new mount namespace (`CLONE_NEWNS`,
/// always), whose mounts are made private ([`make_root_private`]) before `body` runs. The host
/// says `clone(FLAGS | SIGCHLD) -> lab pid N` and then `what` (`": a private mount namespace"`,
/// or nothing), relays the lab's report and returns how it ended.
pub fn in_lab<F>(out: &mut Narrator, flags: CloneFlags, what: &str, body: F) -> Result<Finished>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let flags = flags | CloneFlags::CLONE_NEWNS;
    let lab = clone_child(flags, |r| {
        r.speaker("lab");
        make_root_private()?;
        body(r)
    })?;
    out.step(
        "host",
        format!(
            "clone({} | SIGCHLD) -> lab pid {}{what}",
            flag_names(flags),
            lab.pid()
        ),
    );
    lab.finish(out, "lab")
}
