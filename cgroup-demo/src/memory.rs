//! memory (CG-3).

use crate::cg::{Version, group_for};
use crate::{rel, waiting_child};
use anyhow::{Result, ensure};
use labkit::{Narrator, bad_input};
use nix::sys::signal::Signal;

/// `memory --limit SIZE`: a child allocates past the group's memory limit and is OOM-killed;
/// the group's files count it.
pub fn memory(out: &mut Narrator, limit: u64, force: Option<Version>) -> Result<()> {
    if limit < 8 << 20 {
        return Err(bad_input(
            "--limit below 8M would not let the process start its allocations; use 8M or more",
        ));
    }
    let (h, top) = group_for("memory", force)?;
    let leaf = top.child("leaf")?;
    out.step("demo", format!("{}: mkdir {}", h.version, rel(&h, &leaf)));
    // lab:begin cg-memory-limit
    match h.version {
        Version::V1 => {
            leaf.write("memory.limit_in_bytes", &limit.to_string())?;
            // With swap, the limit alone would push pages to swap: cap memory+swap too.
            if leaf.has("memory.memsw.limit_in_bytes") {
                leaf.write("memory.memsw.limit_in_bytes", &limit.to_string())?;
            }
        }
        Version::V2 => {
            leaf.write("memory.max", &limit.to_string())?;
            if leaf.has("memory.swap.max") {
                leaf.write("memory.swap.max", "0")?;
            }
        }
    }
    // lab:end cg-memory-limit
    let limit_file = if h.version == Version::V1 {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    out.step(
        "demo",
        format!("echo {limit} > {limit_file}  ({} MiB)", limit >> 20),
    );
    let mib = limit >> 20;
    let child = waiting_child(out, "child", move |c| {
        c.speaker("child");
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for step in 1..=(mib * 4 / 8) {
            // 8 MiB at a time, every page written, so the memory is really used.
            kept.push(vec![1u8; 8 << 20]);
            c.say(format!("allocated and touched {} MiB", step * 8));
        }
        c.step("never killed?!");
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    leaf.attach(pid)?;
    out.step(
        "demo",
        format!("echo {pid} > {}/cgroup.procs", rel(&h, &leaf)),
    );
    let mut child = child;
    child.release()?;
    let done = child.finish(out, "child")?;
    out.step(
        "demo",
        format!("waitpid({pid}) -> {}", status_text(done.status)),
    );
    match h.version {
        Version::V1 => {
            out.say(
                "demo",
                format!(
                    "memory.failcnt: {} (charges that hit memory.limit_in_bytes)",
                    leaf.read("memory.failcnt")?
                ),
            );
            if leaf.has("memory.memsw.failcnt") {
                // With memory+swap limited too, the kernel tries that counter first: the failures land here.
                out.say(
                    "demo",
                    format!(
                        "memory.memsw.failcnt: {} (charges that hit memory.memsw.limit_in_bytes)",
                        leaf.read("memory.memsw.failcnt")?
                    ),
                );
            }
            out.say(
                "demo",
                format!(
                    "memory.max_usage_in_bytes: {} MiB",
                    leaf.read_u64("memory.max_usage_in_bytes")? >> 20
                ),
            );
            out.say(
                "demo",
                format!(
                    "memory.oom_control: oom_kill {}",
                    leaf.key("memory.oom_control", "oom_kill").unwrap_or(0)
                ),
            );
        }
        Version::V2 => {
            out.say(
                "demo",
                format!(
                    "memory.events: max {}, oom {}, oom_kill {}",
                    leaf.key("memory.events", "max")?,
                    leaf.key("memory.events", "oom")?,
                    leaf.key("memory.events", "oom_kill")?
                ),
            );
            if leaf.has("memory.peak") {
                out.say(
                    "demo",
                    format!("memory.peak: {} MiB", leaf.read_u64("memory.peak")? >> 20),
                );
            }
        }
    }
    ensure!(
        matches!(
            done.status,
            nix::sys::wait::WaitStatus::Signaled(_, Signal::SIGKILL, _)
        ),
        "the child was not OOM-killed: {:?}",
        done.status
    );
    Ok(())
}

pub(crate) fn status_text(status: nix::sys::wait::WaitStatus) -> String {
    match status {
        nix::sys::wait::WaitStatus::Exited(_, code) => format!("exited with {code}"),
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}
