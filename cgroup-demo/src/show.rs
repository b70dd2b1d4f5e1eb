//! show (CG-11, CG-13, CG-15 layout).

use std::fs;

use crate::CONTROLLERS;
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::narrate::table;
use nix::unistd::getpid;

fn describe(controller: &str) -> &'static str {
    CONTROLLERS
        .iter()
        .find(|(c, _)| *c == controller)
        .map_or("", |(_, d)| d)
}

/// `show [--pid PID]`: the layout (v1, v2, hybrid), each hierarchy and its controllers, the
/// controllers the kernel has (`/proc/cgroups`), and the cgroups a process is in.
pub fn show(out: &mut Narrator, pid: Option<i32>) -> Result<()> {
    let layout = labkit::cgroupfs::detect()?;
    out.step(
        "demo",
        format!("read /proc/self/mountinfo: {}", layout.kind),
    );
    let mut rows = vec![vec![
        "version".to_string(),
        "mounted at".into(),
        "controllers".into(),
    ]];
    for h in &layout.hierarchies {
        rows.push(vec![
            format!("v{}", h.version),
            h.mount_point.display().to_string(),
            if h.controllers.is_empty() {
                "-".into()
            } else {
                h.controllers.join(",")
            },
        ]);
    }
    out.raw(table(&rows).trim_end());
    let cgroups = fs::read_to_string("/proc/cgroups").context("/proc/cgroups")?;
    out.step(
        "demo",
        "read /proc/cgroups: the controllers this kernel has (hierarchy 0: not on a v1 hierarchy)",
    );
    let mut rows = vec![vec![
        "controller".to_string(),
        "hierarchy".into(),
        "enabled".into(),
        "what it does".into(),
    ]];
    for line in cgroups.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 {
            rows.push(vec![
                f[0].into(),
                f[1].into(),
                f[3].into(),
                describe(f[0]).into(),
            ]);
        }
    }
    out.raw(table(&rows).trim_end());
    let target = pid.unwrap_or_else(|| getpid().as_raw());
    labkit::ns::check_pid(target)?;
    let text = fs::read_to_string(format!("/proc/{target}/cgroup"))
        .with_context(|| format!("/proc/{target}/cgroup"))?;
    out.step(
        "demo",
        format!("read /proc/{target}/cgroup: hierarchy ID, controllers, the cgroup in it"),
    );
    for line in text.lines() {
        out.say("demo", line);
    }
    Ok(())
}
