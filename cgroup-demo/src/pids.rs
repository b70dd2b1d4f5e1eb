//! pids (CG-3).

use crate::cg::{Version, group_for};
use crate::{rel, waiting_child};
use anyhow::Result;
use labkit::child::fork_child;
use labkit::{Narrator, bad_input};

/// `pids --max N`: a fork bomb in a group with `pids.max` N stops at N processes.
pub fn pids(out: &mut Narrator, max: u32, force: Option<Version>) -> Result<()> {
    if !(2..=200).contains(&max) {
        return Err(bad_input(format!("--max {max}: choose 2 to 200")));
    }
    let (h, top) = group_for("pids", force)?;
    let leaf = top.child("leaf")?;
    // ANCHOR: pids_max
    leaf.write("pids.max", &max.to_string())?;
    // ANCHOR_END: pids_max
    out.step(
        "demo",
        format!(
            "{}: mkdir {}; echo {max} > pids.max",
            h.version,
            rel(&h, &leaf)
        ),
    );
    let attempts = max * 3;
    let child = waiting_child(out, "bomb", move |c| {
        c.speaker("bomb");
        let mut kids = Vec::new();
        let mut refused = Vec::new();
        for _ in 0..attempts {
            match fork_child(|_| {
                nix::unistd::pause();
                Ok(0)
            }) {
                Ok(k) => kids.push(k),
                Err(e) => refused.push(
                    labkit::errors::errno_of(&e)
                        .map_or_else(|| format!("{e:#}"), |e| e.to_string()),
                ),
            }
        }
        refused.dedup();
        c.step(format!(
            "fork() x{attempts}: {} succeeded, {} failed with {}",
            kids.len(),
            attempts as usize - kids.len(),
            refused.join(", ")
        ));
        c.data(kids.len());
        c.ready_and_wait()?;
        Ok(0) // dropping `kids` kills and reaps them
    })?;
    let pid = child.pid().as_raw();
    leaf.attach(pid)?;
    out.step(
        "demo",
        format!("echo {pid} > {}/cgroup.procs", rel(&h, &leaf)),
    );
    let mut child = child;
    child.release()?;
    child.relay_until_ready(out, "bomb")?;
    out.step(
        "demo",
        format!(
            "cat pids.current -> {}  (the bomb and its children)",
            leaf.read("pids.current")?
        ),
    );
    if leaf.has("pids.events") {
        out.say(
            "demo",
            format!(
                "pids.events: max {} (forks refused by the limit)",
                leaf.key("pids.events", "max")?
            ),
        );
    }
    child.release()?;
    child.finish(out, "bomb")?;
    out.step(
        "demo",
        format!(
            "the bomb exited: pids.current -> {}",
            leaf.read("pids.current")?
        ),
    );
    Ok(())
}
