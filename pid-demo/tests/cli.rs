//! Runs the real `pid-demo` binary for every subcommand, snapshots its output (host PIDs and
//! inodes numbered, clock readings redacted) and asserts what the kernel did. Every demo runs
//! with `--rootless`, so the output is the same as root or not; the root-only tests run the
//! real-root path and the real unprivileged user.

use std::path::Path;

use labkit::assert_run_snapshot;
use labkit::testing::{
    Background, Run, assert_no_process_left, needs_root, needs_unprivileged_userns, run,
    run_as_nobody,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pid-demo"))
}

/// Run a demo with `--rootless`; `None` (after a loud skip) where user namespaces are not allowed.
fn demo(test: &str, args: &[&str]) -> Option<Run> {
    let mut all = vec!["--rootless"];
    all.extend_from_slice(args);
    let r = run(bin(), &all);
    if r.code == 77 && needs_unprivileged_userns(test) {
        return None;
    }
    r.expect_code(0);
    assert_no_process_left(&r, "pid-demo");
    Some(r)
}

/// Lines that contain `needle`.
fn lines_with<'a>(r: &'a Run, needle: &str) -> Vec<&'a str> {
    r.stdout.lines().filter(|l| l.contains(needle)).collect()
}

/// Clock readings and process counts differ from run to run.
const CLOCKS: &[(&str, &str)] = &[(
    r"\(parent \d+\.\d+ s, child \d+\.\d+ s\)",
    "(parent [T] s, child [T] s)",
)];
const COUNTS: &[(&str, &str)] = &[(r"-> \d+ processes: still", "-> [N] processes: still")];

#[test]
fn help_lists_every_subcommand() {
    let r = run(bin(), &["--help"]);
    r.expect_code(0);
    for sub in [
        "tree",
        "siblings",
        "isolation",
        "orphan",
        "init-signals",
        "init-exit",
        "proc",
        "monitor",
        "zombies",
        "time",
    ] {
        assert!(r.stdout.contains(sub), "--help lacks {sub}");
    }
    assert_run_snapshot!("help", r);
}

#[test]
fn tree_numbers_each_process_in_its_namespace_and_every_ancestor() {
    let Some(r) = demo(
        "tree_numbers_each_process_in_its_namespace_and_every_ancestor",
        &["tree", "--depth", "3"],
    ) else {
        return;
    };
    // Level k's init is PID 1 in level k, k-j+1 in level j above it, invisible below.
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("level-"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.len(),
        3,
        "--depth 3: expected a table row for each of 3 levels, got {} (levels reported)\n{}",
        rows.len(),
        r.stdout
    );
    let expected = [["1", "-", "-"], ["2", "1", "-"], ["3", "2", "1"]];
    for (k, (row, want)) in rows.iter().zip(expected).enumerate() {
        assert_eq!(
            row[2..5],
            want,
            "level {}'s init: expected its PID in levels 1, 2, 3 to be {want:?}, got {:?}",
            k + 1,
            &row[2..5]
        );
    }
    assert_eq!(
        lines_with(&r, "getppid() -> 0").len(),
        3,
        "no level sees its parent"
    );
    assert_run_snapshot!("tree", r);
}

#[test]
fn tree_refuses_a_depth_the_kernel_cannot_nest() {
    for depth in ["0", "32"] {
        let r = run(bin(), &["tree", "--depth", depth]);
        r.expect_code(2);
        assert_eq!(r.stdout, "", "nothing was made");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    assert_run_snapshot!("tree_too_deep", run(bin(), &["tree", "--depth", "32"]));
}

#[test]
fn siblings_each_have_a_pid_1() {
    let Some(r) = demo("siblings_each_have_a_pid_1", &["siblings"]) else {
        return;
    };
    let rows: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("child "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0][2], rows[1][2]), ("1", "1"), "both are PID 1");
    assert_ne!(rows[0][3], rows[1][3], "in two different namespaces");
    assert_ne!(rows[0][5], rows[1][5], "and two different processes");
    assert_run_snapshot!("siblings", r);
}

