//! many (COW-4).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use crate::copyup::fill;
use crate::{human, in_lab, mount_overlay, write_file};
use anyhow::{Context, Result};
use labkit::narrate::table;
use labkit::tempdir::TempDir;
use labkit::{Narrator, bad_input};

/// Bytes used on disk below `dir` (`du`: allocated blocks, not file sizes).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(m) = fs::symlink_metadata(e.path()) {
                total += m.blocks() * 512;
                if m.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    total
}

/// `many --count N --size SIZE`: N containers on one image cost N small upper directories,
/// not N copies: disk used and time taken, overlay mounts against full copies.
pub fn many(out: &mut Narrator, count: usize, size: u64) -> Result<()> {
    if !(1..=50).contains(&count) {
        return Err(bad_input(format!("--count {count}: choose 1 to 50")));
    }
    if size > 1 << 30 {
        return Err(bad_input(
            "--size above 1G: choose something that fits in seconds",
        ));
    }
    let dir = TempDir::create("cow")?;
    let base = dir.path().to_path_buf();
    in_lab(out, |lab| {
        let image = base.join("image");
        for i in 0..4 {
            fill(&image.join(format!("layer-file-{i}")), size / 4)?;
        }
        lab.step(format!(
            "image: 4 files, {} in all ({} on disk)",
            human(size),
            human_disk(disk_usage(&image))
        ));
        let start = Instant::now();
        for i in 0..count {
            let c = base.join(format!("c{i}"));
            let (upper, work, merged) = (c.join("upper"), c.join("work"), c.join("merged"));
            for d in [&upper, &work, &merged] {
                fs::create_dir_all(d)?;
            }
            mount_overlay(&[&image], &upper, &work, &merged, "")?;
            write_file(&merged.join("hostname"), &format!("container-{i}\n"))?;
        }
        let overlay_time = start.elapsed();
        // A container's own disk: its upper and work directories (merged/ only shows the image).
        let overlay_disk: u64 = (0..count)
            .map(|i| {
                disk_usage(&base.join(format!("c{i}/upper")))
                    + disk_usage(&base.join(format!("c{i}/work")))
            })
            .sum();
        lab.step(format!(
            "{count} overlay mounts on the image, each writing one small file"
        ));
        let start = Instant::now();
        for i in 0..count {
            let copy = base.join(format!("copy{i}"));
            fs::create_dir_all(&copy)?;
            for f in fs::read_dir(&image)?.flatten() {
                plain_copy(&f.path(), &copy.join(f.file_name()))?;
            }
            fs::write(copy.join("hostname"), format!("container-{i}\n"))?;
        }
        let copy_time = start.elapsed();
        let copy_disk: u64 = (0..count)
            .map(|i| disk_usage(&base.join(format!("copy{i}"))))
            .sum();
        lab.step(format!(
            "{count} full copies of the image (cp -r), each with the same small file"
        ));
        let rows = vec![
            vec!["".to_string(), "disk used".into(), "time".into()],
            vec![
                format!("{count} overlays"),
                human_disk(overlay_disk),
                format!("{:.3} s", overlay_time.as_secs_f64()),
            ],
            vec![
                format!("{count} copies"),
                human_disk(copy_disk),
                format!("{:.3} s", copy_time.as_secs_f64()),
            ],
        ];
        for line in table(&rows).lines() {
            lab.say(line);
        }
        lab.say(format!(
            "copies use {:.0}x the disk and {:.0}x the time",
            copy_disk as f64 / overlay_disk.max(1) as f64,
            copy_time.as_secs_f64() / overlay_time.as_secs_f64().max(1e-9)
        ));
        lab.data(format!("{overlay_disk} {copy_disk}"));
        Ok(0)
    })?;
    drop(dir);
    Ok(())
}

/// Copy a file through a buffer, as `cp --reflink=never` does: std's copy may share blocks
/// (reflink) on btrfs or XFS, which would make the copies look free.
fn plain_copy(from: &Path, to: &Path) -> Result<()> {
    let mut src = fs::File::open(from).with_context(|| format!("open({})", from.display()))?;
    let mut dst = fs::File::create(to).with_context(|| format!("create({})", to.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        dst.write_all(&buf[..n])?;
    }
}

fn human_disk(bytes: u64) -> String {
    if bytes >= 10 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}
