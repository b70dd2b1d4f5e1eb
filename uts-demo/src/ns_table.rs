//! ns.

use anyhow::Result;
use labkit::Narrator;
use labkit::narrate::table;
use labkit::ns::{self, NsLink};
use labkit::procfs::Proc;
use nix::unistd::getpid;

/// `ns [PID...]`: every namespace link of one or more processes, side by side, marking the
/// namespaces they share and those that differ (like `lsns` restricted to these PIDs).
pub fn ns_table(out: &mut Narrator, pids: &[i32]) -> Result<()> {
    let pids: Vec<i32> = if pids.is_empty() {
        vec![getpid().as_raw()]
    } else {
        pids.to_vec()
    };
    let mut columns: Vec<Vec<NsLink>> = Vec::new();
    for &pid in &pids {
        // ANCHOR: read_ns_links
        // Each entry of /proc/PID/ns is a symlink whose target is "type:[inode]".
        let links = ns::list(Some(pid))?;
        // ANCHOR_END: read_ns_links
        columns.push(links);
    }
    let list = pids
        .iter()
        .map(|p| format!("/proc/{p}/ns"))
        .collect::<Vec<_>>()
        .join(", ");
    out.step("host", format!("readlink() every link in {list}"));
    // Columns are headed A, B, ... and a legend says which PID each is: the PIDs change from run
    // to run, and the table's alignment must not change with them.
    let label = |i: usize| char::from(b'A' + (i % 26) as u8).to_string();
    let legend: Vec<String> = pids
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            format!(
                "{} = pid {p} ({})",
                label(i),
                Proc::host().comm(p).unwrap_or_else(|_| "?".into())
            )
        })
        .collect();
    out.say("host", legend.join(", "));
    let mut header = vec!["LINK".to_string()];
    header.extend((0..pids.len()).map(label));
    if pids.len() > 1 {
        header.push(String::new());
    }
    let mut rows = vec![header];
    let names = &columns[0];
    let (mut shared, mut differ) = (Vec::new(), Vec::new());
    for link in names {
        let mut row = vec![link.name.clone()];
        let inodes: Vec<Option<u64>> = columns
            .iter()
            .map(|c| c.iter().find(|l| l.name == link.name).map(|l| l.inode))
            .collect();
        row.extend(
            inodes
                .iter()
                .map(|i| i.map_or("-".to_string(), |i| format!("{}:[{i}]", link.kind))),
        );
        if pids.len() > 1 {
            if inodes.iter().all(|i| *i == inodes[0]) {
                row.push("shared".into());
                shared.push(link.name.clone());
            } else {
                row.push("DIFFERENT".into());
                differ.push(link.name.clone());
            }
        }
        rows.push(row);
    }
    out.raw(table(&rows).trim_end());
    if pids.len() > 1 {
        if differ.is_empty() {
            out.say(
                "host",
                "every link has the same inode: these processes share all their namespaces",
            );
        } else {
            out.say(
                "host",
                format!(
                    "different inodes, so different namespaces: {}",
                    differ.join(", ")
                ),
            );
        }
    }
    Ok(())
}
