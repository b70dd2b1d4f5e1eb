//! The default seccomp filter: system calls a container has no business making are refused.
//!
//! Docker's default profile is an allow-list of about 350 calls; this one is the short deny-list
//! of what that allow-list leaves out and matters most, so that each entry can be read and
//! explained: the kernel's answer to each is `EPERM`, as if the capability were missing. `clone3`
//! answers `ENOSYS` instead (as in Docker's profile): its flags sit in a struct in memory, which a
//! seccomp filter cannot read, and `ENOSYS` makes the C library fall back to `clone`, whose
//! namespace flags the filter can check.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{Context, Result};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
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
    (
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        "io_uring: a kernel attack surface that seccomp cannot see into",
    ),
    (
        "io_uring_enter",
        libc::SYS_io_uring_enter,
        "io_uring: a kernel attack surface that seccomp cannot see into",
    ),
    (
        "io_uring_register",
        libc::SYS_io_uring_register,
        "io_uring: a kernel attack surface that seccomp cannot see into",
    ),
];

/// `ioctl` requests refused with EPERM whatever the descriptor: `TIOCSTI` pushes bytes into a
/// terminal's input, as if typed (into the caller's shell, were its terminal reachable).
pub const DENIED_IOCTLS: &[(&str, u64)] = &[("TIOCSTI", libc::TIOCSTI)];

/// The bit that marks an x32 system call number (same architecture token as x86_64, other
/// numbers): a filter written for x86_64 numbers does not match them, so they are refused
/// outright with ENOSYS, as though the kernel had no x32 (i386 calls fail the filter's
/// architecture check, which kills the process).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `clone` is refused with EPERM when its flags ask for any new namespace: every flag of
/// `labkit::ns::TABLE` (the workspace's one table of namespace flags), by name and value.
pub fn clone_namespace_flags() -> impl Iterator<Item = (&'static str, u64)> {
    labkit::ns::TABLE
        .iter()
        .map(|(_, _, flag, name)| (*name, u64::from(flag.bits() as u32)))
}

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

fn errno(action: LinuxSeccompAction, errno: u32) -> Result<LinuxSyscall> {
    Ok(LinuxSyscallBuilder::default()
        .names(Vec::<String>::new())
        .action(action)
        .errno_ret(errno)
        .build()?)
}

/// The default filter as the OCI runtime spec writes it (`linux.seccomp` in `config.json`):
/// allow by default; EPERM for [`DENIED`], and for `clone` with any flag of
/// [`clone_namespace_flags`] (one entry per flag: the conditions of one entry must all hold);
/// ENOSYS for `clone3`.
pub fn default_profile() -> Result<LinuxSeccomp> {
    let mut denied = errno(LinuxSeccompAction::ScmpActErrno, libc::EPERM as u32)?;
    denied.set_names(DENIED.iter().map(|(n, _, _)| n.to_string()).collect());
    let mut syscalls = vec![denied];
    for (_, flag) in clone_namespace_flags() {
        let mut clone = errno(LinuxSeccompAction::ScmpActErrno, libc::EPERM as u32)?;
        clone.set_names(vec!["clone".into()]);
        clone.set_args(Some(vec![
            LinuxSeccompArgBuilder::default()
                .index(0usize)
                .value(flag)
                .value_two(flag)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()?,
        ]));
        syscalls.push(clone);
    }
    for (_, request) in DENIED_IOCTLS {
        let mut ioctl = errno(LinuxSeccompAction::ScmpActErrno, libc::EPERM as u32)?;
        ioctl.set_names(vec!["ioctl".into()]);
        ioctl.set_args(Some(vec![
            LinuxSeccompArgBuilder::default()
                .index(1usize)
                .value(*request)
                .op(LinuxSeccompOperator::ScmpCmpEq)
                .build()?,
        ]));
        syscalls.push(ioctl);
    }
    let mut clone3 = errno(LinuxSeccompAction::ScmpActErrno, libc::ENOSYS as u32)?;
    clone3.set_names(vec!["clone3".into()]);
    syscalls.push(clone3);
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![if cfg!(target_arch = "aarch64") {
            Arch::ScmpArchAarch64
        } else {
            Arch::ScmpArchX86_64
        }])
        .syscalls(syscalls)
        .build()?)
}

/// The profile actions [`action`] compiles (what `features` reports; a test keeps the two
/// together).
pub const SUPPORTED_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
];

fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<SeccompAction> {
    use LinuxSeccompAction as A;
    Ok(match action {
        A::ScmpActAllow => SeccompAction::Allow,
        A::ScmpActErrno => SeccompAction::Errno(errno_ret.unwrap_or(libc::EPERM as u32)),
        A::ScmpActKill | A::ScmpActKillThread => SeccompAction::KillThread,
        A::ScmpActKillProcess => SeccompAction::KillProcess,
        A::ScmpActTrap => SeccompAction::Trap,
        A::ScmpActLog => SeccompAction::Log,
        A::ScmpActTrace => SeccompAction::Trace(errno_ret.unwrap_or(libc::EPERM as u32)),
        other => anyhow::bail!(labkit::bad_input(format!(
            "config: seccomp action {other:?} is not supported by minicontainer"
        ))),
    })
}

/// Per syscall number, its rules (`None`: whatever the arguments).
type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;

/// The rules of one entry's `args`: all of them together, one rule; but where two of them
/// compare the same argument, each alone, one rule each (as runc adds them to libseccomp).
fn rules(args: &[oci_spec::runtime::LinuxSeccompArg]) -> Result<Vec<SeccompRule>> {
    let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.len() == args.len() {
        Ok(vec![rule(args)?])
    } else {
        args.iter().map(|a| rule(std::slice::from_ref(a))).collect()
    }
}

