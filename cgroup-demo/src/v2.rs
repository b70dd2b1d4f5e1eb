//! v2 (CG-15).

use crate::basics::{errno_text, own_rel};
use crate::cg;
use crate::cg::{Group, Version, unique};
use crate::workload::end;
use crate::{rel, waiting_child};
use anyhow::Result;
use labkit::Narrator;

/// `v2`: the unified hierarchy's rules: controllers reach a group only through its parent's
/// `cgroup.subtree_control`, and a group with processes cannot pass controllers down (EBUSY).
pub fn v2_rules(out: &mut Narrator) -> Result<()> {
    let h = cg::unified()?;
    out.step(
        "demo",
        format!(
            "v2 at {}; this process's cgroup {} offers: {}",
            h.mount.display(),
            own_rel(&h),
            if h.controllers.is_empty() {
                "(none)".into()
            } else {
                h.controllers.join(" ")
            }
        ),
    );
    let top = Group::create(&h.own, &unique("v2"), Version::V2)?;
    let available = top.read("cgroup.controllers")?;
    out.step(
        "demo",
        format!(
            "mkdir {}; cgroup.controllers -> {}",
            rel(&h, &top),
            if available.is_empty() {
                "(none: the parent's subtree_control passes none down)"
            } else {
                &available
            }
        ),
    );
    let child = waiting_child(out, "child", |_| {
        nix::unistd::pause();
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    top.attach(pid)?;
    out.step(
        "demo",
        format!("echo {pid} > {}/cgroup.procs", rel(&h, &top)),
    );
    // A domain controller: threaded-capable ones (cpu, cpuset, pids, perf_event) may be enabled
    // in a threaded subtree next to processes, so they would not show the rule.
    let domain = ["memory", "io", "hugetlb", "misc", "rdma"]
        .into_iter()
        .find(|c| available.split_whitespace().any(|a| a == *c));
    match domain {
        Some(controller) => {
            // ANCHOR: no_internal
            let refused = top.write("cgroup.subtree_control", &format!("+{controller}"));
            // ANCHOR_END: no_internal
            out.step("demo", format!("echo +{controller} > cgroup.subtree_control -> {}  (no internal processes: a group passes controllers down only while it has no processes of its own)", errno_text(&refused)));
            let leaf = top.child("leaf")?;
            leaf.attach(pid)?;
            let allowed = top.write("cgroup.subtree_control", &format!("+{controller}"));
            out.step("demo", format!("mkdir leaf; move pid {pid} there; echo +{controller} > cgroup.subtree_control -> {}", errno_text(&allowed)));
            out.say("demo", format!("leaf/cgroup.controllers -> {}", leaf.read("cgroup.controllers")?));
        }
        None => out.say("demo", "no controller to pass down from here: the rule needs one (run as a process whose cgroup delegates controllers, e.g. in `cargo xtask vm-test`)"),
    }
    end(child)?;
    if nix::unistd::geteuid().is_root() {
        delegation(out, &h, &top)?;
    } else {
        out.say(
            "demo",
            "delegation: handing a subtree over takes its owner (root here); run as root to see it",
        );
    }
    Ok(())
}

/// Delegation: root hands a subtree to an unprivileged user by giving it the directory and
/// three files, as systemd's `Delegate=yes` does; the user then makes groups and moves its own
/// processes inside it, and nowhere else, and cannot change the delegated group's own limits.
fn delegation(out: &mut Narrator, h: &cg::Hierarchy, top: &Group) -> Result<()> {
    use nix::unistd::{Gid, Uid, chown};
    let nobody = labkit::doctor::NOBODY;
    let deleg = top.child("deleg")?;
    let shell = deleg.child("shell")?;
    let other = top.child("other")?;
    // ANCHOR: delegate
    for f in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
        "shell",
        "shell/cgroup.procs",
    ] {
        chown(
            &deleg.path.join(f),
            Some(Uid::from_raw(nobody)),
            Some(Gid::from_raw(nobody)),
        )?;
    }
    // ANCHOR_END: delegate
    out.step(
        "demo",
        format!(
            "mkdir {d} {d}/shell {o}; chown {nobody}: {d}, its cgroup.procs, cgroup.subtree_control, cgroup.threads, and shell  (what systemd's Delegate=yes hands over)",
            d = rel(h, &deleg),
            o = rel(h, &other)
        ),
    );
    let (d, o) = (deleg.path.clone(), other.path.clone());
    let (dr, or) = (rel(h, &deleg), rel(h, &other));
    let child = waiting_child(out, "user", move |c| {
        c.speaker("user");
        let id = Gid::from_raw(nobody);
        nix::unistd::setgroups(&[])?;
        nix::unistd::setgid(id)?;
        nix::unistd::setuid(Uid::from_raw(nobody))?;
        let me = nix::unistd::getpid();
        c.step(format!(
            "setuid({nobody}): an unprivileged process in {dr}/shell"
        ));
        // ANCHOR: delegated_moves
        let made = std::fs::create_dir(d.join("work"));
        let moved = std::fs::write(d.join("work/cgroup.procs"), me.to_string());
        let escaped = std::fs::write(o.join("cgroup.procs"), me.to_string());
        let own_limit = std::fs::write(d.join("cgroup.max.descendants"), "1000");
        let sub_limit = std::fs::write(d.join("work/cgroup.max.descendants"), "5");
        // ANCHOR_END: delegated_moves
        let e = |r: &std::io::Result<()>| match r {
            Ok(()) => "0".to_string(),
            Err(e) => e.raw_os_error().map_or_else(
                || e.to_string(),
                |n| nix::errno::Errno::from_raw(n).to_string(),
            ),
        };
        c.step(format!(
            "mkdir {dr}/work -> {}  (the directory is its own)",
            e(&made)
        ));
        c.step(format!("echo {me} > {dr}/work/cgroup.procs -> {}  (it may write the destination's cgroup.procs and the common ancestor's, {dr})", e(&moved)));
        c.step(format!(
            "echo {me} > {or}/cgroup.procs -> {}  (outside: neither file is its)",
            e(&escaped)
        ));
        c.step(format!("echo 1000 > {dr}/cgroup.max.descendants -> {}  (the delegated group's own limits stay its owner's)", e(&own_limit)));
        c.step(format!(
            "echo 5 > {dr}/work/cgroup.max.descendants -> {}  (a group it made is all its)",
            e(&sub_limit)
        ));
        Ok(0)
    })?;
    shell.attach(child.pid().as_raw())?;
    out.step(
        "demo",
        format!("echo {} > {}/cgroup.procs", child.pid(), rel(h, &shell)),
    );
    let mut child = child;
    child.release()?;
    child.finish(out, "user")?;
    drop((shell, other, deleg));
    Ok(())
}
