//! time (TIME-1).

use anyhow::{Context, Result, ensure};
use labkit::Narrator;
use labkit::child::fork_child;
use labkit::errors::MissingFeature;
use labkit::ns::{self};
use nix::sched::unshare;
use nix::time::{ClockId, clock_gettime};

fn seconds(clock: ClockId) -> Result<f64> {
    let t = clock_gettime(clock).context("clock_gettime()")?;
    Ok(t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}

/// `time --offset SECONDS`: `unshare(CLONE_NEWTIME)` moves only later children into the new
/// time namespace, whose CLOCK_MONOTONIC and CLOCK_BOOTTIME are offset by what was written to
/// `/proc/self/timens_offsets`; CLOCK_REALTIME is the same everywhere.
pub fn time_ns(out: &mut Narrator, offset: i64) -> Result<()> {
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        return Err(anyhow::Error::new(MissingFeature(
            "this kernel has no time namespaces (Linux 5.6+, CONFIG_TIME_NS)".into(),
        )));
    }
    let time_before = ns::inode(None, "time")?;
    // ANCHOR: timens
    unshare(labkit::ns::NsKind::Time.flag()).context("unshare(CLONE_NEWTIME)")?;
    // Offsets can be set only while no process is in the new namespace yet.
    let offsets = format!("monotonic {offset} 0\nboottime {offset} 0\n");
    std::fs::write("/proc/self/timens_offsets", &offsets)
        .context("write(/proc/self/timens_offsets)")?;
    // ANCHOR_END: timens
    out.step("parent", "unshare(CLONE_NEWTIME)");
    out.say(
        "parent",
        format!(
            "time -> time:[{}] (unchanged), time_for_children -> time:[{}] (new)",
            ns::inode(None, "time")?,
            ns::inode(None, "time_for_children")?
        ),
    );
    ensure!(
        ns::inode(None, "time")? == time_before,
        "the caller itself moved"
    );
    out.step(
        "parent",
        format!("write(/proc/self/timens_offsets, \"monotonic {offset} 0\\nboottime {offset} 0\")"),
    );
    let clocks = [
        ClockId::CLOCK_MONOTONIC,
        ClockId::CLOCK_BOOTTIME,
        ClockId::CLOCK_REALTIME,
    ];
    let names = ["CLOCK_MONOTONIC", "CLOCK_BOOTTIME", "CLOCK_REALTIME"];
    let parent: Vec<f64> = clocks.iter().map(|c| seconds(*c)).collect::<Result<_>>()?;
    let child = fork_child(|c| {
        for clock in clocks {
            c.data(seconds(clock)?);
        }
        c.step(format!(
            "/proc/self/ns/time -> time:[{}]",
            ns::inode(None, "time")?
        ));
        let offsets = std::fs::read_to_string("/proc/self/timens_offsets")?;
        let offsets: Vec<String> = offsets
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        c.say(format!("/proc/self/timens_offsets: {}", offsets.join(", ")));
        Ok(0)
    })?;
    out.step("parent", format!("fork() -> child pid {}", child.pid()));
    let done = child.finish(out, "child")?;
    for (i, name) in names.iter().enumerate() {
        let c: f64 = done.data[i].parse()?;
        // The child read its clocks a moment after the parent: round that moment away.
        let delta = (c - parent[i]).round() as i64;
        out.say(
            "parent",
            format!(
                "{name:<15} child - parent = {delta:+} s  (parent {:.3} s, child {c:.3} s)",
                parent[i]
            ),
        );
    }
    Ok(())
}
