//! Copy-on-write, the third part of a container: an image is a stack of read-only directories
//! (layers), and a container gets one more, writable, on top. overlayfs merges them; a file is
//! copied up into the writable layer the first time it is written. Memory after `fork()` works
//! the same way, page by page.
//!
//! Every overlay lesson runs in a **lab**: a new mount namespace made private first, with its
//! layers in an `nslab-cow-...` temp directory that is removed afterwards. Without root, the lab
//! is inside a user namespace and overlayfs keeps its notes in `user.overlay.*` extended
//! attributes (`userxattr`, Linux 5.11+) instead of `trusted.overlay.*`.
#![forbid(unsafe_code)]

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use labkit::child::{Reporter, clone_child, fork_child};
use labkit::narrate::table;
pub use labkit::parse_size;
use labkit::tempdir::TempDir;
use labkit::{Narrator, bad_input};
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;

/// Whether this process is in a user namespace other than the initial one (rootless).
pub fn in_user_namespace() -> bool {
    fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// The prefix of overlayfs's own extended attributes here.
pub fn xattr_prefix() -> &'static str {
    if in_user_namespace() {
        "user.overlay."
    } else {
        "trusted.overlay."
    }
}

/// `mount -t overlay overlay -o lowerdir=A:B,upperdir=U,workdir=W MERGED` (+ `userxattr` in a
/// user namespace, + `extra`). The first lower directory is the top one.
pub fn mount_overlay(
    lowers: &[&Path],
    upper: &Path,
    work: &Path,
    merged: &Path,
    extra: &str,
) -> Result<String> {
    // lab:begin cow-overlay-mount tests=overlay_merges_read_only,a_write_copies_the_whole_file
    // TODO(lab): mount the overlay of `lowers` and `upper` on `merged`; return its options.
    // TODO(lab): The lower layers are read-only, the first one on top; `upper` takes the writes.
    // TODO(lab): overlayfs takes its layers as mount options, lowerdir=A:B,upperdir=U,workdir=W
    // TODO(lab): (W: an empty directory on the same filesystem as U). Inside a user namespace,
    // TODO(lab): add "userxattr"; then the caller's `extra` options, if any.
    // lab:hint Build the string with format! and lowers joined by ':'; in_user_namespace() says
    // lab:hint when to add ",userxattr". mount(Some("overlay"), merged, Some("overlay"),
    // lab:hint MsFlags::empty(), Some(options.as_str())), then Ok(options).
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let mut options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    if in_user_namespace() {
        options.push_str(",userxattr");
    }
    if !extra.is_empty() {
        options.push(',');
        options.push_str(extra);
    }
    // ANCHOR: mount_overlay
    mount(
        Some("overlay"),
        merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .with_context(|| {
        format!(
            "mount(\"overlay\", \"{}\", \"overlay\", \"{options}\")",
            merged.display()
        )
    })?;
    // ANCHOR_END: mount_overlay
    Ok(options)
    // lab:end cow-overlay-mount
}

/// Run `body` in a lab: a child in a new mount namespace, all mounts made private first. The
/// caller's temp directory holds the layers.
fn in_lab<F>(out: &mut Narrator, body: F) -> Result<Vec<String>>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let lab = clone_child(CloneFlags::CLONE_NEWNS, |r| {
        r.speaker("lab");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("mount(\"/\", MS_REC | MS_PRIVATE)")?;
        body(r)
    })?;
    out.step(
        "host",
        format!(
            "clone(CLONE_NEWNS | SIGCHLD) -> lab pid {}: a private mount namespace",
            lab.pid()
        ),
    );
    Ok(lab.finish(out, "lab")?.data)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("mkdir({})", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("write({})", path.display()))
}

fn first_line(path: &Path) -> String {
    fs::read_to_string(path)
        .map(|t| t.lines().next().unwrap_or("").to_string())
        .unwrap_or_else(|_| "-".into())
}

/// Every file (not directory) below `dir`, as paths relative to it.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => found.push(p.strip_prefix(dir).unwrap_or(&p).to_path_buf()),
                Err(_) => {}
            }
        }
    }
    found.sort();
    found
}

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

/// `4096` -> `4K`, `16777216` -> `16M`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{}M", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{}K", bytes >> 10)
    } else {
        format!("{bytes}B")
    }
}

// ---------------------------------------------------------------------------------------------
// layers (COW-1)

