//! setgroups (USER-4).

use std::fs;

use crate::NOBODY;
use crate::capabilities::{errno_name, outcome};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::{clone_child, fork_child};
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid, getegid, geteuid, setgroups, setresgid, setresuid};

/// Drop to nobody (when root) in the calling process: the rules below are those of an
/// unprivileged writer.
pub(crate) fn become_unprivileged() -> Result<()> {
    // lab:begin user-drop-privilege
    if geteuid().is_root() {
        setgroups(&[]).context("setgroups([])")?;
        setresgid(
            Gid::from_raw(NOBODY),
            Gid::from_raw(NOBODY),
            Gid::from_raw(NOBODY),
        )
        .context("setresgid()")?;
        setresuid(
            Uid::from_raw(NOBODY),
            Uid::from_raw(NOBODY),
            Uid::from_raw(NOBODY),
        )
        .context("setresuid()")?;
        // Changing IDs made this process non-dumpable, and its /proc files (and its children's)
        // root's: make it dumpable again, as a process started by nobody would be.
        nix::sys::prctl::set_dumpable(true).context("prctl(PR_SET_DUMPABLE, 1)")?;
    }
    Ok(())
    // lab:end user-drop-privilege
}

/// `setgroups`: an unprivileged process can write a gid_map for its child only after writing
/// "deny" to the child's /proc/PID/setgroups (else a user could drop a group that was denying
/// it access).
pub fn setgroups_rule(out: &mut Narrator) -> Result<()> {
    let helper = fork_child(|h| {
        h.speaker("writer");
        become_unprivileged()?;
        h.step(format!(
            "as uid {} (no privilege in the parent user namespace)",
            geteuid()
        ));
        let child = clone_child(CloneFlags::CLONE_NEWUSER, |c| {
            c.ready_and_wait()?;
            Ok(0)
        })?;
        let pid = child.pid();
        h.step(format!("clone(CLONE_NEWUSER | SIGCHLD) -> child pid {pid}"));
        let mut child = child;
        child.wait_ready()?;
        let gid = getegid().as_raw();
        let base = format!("/proc/{pid}");
        // ANCHOR: setgroups
        let first = fs::write(format!("{base}/gid_map"), format!("0 {gid} 1\n"));
        h.step(format!(
            "write({base}/gid_map, \"0 {gid} 1\") -> {}",
            outcome(first.map_err(|e| errno_name(&e)))
        ));
        h.say(format!(
            "{base}/setgroups: {}",
            fs::read_to_string(format!("{base}/setgroups"))?.trim()
        ));
        fs::write(format!("{base}/setgroups"), "deny").context("write(setgroups)")?;
        let second = fs::write(format!("{base}/gid_map"), format!("0 {gid} 1\n"));
        // ANCHOR_END: setgroups
        h.step(format!("write({base}/setgroups, \"deny\")"));
        h.step(format!(
            "write({base}/gid_map, \"0 {gid} 1\") -> {}",
            outcome(second.map_err(|e| errno_name(&e)))
        ));
        child.release()?;
        child.wait()?;
        Ok(0)
    })?;
    out.step("parent", format!("fork() -> writer pid {}", helper.pid()));
    helper.finish(out, "writer")?;
    Ok(())
}
