//! The default seccomp filter: system calls a container has no business making are refused.
//!
//! Docker's default profile is an allow-list of about 350 calls; this one is the short deny-list
//! of what that allow-list leaves out and matters most, so that each entry can be read and
//! explained: the kernel's answer to each is `EPERM`, as if the capability were missing. `clone3`
//! answers `ENOSYS` instead (as in Docker's profile): its flags sit in a struct in memory, which a
//! seccomp filter cannot read, and `ENOSYS` makes the C library fall back to `clone`, whose
//! namespace flags the filter can check.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Refused outright with EPERM: (name, number, why).
pub const DENIED: &[(&str, i64, &str)] = &[
    ("kexec_load", libc::SYS_kexec_load, "boot another kernel"),
    (
        "kexec_file_load",
        libc::SYS_kexec_file_load,
        "boot another kernel",
    ),
    ("init_module", libc::SYS_init_module, "load a kernel module"),
    (
        "finit_module",
        libc::SYS_finit_module,
        "load a kernel module",
    ),
    (
        "delete_module",
        libc::SYS_delete_module,
        "unload a kernel module",
    ),
    ("reboot", libc::SYS_reboot, "reboot the host"),
    ("swapon", libc::SYS_swapon, "the host's swap"),
    ("swapoff", libc::SYS_swapoff, "the host's swap"),
    ("acct", libc::SYS_acct, "process accounting, host-wide"),
    ("settimeofday", libc::SYS_settimeofday, "the host's clock"),
    ("clock_settime", libc::SYS_clock_settime, "the host's clock"),
    ("clock_adjtime", libc::SYS_clock_adjtime, "the host's clock"),
    ("adjtimex", libc::SYS_adjtimex, "the host's clock"),
    ("syslog", libc::SYS_syslog, "the kernel's log"),
    (
        "keyctl",
        libc::SYS_keyctl,
        "kernel keyrings are not namespaced",
    ),
    (
        "add_key",
        libc::SYS_add_key,
        "kernel keyrings are not namespaced",
    ),
    (
        "request_key",
        libc::SYS_request_key,
        "kernel keyrings are not namespaced",
    ),
    ("bpf", libc::SYS_bpf, "load programs into the kernel"),
    (
        "perf_event_open",
        libc::SYS_perf_event_open,
        "observe the host",
    ),
    (
        "userfaultfd",
        libc::SYS_userfaultfd,
        "a tool of kernel exploits",
    ),
    (
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        "open host files by handle (the 'shocker' escape)",
    ),
    ("quotactl", libc::SYS_quotactl, "the host's disk quotas"),
    ("mount", libc::SYS_mount, "mounts"),
    ("umount2", libc::SYS_umount2, "mounts"),
    ("pivot_root", libc::SYS_pivot_root, "mounts"),
    ("move_mount", libc::SYS_move_mount, "mounts"),
    ("open_tree", libc::SYS_open_tree, "mounts"),
    ("fsopen", libc::SYS_fsopen, "mounts"),
    ("fsmount", libc::SYS_fsmount, "mounts"),
    ("fspick", libc::SYS_fspick, "mounts"),
    ("mount_setattr", libc::SYS_mount_setattr, "mounts"),
    ("unshare", libc::SYS_unshare, "new namespaces"),
    ("setns", libc::SYS_setns, "other namespaces"),
];

/// `clone` is refused with EPERM when its flags ask for any of these new namespaces.
pub const CLONE_NAMESPACE_FLAGS: &[(&str, i32)] = &[
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER),
    ("CLONE_NEWNS", libc::CLONE_NEWNS),
    ("CLONE_NEWPID", libc::CLONE_NEWPID),
    ("CLONE_NEWNET", libc::CLONE_NEWNET),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP),
    ("CLONE_NEWTIME", 0x80),
];

fn arch() -> TargetArch {
    #[cfg(target_arch = "aarch64")]
    {
        TargetArch::aarch64
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        TargetArch::x86_64
    }
}

/// The two programs: EPERM for [`DENIED`] and namespace-making `clone`, ENOSYS for `clone3`.
pub fn programs() -> Result<Vec<BpfProgram>> {
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|(_, nr, _)| (*nr, Vec::new())).collect();
    // clone(flags, ...): one rule per flag, any of them matching refuses the call.
    let rules = CLONE_NAMESPACE_FLAGS
        .iter()
        .map(|(_, flag)| {
            let flag = u64::try_from(*flag).context("flag")?;
            let cond = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?;
            Ok(SeccompRule::new(vec![cond])?)
        })
        .collect::<Result<Vec<_>>>()?;
    eperm.insert(libc::SYS_clone, rules);
    let eperm = SeccompFilter::new(
        eperm,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch(),
    )
    .context("build the seccomp filter")?;
    let enosys = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch(),
    )
    .context("build the seccomp filter")?;
    Ok(vec![
        eperm.try_into().context("compile the seccomp filter")?,
        enosys.try_into().context("compile the seccomp filter")?,
    ])
}

/// Install the filters (`seccomp(SECCOMP_SET_MODE_FILTER)`): needs `no_new_privs` or
/// `CAP_SYS_ADMIN`; inherited by every child and kept across execve(2), for good.
pub fn install() -> Result<usize> {
    let programs = programs()?;
    let mut instructions = 0;
    for program in &programs {
        instructions += program.len();
        seccompiler::apply_filter(program).context("seccomp(SECCOMP_SET_MODE_FILTER)")?;
    }
    Ok(instructions)
}

/// One line for `--explain`.
pub fn describe() -> String {
    format!(
        "seccomp(SECCOMP_SET_MODE_FILTER): EPERM for {} calls ({}), for clone with {}; ENOSYS for clone3",
        DENIED.len(),
        DENIED
            .iter()
            .map(|(n, _, _)| *n)
            .collect::<Vec<_>>()
            .join(" "),
        CLONE_NAMESPACE_FLAGS
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join("|")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_and_name_what_they_refuse() {
        let programs = programs().unwrap();
        assert_eq!(programs.len(), 2);
        assert!(
            programs[0].len() > DENIED.len(),
            "one jump at least per call"
        );
        let text = describe();
        for name in [
            "kexec_load",
            "init_module",
            "unshare",
            "CLONE_NEWUSER",
            "clone3",
        ] {
            assert!(text.contains(name), "{name}: {text}");
        }
    }
}
