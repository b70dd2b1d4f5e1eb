//! chroot vs pivot_root (MNT-10).

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::{LAB, in_lab};
use anyhow::{Context, Result, ensure};
use labkit::Narrator;
use labkit::child::{clone_child, fork_child};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::unistd::{chdir, chroot, pivot_root};

/// The device and inode of `/`: what "the root" is, whatever path leads to it.
fn root_id() -> Result<(u64, u64)> {
    let m = fs::metadata("/").context("stat(\"/\")")?;
    Ok((m.dev(), m.ino()))
}

/// A tiny root filesystem: a few directories and files, enough to tell it from the real root.
fn build_rootfs(dir: &str) -> Result<()> {
    for sub in ["bin", "dev", "etc", "proc", "tmp"] {
        fs::create_dir_all(format!("{dir}/{sub}"))
            .with_context(|| format!("mkdir({dir}/{sub})"))?;
    }
    fs::write(format!("{dir}/etc/hostname"), "nslab-tiny-root\n")?;
    fs::write(
        format!("{dir}/etc/os-release"),
        "NAME=\"nslab tiny root\"\n",
    )?;
    Ok(())
}

/// The classic chroot escape: chroot into a subdirectory while the working directory stays
/// outside it, climb with "..", and chroot to where the climb ends.
// ANCHOR: escape
fn try_escape() -> Result<()> {
    fs::create_dir_all("/.escape").context("mkdir(\"/.escape\")")?;
    chroot("/.escape").context("chroot(\"/.escape\")")?; // the working directory is now outside the root
    for _ in 0..64 {
        chdir("..").context("chdir(\"..\")")?; // ".." of the real root is the real root itself
    }
    chroot(".").context("chroot(\".\")")?;
    Ok(())
}

// ANCHOR_END: escape

/// The names in `/`, sorted.
fn list_root() -> Result<String> {
    let mut names: Vec<String> = fs::read_dir("/")
        .context("readdir(\"/\")")?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names.join(" "))
}

fn hostname_file() -> String {
    fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("({e})"))
}

/// `chroot`: a root process escapes a plain `chroot`; after `pivot_root` and unmounting the old
/// root, the same escape leads nowhere.
pub fn chroot_vs_pivot(out: &mut Narrator) -> Result<()> {
    in_lab(out, |lab| {
        let rootfs = format!("{LAB}/rootfs");
        build_rootfs(&rootfs)?;
        let real = root_id()?;
        lab.step(format!(
            "built a tiny root filesystem in {rootfs}; stat(\"/\") gives the real root"
        ));

        let mut escaper = fork_child(|c| {
            c.speaker("chroot");
            chroot(rootfs.as_str()).with_context(|| format!("chroot(\"{rootfs}\")"))?;
            chdir("/").context("chdir(\"/\")")?;
            c.step(format!(
                "chroot(\"{rootfs}\"), chdir(\"/\"): /etc/hostname says \"{}\"",
                hostname_file()
            ));
            try_escape()?;
            c.step("mkdir(\"/.escape\"), chroot(\"/.escape\"), chdir(\"..\") x64, chroot(\".\")");
            c.say(format!(
                "stat(\"/\"): {}",
                if root_id()? == real {
                    "the real root again: ESCAPED"
                } else {
                    "still the tiny root"
                }
            ));
            c.data(root_id()? == real);
            // Out in the real root, every path works again: take the ladder away.
            fs::remove_dir(format!("{rootfs}/.escape"))
                .with_context(|| format!("rmdir({rootfs}/.escape)"))?;
            Ok(0)
        })?;
        lab.step(format!("fork() -> pid {}", escaper.pid()));
        let chrooted = escaper.forward(lab)?;

        let pivoter = clone_child(CloneFlags::CLONE_NEWNS, |c| {
            c.speaker("pivot_root");
            // lab:begin mnt-pivot-root
            // pivot_root(2) wants the new root to be a mount point: bind it onto itself.
            mount(
                Some(rootfs.as_str()),
                rootfs.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .context("mount(rootfs, rootfs, MS_BIND)")?;
            chdir(rootfs.as_str()).context("chdir(rootfs)")?;
            fs::create_dir_all("old-root").context("mkdir(\"old-root\")")?;
            pivot_root(".", "old-root").context("pivot_root(\".\", \"old-root\")")?;
            chdir("/").context("chdir(\"/\")")?;
            // The old root is still mounted at /old-root: take it away, and with it every path out.
            umount2("/old-root", MntFlags::MNT_DETACH)
                .context("umount2(\"/old-root\", MNT_DETACH)")?;
            fs::remove_dir("/old-root").context("rmdir(\"/old-root\")")?;
            // lab:end mnt-pivot-root
            c.step(format!(
                "mount --bind {rootfs} {rootfs}, pivot_root(\".\", \"old-root\"), umount2(\"/old-root\", MNT_DETACH)"
            ));
            c.say(format!(
                "ls / -> {}; /etc/hostname says \"{}\"",
                list_root()?,
                hostname_file()
            ));
            try_escape()?;
            c.step("mkdir(\"/.escape\"), chroot(\"/.escape\"), chdir(\"..\") x64, chroot(\".\")");
            let escaped = root_id()? == real;
            c.say(format!(
                "stat(\"/\"): {}; /etc/hostname says \"{}\"",
                if escaped {
                    "the real root: ESCAPED"
                } else {
                    "still the tiny root: no way out"
                },
                hostname_file()
            ));
            c.data(escaped);
            Ok(0)
        })?;
        lab.step(format!(
            "clone(CLONE_NEWNS | SIGCHLD) -> pid {}",
            pivoter.pid()
        ));
        let mut pivoter = pivoter;
        let pivoted = pivoter.forward(lab)?;
        ensure!(
            chrooted == ["true"] && pivoted == ["false"],
            "unexpected: chroot escaped {chrooted:?}, pivot_root escaped {pivoted:?}"
        );
        Ok(0)
    })
}
