//! whiteout (COW-3).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::{in_lab, in_user_namespace, mount_overlay, write_file};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::tempdir::TempDir;

/// The prefix of overlayfs's own extended attributes here.
pub fn xattr_prefix() -> &'static str {
    if in_user_namespace() {
        "user.overlay."
    } else {
        "trusted.overlay."
    }
}

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
        let value = xattr::get(upper.join("logs"), &opaque)
            .with_context(|| format!("lgetxattr(upper/logs, {opaque})"))?;
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
                let value = xattr::get(upper3.join("cache2"), &redirect)
                    .with_context(|| format!("lgetxattr(upper/cache2, {redirect})"))?;
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
