//! freeze (CG-6).

use std::time::Duration;

use crate::cg;
use crate::cg::{Group, Version, unique};
use crate::memory::status_text;
use crate::rel;
use crate::workload::{cpu_seconds, end, spinner};
use anyhow::Result;
use labkit::Narrator;
use labkit::procfs::Proc;

/// `freeze`: freeze a group (v1 freezer, v2 cgroup.freeze), see its process make no progress,
/// thaw it; on v2 end it with cgroup.kill.
pub fn freeze(out: &mut Narrator, force: Option<Version>) -> Result<()> {
    let h = match force {
        Some(Version::V2) => cg::unified()?,
        Some(Version::V1) => cg::for_controller("freezer", Some(Version::V1))?,
        None => cg::for_controller("freezer", Some(Version::V1)).or_else(|_| cg::unified())?,
    };
    let top = Group::create(&h.own, &unique("freeze"), h.version)?;
    let leaf = top.child("leaf")?;
    out.step("demo", format!("{}: mkdir {}", h.version, rel(&h, &leaf)));
    let mut spin = spinner(out, "loop")?;
    let pid = spin.pid().as_raw();
    leaf.attach(pid)?;
    spin.release()?;
    let proc = Proc::host();
    let window = Duration::from_millis(300);
    let progress = || -> Result<f64> {
        let t0 = cpu_seconds(pid)?;
        std::thread::sleep(window); // the measurement window
        Ok(cpu_seconds(pid)? - t0)
    };
    out.step(
        "demo",
        format!(
            "running: {:.2} CPU seconds in {:.1} s",
            progress()?,
            window.as_secs_f64()
        ),
    );
    // ANCHOR: freeze
    match h.version {
        Version::V1 => leaf.write("freezer.state", "FROZEN")?,
        Version::V2 => leaf.write("cgroup.freeze", "1")?,
    }
    // ANCHOR_END: freeze
    // Freezing takes effect task by task: wait for the group to report it done.
    // v2 announces it (cgroup.events is modified when `frozen` changes: inotify); v1's
    // freezer.state goes from FREEZING to FROZEN with no event, so back off between reads.
    let limit = Duration::from_secs(10);
    match h.version {
        Version::V1 => {
            labkit::wait::until(limit, || Ok(leaf.read("freezer.state")? == "FROZEN"))?;
        }
        Version::V2 => {
            labkit::wait::on_modify(&leaf.file("cgroup.events"), limit, || {
                Ok((leaf.key("cgroup.events", "frozen")? == 1).then_some(()))
            })?;
        }
    }
    out.step(
        "demo",
        match h.version {
            Version::V1 => format!(
                "echo FROZEN > freezer.state; freezer.state -> {}",
                leaf.read("freezer.state")?
            ),
            Version::V2 => format!(
                "echo 1 > cgroup.freeze; cgroup.events -> frozen {}",
                leaf.key("cgroup.events", "frozen")?
            ),
        },
    );
    let state = proc.status_field(pid, "State")?;
    out.say(
        "demo",
        format!(
            "frozen: {:.2} CPU seconds in {:.1} s; /proc/{pid}/status State: {state}",
            progress()?,
            window.as_secs_f64()
        ),
    );
    match h.version {
        Version::V1 => leaf.write("freezer.state", "THAWED")?,
        Version::V2 => leaf.write("cgroup.freeze", "0")?,
    }
    out.step(
        "demo",
        format!(
            "{}; thawed: {:.2} CPU seconds in {:.1} s",
            if h.version == Version::V1 {
                "echo THAWED > freezer.state"
            } else {
                "echo 0 > cgroup.freeze"
            },
            progress()?,
            window.as_secs_f64()
        ),
    );
    if h.version == Version::V2 {
        // ANCHOR: kill
        leaf.write("cgroup.kill", "1")?;
        // ANCHOR_END: kill
        let status = spin.wait()?;
        out.step(
            "demo",
            format!(
                "echo 1 > cgroup.kill; waitpid({pid}) -> {}",
                status_text(status)
            ),
        );
    } else {
        end(spin)?;
    }
    Ok(())
}
