//! owner (USER-5).

use crate::capabilities::outcome;
use crate::setgroups::become_unprivileged;
use crate::{IdRange, default_ranges, start_child, write_maps};
use anyhow::{Result, bail};
use labkit::Narrator;
use labkit::child::fork_child;
use labkit::narrate::table;
use labkit::ns::{self, NsFile, NsKind};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::geteuid;

/// `owner`: every namespace is owned by a user namespace, the one its creator was in. An
/// unprivileged process cannot create a UTS namespace alone, but can together with a user
/// namespace, which then owns it.
pub fn ownership(out: &mut Narrator) -> Result<()> {
    let helper = fork_child(|h| {
        h.speaker("user");
        become_unprivileged()?;
        h.step(format!(
            "unshare(CLONE_NEWUTS) as uid {} -> {}",
            geteuid(),
            outcome(unshare(CloneFlags::CLONE_NEWUTS))
        ));
        // ANCHOR: together
        let both = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWUTS);
        // ANCHOR_END: together
        h.step(format!(
            "unshare(CLONE_NEWUSER | CLONE_NEWUTS) -> {}",
            outcome(both)
        ));
        Ok(0)
    })?;
    out.step("parent", format!("fork() -> pid {}", helper.pid()));
    helper.finish(out, "user")?;

    let more = CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWCGROUP;
    let mut child = start_child(out, more, |c| {
        c.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    let (uids, gids) = default_ranges();
    write_maps(out, pid, &uids, &gids)?;
    child.release()?;
    child.relay_until_ready(out, "child")?;
    let own_user = ns::inode(None, "user")?;
    let child_user = ns::inode(Some(pid), "user")?;
    let mut rows = vec![vec![
        "namespace".to_string(),
        "owned by (ioctl NS_GET_USERNS)".to_string(),
        "inodes".to_string(),
    ]];
    for (who, p) in [("child", Some(pid)), ("this process", None)] {
        for kind in [
            NsKind::Uts,
            NsKind::Ipc,
            NsKind::Net,
            NsKind::Mnt,
            NsKind::Cgroup,
        ] {
            let file = NsFile::open(&ns::ns_dir(p).join(kind.name()))?;
            // ANCHOR: owner
            let owner = file.owner()?;
            // ANCHOR_END: owner
            let whose = if owner.inode == child_user {
                "the child's user namespace"
            } else if owner.inode == own_user {
                "this process's user namespace"
            } else {
                "another user namespace"
            };
            // The inodes last: their length changes when a snapshot numbers them.
            rows.push(vec![
                format!("{who}'s {kind}"),
                whose.to_string(),
                format!("{kind}:[{}] -> user:[{}]", file.inode, owner.inode),
            ]);
        }
    }
    out.step("parent", format!("user namespaces: the child's is user:[{child_user}], this process's is user:[{own_user}]"));
    out.raw(table(&rows).trim_end());
    child.release()?;
    child.finish(out, "child")?;
    Ok(())
}

/// Refuse maps an unprivileged process cannot write, before anything is made.
pub fn check_privilege_for(maps: &[IdRange]) -> Result<()> {
    if geteuid().is_root() || maps.is_empty() {
        return Ok(());
    }
    let own = geteuid().as_raw();
    if maps.len() != 1 || maps[0].count != 1 || maps[0].outside != own {
        bail!(labkit::errors::MissingFeature(format!(
            "--map {}: without root, a process may map only its own uid ({own}), one ID: {{INSIDE}}:{own}:1 \
             (larger ranges need root, or newuidmap and /etc/subuid)",
            maps.iter()
                .map(|m| format!("{}:{}:{}", m.inside, m.outside, m.count))
                .collect::<Vec<_>>()
                .join(" --map ")
        )));
    }
    Ok(())
}
