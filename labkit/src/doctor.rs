//! `nslab-doctor`: what this machine can show, and what that means for each chapter.
//!
//! Every answer comes from the kernel: `uname(2)`, `/proc/self/ns`, a real attempt at an
//! unprivileged `unshare(CLONE_NEWUSER)` in a forked child, `/proc/self/mountinfo`,
//! `/proc/filesystems`.

use std::fmt::Write as _;

use anyhow::Result;
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid, geteuid, setgroups, setresgid, setresuid};

use crate::cgroupfs::{self, LayoutKind};
use crate::child::fork_child;
use crate::narrate::{Narrator, table};
use crate::ns::{self, NsKind};

/// The user an unprivileged test drops to (the overflow UID "nobody").
pub const NOBODY: u32 = 65534;

/// What the doctor found.
#[derive(Debug)]
pub struct Findings {
    pub kernel: String,
    pub root: bool,
    pub kinds: Vec<NsKind>,
    /// `Ok(())` or the kernel's refusal, for an unprivileged `unshare(CLONE_NEWUSER)`.
    pub unprivileged_userns: Result<(), String>,
    /// The sysctls that gate user namespaces, those this kernel has.
    pub userns_sysctls: Vec<(String, String)>,
    pub cgroups: cgroupfs::Layout,
    pub overlay: bool,
}

/// Try `unshare(CLONE_NEWUSER)` as an unprivileged user, in a forked child (as root, the child
/// first drops to `nobody`, so the answer is the one a normal user would get).
pub fn try_unprivileged_userns() -> Result<Result<(), String>> {
    let mut out = Narrator::plain();
    let child = fork_child(|report| {
        if geteuid().is_root() {
            setgroups(&[])?;
            setresgid(
                Gid::from_raw(NOBODY),
                Gid::from_raw(NOBODY),
                Gid::from_raw(NOBODY),
            )?;
            setresuid(
                Uid::from_raw(NOBODY),
                Uid::from_raw(NOBODY),
                Uid::from_raw(NOBODY),
            )?;
        }
        match unshare(CloneFlags::CLONE_NEWUSER) {
            Ok(()) => report.data("ok"),
            Err(e) => report.data(e),
        }
        Ok(0)
    })?;
    let finished = child.finish(&mut out, "child")?;
    Ok(match finished.data.first().map(String::as_str) {
        Some("ok") => Ok(()),
        Some(err) => Err(err.to_string()),
        None => Err("the test child reported nothing".into()),
    })
}

