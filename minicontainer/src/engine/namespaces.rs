//! Step 1: namespaces. The container gets new ones with clone(2) ([`super::spawn`]); those the
//! spec names by path are joined with setns(2) by this process just before (the child, which
//! makes none of those types, inherits them: joined from inside a new user namespace, they
//! would be refused, as they belong to the host's); a user namespace's ID maps are written from
//! outside while the child waits.

use std::fs;

use anyhow::{Context, Result};
use labkit::Narrator;
use nix::sched::CloneFlags;

use crate::spec::Plan;

/// The namespace files of `linux.namespaces[].path`, opened now (their paths mean nothing once
/// the first of them is joined).
pub(crate) fn open_joins(plan: &Plan) -> Result<Vec<(CloneFlags, fs::File)>> {
    plan.join
        .iter()
        .map(|(flag, path)| {
            fs::File::open(path)
                .map(|f| (*flag, f))
                .with_context(|| format!("open({}) to join it", path.display()))
        })
        .collect()
}

/// The mount namespace the container's process enters itself (`None`: it makes one, or has
/// none), opened now.
pub(crate) fn open_mount_join(plan: &Plan) -> Result<Option<fs::File>> {
    plan.join_mount
        .as_ref()
        .map(|path| {
            fs::File::open(path).with_context(|| format!("open({}) to join it", path.display()))
        })
        .transpose()
}

/// This process's own PID namespace, to come back to after a clone into a joined one
/// (setns(2) of a PID namespace changes only where children go).
pub(crate) fn own_pid_namespace(plan: &Plan) -> Result<Option<fs::File>> {
    if !plan
        .join
        .iter()
        .any(|(f, _)| *f == CloneFlags::CLONE_NEWPID)
    {
        return Ok(None);
    }
    Ok(Some(
        fs::File::open("/proc/self/ns/pid").context("open(/proc/self/ns/pid)")?,
    ))
}

/// After the clone: children of this process (hooks) go to its own PID namespace again.
pub(crate) fn back_to_own_pid_namespace(own: Option<fs::File>) -> Result<()> {
    if let Some(own) = own {
        nix::sched::setns(own, CloneFlags::CLONE_NEWPID)
            .context("setns(own PID namespace) after clone")?;
    }
    Ok(())
}

/// A time namespace for the next child (clone(2) has no flag for it; unshare(2) gives the
/// caller's *children* a new one), its clocks' offsets written before anyone is in it. Returns
/// this process's own, to come back to after the clone. Also for a time namespace joined by
/// path (setns(2) likewise moves only later children).
pub(crate) fn time_for_child(out: &mut Narrator, plan: &Plan) -> Result<Option<fs::File>> {
    let time = labkit::ns::NsKind::Time.flag();
    let joined = plan.join.iter().any(|(f, _)| *f == time);
    if !plan.new_time && !joined {
        return Ok(None);
    }
    let own = fs::File::open("/proc/self/ns/time").context("open(/proc/self/ns/time)")?;
    if plan.new_time {
        nix::sched::unshare(time).context("unshare(CLONE_NEWTIME)")?;
        if !plan.time_offsets.is_empty() {
            fs::write("/proc/self/timens_offsets", &plan.time_offsets)
                .context("write /proc/self/timens_offsets (linux.timeOffsets)")?;
        }
        out.step(
            "host",
            format!(
                "unshare(CLONE_NEWTIME) for the container; timens_offsets: {}",
                plan.time_offsets.trim().replace('\n', ", ")
            ),
        );
    }
    Ok(Some(own))
}

/// After the clone: this process's later children are in its own time namespace again.
pub(crate) fn back_to_own_time_namespace(own: Option<fs::File>) -> Result<()> {
    if let Some(own) = own {
        nix::sched::setns(own, labkit::ns::NsKind::Time.flag())
            .context("setns(own time namespace) after clone")?;
    }
    Ok(())
}

/// setns(2) into each of them, before clone (a PID namespace: the clone's child is its
/// member).
pub(crate) fn join(
    out: &mut Narrator,
    plan: &Plan,
    joins: &[(CloneFlags, fs::File)],
) -> Result<()> {
    for (flag, file) in joins {
        nix::sched::setns(file, *flag)
            .with_context(|| format!("setns({})", labkit::child::flag_names(*flag)))?;
    }
    if !joins.is_empty() {
        let paths: Vec<String> = plan
            .join
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect();
        out.step(
            "host",
            format!(
                "setns(2) into the config's namespaces before clone: {}",
                paths.join(" ")
            ),
        );
    }
    Ok(())
}

/// With a user namespace in the spec: its `uid_map` and `gid_map`, written from outside while
/// the child waits (without CAP_SETGID here, gid_map needs setgroups denied first).
pub(crate) fn write_id_maps(out: &mut Narrator, plan: &Plan, pid: i32) -> Result<()> {
    let (Some(uid_map), Some(gid_map)) = (&plan.uid_map, &plan.gid_map) else {
        return Ok(());
    };
    if !nix::unistd::geteuid().is_root() {
        fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .with_context(|| format!("write /proc/{pid}/setgroups"))?;
    }
    fs::write(format!("/proc/{pid}/uid_map"), uid_map)
        .with_context(|| format!("write /proc/{pid}/uid_map"))?;
    fs::write(format!("/proc/{pid}/gid_map"), gid_map)
        .with_context(|| format!("write /proc/{pid}/gid_map"))?;
    out.step(
        "host",
        format!(
            "write /proc/{pid}/uid_map ({}), gid_map ({})",
            uid_map.trim().replace('\n', ", "),
            gid_map.trim().replace('\n', ", ")
        ),
    );
    Ok(())
}

/// In the child, once the parent has put it in its groups and written its maps: become the
/// user namespace's root (it still has the host root's IDs, which the map does not name), and
/// make the cgroup namespace, whose root is then the container's own group.
pub(crate) fn settle(plan: &Plan) -> Result<()> {
    use nix::unistd::{Gid, Uid, setresgid, setresuid};
    if plan.clone_flags.contains(CloneFlags::CLONE_NEWUSER) {
        let zero = (Uid::from_raw(0), Gid::from_raw(0));
        setresgid(zero.1, zero.1, zero.1).context("setresgid(0) in the user namespace")?;
        setresuid(zero.0, zero.0, zero.0).context("setresuid(0) in the user namespace")?;
    }
    if plan.clone_flags.contains(CloneFlags::CLONE_NEWCGROUP) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).context("unshare(CLONE_NEWCGROUP)")?;
    }
    Ok(())
}
