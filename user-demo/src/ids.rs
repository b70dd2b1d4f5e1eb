//! ids (USER-1, USER-2).

use std::fs;

use crate::{IdRange, NOBODY, default_ranges, write_maps};
use anyhow::{Context, Result};
use labkit::child::clone_child;
use labkit::procfs::Proc;
use labkit::{Narrator, bad_input};
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid, getgid, getgroups, getuid, setresgid, setresuid};

fn id_line() -> Result<String> {
    let groups: Vec<String> = getgroups()?.iter().map(|g| g.to_string()).collect();
    Ok(format!(
        "uid={} gid={} groups={}",
        getuid(),
        getgid(),
        if groups.is_empty() {
            "(none)".into()
        } else {
            groups.join(",")
        }
    ))
}

/// `/proc/self/uid_map` (or gid_map) with its columns squeezed, lines joined with "; ".
fn read_map(file: &str) -> Result<String> {
    let text = fs::read_to_string(format!("/proc/self/{file}"))
        .with_context(|| format!("/proc/self/{file}"))?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Ok(if lines.is_empty() {
        "(empty)".into()
    } else {
        lines.join("; ")
    })
}

/// Check a set of ranges as the kernel would (user_namespaces(7)): at most 340 lines, and no
/// two ranges may overlap, inside or outside.
pub fn check_ranges(ranges: &[IdRange]) -> Result<()> {
    if ranges.len() > 340 {
        return Err(bad_input(format!(
            "{} ranges: the kernel takes at most 340",
            ranges.len()
        )));
    }
    let overlap = |a: u32, b: u32, n: u32, m: u32| {
        u64::from(a) < u64::from(b) + u64::from(m) && u64::from(b) < u64::from(a) + u64::from(n)
    };
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            if overlap(a.inside, b.inside, a.count, b.count) {
                return Err(bad_input(format!(
                    "--map {a} and {b} overlap inside (IDs {}..)",
                    a.inside.max(b.inside)
                )));
            }
            if overlap(a.outside, b.outside, a.count, b.count) {
                return Err(bad_input(format!(
                    "--map {a} and {b} overlap outside (IDs {}..)",
                    a.outside.max(b.outside)
                )));
            }
        }
    }
    Ok(())
}

/// `ids [--map I:O:C]...`: before its maps are written, a process in a new user namespace is
/// nobody (65534); after, it is 0 inside while it stays who it was outside.
pub fn ids(out: &mut Narrator, maps: &[IdRange]) -> Result<()> {
    check_ranges(maps)?;
    let (uids, gids) = if maps.is_empty() {
        default_ranges()
    } else {
        (maps.to_vec(), maps.to_vec())
    };
    let root_inside = uids.iter().any(|r| r.inside == 0);
    let mut child = clone_child(CloneFlags::CLONE_NEWUSER, |c| {
        c.speaker("child");
        // ANCHOR: before_maps
        c.step(format!(
            "getuid() -> {}, getgid() -> {}: no map yet, so the overflow IDs",
            getuid(),
            getgid()
        ));
        // ANCHOR_END: before_maps
        c.say(format!("/proc/self/uid_map: {}", read_map("uid_map")?));
        c.ready_and_wait()?;
        c.step(format!(
            "getuid() -> {}, getgid() -> {}",
            getuid(),
            getgid()
        ));
        if getuid().as_raw() == NOBODY && root_inside {
            // Our own ID is not in the map (it shows as the overflow ID): take the mapped root's.
            setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
                .context("setresgid(0, 0, 0)")?;
            setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
                .context("setresuid(0, 0, 0)")?;
            c.step(format!(
                "our own IDs are not in the map; setresuid(0, 0, 0) -> getuid() {}",
                getuid()
            ));
        }
        c.say(format!("id: {}", id_line()?));
        c.say(format!("/proc/self/uid_map: {}", read_map("uid_map")?));
        c.say(format!("/proc/self/gid_map: {}", read_map("gid_map")?));
        c.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    out.step(
        "parent",
        format!("clone(CLONE_NEWUSER | SIGCHLD) -> child pid {pid}"),
    );
    child.relay_until_ready(out, "child")?;
    write_maps(out, pid, &uids, &gids)?;
    child.release()?;
    child.relay_until_ready(out, "child")?;
    let proc = Proc::host();
    out.step(
        "parent",
        format!(
            "read /proc/{pid}/status from outside: Uid: {}, Gid: {}",
            proc.status_field(pid, "Uid")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            proc.status_field(pid, "Gid")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    out.say(
        "parent",
        "the kernel shows IDs as the reader's user namespace numbers them",
    );
    child.release()?;
    child.finish(out, "child")?;
    Ok(())
}
