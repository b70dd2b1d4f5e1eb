//! copyup (COW-2).

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{files_below, human, in_lab, mount_overlay};
use anyhow::{Context, Result, ensure};
use labkit::Narrator;
use labkit::narrate::table;
use labkit::tempdir::TempDir;

/// One copy-up measurement.
#[derive(Debug, Clone, Copy)]
pub struct CopyUp {
    pub size: u64,
    /// open(O_WRONLY) + write(1 byte) of a file that is still in the lower layer.
    pub copy_up: Duration,
    /// The same on a file of the same size already in the upper layer.
    pub in_upper: Duration,
}

pub(crate) fn fill(path: &Path, size: u64) -> Result<()> {
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
