//! cgroups: groups of processes whose use of resources the kernel limits, prioritises, counts
//! and controls. Version 1 has many hierarchies, one or more controllers each; version 2 has a
//! single hierarchy. Every lesson says which it uses, makes its groups under this process's own
//! cgroup (see [`cg`]), puts only processes it started in them, and removes them afterwards.
#![forbid(unsafe_code)]

pub mod cg;

use anyhow::Result;
use cg::{Group, Hierarchy};
use labkit::Narrator;
use labkit::child::{Child, Reporter, fork_child};
pub use labkit::parse_size;

/// What each controller does, in one line (for `show`, CG-13).
pub const CONTROLLERS: &[(&str, &str)] = &[
    (
        "cpu",
        "share of CPU time (shares/weight) and hard caps (quota/max)",
    ),
    ("cpuacct", "v1: counts the CPU time a group uses"),
    ("cpuset", "which CPUs and memory nodes a group may run on"),
    (
        "memory",
        "limits and counts memory; the OOM killer acts per group",
    ),
    ("io", "v2: weights and limits for block I/O"),
    ("blkio", "v1: weights and limits for block I/O"),
    ("pids", "limits the number of processes (a fork bomb stops)"),
    (
        "devices",
        "v1: which device nodes a group may open (v2: an eBPF program)",
    ),
    (
        "freezer",
        "v1: stops and resumes every task of a group (v2: cgroup.freeze)",
    ),
    (
        "net_cls",
        "v1: tags packets with a class ID for traffic control",
    ),
    (
        "net_prio",
        "v1: sets the priority of a group's traffic per interface",
    ),
    ("perf_event", "lets perf monitor the tasks of a group"),
    ("hugetlb", "limits huge-page memory"),
    ("rdma", "limits RDMA resources"),
    (
        "misc",
        "limits miscellaneous scalar resources (such as encrypted VM slots)",
    ),
];

/// A child that waits until it has been moved, then runs `work`.
fn waiting_child<F>(out: &mut Narrator, name: &str, work: F) -> Result<Child>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let mut child = fork_child(|c| {
        c.ready_and_wait()?;
        work(c)
    })?;
    out.step(
        "demo",
        format!("fork() -> {name} pid {}, waiting on a pipe", child.pid()),
    );
    child.relay_until_ready(out, name)?;
    Ok(child)
}

/// The short cgroup path of a group, relative to its hierarchy's mount.
fn rel(h: &Hierarchy, g: &Group) -> String {
    format!(
        "/{}",
        g.path.strip_prefix(&h.mount).unwrap_or(&g.path).display()
    )
}

mod show;
pub use show::show;
mod basics;
pub use basics::basics;
mod cgroup_ns;
pub use cgroup_ns::cgroup_ns;
mod workload;
pub use workload::cpu_seconds;
mod memory;
pub use memory::memory;
mod pids;
pub use pids::pids;
mod cpu;
pub use cpu::cpu_weights;
mod quota;
pub use quota::quota;
mod accounting;
pub use accounting::accounting;
mod freeze;
pub use freeze::freeze;
mod devices;
pub use devices::devices;
mod rules;
pub use rules::rules;
mod v2;
pub use v2::v2_rules;
