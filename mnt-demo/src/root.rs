//! root (MNT-9).

use std::fs;

use crate::{LAB, in_lab, is_mount_point, mount_at, mount_tmpfs, mountinfo, propagation};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::clone_child;
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;

/// `root`: what the host uses for `/`, and why a runtime makes the container's root private (or
/// slave) first. The lab plays the host: it makes its own `/` shared, as systemd does.
pub fn root_propagation(out: &mut Narrator) -> Result<()> {
    let host = mountinfo(None)?;
    let root = mount_at(&host, "/").context("no / in /proc/self/mountinfo")?;
    let kind = propagation(root);
    out.step("host", format!("read /proc/self/mountinfo: / is {kind}"));
    out.say(
        "host",
        "(mount(2)'s default is private; systemd makes / shared at boot)",
    );
    in_lab(out, |lab| {
        // ANCHOR: like_systemd
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SHARED,
            None::<&str>,
        )
        .context("mount(\"/\", MS_REC | MS_SHARED)")?;
        // ANCHOR_END: like_systemd
        lab.step("mount(NULL, \"/\", NULL, MS_REC | MS_SHARED): the lab's / is shared, like a systemd host");
        let cases: [(&str, Option<MsFlags>, &str); 3] = [
            ("x1", None, "a runtime that changes nothing"),
            (
                "x2",
                Some(MsFlags::MS_REC | MsFlags::MS_PRIVATE),
                "a runtime that makes / private first",
            ),
            (
                "x3",
                Some(MsFlags::MS_REC | MsFlags::MS_SLAVE),
                "a runtime that makes / a slave first",
            ),
        ];
        for (name, first, who) in cases {
            let target = format!("{LAB}/{name}");
            fs::create_dir_all(&target)?;
            let back = format!("{LAB}/{name}-back");
            fs::create_dir_all(&back)?;
            let mut child = clone_child(CloneFlags::CLONE_NEWNS, |c| {
                c.speaker("container");
                // lab:begin mnt-private-first
                if let Some(flags) = first {
                    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
                        .context("mount(\"/\")")?;
                    c.step(format!(
                        "mount(NULL, \"/\", NULL, {})",
                        if flags.contains(MsFlags::MS_PRIVATE) {
                            "MS_REC | MS_PRIVATE"
                        } else {
                            "MS_REC | MS_SLAVE"
                        }
                    ));
                }
                // lab:end mnt-private-first
                mount_tmpfs(&target)?;
                c.step(format!("mount(\"tmpfs\", \"{target}\", \"tmpfs\")"));
                c.ready_and_wait()?;
                c.say(format!(
                    "the lab's later mount on {back}: {}",
                    if is_mount_point(None, &back)? {
                        "seen here"
                    } else {
                        "not seen here"
                    }
                ));
                Ok(0)
            })?;
            lab.step(format!(
                "clone(CLONE_NEWNS | SIGCHLD) -> container pid {}: {who}",
                child.pid()
            ));
            child.forward_until_ready(lab)?;
            lab.say(format!(
                "the container's mount on {target}: {}",
                if is_mount_point(None, &target)? {
                    "LEAKED into the lab (the stand-in host)"
                } else {
                    "stayed in the container"
                }
            ));
            mount_tmpfs(&back)?;
            lab.step(format!("mount(\"tmpfs\", \"{back}\", \"tmpfs\")"));
            child.release()?;
            child.forward(lab)?;
        }
        Ok(0)
    })
}
