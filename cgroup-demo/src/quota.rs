//! quota (CG-4).

use std::time::{Duration, Instant};

use crate::cg::{Version, group_for};
use crate::rel;
use crate::workload::{cpu_seconds, end, spinner};
use anyhow::Result;
use labkit::{Narrator, bad_input};

/// `quota --percent P`: a busy loop in a group allowed P% of one CPU gets about that much;
/// `cpu.stat` counts the periods it was throttled.
pub fn quota(
    out: &mut Narrator,
    percent: u32,
    seconds: f64,
    force: Option<Version>,
) -> Result<f64> {
    if !(5..=95).contains(&percent) {
        return Err(bad_input(format!("--percent {percent}: choose 5 to 95")));
    }
    let (h, top) = group_for("cpu", force)?;
    let leaf = top.child("capped")?;
    let period = 100_000u32;
    let quota = period / 100 * percent;
    // ANCHOR: quota
    match h.version {
        Version::V1 => {
            leaf.write("cpu.cfs_period_us", &period.to_string())?;
            leaf.write("cpu.cfs_quota_us", &quota.to_string())?;
        }
        Version::V2 => leaf.write("cpu.max", &format!("{quota} {period}"))?,
    }
    // ANCHOR_END: quota
    out.step(
        "demo",
        match h.version {
            Version::V1 => format!(
                "v1: {}: cpu.cfs_period_us {period}, cpu.cfs_quota_us {quota}",
                rel(&h, &leaf)
            ),
            Version::V2 => format!("v2: {}: cpu.max \"{quota} {period}\"", rel(&h, &leaf)),
        },
    );
    let mut spin = spinner(out, "loop")?;
    leaf.attach(spin.pid().as_raw())?;
    spin.release()?;
    let wall = Instant::now();
    let start = cpu_seconds(spin.pid().as_raw())?;
    std::thread::sleep(Duration::from_secs_f64(seconds)); // the measurement window
    let used = cpu_seconds(spin.pid().as_raw())? - start;
    let fraction = used / wall.elapsed().as_secs_f64();
    end(spin)?;
    out.step("demo", format!("after {seconds:.1} s: the loop used {used:.2} CPU seconds: {:.0}% of one CPU (configured {percent}%)", fraction * 100.0));
    out.say(
        "demo",
        format!(
            "cpu.stat: nr_periods {}, nr_throttled {}",
            leaf.key("cpu.stat", "nr_periods")?,
            leaf.key("cpu.stat", "nr_throttled")?
        ),
    );
    Ok(fraction)
}