/// Look at this machine.
pub fn examine() -> Result<Findings> {
    let uts = nix::sys::utsname::uname()?;
    let kernel = format!(
        "{} {} {}",
        uts.sysname().to_string_lossy(),
        uts.release().to_string_lossy(),
        uts.machine().to_string_lossy()
    );
    let userns_sysctls = [
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ]
    .iter()
    .filter_map(|p| {
        Some((
            p.trim_start_matches("/proc/sys/").replace('/', "."),
            std::fs::read_to_string(p).ok()?.trim().to_string(),
        ))
    })
    .collect();
    let overlay = std::fs::read_to_string("/proc/filesystems")
        .map(|f| {
            f.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false);
    Ok(Findings {
        kernel,
        root: geteuid().is_root(),
        kinds: ns::kinds_present()?,
        unprivileged_userns: try_unprivileged_userns()?,
        userns_sysctls,
        cgroups: cgroupfs::detect()?,
        overlay,
    })
}

/// The report, as text.
pub fn render(f: &Findings) -> String {
    let mut s = String::new();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let kinds: Vec<&str> = f.kinds.iter().map(|k| k.name()).collect();
    let missing: Vec<&str> = NsKind::ALL
        .iter()
        .filter(|k| !f.kinds.contains(k))
        .map(|k| k.name())
        .collect();
    let _ = writeln!(s, "nslab doctor: what this machine can show\n");
    let mut rows = vec![
        vec!["kernel".into(), f.kernel.clone()],
        vec![
            "running as".into(),
            if f.root {
                "root: demos run directly (add --rootless to any demo to see the rootless path)".into()
            } else {
                format!("uid {}: demos continue inside a user namespace of their own", geteuid())
            },
        ],
        vec![
            "namespaces".into(),
            if missing.is_empty() {
                format!("{} (all 8 types; from /proc/self/ns)", kinds.join(" "))
            } else {
                format!("{} (missing: {})", kinds.join(" "), missing.join(" "))
            },
        ],
        vec![
            "user namespaces".into(),
            match &f.unprivileged_userns {
                Ok(()) => "an unprivileged user may create one (tried: unshare(CLONE_NEWUSER) as uid 65534 -> ok)".into(),
                Err(e) => format!("unprivileged users may NOT create one (tried: unshare(CLONE_NEWUSER) -> {e})"),
            },
        ],
    ];
    for (name, value) in &f.userns_sysctls {
        rows.push(vec![String::new(), format!("{name} = {value}")]);
    }
    rows.push(vec!["cgroups".into(), f.cgroups.kind.to_string()]);
    for h in &f.cgroups.hierarchies {
        rows.push(vec![
            String::new(),
            format!(
                "v{} {}: {}",
                h.version,
                h.mount_point.display(),
                if h.controllers.is_empty() {
                    "(no controllers)".into()
                } else {
                    h.controllers.join(" ")
                }
            ),
        ]);
    }
    rows.push(vec![
        "overlayfs".into(),
        if f.overlay {
            "yes (in /proc/filesystems)".into()
        } else {
            "not listed in /proc/filesystems (it may load as a module on first mount)".into()
        },
    ]);
    s.push_str(&table(&rows));

    let userns = f.unprivileged_userns.is_ok();
    let has = |k: NsKind| f.kinds.contains(&k);
    let cg = match f.cgroups.kind {
        LayoutKind::V1 => "v1 files",
        LayoutKind::V2 => "v2 files",
        LayoutKind::Hybrid => "v1 files for most controllers",
        LayoutKind::None => "nothing: no cgroup filesystem",
    };
    let chapters: Vec<(&str, bool, String)> = vec![
        (
            "namespace API",
            true,
            rootless_or(
                userns,
                "yes, inside its own user namespace; joining other users' namespaces needs root",
            ),
        ),
        (
            "UTS",
            has(NsKind::Uts),
            rootless_or(
                userns,
                "yes; the host's hostname stays out of reach, by design",
            ),
        ),
        ("IPC", has(NsKind::Ipc), rootless_or(userns, "yes")),
        ("PID", has(NsKind::Pid), rootless_or(userns, "yes")),
        (
            "mount",
            has(NsKind::Mnt),
            rootless_or(userns, "yes, mounts of the kinds a user namespace may make"),
        ),
        (
            "network",
            has(NsKind::Net),
            rootless_or(userns, "yes, between namespaces it creates"),
        ),
        ("user", has(NsKind::User), rootless_or(userns, "yes")),
        (
            "cgroups",
            f.cgroups.kind != LayoutKind::None,
            format!("needs root, or a delegated cgroup; uses {cg}"),
        ),
        (
            "copy-on-write",
            f.overlay,
            rootless_or(
                userns,
                "yes on kernel 5.11+ (overlayfs in a user namespace)",
            ),
        ),
    ];
    let mut rows = vec![vec![
        "chapter".to_string(),
        "as root".into(),
        "without root".into(),
    ]];
    for (name, ok, rootless) in chapters {
        rows.push(vec![
            name.into(),
            yes_no(ok).into(),
            if ok {
                rootless
            } else {
                "no: the kernel lacks it".into()
            },
        ]);
    }
    let _ = writeln!(s);
    s.push_str(&table(&rows));
    s
}

fn rootless_or(userns: bool, what: &str) -> String {
    if userns {
        what.to_string()
    } else {
        "no: needs unprivileged user namespaces".to_string()
    }
}
