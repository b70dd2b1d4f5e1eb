//! Step 5: the process's identity, inside, after the root: hostname, network (`lo` up, or
//! `eth0` on the bridge), OOM score, umask, user and capabilities, then the seccomp filter.

use std::fs;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use caps::{CapSet, Capability};
use labkit::child::Reporter;
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid, chdir, sethostname, setresgid, setresuid};

use crate::spec::Plan;
use crate::{net, seccomp};

use super::step;

/// The capabilities container runtimes keep by default (Docker's list, less CAP_MKNOD: Docker
/// keeps it because its device policy stops the nodes being used; this runtime has the same
/// policy, and still does not let the container make device nodes at all); every other one is
/// dropped from the bounding set.
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// The spec's scheduling policy, I/O priority and execution domain: set while the process still
/// has the capabilities a real-time class needs (CAP_SYS_NICE, CAP_SYS_ADMIN), as runc does.
pub fn apply_scheduling(plan: &Plan) -> Result<()> {
    if let Some(attr) = &plan.scheduler {
        labkit::sys::sched_setattr(attr).with_context(|| {
            format!("sched_setattr(policy {}) (process.scheduler)", attr.policy)
        })?;
    }
    if let Some((class, level)) = plan.io_priority {
        labkit::sys::ioprio_set(class, level).with_context(|| {
            format!("ioprio_set(class {class}, level {level}) (process.ioPriority)")
        })?;
    }
    if let Some(persona) = plan.personality {
        labkit::sys::set_personality(persona)
            .with_context(|| format!("personality({persona:#x}) (linux.personality)"))?;
    }
    Ok(())
}

/// Give the process the spec's user and capabilities: the bounding set cut, the inheritable
/// set, then (keeping the permitted set across the change of user, `PR_SET_KEEPCAPS`) groups,
/// GID and UID, then the permitted, effective and ambient sets; `no_new_privs` when asked.
pub fn apply_identity(plan: &Plan) -> Result<()> {
    let sets = &plan.caps;
    for (resource, soft, hard) in &plan.rlimits {
        nix::sys::resource::setrlimit(*resource, *soft, *hard)
            .with_context(|| format!("setrlimit({resource:?}, {soft}, {hard})"))?;
    }
    // ANCHOR: capabilities
    for cap in caps::all() {
        if !sets.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("prctl(PR_CAPBSET_DROP, {cap})"))?;
        }
    }
    caps::set(None, CapSet::Inheritable, &sets.inheritable).context("capset(inheritable)")?;
    nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS, 1)")?;
    let groups: Vec<Gid> = plan
        .additional_gids
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&groups) {
        // Rootless, /proc/self/setgroups says "deny": there are no groups to drop anyway.
        Err(nix::errno::Errno::EPERM) if groups.is_empty() => {}
        other => other.context("setgroups")?,
    }
    let (uid, gid) = (Uid::from_raw(plan.uid), Gid::from_raw(plan.gid));
    setresgid(gid, gid, gid).with_context(|| format!("setresgid({gid})"))?;
    setresuid(uid, uid, uid).with_context(|| format!("setresuid({uid})"))?;
    // Effective first: it must stay within the permitted set at every step.
    caps::set(None, CapSet::Effective, &sets.effective).context("capset(effective)")?;
    caps::set(None, CapSet::Permitted, &sets.permitted).context("capset(permitted)")?;
    for cap in &sets.ambient {
        caps::raise(None, CapSet::Ambient, *cap)
            .with_context(|| format!("prctl(PR_CAP_AMBIENT_RAISE, {cap})"))?;
    }
    if plan.no_new_privs {
        nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    }
    // ANCHOR_END: capabilities
    Ok(())
}

/// Inside the child, after the root: hostname, network, identity, capabilities, seccomp.
pub(crate) fn setup(
    r: &mut Reporter,
    plan: &Plan,
    eth0: Option<(Ipv4Addr, u8)>,
    filters: &[seccompiler::BpfProgram],
) -> Result<()> {
    // With no hostname in the spec, the new UTS namespace keeps the name it was given (a copy
    // of the host's), as with runc: never an empty one.
    if plan.clone_flags.contains(CloneFlags::CLONE_NEWUTS) && !plan.hostname.is_empty() {
        sethostname(&plan.hostname)
            .with_context(|| format!("sethostname(\"{}\")", plan.hostname))?;
        step(r, format!("sethostname(\"{}\")", plan.hostname));
    }
    if !plan.clone_flags.contains(CloneFlags::CLONE_NEWNET) {
        step(
            r,
            "no network namespace of its own: the host's, or the one joined",
        );
    } else {
        let rtnl = net_demo::rtnl::Rtnl::open()?;
        rtnl.set_up("lo")?;
        setup_net(r, &rtnl, eth0)?;
    }
    if let Some(score) = plan.oom_score_adj {
        fs::write("/proc/self/oom_score_adj", score.to_string())
            .context("write /proc/self/oom_score_adj")?;
        step(r, format!("echo {score} > /proc/self/oom_score_adj"));
    }
    if let Some(mask) = plan.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        step(r, format!("umask({mask:#o})"));
    }
    // Without no_new_privs a filter is a privileged thing to install (CAP_SYS_ADMIN): before
    // the capabilities go, as runc does; with it, as late as possible (below).
    apply_scheduling(plan)?;
    let early = plan.seccomp.is_some() && !plan.no_new_privs;
    if early {
        seccomp::install(filters)?;
    }
    apply_identity(plan)?;
    step(
        r,
        format!(
            "capabilities: the bounding set cut to {}{}; setresgid({gid}), setresuid({uid}); {} effective{}",
            plan.caps.bounding.len(),
            if plan.caps.bounding.len() == DEFAULT_CAPS.len() {
                " (Docker's default less CAP_MKNOD)"
            } else {
                ""
            },
            plan.caps.effective.len(),
            if plan.no_new_privs {
                "; PR_SET_NO_NEW_PRIVS"
            } else {
                ""
            },
            gid = plan.gid,
            uid = plan.uid,
        ),
    );
    chdir(&plan.cwd).with_context(|| format!("chdir({})", plan.cwd.display()))?;
    if let Some(profile) = &plan.seccomp {
        // ANCHOR: seccomp
        if !early {
            seccomp::install(filters)?;
        }
        // ANCHOR_END: seccomp
        step(r, seccomp::describe(profile));
    }
    Ok(())
}

/// `lo` is up; with a lease, `eth0` too.
fn setup_net(
    r: &mut Reporter,
    rtnl: &net_demo::rtnl::Rtnl,
    eth0: Option<(Ipv4Addr, u8)>,
) -> Result<()> {
    match eth0 {
        None => step(
            r,
            "RTM_SETLINK lo up (ip link set lo up): the network namespace has nothing else",
        ),
        Some((address, prefix)) => {
            net::configure_inside(rtnl, address, prefix)?;
            step(
                r,
                format!(
                    "RTM_SETLINK lo up; RTM_NEWADDR {address}/{prefix} dev eth0; eth0 up (no default route: only the bridge's subnet is reachable)"
                ),
            );
        }
    }
    Ok(())
}
