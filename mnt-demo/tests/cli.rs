//! Runs the real `mnt-demo` binary for every subcommand, snapshots its output and asserts what
//! the kernel did, and that the host's mount table is the same before and after. Every demo
//! runs with `--rootless`, so the output is the same as root or not; root-only tests run the
//! real-root path and the real unprivileged user.

use std::path::Path;

use labkit::assert_run_snapshot;
use labkit::testing::{
    Run, assert_no_process_left, in_test_namespaces, needs_root, needs_unprivileged_userns, run,
    run_as_nobody, thread_mounts,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mnt-demo"))
}

/// Run `f` with a mount namespace this test made (`/` private) as the demo's "host" (see
/// [`in_test_namespaces`]): no mount made on the machine meanwhile, by another run or anyone,
/// changes it. Returns the result and that namespace's mount table before and after.
fn with_test_host<T: Send>(f: impl FnOnce() -> T + Send) -> (String, T, String) {
    in_test_namespaces(nix::sched::CloneFlags::CLONE_NEWNS, f, || {
        // The copies of other runs' mounts on their `nslab-*` paths (a uts-demo pin) come and
        // go here too: removing a mount point on the host detaches its copies in every other
        // mount namespace. mnt-demo makes nothing on such paths; they are not this test's.
        thread_mounts()
            .lines()
            .filter(|l| !l.contains("/nslab-"))
            .map(|l| format!("{l}\n"))
            .collect()
    })
    .0
}

/// Run a demo with `--rootless` and check the host's mount table did not change; `None` (after a
/// loud skip) where user namespaces are not allowed.
fn demo(test: &str, args: &[&str]) -> Option<Run> {
    let mut all = vec!["--rootless"];
    all.extend_from_slice(args);
    let (before, r, after) = with_test_host(|| run(bin(), &all));
    if r.code == 77 && needs_unprivileged_userns(test) {
        return None;
    }
    r.expect_code(0);
    assert_eq!(before, after, "the host's mount table changed");
    assert!(
        r.stdout.contains("/proc/self/mountinfo: ")
            && r.stdout.contains(" mounts before, and no new one after")
    );
    assert_no_process_left(&r, "mnt-demo");
    Some(r)
}

/// Values that differ between machines: mount IDs and device numbers, mount counts.
const MACHINE: &[(&str, &str)] = &[
    (
        r"mountinfo:  \d+ \d+ \d+:\d+",
        "mountinfo:  [ID] [PARENT-ID] [DEV]",
    ),
    (r"\b\d+ mounts\b", "[N] mounts"),
    // What this host uses for / (private here, shared on systemd hosts).
    (
        r"/ is (private|shared:\[GROUP-\d+\]|master:\[GROUP-\d+\])",
        "/ is [HOST-PROPAGATION]",
    ),
];

/// The matrix row of an event, one mark per column (x, . or _ for blank), read at the offsets
/// of the column labels in the header line.
fn matrix_row(r: &Run, event: &str) -> String {
    let header = r
        .stdout
        .lines()
        .find(|l| l.contains(" event "))
        .expect("matrix header");
    let start = header.find("event").unwrap();
    let labels = ["a", "b", "c", "m", "s", "t", "s2", "p", "q"];
    let mut offsets = Vec::new();
    let mut from = start + "event".len();
    for label in labels {
        let at = header[from..]
            .find(&format!(" {label} "))
            .or_else(|| header[from..].find(&format!(" {label}")))
            .unwrap()
            + from
            + 1;
        offsets.push(at);
        from = at + label.len();
    }
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(&format!("tmpfs on {event} ")))
        .unwrap_or_else(|| panic!("no row {event}"));
    offsets
        .iter()
        .map(|&o| match line.as_bytes().get(o) {
            Some(b'x') => 'x',
            Some(b'.') => '.',
            _ => '_',
        })
        .collect()
}

#[test]
fn help_lists_every_subcommand() {
    let r = run(bin(), &["--help"]);
    r.expect_code(0);
    for sub in ["show", "copy", "propagation", "root", "chroot"] {
        assert!(r.stdout.contains(sub));
    }
    assert_run_snapshot!("help", r);
}

#[test]
fn show_lists_the_mounts_with_their_propagation() {
    let r = run(bin(), &["show"]);
    r.expect_code(0);
    assert!(r.stdout.contains("PROPAGATION"));
    let root = r
        .stdout
        .lines()
        .find(|l| l.ends_with(" /"))
        .expect("a row for /");
    assert!(
        root.contains("shared:") || root.contains("private") || root.contains("master:"),
        "{root}"
    );
    let bad = run(bin(), &["show", "--pid", "999999999"]);
    bad.expect_code(2);
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
}

