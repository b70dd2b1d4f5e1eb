//! memory (COW-5).

use std::fs;

use crate::human;
use anyhow::{Context, Result};
use labkit::child::fork_child;
use labkit::{Narrator, bad_input};

/// KiB to whole MiB, rounded (a page or two of a neighbouring mapping does not move it).
fn mib(kib: u64) -> u64 {
    (kib + 512) >> 10
}

/// Rss, Shared_Dirty and Private_Dirty, in KiB, of the mapping that holds address `addr`, from
/// `/proc/self/smaps`. The buffer's own anonymous mapping, not the whole process
/// (`smaps_rollup`): the rest of a process moves the sums for reasons of its own (the pages of a
/// freshly linked binary, still dirty in the page cache, count as Private_Dirty of its file
/// mapping).
pub fn mapping_usage(addr: usize) -> Result<(u64, u64, u64)> {
    // lab:begin cow-smaps-mapping
    let text = fs::read_to_string("/proc/self/smaps").context("/proc/self/smaps")?;
    let range = |line: &str| -> Option<(usize, usize)> {
        let (start, end) = line.split_whitespace().next()?.split_once('-')?;
        Some((
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        ))
    };
    let block: Vec<&str> = text
        .lines()
        .skip_while(|l| !range(l).is_some_and(|(start, end)| start <= addr && addr < end))
        .skip(1)
        .take_while(|l| range(l).is_none())
        .collect();
    anyhow::ensure!(
        !block.is_empty(),
        "/proc/self/smaps: no mapping holds {addr:#x}"
    );
    let field = |name: &str| -> u64 {
        block
            .iter()
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
    // lab:end cow-smaps-mapping
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
    let at = buffer.as_ptr() as usize;
    let (rss, shared, private) = mapping_usage(at)?;
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
            "smaps, the buffer's mapping: Rss {} MiB, Shared_Dirty {} MiB, Private_Dirty {} MiB",
            mib(rss),
            mib(shared),
            mib(private)
        ),
    );
    let half = buffer.len() / 2;
    let child = fork_child(|c| {
        c.speaker("child");
        let (_, shared, private) = mapping_usage(at)?;
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
        let (_, shared, private) = mapping_usage(at)?;
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
