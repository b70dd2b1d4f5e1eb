//! cpu (CG-4 weights, cpuset).

use std::time::Duration;

use crate::cg;
use crate::cg::{Group, Version, group_for, unique};
use crate::rel;
use crate::workload::{cpu_seconds, end, spinner};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::narrate::table;
use labkit::procfs::Proc;
use nix::unistd::getpid;

/// The first CPU and memory node this process may use (`Cpus_allowed_list`, `Mems_allowed_list`).
fn first_cpu_and_node() -> Result<(u32, u32)> {
    let proc = Proc::host();
    let me = getpid().as_raw();
    let first = |list: String| -> Result<u32> {
        list.split([',', '-'])
            .next()
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("cannot parse CPU list {list:?}"))
    };
    Ok((
        first(proc.status_field(me, "Cpus_allowed_list")?)?,
        first(proc.status_field(me, "Mems_allowed_list")?)?,
    ))
}

/// `cpu --seconds S`: two busy loops pinned to one CPU (cpuset), in two groups weighted 2:1,
/// get CPU time near 2:1.
pub fn cpu_weights(out: &mut Narrator, seconds: f64, force: Option<Version>) -> Result<f64> {
    let (cpu, node) = first_cpu_and_node()?;
    let h = cg::for_controller("cpu", force)?;
    // Groups: v1 has cpu and cpuset on different hierarchies; v2 has one group for both.
    let (heavy, light, _keep) = match h.version {
        Version::V1 => {
            let (hs, pinned) = group_for("cpuset", Some(Version::V1))?;
            let pin = pinned.child("one-cpu")?;
            // ANCHOR: cpuset_v1
            pin.write("cpuset.cpus", &cpu.to_string())?;
            pin.write("cpuset.mems", &node.to_string())?;
            // ANCHOR_END: cpuset_v1
            out.step(
                "demo",
                format!(
                    "v1 cpuset: mkdir {}; echo {cpu} > cpuset.cpus; echo {node} > cpuset.mems",
                    rel(&hs, &pin)
                ),
            );
            let (_, top) = group_for("cpu", Some(Version::V1))?;
            let heavy = top.child("heavy")?;
            let light = top.child("light")?;
            // ANCHOR: shares
            heavy.write("cpu.shares", "2048")?;
            light.write("cpu.shares", "1024")?;
            // ANCHOR_END: shares
            out.step(
                "demo",
                format!(
                    "v1 cpu: mkdir {} {}; cpu.shares 2048 and 1024",
                    rel(&h, &heavy),
                    rel(&h, &light)
                ),
            );
            (heavy, light, vec![(pin, Some(pinned)), (top, None)])
        }
        Version::V2 => {
            let top = Group::create(&h.own, &unique("cpu"), Version::V2)?;
            top.write("cgroup.subtree_control", "+cpu +cpuset")?;
            let heavy = top.child("heavy")?;
            let light = top.child("light")?;
            for (g, w) in [(&heavy, "200"), (&light, "100")] {
                g.write("cpuset.cpus", &cpu.to_string())?;
                g.write("cpu.weight", w)?;
            }
            out.step("demo", format!("v2: mkdir {0}/heavy {0}/light; +cpu +cpuset; cpuset.cpus {cpu}; cpu.weight 200 and 100", rel(&h, &top)));
            (heavy, light, vec![(top, None)])
        }
    };
    let a = spinner(out, "heavy")?;
    let b = spinner(out, "light")?;
    for (child, group) in [(&a, &heavy), (&b, &light)] {
        let pid = child.pid().as_raw();
        if h.version == Version::V1 {
            _keep[0].0.attach(pid)?;
        }
        group.attach(pid)?;
    }
    out.step(
        "demo",
        format!(
            "moved pid {} to heavy, pid {} to light, both onto CPU {cpu}",
            a.pid(),
            b.pid()
        ),
    );
    let (mut a, mut b) = (a, b);
    a.release()?;
    b.release()?;
    let start = (
        cpu_seconds(a.pid().as_raw())?,
        cpu_seconds(b.pid().as_raw())?,
    );
    std::thread::sleep(Duration::from_secs_f64(seconds)); // the measurement window
    let used = (
        cpu_seconds(a.pid().as_raw())? - start.0,
        cpu_seconds(b.pid().as_raw())? - start.1,
    );
    let affinity = Proc::host().status_field(a.pid().as_raw(), "Cpus_allowed_list")?;
    end(a)?;
    end(b)?;
    let ratio = if used.1 > 0.0 {
        used.0 / used.1
    } else {
        f64::INFINITY
    };
    out.step(
        "demo",
        format!("after {seconds:.1} s: CPU time from /proc/PID/stat"),
    );
    out.say("demo", format!("Cpus_allowed_list of both: {affinity}"));
    out.raw(
        table(&[
            vec!["group".into(), "weight".into(), "CPU seconds".into()],
            vec![
                "heavy".into(),
                if h.version == Version::V1 {
                    "2048".into()
                } else {
                    "200".into()
                },
                format!("{:.2}", used.0),
            ],
            vec![
                "light".into(),
                if h.version == Version::V1 {
                    "1024".into()
                } else {
                    "100".into()
                },
                format!("{:.2}", used.1),
            ],
        ])
        .trim_end(),
    );
    out.say(
        "demo",
        format!("measured ratio heavy/light: {ratio:.2} (configured 2.00)"),
    );
    Ok(ratio)
}