#[test]
fn a_new_mount_namespace_is_a_copy_and_then_stays_apart() {
    let Some(r) = demo(
        "a_new_mount_namespace_is_a_copy_and_then_stays_apart",
        &["copy"],
    ) else {
        return;
    };
    assert!(
        r.stdout
            .contains("same mount points as the parent: yes; all mount IDs new: yes")
    );
    assert!(
        r.stdout
            .contains("/mountinfo: yes; in /proc/self/mountinfo: no"),
        "the child's mount stays in the child"
    );
    assert!(
        r.stdout
            .contains("is /tmp/lab/outside a mount point here? no"),
        "the parent's mount stays in the parent"
    );
    for file in [
        "mounts:     tmpfs /tmp/lab/inside",
        "mountinfo:  ",
        "mountstats: device tmpfs mounted on /tmp/lab/inside",
    ] {
        assert!(r.stdout.contains(file), "{file}");
    }
    assert_run_snapshot!("copy", r, MACHINE);
}

#[test]
fn propagation_follows_shared_slave_private_and_unbindable() {
    let Some(r) = demo(
        "propagation_follows_shared_slave_private_and_unbindable",
        &["propagation"],
    ) else {
        return;
    };
    //                                  a b c m s t s2 p q
    assert_eq!(
        matrix_row(&r, "a/e1"),
        "xxx..._..",
        "shared: peers receive it"
    );
    assert_eq!(matrix_row(&r, "b/e2"), "xxx..._..", "both ways");
    assert_eq!(
        matrix_row(&r, "m/e3"),
        "...xxx_..",
        "master to slaves, and to the slave's clone t"
    );
    assert_eq!(matrix_row(&r, "s/e4"), "....x._..", "never slave to master");
    assert_eq!(matrix_row(&r, "p/e5"), "......_x.", "private");
    assert_eq!(matrix_row(&r, "q/e6"), "......_.x", "private");
    assert_eq!(
        matrix_row(&r, "s/e7"),
        "....x.x..",
        "shared and slave: its own peer"
    );
    assert_eq!(
        matrix_row(&r, "m/e8"),
        "...xxxx..",
        "and still its master's slave"
    );
    assert!(
        r.stdout.contains("MS_BIND) -> EINVAL"),
        "an unbindable mount refuses a bind"
    );
    let fields = |label: &str| {
        r.stdout
            .lines()
            .filter(|l| l.contains(&format!("] {label} ")) || l.contains(&format!("    {label}  ")))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert!(
        fields("s2")
            .iter()
            .any(|l| l.contains("shared:") && l.contains("master:")),
        "s2 is shared and slave"
    );
    assert_run_snapshot!("propagation", r, MACHINE);
}

#[test]
fn a_runtime_must_make_its_root_private_or_slave_first() {
    let Some(r) = demo(
        "a_runtime_must_make_its_root_private_or_slave_first",
        &["root"],
    ) else {
        return;
    };
    // Expected and actual side by side: the line the demo printed about each mount.
    let said = |what: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(what))
            .map_or("(no line)".to_string(), |l| l.trim().to_string())
    };
    for (mount, want) in [
        ("/tmp/lab/x1:", "/tmp/lab/x1: LEAKED into the lab"),
        ("/tmp/lab/x2:", "/tmp/lab/x2: stayed in the container"),
        ("/tmp/lab/x3:", "/tmp/lab/x3: stayed in the container"),
    ] {
        assert!(
            r.stdout.contains(want),
            "expected {want:?}, got {:?}",
            said(mount)
        );
    }
    assert!(
        r.stdout.contains("/tmp/lab/x2-back: not seen here"),
        "private: nothing comes in either"
    );
    assert!(
        r.stdout.contains("/tmp/lab/x3-back: seen here"),
        "slave: the host's later mounts still come in"
    );
    assert_run_snapshot!("root", r, MACHINE);
}

#[test]
fn chroot_can_be_escaped_and_pivot_root_cannot() {
    let Some(r) = demo("chroot_can_be_escaped_and_pivot_root_cannot", &["chroot"]) else {
        return;
    };
    assert!(r.stdout.contains("[chroot]") && r.stdout.contains("the real root again: ESCAPED"));
    assert!(r.stdout.contains("still the tiny root: no way out"));
    assert!(r.stdout.contains("ls / -> bin dev etc proc tmp;"));
    assert_run_snapshot!("chroot", r, MACHINE);
}

#[test]
fn every_mount_demo_runs_as_real_root_too() {
    if needs_root("every_mount_demo_runs_as_real_root_too") {
        return;
    }
    for sub in ["copy", "propagation", "root", "chroot"] {
        let (before, r, after) = with_test_host(|| run(bin(), &[sub]));
        r.expect_code(0);
        assert!(
            !r.stdout.contains("rootless:"),
            "{sub} ran as root, directly"
        );
        assert_eq!(before, after, "{sub} changed the host's mount table");
    }
}

#[test]
fn mount_demos_run_as_an_unprivileged_user() {
    if needs_root("mount_demos_run_as_an_unprivileged_user")
        || needs_unprivileged_userns("mount_demos_run_as_an_unprivileged_user")
    {
        return;
    }
    let (before, r, after) = with_test_host(|| run_as_nobody(bin(), &["chroot"]));
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("rootless: continuing in a new user namespace")
    );
    assert!(r.stdout.contains("no way out"));
    assert_eq!(before, after);
}