/// `layers`: two read-only lower layers, an upper and a work directory, merged by overlayfs;
/// a listing of what each layer has, and what the merged view shows.
pub fn layers(out: &mut Narrator) -> Result<()> {
    let dir = TempDir::create("cow")?;
    let base = dir.path().to_path_buf();
    out.step(
        "host",
        format!(
            "mkdir {} (the lab makes base, app, upper, work, merged in it)",
            base.display()
        ),
    );
    in_lab(out, |lab| {
        let (lower1, lower2, upper, work, merged) = (
            base.join("base"),
            base.join("app"),
            base.join("upper"),
            base.join("work"),
            base.join("merged"),
        );
        write_file(
            &lower1.join("etc/os-release"),
            "NAME=\"nslab base layer\"\n",
        )?;
        write_file(&lower1.join("bin/tool"), "tool version 1\n")?;
        write_file(
            &lower1.join("usr/share/doc/README"),
            "from the base layer\n",
        )?;
        write_file(&lower2.join("bin/tool"), "tool version 2\n")?;
        write_file(&lower2.join("app/config"), "port=7000\n")?;
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d)?;
        }
        lab.step("base layer: etc/os-release, bin/tool (v1), usr/share/doc/README; app layer: bin/tool (v2), app/config");
        let options = mount_overlay(&[&lower2, &lower1], &upper, &work, &merged, "")?;
        lab.step(format!(
            "mount -t overlay overlay -o {} merged",
            options.replace(&format!("{}/", base.display()), "")
        ));
        write_file(&merged.join("app/data"), "written in the container\n")?;
        lab.step("echo 'written in the container' > merged/app/data");
        let mut paths: Vec<PathBuf> = [&lower1, &lower2, &upper, &merged]
            .iter()
            .flat_map(|d| files_below(d))
            .collect();
        paths.sort();
        paths.dedup();
        let mut rows = vec![vec![
            "file".to_string(),
            "base".into(),
            "app".into(),
            "upper".into(),
            "merged view shows".into(),
        ]];
        for p in &paths {
            let has = |d: &Path| if d.join(p).exists() { "x" } else { "." };
            rows.push(vec![
                p.display().to_string(),
                has(&lower1).into(),
                has(&lower2).into(),
                has(&upper).into(),
                first_line(&merged.join(p)),
            ]);
        }
        for line in table(&rows).lines() {
            lab.say(line);
        }
        lab.say("bin/tool comes from the app layer (the first lowerdir wins); app/data exists only in upper");
        Ok(0)
    })?;
    drop(dir);
    out.step(
        "host",
        "the lab ended (its mounts with it); rm -r the layers",
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// copyup (COW-2)

/// One copy-up measurement.
#[derive(Debug, Clone, Copy)]
pub struct CopyUp {
    pub size: u64,
    /// open(O_WRONLY) + write(1 byte) of a file that is still in the lower layer.
    pub copy_up: Duration,
    /// The same on a file of the same size already in the upper layer.
    pub in_upper: Duration,
}

fn fill(path: &Path, size: u64) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("mkdir({})", parent.display()))?;
    }
    let mut f = fs::File::create(path).with_context(|| format!("create({})", path.display()))?;
    // Real bytes (not a sparse file), so the copy is a real copy.
    let chunk: Vec<u8> = (0..1 << 16).map(|i| (i % 251) as u8 + 1).collect();
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn timed_write(path: &Path) -> Result<Duration> {
    let start = Instant::now();
    // ANCHOR: copy_up
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("open({}, O_WRONLY)", path.display()))?;
    f.write_all(b"!")
        .with_context(|| format!("write({})", path.display()))?;
    // ANCHOR_END: copy_up
    drop(f);
    Ok(start.elapsed())
}

