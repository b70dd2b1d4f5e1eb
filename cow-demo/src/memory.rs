//! memory (COW-5).

use std::fs;

use crate::human;
use anyhow::{Context, Result};
use labkit::child::fork_child;
use labkit::{Narrator, bad_input};

/// Rss, Shared_Dirty and Private_Dirty of this process, in KiB, from `/proc/self/smaps_rollup`.
/// KiB to whole MiB, rounded (the few pages a process touches besides the buffer do not move it).
fn mib(kib: u64) -> u64 {
    (kib + 512) >> 10
}

pub fn rollup() -> Result<(u64, u64, u64)> {
    // lab:begin cow-smaps-rollup tests=written_pages_stop_being_shared
    // TODO(lab): read this process's Rss, Shared_Dirty and Private_Dirty, in KiB.
    // TODO(lab): /proc/self/smaps_rollup sums the memory map: one "Name:   N kB" line per
    // TODO(lab): field. After fork() the written pages are Shared_Dirty in both processes until
    // TODO(lab): one of them writes a page again: then the kernel copies it, and the copy is
    // TODO(lab): Private_Dirty. A missing field counts as 0.
    // lab:hint fs::read_to_string("/proc/self/smaps_rollup"); for each name, find the line that
    // lab:hint strip_prefix("Shared_Dirty:") accepts, trim, strip_suffix("kB"), trim, parse.
    let text = fs::read_to_string("/proc/self/smaps_rollup").context("/proc/self/smaps_rollup")?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    Ok((
        field("Rss:"),
        field("Shared_Dirty:"),
        field("Private_Dirty:"),
    ))
    // lab:end cow-smaps-rollup
}

/// `memory --size SIZE`: after `fork()`, parent and child share a buffer's pages until one of
/// them writes: the child writes half, and half the pages become its own.
pub fn memory(out: &mut Narrator, size: u64) -> Result<()> {
    if !(1 << 20..=1 << 30).contains(&size) {
        return Err(bad_input("--size: choose 1M to 1G"));
    }
    let page = 4096u64;
    let mut buffer = vec![0u8; size as usize];
    for i in (0..buffer.len()).step_by(page as usize) {
        buffer[i] = 1; // every page really allocated
    }
    let (rss, shared, private) = rollup()?;
    out.step(
        "parent",
        format!(
            "allocated and touched {} ({} pages)",
            human(size),
            size / page
        ),
    );
    out.say(
        "parent",
        format!(
            "smaps_rollup: Rss {} MiB, Shared_Dirty {} MiB, Private_Dirty {} MiB",
            mib(rss),
            mib(shared),
            mib(private)
        ),
    );
    let half = buffer.len() / 2;
    let child = fork_child(|c| {
        c.speaker("child");
        let (_, shared, private) = rollup()?;
        c.step(format!(
            "after fork(): Shared_Dirty {} MiB, Private_Dirty {} MiB",
            mib(shared),
            mib(private)
        ));
        c.data(format!("{shared} {private}"));
        // ANCHOR: cow_write
        for i in (0..half).step_by(page as usize) {
            buffer[i] = 2; // the first write to each page makes the kernel copy it for this process
        }
        // ANCHOR_END: cow_write
        let (_, shared, private) = rollup()?;
        c.step(format!("wrote one byte in each page of the first half: Shared_Dirty {} MiB, Private_Dirty {} MiB", mib(shared), mib(private)));
        c.data(format!("{shared} {private}"));
        Ok(0)
    })?;
    out.step("parent", format!("fork() -> child pid {}", child.pid()));
    let done = child.finish(out, "child")?;
    let parse = |s: &str| -> (u64, u64) {
        let mut it = s.split(' ').map(|n| n.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    let (before, after) = (parse(&done.data[0]), parse(&done.data[1]));
    out.say(
        "parent",
        format!(
            "the child's write moved {} MiB from shared to private (half the buffer: {} MiB)",
            mib(before.0.saturating_sub(after.0)),
            (size / 2) >> 20
        ),
    );
    out.say(
        "parent",
        format!("the parent's buffer is unchanged: byte 0 = {}", buffer[0]),
    );
    Ok(())
}
