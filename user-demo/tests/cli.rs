//! Runs the real `user-demo` binary for every subcommand, as root and as the unprivileged user
//! `nobody` (these demos are rootless mode itself), snapshots the output and asserts what the
//! kernel did.

use std::path::Path;

use labkit::assert_run_snapshot;
use labkit::testing::{
    Run, assert_no_process_left, host_name, needs_root, needs_unprivileged_userns, run,
    run_as_nobody,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_user-demo"))
}

/// Run as the current user (root in CI); `None` after a loud skip without user namespaces.
fn demo(test: &str, args: &[&str]) -> Option<Run> {
    let r = run(bin(), args);
    if r.code == 77 && needs_unprivileged_userns(test) {
        return None;
    }
    r.expect_code(0);
    assert_no_process_left(&r, "user-demo");
    Some(r)
}

/// Run as nobody; `None` after a loud skip without root (to switch user) or user namespaces.
fn as_nobody(test: &str, args: &[&str]) -> Option<Run> {
    if needs_root(test) || needs_unprivileged_userns(test) {
        return None;
    }
    let r = run_as_nobody(bin(), args);
    r.expect_code(0);
    Some(r)
}

/// The kernel decides whether modules exist at all: EPERM with module support, ENOSYS without.
const MODULES: &[(&str, &str)] = &[
    // The kernel's list of capabilities grows with its version.
    (
        r"capget\(\): \d+ effective capabilities, \d+ in the bounding set",
        "capget(): [N] effective capabilities, [N] in the bounding set",
    ),
    (
        r"effective: (CAP_[A-Z_]+ ?)+",
        "effective: [every capability this kernel has, CAP_AUDIT_CONTROL ... CAP_WAKE_ALARM]",
    ),
    (
        r"finit_module\(/dev/null\) -> (EPERM: Operation not permitted|ENOSYS: Function not implemented \(this kernel has no loadable modules at all\))",
        "finit_module(/dev/null) -> [EPERM, or ENOSYS without module support]",
    ),
];

fn has(r: &Run, needle: &str) -> bool {
    r.stdout.contains(needle)
}

#[test]
fn help_lists_every_subcommand() {
    let r = run(bin(), &["--help"]);
    r.expect_code(0);
    for sub in ["ids", "caps", "setgroups", "owner"] {
        assert!(r.stdout.contains(sub));
    }
    assert_run_snapshot!("help", r);
}

#[test]
fn ids_are_nobody_until_mapped_then_root_inside_and_unchanged_outside() {
    let Some(r) = demo(
        "ids_are_nobody_until_mapped_then_root_inside_and_unchanged_outside",
        &["ids"],
    ) else {
        return;
    };
    assert!(has(&r, "getuid() -> 65534, getgid() -> 65534: no map yet"));
    assert!(has(&r, "getuid() -> 0, getgid() -> 0"));
    let own = nix::unistd::geteuid().as_raw();
    assert!(
        has(&r, &format!("Uid: {own} {own} {own} {own}")),
        "outside it is still {own}:\n{}",
        r.stdout
    );
    if own == 0 {
        assert_run_snapshot!("ids_root", r);
    }
}

#[test]
fn ids_as_nobody_map_nobody_to_root() {
    let Some(r) = as_nobody("ids_as_nobody_map_nobody_to_root", &["ids"]) else {
        return;
    };
    assert!(has(&r, "write(/proc/") && has(&r, "uid_map, \"0 65534 1\")"));
    assert!(has(&r, "getuid() -> 0, getgid() -> 0"));
    assert!(has(&r, "Uid: 65534 65534 65534 65534"));
    assert_run_snapshot!("ids_nobody", r);
}

#[test]
fn ids_with_a_range_map_as_root() {
    if needs_root("ids_with_a_range_map_as_root") {
        return;
    }
    let r = run(bin(), &["ids", "--map", "0:100000:65536"]);
    r.expect_code(0);
    assert!(has(&r, "/proc/self/uid_map: 0 100000 65536"));
    assert!(has(&r, "setresuid(0, 0, 0) -> getuid() 0"));
    assert!(has(&r, "Uid: 100000 100000 100000 100000"), "{}", r.stdout);
    assert_run_snapshot!("ids_range", r);
}