/// `copyup --sizes LIST [--svg FILE]`: writing a lower file copies it up whole first; the time
/// grows with its size, while a write to a file already in the upper layer costs the same at
/// every size. The lower file stays as it was, and another container on the same lower still
/// sees the original.
pub fn copy_up(out: &mut Narrator, sizes: &[u64], svg: Option<&Path>) -> Result<Vec<CopyUp>> {
    let dir = TempDir::create("cow")?;
    let base = dir.path().to_path_buf();
    // The measurements are made in the lab (another process): they come back as data.
    let data = in_lab(out, |lab| {
        let (lower, upper, work, merged) = (
            base.join("lower"),
            base.join("upper"),
            base.join("work"),
            base.join("merged"),
        );
        let (upper2, work2, merged2) = (
            base.join("upper2"),
            base.join("work2"),
            base.join("merged2"),
        );
        for d in [&lower, &upper, &work, &merged, &upper2, &work2, &merged2] {
            fs::create_dir_all(d)?;
        }
        for &size in sizes {
            fill(&lower.join(format!("file-{}", human(size))), size)?;
        }
        lab.step(format!(
            "lower layer: one file of each size: {}",
            sizes
                .iter()
                .map(|s| human(*s))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        mount_overlay(&[&lower], &upper, &work, &merged, "")?;
        mount_overlay(&[&lower], &upper2, &work2, &merged2, "")?;
        lab.step("mount two overlays on the same lower layer: merged (container 1) and merged2 (container 2)");
        // One throw-away copy-up first: the first one also pays for caches warming up.
        fill(&lower.join("warm-up"), 4096)?;
        timed_write(&merged.join("warm-up"))?;
        // Files of the same sizes made in the merged view live in the upper layer from the start.
        for &size in sizes {
            fill(&merged.join(format!("new-{}", human(size))), size)?;
        }
        let mut rows = vec![vec![
            "size".to_string(),
            "copy-up + write".into(),
            "write, already in upper".into(),
            "ratio".into(),
        ]];
        for &size in sizes {
            let name = format!("file-{}", human(size));
            let copy_up = timed_write(&merged.join(&name))?;
            let in_upper = timed_write(&merged.join(format!("new-{}", human(size))))?;
            let copied = fs::metadata(upper.join(&name))
                .map(|m| m.len())
                .unwrap_or(0);
            ensure!(
                copied == size,
                "{name}: {copied} bytes in upper, expected {size}"
            );
            rows.push(vec![
                human(size),
                // Fixed widths, right-aligned: the columns line up whatever the numbers.
                format!("{:>9.3} ms", copy_up.as_secs_f64() * 1e3),
                format!("{:>9.3} ms", in_upper.as_secs_f64() * 1e3),
                format!(
                    "{:>5.0}x",
                    copy_up.as_secs_f64() / in_upper.as_secs_f64().max(1e-9)
                ),
            ]);
            lab.data(format!(
                "{size} {} {}",
                copy_up.as_nanos(),
                in_upper.as_nanos()
            ));
        }
        lab.step(
            "open(O_WRONLY) + write(1 byte) on each lower file (copy-up), and on each upper file",
        );
        for line in table(&rows).lines() {
            lab.say(line);
        }
        let probe = format!("file-{}", human(sizes[0]));
        let mut first = [0u8; 1];
        fs::File::open(lower.join(&probe))?.read_exact(&mut first)?;
        let mut other = [0u8; 1];
        let mut f2 = fs::File::open(merged2.join(&probe))?;
        f2.seek(SeekFrom::Start(0))?;
        f2.read_exact(&mut other)?;
        let mut mine = [0u8; 1];
        fs::File::open(merged.join(&probe))?.read_exact(&mut mine)?;
        lab.step(format!(
            "after the writes: upper/ holds {} whole copies ({} bytes); the first byte of {probe}: lower {:#04x} (unchanged), container 1 {:#04x}, container 2 {:#04x}",
            sizes.len(),
            files_below(&upper).iter().filter(|p| p.to_string_lossy().starts_with("file-")).map(|p| fs::metadata(upper.join(p)).map(|m| m.len()).unwrap_or(0)).sum::<u64>(),
            first[0],
            mine[0],
            other[0]
        ));
        Ok(0)
    })?;
    drop(dir);
    let results: Vec<CopyUp> = data
        .iter()
        .filter_map(|d| {
            let v: Vec<u64> = d.split(' ').filter_map(|n| n.parse().ok()).collect();
            (v.len() == 3).then(|| CopyUp {
                size: v[0],
                copy_up: Duration::from_nanos(v[1]),
                in_upper: Duration::from_nanos(v[2]),
            })
        })
        .collect();
    out.raw("");
    out.raw("copy-up time by file size (each # is a share of the largest):");
    out.raw(plot(&results).trim_end());
    if let Some(path) = svg {
        fs::write(path, svg_plot(&results))
            .with_context(|| format!("write({})", path.display()))?;
        out.step("host", format!("wrote the plot to {}", path.display()));
    }
    Ok(results)
}

/// A terminal bar chart of copy-up times.
pub fn plot(results: &[CopyUp]) -> String {
    let max = results
        .iter()
        .map(|r| r.copy_up.as_secs_f64())
        .fold(0.0, f64::max)
        .max(1e-9);
    results
        .iter()
        .map(|r| {
            let n = ((r.copy_up.as_secs_f64() / max) * 40.0).round().max(1.0) as usize;
            format!(
                "{:>5} |{} {:.3} ms\n",
                human(r.size),
                "#".repeat(n),
                r.copy_up.as_secs_f64() * 1e3
            )
        })
        .collect()
}

/// An SVG line chart (log-log) of both timings, for the book.
pub fn svg_plot(results: &[CopyUp]) -> String {
    let (w, h, pad) = (640.0, 360.0, 60.0);
    let xs: Vec<f64> = results.iter().map(|r| (r.size as f64).log2()).collect();
    let ys: Vec<f64> = results
        .iter()
        .flat_map(|r| [r.copy_up, r.in_upper])
        .map(|d| (d.as_secs_f64() * 1e3).max(1e-4).log10())
        .collect();
    let (x0, x1) = (
        xs.iter().cloned().fold(f64::MAX, f64::min),
        xs.iter().cloned().fold(f64::MIN, f64::max).max(1.0),
    );
    let (y0, y1) = (
        ys.iter().cloned().fold(f64::MAX, f64::min).floor(),
        ys.iter().cloned().fold(f64::MIN, f64::max).ceil(),
    );
    let sx = |x: f64| pad + (x - x0) / (x1 - x0).max(1e-9) * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - (y - y0) / (y1 - y0).max(1e-9) * (h - 2.0 * pad);
    let line = |pick: &dyn Fn(&CopyUp) -> Duration| -> String {
        results
            .iter()
            .map(|r| {
                format!(
                    "{:.1},{:.1}",
                    sx((r.size as f64).log2()),
                    sy((pick(r).as_secs_f64() * 1e3).max(1e-4).log10())
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    s.push_str(&format!(r#"<rect width="{w}" height="{h}" fill="white"/><line x1="{pad}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{}" stroke="black"/>"#, h - pad, w - pad, h - pad, h - pad));
    for r in results {
        let x = sx((r.size as f64).log2());
        s.push_str(&format!(
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            h - pad + 18.0,
            human(r.size)
        ));
    }
    let mut y = y0;
    while y <= y1 {
        s.push_str(&format!(
            r#"<text x="{}" y="{:.1}" text-anchor="end">{} ms</text>"#,
            pad - 6.0,
            sy(y) + 4.0,
            10f64.powf(y)
        ));
        y += 1.0;
    }
    s.push_str(&format!(
        r#"<polyline fill="none" stroke="crimson" stroke-width="2" points="{}"/>"#,
        line(&|r| r.copy_up)
    ));
    s.push_str(&format!(
        r#"<polyline fill="none" stroke="steelblue" stroke-width="2" points="{}"/>"#,
        line(&|r| r.in_upper)
    ));
    s.push_str(&format!(r#"<text x="{}" y="24" fill="crimson">copy-up + write (file in the lower layer)</text><text x="{}" y="42" fill="steelblue">write (file already in the upper layer)</text>"#, pad, pad));
    s.push_str(&format!(
        r#"<text x="{}" y="{}" text-anchor="middle">file size</text></svg>"#,
        w / 2.0,
        h - 12.0
    ));
    s.push('\n');
    s
}

// ---------------------------------------------------------------------------------------------
// whiteout (COW-3)

fn describe_entry(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_char_device() => {
            let rdev = m.rdev();
            format!(
                "character device {}:{} (a whiteout)",
                nix::sys::stat::major(rdev),
                nix::sys::stat::minor(rdev)
            )
        }
        Ok(m) if m.is_dir() => "directory".into(),
        Ok(_) => "file".into(),
        Err(_) => "(none)".into(),
    }
}

/// `whiteout`: deleting a lower file leaves a whiteout (a 0/0 character device) in the upper
/// layer; a directory deleted and made again becomes opaque; renaming a lower directory gets
/// EXDEV unless the overlay was mounted with `redirect_dir=on`.
pub fn whiteout(out: &mut Narrator) -> Result<()> {
    let dir = TempDir::create("cow")?;
    let base = dir.path().to_path_buf();
    in_lab(out, |lab| {
        let (lower, upper, work, merged) = (
            base.join("lower"),
            base.join("upper"),
            base.join("work"),
            base.join("merged"),
        );
        write_file(&lower.join("old.txt"), "from the image\n")?;
        write_file(&lower.join("logs/a.log"), "an old log\n")?;
        write_file(&lower.join("cache/entry"), "cached\n")?;
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d)?;
        }
        mount_overlay(&[&lower], &upper, &work, &merged, "")?;
        lab.step(format!(
            "lower: old.txt, logs/a.log, cache/entry; mount overlay (xattrs: {}*)",
            xattr_prefix()
        ));
        // ANCHOR: whiteout
        fs::remove_file(merged.join("old.txt")).context("unlink(merged/old.txt)")?;
        // ANCHOR_END: whiteout
        lab.step("unlink(merged/old.txt)");
        lab.say(format!(
            "upper/old.txt: {}; lower/old.txt: {}; merged/old.txt: {}",
            describe_entry(&upper.join("old.txt")),
            describe_entry(&lower.join("old.txt")),
            describe_entry(&merged.join("old.txt"))
        ));
        fs::remove_dir_all(merged.join("logs")).context("rm -r merged/logs")?;
        fs::create_dir(merged.join("logs")).context("mkdir merged/logs")?;
        lab.step("rm -r merged/logs; mkdir merged/logs");
        let opaque = format!("{}opaque", xattr_prefix());
        let value = labkit::sys::getxattr(&upper.join("logs"), &opaque)
            .with_context(|| format!("getxattr(upper/logs, {opaque})"))?;
        lab.say(format!(
            "upper/logs: {}, {opaque} = {}; ls merged/logs: {}",
            describe_entry(&upper.join("logs")),
            value.map_or("(none)".to_string(), |v| format!(
                "{:?}",
                String::from_utf8_lossy(&v)
            )),
            if fs::read_dir(merged.join("logs"))?.next().is_none() {
                "(empty: the lower logs/a.log is hidden)"
            } else {
                "not empty?!"
            }
        ));
        // ANCHOR: rename
        let renamed = fs::rename(merged.join("cache"), merged.join("cache2"));
        // ANCHOR_END: rename
        lab.step(format!(
            "rename(merged/cache, merged/cache2) -> {}",
            renamed.map_or_else(|e| errno_name(&e), |_| "0".into())
        ));
        lab.say("(a directory from a lower layer cannot move without redirect_dir: `mv` then copies it instead)");
        // The same with redirect_dir=on, on fresh layers.
        let (upper3, work3, merged3) = (
            base.join("upper3"),
            base.join("work3"),
            base.join("merged3"),
        );
        for d in [&upper3, &work3, &merged3] {
            fs::create_dir_all(d)?;
        }
        match mount_overlay(&[&lower], &upper3, &work3, &merged3, "redirect_dir=on") {
            Ok(_) => {
                let moved = fs::rename(merged3.join("cache"), merged3.join("cache2"));
                lab.step(format!(
                    "mount with redirect_dir=on; rename(merged/cache, merged/cache2) -> {}",
                    moved.map_or_else(|e| errno_name(&e), |_| "0".into())
                ));
                let redirect = format!("{}redirect", xattr_prefix());
                let value = labkit::sys::getxattr(&upper3.join("cache2"), &redirect)?;
                lab.say(format!(
                    "upper/cache2: {redirect} = {}",
                    value.map_or("(none)".to_string(), |v| format!(
                        "{:?}",
                        String::from_utf8_lossy(&v)
                    ))
                ));
            }
            Err(e) => lab.step(format!(
                "mount with redirect_dir=on -> {}{}",
                labkit::errors::errno_of(&e).map_or_else(|| format!("{e:#}"), |e| e.to_string()),
                if in_user_namespace() {
                    " (in a user namespace, userxattr mode, overlayfs refuses redirect_dir)"
                } else {
                    ""
                }
            )),
        }
        Ok(0)
    })?;
    drop(dir);
    Ok(())
}

/// The errno of an I/O error, by name (`EXDEV: Invalid cross-device link`).
fn errno_name(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(
        || e.to_string(),
        |n| nix::errno::Errno::from_raw(n).to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// many (COW-4)

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

// ---------------------------------------------------------------------------------------------
// memory (COW-5)

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
