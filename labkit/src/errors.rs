//! Errors that teach: the exit codes every demo shares, and a hint for each errno a learner meets.
//!
//! Errors are `anyhow` chains whose outer contexts name the syscall or file
//! (`sethostname("x")`, `/proc/42/ns/uts`) and whose root is the kernel's `Errno`. [`report`]
//! prints the chain on one line, then one `hint:` line when the errno has a lesson attached.

use std::fmt;
use std::process::ExitCode;

use nix::errno::Errno;

/// The program failed for a reason that is neither bad input nor missing privilege.
pub const EXIT_FAILURE: u8 = 1;
/// Bad input: a malformed value, a PID that does not exist, a file that is not a namespace file.
/// (clap uses the same code for its own usage errors.)
pub const EXIT_BAD_INPUT: u8 = 2;
/// The machine, not the program, is missing something: a privilege (EPERM, EACCES) or a kernel
/// feature (ENOSYS, a namespace type the kernel does not have). 77 is the code automake and
/// meson give to "skipped: the environment cannot run this".
pub const EXIT_NEEDS_PRIVILEGE_OR_FEATURE: u8 = 77;

/// Input the user gave that cannot work; reported with [`EXIT_BAD_INPUT`].
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// An `anyhow::Error` for bad input.
pub fn bad_input(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

/// A kernel feature this machine does not have (reported with the "needs privilege or feature"
/// exit code even though no errno says so).
#[derive(Debug)]
pub struct MissingFeature(pub String);

impl fmt::Display for MissingFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MissingFeature {}

/// The kernel's errno at the root of an error chain, if any.
pub fn errno_of(err: &anyhow::Error) -> Option<Errno> {
    err.chain().find_map(|cause| {
        if let Some(errno) = cause.downcast_ref::<Errno>() {
            return Some(*errno);
        }
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .map(Errno::from_raw)
    })
}

/// The lesson behind an errno, given the failed operation (the error's text, which names the
/// syscall or file). More specific rows come first.
pub fn hint_for(errno: Errno, what: &str) -> Option<&'static str> {
    // (errno, the operation must mention this, the hint)
    const HINTS: &[(Errno, &str, &str)] = &[
        (
            Errno::EPERM,
            "CLONE_NEWUSER",
            "this kernel refuses unprivileged user namespaces: see kernel.unprivileged_userns_clone, \
             user.max_user_namespaces or an AppArmor/SELinux policy (nslab-doctor tells which)",
        ),
        (
            Errno::ENOSPC,
            "CLONE_NEWUSER",
            "user.max_user_namespaces is reached (or 0): this machine allows no more user namespaces",
        ),
        (
            Errno::EPERM,
            "setns",
            "joining a namespace needs CAP_SYS_ADMIN in the user namespace that owns it (and in your \
             own): run as root, or join namespaces that your own user namespace created",
        ),
        (
            Errno::EINVAL,
            "setns",
            "setns(2) checks the type you pass: the file is a namespace of another type than \
             --type says (0 would accept any type), or you are already in that user namespace",
        ),
        (
            Errno::EPERM,
            "sethostname",
            "changing a hostname needs CAP_SYS_ADMIN in the user namespace that owns the UTS \
             namespace: the host's belongs to the initial user namespace, which only real root controls",
        ),
        (
            Errno::EPERM,
            "mount",
            "mounting needs CAP_SYS_ADMIN in the user namespace that owns the current mount namespace: \
             run as root (pins made rootless live only as long as the demo's own mount namespace)",
        ),
        (
            Errno::EPERM,
            "unshare",
            "creating this namespace needs CAP_SYS_ADMIN: run as root, or run the demo as a normal \
             user and it continues inside a user namespace of its own",
        ),
        (
            Errno::EPERM,
            "clone",
            "creating this namespace needs CAP_SYS_ADMIN: run as root, or run the demo as a normal \
             user and it continues inside a user namespace of its own",
        ),
        (
            Errno::EACCES,
            "/proc/",
            "reading /proc/PID/ns of a process needs ptrace read access to it (PTRACE_MODE_READ): \
             your own processes, or any as root",
        ),
        (
            Errno::EPERM,
            "RTM_",
            "configuring network devices needs CAP_NET_ADMIN in the user namespace that owns the \
             network namespace: real root for the host's, anyone for a namespace of their own",
        ),
        (
            Errno::EACCES,
            "/sys/fs/cgroup",
            "making and changing cgroups needs root, or a cgroup v2 subtree delegated to you: \
             with systemd, `systemd-run --user --scope -p Delegate=yes cgroup-demo ...`; by hand, \
             root makes a group, chowns it and its cgroup.procs, cgroup.subtree_control and \
             cgroup.threads to you, enables the controllers in its parent's \
             cgroup.subtree_control, and moves your shell into a child group of it \
             (the book's cgroups chapter, \"Delegation\")",
        ),
        (
            Errno::ERANGE,
            "timens_offsets",
            "an offset may not move a clock below zero (or past its limit): try a smaller negative offset",
        ),
        (
            Errno::EACCES,
            "timens_offsets",
            "offsets can be written only while no process has entered the new time namespace yet",
        ),
        (
            Errno::EPERM,
            "",
            "the kernel checked a capability and you do not have it (run as root, or inside a user \
             namespace that owns the resource)",
        ),
        (
            Errno::EACCES,
            "",
            "permission denied by file permissions or a security module: run as root",
        ),
        (
            Errno::ENOSYS,
            "",
            "the running kernel does not have this system call (too old, or disabled at build time)",
        ),
        (
            Errno::EINVAL,
            "unshare",
            "the kernel does not know one of these CLONE_NEW* flags (built without that namespace?)",
        ),
        (
            Errno::EINVAL,
            "clone",
            "the kernel does not know one of these CLONE_NEW* flags (built without that namespace?)",
        ),
    ];
    HINTS
        .iter()
        .find(|(e, needle, _)| *e == errno && what.contains(needle))
        .map(|(_, _, hint)| *hint)
}