#[test]
fn ids_rejects_malformed_and_overlapping_maps() {
    for (args, needle) in [
        (
            vec!["ids", "--map", "0:1000"],
            "expected INSIDE:OUTSIDE:COUNT",
        ),
        (
            vec!["ids", "--map", "0:x:1"],
            "OUTSIDE \"x\" is not a number",
        ),
        (vec!["ids", "--map", "0:1000:0"], "COUNT must be at least 1"),
        (
            vec!["ids", "--map", "0:1000:10", "--map", "5:2000:10"],
            "overlap inside",
        ),
        (
            vec!["ids", "--map", "0:1000:10", "--map", "20:1005:10"],
            "overlap outside",
        ),
    ] {
        let r = run(bin(), &args);
        r.expect_code(2);
        assert_eq!(r.stdout, "", "nothing was made");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
    assert_run_snapshot!(
        "ids_overlap",
        run(bin(), &["ids", "--map", "0:1000:10", "--map", "5:2000:10"])
    );
}

#[test]
fn ids_refuses_a_range_map_without_root() {
    if needs_root("ids_refuses_a_range_map_without_root") {
        return;
    }
    let r = run_as_nobody(bin(), &["ids", "--map", "0:100000:65536"]);
    r.expect_code(77);
    assert!(
        r.stderr
            .contains("without root, a process may map only its own uid"),
        "{}",
        r.stderr
    );
}

fn check_caps(r: &Run) {
    assert!(has(r, "getuid() -> 0; capget():"));
    assert!(has(r, "CAP_SYS_ADMIN"), "a full set, decoded to names");
    assert!(has(r, "sethostname() in the host's UTS namespace -> EPERM"));
    assert!(has(r, "(root-only on the host) -> EACCES"), "{}", r.stdout);
    assert!(has(r, "clock_settime(CLOCK_REALTIME, now) -> EPERM"));
    assert!(
        has(r, "finit_module(/dev/null) -> EPERM") || has(r, "finit_module(/dev/null) -> ENOSYS")
    );
    assert!(has(r, "sethostname(\"nslab-userns\") -> 0"));
}

#[test]
fn caps_are_full_inside_and_worthless_on_the_host() {
    let host = host_name();
    let Some(r) = demo("caps_are_full_inside_and_worthless_on_the_host", &["caps"]) else {
        return;
    };
    check_caps(&r);
    assert_eq!(host_name(), host);
    if nix::unistd::geteuid().is_root() {
        assert!(
            has(&r, "uid_map, \"0 65534 1\")"),
            "as root, 0 inside is nobody outside"
        );
        assert_run_snapshot!("caps", r, MODULES);
    }
}

#[test]
fn caps_as_nobody_are_the_same() {
    let host = host_name();
    let Some(r) = as_nobody("caps_as_nobody_are_the_same", &["caps"]) else {
        return;
    };
    check_caps(&r);
    assert_eq!(host_name(), host);
}

#[test]
fn gid_map_needs_setgroups_denied_first() {
    let Some(r) = demo("gid_map_needs_setgroups_denied_first", &["setgroups"]) else {
        return;
    };
    let writes: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains("gid_map, \"0 "))
        .collect();
    assert_eq!(writes.len(), 2, "{}", r.stdout);
    assert!(
        writes[0].ends_with("-> EPERM: Operation not permitted"),
        "{}",
        writes[0]
    );
    assert!(writes[1].ends_with("-> 0 (allowed)"), "{}", writes[1]);
    assert!(has(&r, "setgroups: allow"));
    assert_run_snapshot!("setgroups", r);
    if let Some(n) = as_nobody("gid_map_needs_setgroups_denied_first", &["setgroups"]) {
        assert!(n.stdout.contains("-> EPERM") && n.stdout.contains("-> 0 (allowed)"));
    }
}

#[test]
fn namespaces_are_owned_by_the_user_namespace_they_were_made_in() {
    let Some(r) = demo(
        "namespaces_are_owned_by_the_user_namespace_they_were_made_in",
        &["owner"],
    ) else {
        return;
    };
    assert!(has(&r, "unshare(CLONE_NEWUTS) as uid ") && has(&r, "-> EPERM"));
    assert!(has(&r, "unshare(CLONE_NEWUSER | CLONE_NEWUTS) -> 0"));
    let rows: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("child's "))
        .collect();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|l| l.contains("  the child's user namespace  ")),
        "{rows:?}"
    );
    let ours: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("this process's "))
        .collect();
    assert!(
        ours.iter()
            .all(|l| l.contains("  this process's user namespace  ")),
        "{ours:?}"
    );
    assert_run_snapshot!("owner", r);
}
