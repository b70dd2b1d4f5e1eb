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
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::Reporter;
pub use labkit::parse_size;
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;

/// Whether this process is in a user namespace other than the initial one (rootless).
pub fn in_user_namespace() -> bool {
    fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
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
    // lab:begin cow-overlay-mount
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
    Ok(options)
    // lab:end cow-overlay-mount
}

/// Run `body` in a lab: a child in a new mount namespace, all mounts made private first
/// ([`labkit::lab::in_lab`]). The caller's temp directory holds the layers.
fn in_lab<F>(out: &mut Narrator, body: F) -> Result<Vec<String>>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let done = labkit::lab::in_lab(
        out,
        CloneFlags::empty(),
        ": a private mount namespace",
        body,
    )?;
    Ok(done.data)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("mkdir({})", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("write({})", path.display()))
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

mod layers;
pub use layers::layers;
mod copyup;
pub use copyup::{CopyUp, copy_up, plot, svg_plot};
mod whiteout;
pub use whiteout::{whiteout, xattr_prefix};
mod many;
pub use many::{disk_usage, many};
mod memory;
pub use memory::{mapping_usage, memory};
