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
    Ok(())
}