#[test]
fn isolation_hides_the_parent_namespace_but_not_the_reverse() {
    let Some(r) = demo(
        "isolation_hides_the_parent_namespace_but_not_the_reverse",
        &["isolation"],
    ) else {
        return;
    };
    assert_eq!(
        lines_with(&r, "-> ESRCH").len(),
        2,
        "kill and ptrace outward both fail:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("getppid() -> 0"));
    assert!(
        r.stdout.contains("got SIGUSR1 from pid 0"),
        "the inward signal arrives, from an invisible sender"
    );
    assert_run_snapshot!("isolation", r);
}

#[test]
fn orphan_is_adopted_by_the_namespaces_init() {
    let Some(r) = demo("orphan_is_adopted_by_the_namespaces_init", &["orphan"]) else {
        return;
    };
    assert!(r.stdout.contains("getppid() -> 2 (the middle process)"));
    assert!(
        r.stdout
            .contains("getppid() -> 1: the namespace's init adopted this orphan")
    );
    // The PPid the host sees is the init's host PID, printed in step 2.
    let init_host = r
        .stdout
        .split("(host pid ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap();
    assert!(
        r.stdout
            .contains(&format!("PPid in the host's /proc: pid {init_host} =")),
        "{}",
        r.stdout
    );
    assert_run_snapshot!("orphan", r);
}

#[test]
fn init_ignores_unhandled_signals_from_inside_and_all_but_kill_and_stop_from_outside() {
    let Some(r) = demo(
        "init_ignores_unhandled_signals_from_inside_and_all_but_kill_and_stop_from_outside",
        &["init-signals"],
    ) else {
        return;
    };
    assert!(r.stdout.contains("kill(1, SIGKILL) -> 0"));
    assert!(
        r.stdout
            .contains("pid 1 is alive, pending signals 0000000000000000"),
        "SIGKILL from inside did nothing"
    );
    assert!(r.stdout.contains("dropped (PID 1 has no handler)"));
    assert!(r.stdout.contains("stopped by SIGSTOP") && r.stdout.contains("state T"));
    assert!(r.stdout.contains("killed by SIGKILL"));
    assert_run_snapshot!("init_signals", r);
}

#[test]
fn init_exit_kills_the_namespace_and_forbids_new_processes() {
    let Some(r) = demo(
        "init_exit_kills_the_namespace_and_forbids_new_processes",
        &["init-exit"],
    ) else {
        return;
    };
    assert_eq!(lines_with(&r, "gone: the kernel killed it").len(), 2);
    assert!(r.stdout.contains("fork() -> ENOMEM"), "{}", r.stdout);
    assert_run_snapshot!("init_exit", r);
}

#[test]
fn proc_shows_the_namespace_only_after_mounting_a_new_procfs() {
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(r) = demo(
        "proc_shows_the_namespace_only_after_mounting_a_new_procfs",
        &["proc"],
    ) else {
        return;
    };
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(before, after, "the host's mount table is unchanged");
    let host_count: usize = r
        .stdout
        .split("ls /proc -> ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(host_count > 1, "before the mount, the host's processes");
    assert!(
        r.stdout.contains("ls /proc -> 1 process:"),
        "after it, only itself"
    );
    assert!(r.stdout.contains("readlink(/proc/self) -> 1\n"));
    assert_run_snapshot!("proc", r, COUNTS);
}

#[test]
fn monitor_draws_a_namespace_from_the_host() {
    let Some(r) = demo("monitor_draws_a_namespace_from_the_host", &["monitor"]) else {
        return;
    };
    assert!(r.stdout.contains(": 4 processes"));
    assert!(
        r.stdout.contains("│   └── 3 pid-demo"),
        "the grandchild under its parent:\n{}",
        r.stdout
    );
    assert_run_snapshot!("monitor_demo", r);
}

#[test]
fn monitor_lists_the_processes_of_a_namespace_it_did_not_make() {
    // util-linux unshare: a shell that is PID 1 of a new PID namespace (in a user namespace, so
    // no root is needed), with one child. --kill-child: when the test drops `outer` (SIGKILL),
    // the shell dies too, and with it its namespace.
    let outer = Background::start(
        Path::new("unshare"),
        &[
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            "sleep 600 & echo ready; wait",
        ],
        "ready",
    );
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", outer.pid())).unwrap();
    let inner: i32 = children
        .split_whitespace()
        .next()
        .expect("the namespace's PID 1")
        .parse()
        .unwrap();
    let r = run(bin(), &["monitor", &inner.to_string()]);
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!("1 sh  (host pid {inner})")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("└── 2 "),
        "its child is pid 2:\n{}",
        r.stdout
    );
}

#[test]
fn monitor_rejects_a_pid_that_does_not_exist() {
    let r = run(bin(), &["monitor", "999999999"]);
    r.expect_code(2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn zombies_pile_up_under_an_app_as_pid_1_and_an_init_reaps_them() {
    let Some(r) = demo(
        "zombies_pile_up_under_an_app_as_pid_1_and_an_init_reaps_them",
        &["zombies"],
    ) else {
        return;
    };
    assert_eq!(lines_with(&r, "state Z (zombie").len(), 3, "{}", r.stdout);
    assert_eq!(
        lines_with(&r, "gone: init reaped it").len(),
        3,
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(
        "the app ended with 143 (killed by signal 15); init reaped 3 orphans, forwarded 1 signal"
    ));
    assert!(r.stdout.contains("exit code 143"));
    assert_run_snapshot!("zombies", r);
}

#[test]
fn time_namespace_offsets_the_clocks_of_later_children_only() {
    if !Path::new("/proc/self/ns/time").exists() {
        labkit::testing::skip(
            "time_namespace_offsets_the_clocks_of_later_children_only",
            "no time namespaces in this kernel",
        );
        return;
    }
    let Some(r) = demo(
        "time_namespace_offsets_the_clocks_of_later_children_only",
        &["time", "--offset", "86400"],
    ) else {
        return;
    };
    assert!(
        r.stdout
            .contains("CLOCK_MONOTONIC child - parent = +86400 s")
    );
    assert!(
        r.stdout
            .contains("CLOCK_BOOTTIME  child - parent = +86400 s")
    );
    assert!(r.stdout.contains("CLOCK_REALTIME  child - parent = +0 s"));
    let new = r
        .stdout
        .split("time_for_children -> ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        r.stdout.contains(&format!("/proc/self/ns/time -> {new}")),
        "the child is in the parent's time_for_children"
    );
    assert_run_snapshot!("time", r, CLOCKS);
}

#[test]
fn every_pid_demo_runs_as_real_root_too() {
    if needs_root("every_pid_demo_runs_as_real_root_too") {
        return;
    }
    for sub in [
        "tree",
        "siblings",
        "isolation",
        "orphan",
        "init-signals",
        "init-exit",
        "proc",
        "monitor",
        "zombies",
        "time",
    ] {
        let r = run(bin(), &[sub]);
        r.expect_code(0);
        assert!(
            !r.stdout.contains("rootless:"),
            "{sub} ran as root, directly"
        );
        assert_no_process_left(&r, "pid-demo");
    }
}

#[test]
fn pid_demos_run_as_an_unprivileged_user() {
    if needs_root("pid_demos_run_as_an_unprivileged_user")
        || needs_unprivileged_userns("pid_demos_run_as_an_unprivileged_user")
    {
        return;
    }
    let r = run_as_nobody(bin(), &["zombies"]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("rootless: continuing in a new user namespace")
    );
    assert_eq!(lines_with(&r, "state Z (zombie").len(), 3);
    assert_no_process_left(&r, "pid-demo");
    let r = run_as_nobody(bin(), &["tree", "--depth", "2"]);
    r.expect_code(0);
    assert_run_snapshot!("tree_as_nobody", r);
}
