//! `minicontainer doctor`: which of `run`'s features work on this machine, and why not when one
//! does not. Every answer is read from the kernel (or tried in a throwaway child); nothing is
//! created on the host.

use std::fmt::Write as _;
use std::path::Path;

use nix::unistd::geteuid;

use cgroup_demo::cg;

/// One feature: its flag, whether it works here, and what decides it.
#[derive(Debug, Clone)]
pub struct Check {
    pub feature: &'static str,
    pub ok: bool,
    pub why: String,
}

fn has_filesystem(name: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|f| f.lines().any(|l| l.split_whitespace().last() == Some(name)))
}

/// Look at this machine, for `run`.
pub fn checks(findings: &labkit::doctor::Findings) -> Vec<Check> {
    let root = geteuid().is_root();
    let userns = findings.unprivileged_userns.is_ok();
    let mut out = Vec::new();
    out.push(Check {
        feature: "run (namespaces, overlay root, pivot_root)",
        ok: (root || userns) && has_filesystem("overlay"),
        why: match (has_filesystem("overlay"), root, userns) {
            (false, _, _) => "overlay is not in /proc/filesystems (modprobe overlay)".into(),
            (true, true, _) => "as root".into(),
            (true, false, true) => "rootless, in a user namespace of its own".into(),
            (true, false, false) => {
                "not root, and unprivileged user namespaces are refused here".into()
            }
        },
    });
    for (flag, controller) in [
        ("--memory", "memory"),
        ("--pids-limit", "pids"),
        ("--cpus", "cpu"),
    ] {
        let check = match cg::for_controller(controller, None) {
            Ok(h) if !root => {
                match crate::engine::cgroups::delegated_parent(&[controller.to_string()], false) {
                    Ok(p) => Check {
                        feature: flag,
                        ok: true,
                        why: format!(
                            "rootless: cgroup v2, in your delegated cgroup {}",
                            p.display()
                        ),
                    },
                    Err(e) => Check {
                        feature: flag,
                        ok: false,
                        why: format!("cgroup {}: {e}", h.version),
                    },
                }
            }
            Ok(h) => {
                let writable = nix::unistd::access(&h.own, nix::unistd::AccessFlags::W_OK).is_ok();
                Check {
                    feature: flag,
                    ok: writable,
                    why: format!(
                        "cgroup {} {controller} controller; groups go under {}{}",
                        h.version,
                        h.own.display(),
                        if writable {
                            ""
                        } else {
                            " (not writable: needs root or a delegated cgroup)"
                        }
                    ),
                }
            }
            Err(e) => Check {
                feature: flag,
                ok: false,
                why: e.to_string(),
            },
        };
        out.push(check);
    }
    let bridge = Path::new("/sys/module/bridge").exists() || Path::new("/sys/module/veth").exists();
    out.push(Check {
        feature: "--net bridge",
        ok: root,
        why: if root {
            format!(
                "as root{}",
                if bridge {
                    ""
                } else {
                    " (the bridge and veth modules load on first use)"
                }
            )
        } else {
            "needs root: the bridge and the host end of the veth live in the host's network namespace".into()
        },
    });
    let actions =
        std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
    out.push(Check {
        feature: "seccomp (default on)",
        ok: actions.contains("errno"),
        why: if actions.is_empty() {
            "no /proc/sys/kernel/seccomp/actions_avail: the kernel may lack seccomp filters".into()
        } else {
            format!("actions: {}", actions.trim())
        },
    });
    let cache = crate::image_cache();
    let existing = cache
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let free = nix::sys::statvfs::statvfs(existing)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0);
    out.push(Check {
        feature: "--image (layer cache)",
        ok: nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).is_ok(),
        why: format!("{} ({} MiB free)", cache.display(), free >> 20),
    });
    out
}

/// The report: labkit's findings, then `run`'s features.
pub fn render(findings: &labkit::doctor::Findings, checks: &[Check]) -> String {
    let mut s = labkit::doctor::render(findings);
    let _ = writeln!(s, "\nminicontainer run, on this machine:\n");
    let mut rows = vec![vec!["feature".into(), "works".into(), "because".into()]];
    rows.extend(checks.iter().map(|c| {
        vec![
            c.feature.to_string(),
            if c.ok { "yes" } else { "no" }.to_string(),
            c.why.clone(),
        ]
    }));
    s.push_str(&labkit::narrate::table(&rows));
    s
}
