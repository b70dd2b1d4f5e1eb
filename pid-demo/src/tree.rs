//! tree (PID-1, PID-2).

use crate::{join, own_nspid};
use anyhow::{Result, ensure};
use labkit::child::{Reporter, clone_child};
use labkit::narrate::table;
use labkit::ns::{self};
use labkit::{Narrator, bad_input};
use nix::sched::CloneFlags;
use nix::unistd::{getpid, getppid};

/// The kernel's limit on nesting: 32 levels of PID namespaces, the initial one included
/// (`MAX_PID_NS_LEVEL`).
pub const MAX_DEPTH: u32 = 31;

/// One level of the nested demo: report this process's view, then make the next level.
// ANCHOR: level
pub(crate) fn level(report: &mut Reporter, k: u32, depth: u32) -> Result<i32> {
    report.speaker(format!("level {k}"));
    let nspid = own_nspid()?;
    // In its own namespace this process is PID 1, and its parent is in another namespace:
    // not visible from here, so getppid() returns 0.
    report.step(format!(
        "getpid() -> {}, getppid() -> {}",
        getpid(),
        getppid()
    ));
    report.say(format!("NSpid: {} (/proc/self/status)", join(&nspid)));
    report.data(format!("{k} {} {}", ns::inode(None, "pid")?, join(&nspid)));
    // ANCHOR_END: level
    // lab:begin pid-nested-level
    if k < depth {
        let mut next = clone_child(CloneFlags::CLONE_NEWPID, |r| level(r, k + 1, depth))?;
        report.step(format!(
            "clone(CLONE_NEWPID | SIGCHLD) -> child pid {}",
            next.pid()
        ));
        next.forward(report)?;
        next.wait()?;
    }
    Ok(0)
    // lab:end pid-nested-level
    // ANCHOR: level_after
}

// ANCHOR_END: level_after

/// `tree --depth N`: N nested PID namespaces, each made by the first process of the one above
/// with `clone(CLONE_NEWPID)`. Each process is PID 1 in its own namespace and has a PID in
/// every namespace above it, none in those below: the table and the tree show all of them.
pub fn tree(out: &mut Narrator, depth: u32) -> Result<()> {
    if !(1..=MAX_DEPTH).contains(&depth) {
        return Err(bad_input(format!(
            "--depth {depth}: the kernel nests at most 32 PID namespaces, the host's included, so 1 to {MAX_DEPTH}"
        )));
    }
    let host_ns = ns::inode(None, "pid")?;
    let top = clone_child(CloneFlags::CLONE_NEWPID, |r| level(r, 1, depth))?;
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {}", top.pid()),
    );
    let finished = top.finish(out, "level 1")?;
    ensure!(
        finished.exit_code() == 0,
        "level 1 ended with {:?}",
        finished.status
    );

    // Each data line: level, namespace inode, NSpid (host first).
    let levels: Vec<(u32, u64, Vec<i32>)> = finished
        .data
        .iter()
        .map(|line| {
            let mut f = line.split(' ');
            let k = f.next().unwrap_or_default().parse()?;
            let inode = f.next().unwrap_or_default().parse()?;
            let nspid = f.map(str::parse).collect::<Result<Vec<i32>, _>>()?;
            Ok((k, inode, nspid))
        })
        .collect::<Result<_>>()?;
    // What came back against what was asked: one report per level, 1 to depth, and a process
    // k levels down has k + 1 numbers in NSpid.
    let reported: Vec<u32> = levels.iter().map(|(k, _, _)| *k).collect();
    ensure!(
        reported == (1..=depth).collect::<Vec<_>>(),
        "--depth {depth}: levels {reported:?} reported, expected 1 to {depth} (each level makes \
         the next, and passes its lines up)"
    );
    for (k, _, nspid) in &levels {
        ensure!(
            nspid.len() == *k as usize + 1,
            "level {k}: NSpid has {} PID numbers ({}), expected {}: one per namespace from the \
             host's down to its own (was it made with CLONE_NEWPID?)",
            nspid.len(),
            join(nspid),
            k + 1
        );
    }

    out.raw("");
    out.raw(
        "Each process's PID as every namespace numbers it (NSpid:); - : not visible from there",
    );
    let mut header = vec!["process".to_string()];
    header.extend((1..=depth).map(|k| format!("in level {k}")));
    header.push("in the host".into());
    let mut rows = vec![header];
    for (k, _, nspid) in &levels {
        let mut row = vec![format!("level-{k} init")];
        // nspid[0] is the host's number, nspid[j] the number in level j.
        row.extend((1..=depth as usize).map(|j| nspid.get(j).map_or("-".into(), i32::to_string)));
        row.push(format!("pid {}", nspid[0]));
        rows.push(row);
    }
    out.raw(table(&rows).trim_end());
    out.raw("");
    out.raw(format!("host  pid:[{host_ns}]"));
    for (k, inode, nspid) in &levels {
        let indent = "    ".repeat(*k as usize - 1);
        let seen: Vec<String> = (1..*k as usize)
            .rev()
            .map(|j| format!("level {j}: {}", nspid[j]))
            .collect();
        let above = if seen.is_empty() {
            String::new()
        } else {
            format!(", {}", seen.join(", "))
        };
        out.raw(format!(
            "{indent}└── level {k}  pid:[{inode}]  its PID 1 is host pid {}{above}",
            nspid[0]
        ));
    }
    Ok(())
}
