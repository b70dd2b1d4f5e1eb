//! accounting (CG-5).

use std::time::{Duration, Instant};

use crate::cg::{Version, group_for};
use crate::{rel, waiting_child};
use anyhow::Result;
use labkit::Narrator;
use labkit::procfs::Proc;
use nix::unistd::getpid;

/// `accounting`: a child uses some CPU and memory; the group's files report about what the
/// child measured itself.
pub fn accounting(out: &mut Narrator, force: Option<Version>) -> Result<()> {
    let (hm, mtop) = group_for("memory", force)?;
    let mleaf = mtop.child("leaf")?;
    // CPU time: v1 cpuacct.usage (cpuacct hierarchy); v2 cpu.stat usage_usec, in every group.
    let (hc, ctop, cleaf) = if hm.version == Version::V2 {
        (hm.clone(), None, None)
    } else {
        let (hc, ctop) = group_for("cpuacct", Some(Version::V1))?;
        let leaf = ctop.child("leaf")?;
        (hc, Some(ctop), Some(leaf))
    };
    let cpu_group = cleaf.as_ref().unwrap_or(&mleaf);
    out.step(
        "demo",
        format!(
            "memory: {} ({}); CPU time: {} ({})",
            rel(&hm, &mleaf),
            hm.version,
            rel(&hc, cpu_group),
            hc.version
        ),
    );
    let child = waiting_child(out, "child", |c| {
        c.speaker("child");
        let start = Instant::now();
        let burn = Duration::from_millis(400);
        while cpu_now()? < burn.as_secs_f64() && start.elapsed() < Duration::from_secs(10) {
            std::hint::black_box(0u64);
        }
        let held = vec![7u8; 48 << 20];
        std::hint::black_box(&held);
        let rss = Proc::host().status_field(getpid().as_raw(), "VmRSS")?;
        c.step(format!(
            "own measure: getrusage() CPU {:.3} s; VmRSS {rss}",
            cpu_now()?
        ));
        c.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    mleaf.attach(pid)?;
    if let Some(l) = &cleaf {
        l.attach(pid)?;
    }
    let mut child = child;
    child.release()?;
    child.relay_until_ready(out, "child")?;
    // ANCHOR: accounting
    let cpu = match hc.version {
        Version::V1 => cpu_group.read_u64("cpuacct.usage")? as f64 / 1e9,
        Version::V2 => cpu_group.key("cpu.stat", "usage_usec")? as f64 / 1e6,
    };
    let memory = match hm.version {
        Version::V1 => mleaf.read_u64("memory.usage_in_bytes")?,
        Version::V2 => mleaf.read_u64("memory.current")?,
    };
    // ANCHOR_END: accounting
    out.step(
        "demo",
        format!(
            "the group's files: CPU {cpu:.3} s ({}); memory {} MiB ({})",
            if hc.version == Version::V1 {
                "cpuacct.usage"
            } else {
                "cpu.stat usage_usec"
            },
            memory >> 20,
            if hm.version == Version::V1 {
                "memory.usage_in_bytes"
            } else {
                "memory.current"
            }
        ),
    );
    child.release()?;
    child.finish(out, "child")?;
    drop((cleaf, ctop));
    Ok(())
}

/// This process's CPU time (user + system), from getrusage(2).
fn cpu_now() -> Result<f64> {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    Ok(t(u.user_time()) + t(u.system_time()))
}
