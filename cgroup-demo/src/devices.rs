//! devices (CG-13).

use std::fs;

use crate::cg;
use crate::cg::{Group, Version, unique};
use crate::{rel, waiting_child};
use anyhow::Result;
use labkit::Narrator;

/// `devices`: a v1 devices group denies /dev/null (char 1:3): open(2) fails with EPERM there,
/// while /dev/zero still opens. (v2 controls devices with an eBPF program instead.)
pub fn devices(out: &mut Narrator) -> Result<()> {
    let h = cg::for_controller("devices", Some(Version::V1)).map_err(|_| {
        anyhow::Error::new(labkit::errors::MissingFeature(
            "no v1 devices hierarchy: on cgroup v2, device access is decided by an eBPF program \
             attached to the group (BPF_PROG_TYPE_CGROUP_DEVICE), which this demo does not load"
                .into(),
        ))
    })?;
    let top = Group::create(&h.own, &unique("devices"), h.version)?;
    let leaf = top.child("leaf")?;
    // ANCHOR: deny
    leaf.write("devices.deny", "c 1:3 rwm")?;
    // ANCHOR_END: deny
    out.step(
        "demo",
        format!(
            "v1: mkdir {}; echo 'c 1:3 rwm' > devices.deny  (/dev/null is char 1:3)",
            rel(&h, &leaf)
        ),
    );
    let child = waiting_child(out, "child", |c| {
        c.speaker("child");
        for dev in ["/dev/null", "/dev/zero"] {
            let opened = fs::OpenOptions::new().read(true).write(true).open(dev);
            c.step(format!(
                "open({dev}, O_RDWR) -> {}",
                opened.map_or_else(
                    |e| e
                        .raw_os_error()
                        .map_or(e.to_string(), |n| nix::errno::Errno::from_raw(n)
                            .to_string()),
                    |_| "0 (allowed)".into()
                )
            ));
        }
        Ok(0)
    })?;
    leaf.attach(child.pid().as_raw())?;
    let mut child = child;
    child.release()?;
    child.finish(out, "child")?;
    Ok(())
}
