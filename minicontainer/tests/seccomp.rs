//! The seccomp compiler, checked by installing each profile in a forked child and making the
//! calls there: a single-threaded program (`harness = false`), since fork must not run inside
//! libtest's threads.

use minicontainer::seccomp::{compile, install};
use oci_spec::runtime::LinuxSeccomp;
use serde_json::json;

/// Compile `profile`, install it in a forked child, make `call` there: the errno it got
/// (0 if it was allowed).
fn errno_in_child(profile: serde_json::Value, call: fn() -> nix::Result<()>) -> i32 {
    let profile: LinuxSeccomp = serde_json::from_value(profile).unwrap();
    let programs = compile(&profile).unwrap();
    let mut child = labkit::child::fork_child(move |_| {
        install(&programs)?;
        Ok(match call() {
            Ok(()) => 0,
            Err(e) => e as i32,
        })
    })
    .unwrap();
    labkit::child::exit_code(child.wait().unwrap())
}

/// dup(2) of one of the standard streams (open for the whole test run).
fn dup(fd: i32) -> nix::Result<()> {
    match fd {
        0 => nix::unistd::dup(std::io::stdin()),
        1 => nix::unistd::dup(std::io::stdout()),
        _ => nix::unistd::dup(std::io::stderr()),
    }
    .map(drop)
}

/// What a process needs to get from a call to its end in a filter that refuses by default.
const ESSENTIAL: &[&str] = &[
    "exit_group",
    "exit",
    "write",
    "brk",
    "mmap",
    "munmap",
    "madvise",
    "futex",
    "rt_sigprocmask",
    "sigaltstack",
    "close",
];

fn a_default_allow_profile_answers_each_entry_with_its_errno() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            // No errnoRet: EPERM. An unknown name is skipped, the rest of the entry kept.
            {"names": ["nslab_no_such_call", "chdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS},
            // Only dup(0): dup(1) is not refused.
            {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        ]
    });
    assert_eq!(
        errno_in_child(profile.clone(), || nix::unistd::chdir("/")),
        libc::EPERM
    );
    assert_eq!(
        errno_in_child(profile.clone(), || nix::unistd::getcwd().map(drop)),
        libc::ENOSYS
    );
    assert_eq!(errno_in_child(profile.clone(), || dup(0)), libc::EXDEV);
    assert_eq!(errno_in_child(profile.clone(), || dup(1)), 0);
    assert_eq!(
        errno_in_child(profile, || nix::sys::utsname::uname().map(drop)),
        0
    );
}

fn a_default_errno_profile_allows_only_what_it_names() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EACCES,
        "syscalls": [
            {"names": ESSENTIAL, "action": "SCMP_ACT_ALLOW"},
            {"names": ["uname"], "action": "SCMP_ACT_ALLOW"},
            // An entry with the default's action: refused as by the default.
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES},
            // Allowed only for fd 1 (two entries of the same call: either may match).
            {"names": ["dup"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            // Another errno only for fd 2; dup(0) gets the default.
            {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
             "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
        ]
    });
    assert_eq!(
        errno_in_child(profile.clone(), || nix::sys::utsname::uname().map(drop)),
        0
    );
    assert_eq!(
        errno_in_child(profile.clone(), || nix::unistd::chdir("/")),
        libc::EACCES
    );
    assert_eq!(
        errno_in_child(profile.clone(), || nix::unistd::getcwd().map(drop)),
        libc::EACCES
    );
    assert_eq!(errno_in_child(profile.clone(), || dup(1)), 0);
    assert_eq!(errno_in_child(profile.clone(), || dup(2)), libc::EXDEV);
    assert_eq!(errno_in_child(profile, || dup(0)), libc::EACCES);
}

fn conditions_on_the_same_argument_are_each_a_rule_of_their_own() {
    // As runc: two comparisons of argument 0 in one entry match when either holds.
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
        ]
    });
    assert_eq!(errno_in_child(profile.clone(), || dup(0)), libc::EXDEV);
    assert_eq!(errno_in_child(profile.clone(), || dup(2)), libc::EXDEV);
    assert_eq!(errno_in_child(profile, || dup(1)), 0);
}

fn main() {
    let checks: &[(&str, fn())] = &[
        (
            "a_default_allow_profile_answers_each_entry_with_its_errno",
            a_default_allow_profile_answers_each_entry_with_its_errno,
        ),
        (
            "a_default_errno_profile_allows_only_what_it_names",
            a_default_errno_profile_allows_only_what_it_names,
        ),
        (
            "conditions_on_the_same_argument_are_each_a_rule_of_their_own",
            conditions_on_the_same_argument_are_each_a_rule_of_their_own,
        ),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match std::panic::catch_unwind(check) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
    println!(
        "\nseccomp: {} passed, {failed} failed",
        checks.len() - failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