/// Whether an error means "the machine lacks a privilege or feature" rather than a bug or bad input.
pub fn is_missing_privilege_or_feature(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.is::<MissingFeature>())
        || matches!(
            errno_of(err),
            Some(Errno::EPERM | Errno::EACCES | Errno::ENOSYS | Errno::EOPNOTSUPP)
        )
}

/// The exit code for an error (see the constants above).
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|c| c.is::<BadInput>()) {
        EXIT_BAD_INPUT
    } else if is_missing_privilege_or_feature(err) {
        EXIT_NEEDS_PRIVILEGE_OR_FEATURE
    } else {
        EXIT_FAILURE
    }
}

/// Print an error as `prog: what: why` on one line, then a `hint:` line when there is a lesson
/// for its errno, and return the matching exit code.
pub fn report(prog: &str, err: &anyhow::Error) -> ExitCode {
    let text = format!("{err:#}");
    eprintln!("{prog}: {text}");
    if let Some(hint) = errno_of(err).and_then(|e| hint_for(e, &text)) {
        eprintln!("{prog}: hint: {hint}");
    }
    ExitCode::from(exit_code_for(err))
}

/// The body of every demo's `main`: run, and turn an error into its report and exit code.
pub fn run_main(prog: &str, run: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    let result = run();
    if crate::narrate::output_closed() {
        // The reader went away mid-way: the demo finished and cleaned up; say what a tool
        // killed by SIGPIPE says (128 + 13).
        return ExitCode::from(141);
    }
    match result {
        Ok(code) => code,
        Err(err) => report(prog, &err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn errno_is_found_under_contexts() {
        let err = Err::<(), _>(Errno::EPERM)
            .context("sethostname(\"x\")")
            .unwrap_err();
        assert_eq!(errno_of(&err), Some(Errno::EPERM));
        assert_eq!(exit_code_for(&err), EXIT_NEEDS_PRIVILEGE_OR_FEATURE);
    }

    #[test]
    fn io_errors_count_as_errnos() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        let err = anyhow::Error::new(io).context("/proc/1/ns/uts");
        assert_eq!(errno_of(&err), Some(Errno::EACCES));
        assert!(
            hint_for(Errno::EACCES, &format!("{err:#}"))
                .unwrap()
                .contains("ptrace")
        );
    }

    #[test]
    fn specific_hints_win_over_generic_ones() {
        assert!(
            hint_for(Errno::EPERM, "setns(/proc/1/ns/uts)")
                .unwrap()
                .contains("joining")
        );
        assert!(
            hint_for(Errno::EPERM, "unshare(CLONE_NEWUSER)")
                .unwrap()
                .contains("unprivileged")
        );
        assert!(
            hint_for(Errno::EPERM, "kill")
                .unwrap()
                .contains("capability")
        );
        assert_eq!(hint_for(Errno::ENOENT, "open"), None);
    }

    #[test]
    fn bad_input_has_its_own_exit_code() {
        let err = bad_input("no process with PID 7").context("ns");
        assert_eq!(exit_code_for(&err), EXIT_BAD_INPUT);
        let other = anyhow::anyhow!("boom");
        assert_eq!(exit_code_for(&other), EXIT_FAILURE);
    }
}