fn rule(args: &[oci_spec::runtime::LinuxSeccompArg]) -> Result<SeccompRule> {
    use LinuxSeccompOperator as O;
    let conditions = args
        .iter()
        .map(|a| {
            let index = u8::try_from(a.index()).context("seccomp argument index")?;
            let (op, value) = match a.op() {
                O::ScmpCmpNe => (SeccompCmpOp::Ne, a.value()),
                O::ScmpCmpLt => (SeccompCmpOp::Lt, a.value()),
                O::ScmpCmpLe => (SeccompCmpOp::Le, a.value()),
                O::ScmpCmpEq => (SeccompCmpOp::Eq, a.value()),
                O::ScmpCmpGe => (SeccompCmpOp::Ge, a.value()),
                O::ScmpCmpGt => (SeccompCmpOp::Gt, a.value()),
                O::ScmpCmpMaskedEq => (
                    SeccompCmpOp::MaskedEq(a.value()),
                    a.value_two().unwrap_or_default(),
                ),
            };
            Ok(SeccompCondition::new(
                index,
                SeccompCmpArgLen::Qword,
                op,
                value,
            )?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SeccompRule::new(conditions)?)
}

/// Add the rules of one entry for `nr` to `map`: an entry without arguments matches whatever
/// the arguments (an empty rule list, in seccompiler's terms), and wins over conditional ones.
fn add_rules(map: &mut Rules, nr: i64, args: &[oci_spec::runtime::LinuxSeccompArg]) -> Result<()> {
    let slot = map.entry(nr).or_insert_with(|| Some(Vec::new()));
    match (slot.as_mut(), args.is_empty()) {
        (_, true) => *slot = None,
        (Some(list), false) => list.extend(rules(args)?),
        (None, false) => {}
    }
    Ok(())
}

fn filter(map: Rules, mismatch: SeccompAction, matched: SeccompAction) -> Result<BpfProgram> {
    let map = map
        .into_iter()
        .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
        .collect();
    SeccompFilter::new(map, mismatch, matched, arch())
        .context("build the seccomp filter")?
        .try_into()
        .context("compile the seccomp filter")
}

/// Compile an OCI seccomp profile into BPF programs, one per action (seccompiler gives a filter
/// one matching action); the kernel applies the strictest answer of all the filters. Names this
/// architecture does not have are skipped, as runc does.
pub fn compile(profile: &LinuxSeccomp) -> Result<Vec<BpfProgram>> {
    if profile.listener_path().is_some() {
        anyhow::bail!(labkit::bad_input(
            "config: seccomp listenerPath (user notification) is not supported by minicontainer"
        ));
    }
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    // Per action: syscall -> rules (None: whatever the arguments).
    let mut groups: Vec<(SeccompAction, Rules)> = Vec::new();
    // What the default does not apply to: every syscall named with another action, under the
    // entry's conditions (where they do not hold, the default answers, as in libseccomp).
    let mut exempt: Rules = BTreeMap::new();
    for entry in profile.syscalls().iter().flatten() {
        let act = action(entry.action(), entry.errno_ret())?;
        // An entry with the default's own action changes nothing (runc skips it too): exempting
        // it from the default with no filter of its own would allow it.
        if act == default {
            continue;
        }
        let args = entry.args().clone().unwrap_or_default();
        for name in entry.names() {
            let Ok(sysno) = syscalls::Sysno::from_str(name) else {
                continue;
            };
            let nr = i64::from(sysno.id());
            add_rules(&mut exempt, nr, &args)?;
            if act == SeccompAction::Allow {
                continue;
            }
            let at = match groups.iter().position(|(a, _)| *a == act) {
                Some(i) => i,
                None => {
                    groups.push((act.clone(), BTreeMap::new()));
                    groups.len() - 1
                }
            };
            add_rules(&mut groups[at].1, nr, &args)?;
        }
    }
    let mut programs = vec![no_x32()];
    for (act, map) in groups {
        programs.push(filter(map, SeccompAction::Allow, act)?);
    }
    // The default's filter last: once it is in, seccomp(2) itself may be refused, and the
    // filters after it could not be installed.
    if default != SeccompAction::Allow {
        programs.push(filter(exempt, default, SeccompAction::Allow)?);
    }
    Ok(programs)
}

/// ENOSYS for every x32 system call number (see [`X32_SYSCALL_BIT`]), allow the rest: seccomp
/// data's `nr` at offset 0, one comparison.
fn no_x32() -> BpfProgram {
    use seccompiler::sock_filter;
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 0),
        op(JGE_K, 0, 1, X32_SYSCALL_BIT),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// The default filter's programs.
pub fn programs() -> Result<Vec<BpfProgram>> {
    compile(&default_profile()?)
}

/// Install compiled filters (`seccomp(SECCOMP_SET_MODE_FILTER)`): needs `no_new_privs` or
/// `CAP_SYS_ADMIN`; inherited by every child and kept across execve(2), for good. Returns the
/// number of BPF instructions.
pub fn install(programs: &[BpfProgram]) -> Result<usize> {
    let mut instructions = 0;
    for program in programs {
        instructions += program.len();
        let program: Vec<labkit::sys::BpfInstruction> = program
            .iter()
            .map(|i| labkit::sys::BpfInstruction {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        labkit::sys::seccomp_set_filter(&program).context(
            "seccomp(SECCOMP_SET_MODE_FILTER) (without no_new_privs it needs CAP_SYS_ADMIN)",
        )?;
    }
    Ok(instructions)
}

/// One line for `--explain`: the default profile by its names, any other by its size.
pub fn describe(profile: &LinuxSeccomp) -> String {
    if default_profile().is_ok_and(|d| d == *profile) {
        return format!(
            "seccomp(SECCOMP_SET_MODE_FILTER): EPERM for {} calls ({}), for clone with {}, for ioctl {}; ENOSYS for clone3 and x32 numbers",
            DENIED.len(),
            DENIED
                .iter()
                .map(|(n, _, _)| *n)
                .collect::<Vec<_>>()
                .join(" "),
            clone_namespace_flags()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
                .join("|"),
            DENIED_IOCTLS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    format!(
        "seccomp(SECCOMP_SET_MODE_FILTER): the config's profile, default {:?}, {} entries",
        profile.default_action(),
        profile.syscalls().as_ref().map_or(0, Vec::len)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_actions_are_the_ones_that_compile() {
        for name in SUPPORTED_ACTIONS {
            let a: LinuxSeccompAction =
                serde_json::from_value(serde_json::Value::String(name.to_string())).unwrap();
            assert!(action(a, None).is_ok(), "{name}");
        }
        let notify: LinuxSeccompAction =
            serde_json::from_value(serde_json::json!("SCMP_ACT_NOTIFY")).unwrap();
        assert!(
            action(notify, None).is_err(),
            "not in the list, not compiled"
        );
    }

    #[test]
    fn the_filters_compile_and_name_what_they_refuse() {
        let programs = programs().unwrap();
        assert_eq!(programs.len(), 3, "x32, EPERM, ENOSYS");
        assert_eq!(programs[0], no_x32());
        assert!(
            programs[1].len() > DENIED.len(),
            "one jump at least per call"
        );
        let text = describe(&default_profile().unwrap());
        for name in [
            "kexec_load",
            "init_module",
            "unshare",
            "CLONE_NEWUSER",
            "clone3",
            "io_uring_setup",
            "TIOCSTI",
            "x32",
        ] {
            assert!(text.contains(name), "{name}: {text}");
        }
    }
}
