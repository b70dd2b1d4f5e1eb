//! rules (CG-7, CG-8, CG-14): v1 hierarchies.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::cg;
use crate::cg::unique;
use anyhow::{Context, Result, ensure};
use labkit::Narrator;
use labkit::child::{Reporter, clone_child};
use nix::sched::CloneFlags;

fn mount_v1(at: &str, options: &str) -> nix::Result<()> {
    fs::create_dir_all(at).map_err(|_| nix::errno::Errno::EIO)?;
    nix::mount::mount(
        Some("none"),
        at,
        Some("cgroup"),
        nix::mount::MsFlags::empty(),
        Some(options),
    )
}

fn hierarchy_ids() -> Result<Vec<(String, String)>> {
    Ok(fs::read_to_string("/proc/cgroups")?
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[3] == "1").then(|| (f[0].to_string(), f[1].to_string()))
        })
        .collect())
}

/// `rules`: v1 hierarchies, in a private mount namespace: a hierarchy with no controller (a
/// named one) or several; the same options mount the same hierarchy; a different set of busy
/// controllers fails with EBUSY; a hierarchy outlives its mount while it has child groups.
pub fn rules(out: &mut Narrator) -> Result<()> {
    if !fs::read_to_string("/proc/filesystems")?
        .lines()
        .any(|l| l.split_whitespace().last() == Some("cgroup"))
    {
        return Err(anyhow::Error::new(labkit::errors::MissingFeature(
            "this kernel has no cgroup v1 filesystem".into(),
        )));
    }
    // v1 hierarchies belong to the machine, not to a namespace: two runs at once would each take
    // the other's free controllers (CG-7). One at a time, then: an exclusive flock(2) on the
    // cgroup mount's directory, which every nslab run opens and none creates; it blocks until
    // the other run is done, and goes when this process ends.
    let root = fs::File::open("/sys/fs/cgroup").context("open(/sys/fs/cgroup)")?;
    let _one_at_a_time = nix::fcntl::Flock::lock(root, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("flock(/sys/fs/cgroup, LOCK_EX)")?;
    let name = unique("rules");
    let lab = clone_child(CloneFlags::CLONE_NEWNS, |lab| {
        let result = rules_in_lab(lab, &name);
        if result.is_err() {
            // Whatever failed, end the named hierarchy: mount it, remove its child, unmount.
            let opts = format!("none,name={name}");
            if mount_v1("/tmp/cleanup", &opts).is_ok() {
                let _ = fs::remove_dir("/tmp/cleanup/child");
                let _ = nix::mount::umount2("/tmp/cleanup", nix::mount::MntFlags::MNT_DETACH);
            }
        }
        result
    })?;
    out.step(
        "demo",
        format!("clone(CLONE_NEWNS | SIGCHLD) -> lab pid {}", lab.pid()),
    );
    lab.finish(out, "lab")?;
    Ok(())
}

fn rules_in_lab(lab: &mut Reporter, name: &str) -> Result<i32> {
    {
        lab.speaker("lab");
        labkit::lab::make_root_private()?;
        nix::mount::mount(
            Some("tmpfs"),
            "/tmp",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .context("mount(tmpfs, /tmp)")?;
        lab.step("private mount namespace, tmpfs on /tmp: these mounts are seen nowhere else");
        let opts = format!("none,name={name}");
        // ANCHOR: named
        mount_v1("/tmp/one", &opts).context("mount -t cgroup -o none,name=...")?;
        // ANCHOR_END: named
        let line = |n: &str| {
            fs::read_to_string("/proc/self/cgroup").ok().and_then(|t| {
                t.lines()
                    .find(|l| l.contains(&format!("name={n}")))
                    .map(String::from)
            })
        };
        lab.step(format!(
            "mount -t cgroup -o {opts} none /tmp/one  (CG-7: a hierarchy with no controller)"
        ));
        lab.say(format!(
            "/proc/self/cgroup gains: {}",
            line(name).unwrap_or_default()
        ));
        mount_v1("/tmp/two", &opts).context("mount the same options again")?;
        fs::create_dir("/tmp/one/child").context("mkdir /tmp/one/child")?;
        lab.step(format!("mount -t cgroup -o {opts} none /tmp/two; mkdir /tmp/one/child  (CG-8: same options, same hierarchy)"));
        lab.say(format!(
            "/tmp/two/child exists: {}",
            Path::new("/tmp/two/child").is_dir()
        ));

        // Several controllers on one hierarchy: controllers that no v1 hierarchy holds yet.
        let ids = hierarchy_ids()?;
        let v2_busy: Vec<String> = cg::unified()
            .ok()
            .map(|u| u.controllers)
            .unwrap_or_default();
        let free: Vec<String> = ids
            .iter()
            .filter(|(c, id)| {
                id == "0"
                    && !v2_busy.contains(c)
                    && matches!(c.as_str(), "net_cls" | "net_prio" | "perf_event")
            })
            .map(|(c, _)| c.clone())
            .take(2)
            .collect();
        if free.len() == 2 {
            let set = free.join(",");
            match mount_v1("/tmp/multi", &set) {
                Ok(()) => {
                    let now = hierarchy_ids()?;
                    let shown: Vec<String> = now
                        .iter()
                        .filter(|(c, _)| free.contains(c))
                        .map(|(c, id)| format!("{c} in hierarchy {id}"))
                        .collect();
                    lab.step(format!("mount -t cgroup -o {set} none /tmp/multi  (CG-7: several controllers, one hierarchy)"));
                    lab.say(format!("/proc/cgroups: {}", shown.join(", ")));
                    nix::mount::umount2("/tmp/multi", nix::mount::MntFlags::empty())
                        .context("umount /tmp/multi")?;
                    lab.say("umount /tmp/multi: no child groups, so the hierarchy is gone and the controllers free again");
                }
                Err(e) => lab.step(format!(
                    "mount -t cgroup -o {set} -> {e} (the kernel keeps these controllers elsewhere)"
                )),
            }
        } else {
            lab.step("(no two free v1 controllers here to put on one new hierarchy; see nslab-doctor for the host's hierarchies)");
        }
        // Two controllers that are busy elsewhere (on two v1 hierarchies, or in use on v2):
        // asking for them together on a new hierarchy fails with EBUSY.
        let mut busy: Vec<(String, String)> = Vec::new();
        for (controller, id) in ids.iter().filter(|(_, id)| id != "0") {
            if !busy.iter().any(|(_, seen)| seen == id) {
                busy.push((controller.clone(), format!("v1 hierarchy {id}")));
            }
        }
        let v2_in_use: Vec<String> = cg::unified()
            .ok()
            .and_then(|u| fs::read_to_string(u.own.join("cgroup.subtree_control")).ok())
            .map(|t| t.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        for controller in v2_in_use
            .iter()
            .filter(|c| ids.iter().any(|(n, _)| n == *c))
        {
            busy.push((
                controller.clone(),
                "v2 (enabled in cgroup.subtree_control)".into(),
            ));
        }
        if busy.len() >= 2 {
            let set = format!("{},{}", busy[0].0, busy[1].0);
            // ANCHOR: ebusy
            let refused = mount_v1("/tmp/mixed", &set);
            // ANCHOR_END: ebusy
            if refused.is_ok() {
                // Only possible where no group uses them (a bare v2 tree): give them back at once.
                nix::mount::umount2("/tmp/mixed", nix::mount::MntFlags::empty())
                    .context("umount /tmp/mixed")?;
            }
            lab.step(format!(
                "mount -t cgroup -o {set} none /tmp/mixed -> {}  (CG-8: {} is on {}, {} on {})",
                errno_name(refused),
                busy[0].0,
                busy[0].1,
                busy[1].0,
                busy[1].1
            ));
        }

        // CG-14: unmount both mounts while /tmp/one/child exists.
        nix::mount::umount2("/tmp/one", nix::mount::MntFlags::empty())
            .context("umount /tmp/one")?;
        nix::mount::umount2("/tmp/two", nix::mount::MntFlags::empty())
            .context("umount /tmp/two")?;
        lab.step("umount /tmp/one /tmp/two, while the hierarchy still has a child group  (CG-14)");
        lab.say(format!(
            "/proc/self/cgroup still lists: {}",
            line(name).unwrap_or_else(|| "nothing".into())
        ));
        mount_v1("/tmp/again", &opts).context("mount the hierarchy again")?;
        lab.step(format!(
            "mount -t cgroup -o {opts} none /tmp/again: /tmp/again/child exists: {}",
            Path::new("/tmp/again/child").is_dir()
        ));
        fs::remove_dir("/tmp/again/child").context("rmdir /tmp/again/child")?;
        nix::mount::umount2("/tmp/again", nix::mount::MntFlags::empty())
            .context("umount /tmp/again")?;
        // The kernel ends a hierarchy when its last mount goes *and* it has no child group; a
        // removed child lingers a moment (it is freed after an RCU grace period), so an unmount
        // right after rmdir may leave the hierarchy alive: mount and unmount again until it ends.
        let gone_within = |limit: Duration| -> Result<bool> {
            labkit::wait::until(limit, || Ok(line(name).is_none()))
        };
        if !gone_within(Duration::from_secs(2))? {
            // The child was still being freed at the unmount: one more unmount, now that it is
            // gone, ends the hierarchy. (A dying hierarchy is never reused by a mount.)
            mount_v1("/tmp/again", &opts).context("mount the hierarchy again")?;
            nix::mount::umount2("/tmp/again", nix::mount::MntFlags::empty())
                .context("umount /tmp/again")?;
            gone_within(Duration::from_secs(10))?;
        }
        lab.step(format!(
            "rmdir child; umount: /proc/self/cgroup lists it: {}",
            if line(name).is_some() {
                "yes"
            } else {
                "no, the hierarchy is gone"
            }
        ));
        ensure!(
            line(name).is_none(),
            "the named hierarchy {name} is still alive"
        );
        Ok(0)
    }
}

fn errno_name(r: nix::Result<()>) -> String {
    match r {
        Ok(()) => "0".into(),
        Err(e) => e.to_string(),
    }
}
