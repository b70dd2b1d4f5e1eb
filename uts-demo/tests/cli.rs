//! Runs the real `uts-demo` binary for every subcommand, snapshots what it prints (with PIDs,
//! inodes and the host's name redacted) and asserts what the kernel did.
//!
//! Tests that need root skip loudly without it (and fail under NSLAB_NO_SKIP=1, as in CI).
//! Tests that work for anyone pass `--rootless`, so their output is the same as root or not.

use std::path::{Path, PathBuf};

use labkit::assert_run_snapshot;
use labkit::testing::{
    Background, Run, TempDir, host_name, needs_root, needs_unprivileged_userns, run, run_as_nobody,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uts-demo"))
}

fn demo(args: &[&str]) -> Run {
    run(bin(), args)
}

/// The value after `marker` on the first line that has it, up to the next space or `)`.
fn value_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let line = text
        .lines()
        .find(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no line with {marker:?} in:\n{text}"));
    let rest = &line[line.find(marker).unwrap() + marker.len()..];
    rest.split([' ', ')', ';', ',']).next().unwrap()
}

/// The row of the summary table that starts with `label`, split on runs of two spaces.
fn table_row(text: &str, label: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{text}"));
    line[label.len()..]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

/// A running `uts-demo unshare --hostname NAME -- cat` (waits on its stdin): a process in a UTS
/// namespace of its own, for `ns` and `setns` to look at.
fn renamed_process(name: &str) -> Background {
    let renamed = Background::start(
        bin(),
        &["unshare", "--hostname", name, "--", "cat"],
        "execvp",
    );
    // The line comes just before execvp(2); no event says the exec is done (on a busy machine
    // the demo could otherwise still be `uts-demo` when the test looks): wait for `cat`.
    let proc = labkit::procfs::Proc::host();
    let exec_done = labkit::wait::until(std::time::Duration::from_secs(10), || {
        Ok(proc.comm(renamed.pid()).is_ok_and(|c| c == "cat"))
    })
    .unwrap();
    assert!(exec_done, "the renamed process never became cat");
    renamed
}

#[test]
fn help_lists_every_subcommand() {
    let help = demo(&["--help"]);
    help.expect_code(0);
    for sub in [
        "show", "ns", "clone", "unshare", "setns", "persist", "unpin",
    ] {
        assert!(help.stdout.contains(sub), "--help lacks {sub}");
    }
    assert_run_snapshot!("help", help);
}

#[test]
fn show_prints_this_process_names_and_uts_inode() {
    let r = demo(&["show"]);
    r.expect_code(0);
    assert_eq!(
        value_after(&r.stdout, "hostname   "),
        format!("\"{}\"", host_name())
    );
    let inode = value_after(&r.stdout, "-> uts:[")
        .trim_end_matches(']')
        .to_string();
    let own = std::fs::read_link("/proc/self/ns/uts").unwrap();
    assert_eq!(
        own.to_string_lossy(),
        format!("uts:[{inode}]"),
        "the test shares the host's UTS namespace"
    );
    assert_run_snapshot!("show", r);
}

#[test]
fn ns_lists_every_namespace_link_of_this_kernel() {
    let r = demo(&["ns"]);
    r.expect_code(0);
    for entry in std::fs::read_dir("/proc/self/ns").unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            r.stdout.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing:\n{}",
            r.stdout
        );
    }
    assert_run_snapshot!("ns_self", r);
}

#[test]
fn ns_marks_the_namespace_that_differs() {
    if needs_root("ns_marks_the_namespace_that_differs") {
        return;
    }
    let renamed = renamed_process("nslab-ns-test");
    let plain = Background::spawn(Path::new("cat"), &[]);
    let r = demo(&["ns", &plain.pid().to_string(), &renamed.pid().to_string()]);
    r.expect_code(0);
    assert!(
        table_row(&r.stdout, "uts ").contains(&"DIFFERENT".to_string()),
        "{}",
        r.stdout
    );
    for shared in ["ipc ", "mnt ", "net ", "pid ", "user ", "cgroup "] {
        assert!(
            table_row(&r.stdout, shared).contains(&"shared".to_string()),
            "{shared}: {}",
            r.stdout
        );
    }
    assert_run_snapshot!("ns_two_processes", r);
}

#[test]
fn clone_changes_the_parents_hostname_only_without_clone_newuts() {
    if needs_root("clone_changes_the_parents_hostname_only_without_clone_newuts") {
        return;
    }
    let host = host_name();
    let r = demo(&["clone", "--hostname", "nslab-clone-test"]);
    r.expect_code(0);
    assert_eq!(
        host_name(),
        host,
        "the host's real hostname must never change"
    );
    let reads = table_row(&r.stdout, "parent then reads");
    assert_eq!(
        reads,
        vec!["\"nslab-clone-test\"".to_string(), format!("\"{host}\"")],
        "what the parent reads after each child: expected the name the child without \
         CLONE_NEWUTS set (it shares the parent's namespace), then its own unchanged name"
    );
    assert_eq!(
        table_row(&r.stdout, "child's UTS namespace"),
        vec!["the parent's", "a new one"]
    );
    assert_run_snapshot!("clone", r);
}

#[test]
fn clone_with_rootless_gives_the_same_isolation() {
    let host = host_name();
    let r = demo(&[
        "clone",
        "--rootless",
        "--hostname",
        "nslab-clone-rl",
        "--domainname",
        "nslab.test",
    ]);
    if r.code == 77 && needs_unprivileged_userns("clone_with_rootless_gives_the_same_isolation") {
        return;
    }
    r.expect_code(0);
    assert!(
        r.stdout.starts_with("[nslab]"),
        "says it went rootless:\n{}",
        r.stdout
    );
    assert_eq!(host_name(), host);
    assert_eq!(
        table_row(&r.stdout, "parent then reads"),
        vec!["\"nslab-clone-rl\"".to_string(), format!("\"{host}\"")]
    );
    assert!(r.stdout.contains("domainname \"nslab.test\""));
    assert_run_snapshot!("clone_rootless", r);
}

#[test]
fn clone_as_an_unprivileged_user_isolates_in_its_own_user_namespace() {
    if needs_root("clone_as_an_unprivileged_user_isolates_in_its_own_user_namespace")
        || needs_unprivileged_userns(
            "clone_as_an_unprivileged_user_isolates_in_its_own_user_namespace",
        )
    {
        return;
    }
    let host = host_name();
    let r = run_as_nobody(bin(), &["clone", "--hostname", "nslab-nobody"]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("rootless: continuing in a new user namespace"),
        "{}",
        r.stdout
    );
    assert_eq!(host_name(), host);
    assert_eq!(
        table_row(&r.stdout, "parent then reads"),
        vec!["\"nslab-nobody\"".to_string(), format!("\"{host}\"")]
    );
    assert_run_snapshot!("clone_as_nobody", r);
}

#[test]
fn unshare_keeps_the_pid_and_changes_the_uts_namespace() {
    let host = host_name();
    let r = demo(&[
        "unshare",
        "--rootless",
        "--hostname",
        "nslab-unshare",
        "--",
        "cat",
        "/proc/sys/kernel/hostname",
    ]);
    if r.code == 77
        && needs_unprivileged_userns("unshare_keeps_the_pid_and_changes_the_uts_namespace")
    {
        return;
    }
    r.expect_code(0);
    let pid_before = value_after(&r.stdout, "getpid() -> pid ");
    let rest = r.stdout.replacen("getpid() -> pid", "", 1);
    let pid_after = value_after(&rest, "getpid() -> pid ");
    assert_eq!(pid_before, pid_after, "unshare makes no new process");
    let before = value_after(&r.stdout, "readlink(/proc/self/ns/uts) -> ");
    let after = value_after(&r.stdout, "now in ");
    assert_ne!(before, after, "a new UTS namespace");
    assert_eq!(
        r.stdout.lines().last(),
        Some("nslab-unshare"),
        "the exec'd command sees the new name"
    );
    assert_eq!(host_name(), host);
    assert_run_snapshot!("unshare", r);
}

#[test]
fn setns_joins_the_uts_namespace_of_a_running_process() {
    if needs_root("setns_joins_the_uts_namespace_of_a_running_process") {
        return;
    }
    let target = renamed_process("nslab-setns-target");
    let pid = target.pid().to_string();
    let r = demo(&[
        "setns",
        "--target",
        &pid,
        "--",
        "cat",
        "/proc/sys/kernel/hostname",
    ]);
    r.expect_code(0);
    assert_eq!(
        r.stdout.lines().last(),
        Some("nslab-setns-target"),
        "the command run after setns reads the hostname of the target's UTS namespace"
    );
    assert!(
        r.stdout.contains("differ from ours: uts\n"),
        "only uts differs:\n{}",
        r.stdout
    );
    assert_run_snapshot!("setns_target", r);

    let path = format!("/proc/{pid}/ns/uts");
    let by_path = demo(&["setns", &path, "--type", "uts"]);
    by_path.expect_code(0);
    assert!(
        by_path.stdout.contains("hostname \"nslab-setns-target\""),
        "{}",
        by_path.stdout
    );
    assert_run_snapshot!("setns_path", by_path);
}

#[test]
fn setns_into_a_pid_namespace_moves_only_the_children() {
    if needs_root("setns_into_a_pid_namespace_moves_only_the_children") {
        return;
    }
    // util-linux unshare: a shell that is PID 1 of a new PID namespace, then becomes `cat`.
    let outer = Background::start(
        Path::new("unshare"),
        &[
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            "echo ready; exec cat",
        ],
        "ready",
    );
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", outer.pid())).unwrap();
    let inner: i32 = children
        .split_whitespace()
        .next()
        .expect("the forked PID 1")
        .parse()
        .unwrap();
    let before = std::fs::read_link(format!("/proc/{inner}/ns/pid")).unwrap();
    let r = demo(&["setns", "--target", &inner.to_string()]);
    r.expect_code(0);
    assert!(
        r.stdout
            .contains(&format!("pid_for_children -> {}", before.display())),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("getpid() -> pid 2 "),
        "the child is the namespace's second process:\n{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains(&format!("pid -> {}", before.display())),
        "the caller itself stays put"
    );
    assert_run_snapshot!("setns_pid", r);
}

#[test]
fn setns_with_a_type_that_does_not_match_gets_the_kernels_einval() {
    let r = demo(&["setns", "/proc/self/ns/uts", "--type", "net"]);
    r.expect_code(1);
    assert!(
        r.stderr
            .contains("setns(/proc/self/ns/uts, CLONE_NEWNET): EINVAL"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: setns(2) checks the type"),
        "{}",
        r.stderr
    );
    assert_run_snapshot!("setns_type_mismatch", r);
}

#[test]
fn persist_keeps_a_namespace_alive_through_an_open_fd() {
    let r = demo(&["persist", "--rootless", "--hostname", "nslab-kept"]);
    if r.code == 77
        && needs_unprivileged_userns("persist_keeps_a_namespace_alive_through_an_open_fd")
    {
        return;
    }
    r.expect_code(0);
    let created = value_after(&r.stdout, "/ns/uts) -> ");
    let joined = value_after(&r.stdout, "now in ");
    assert_eq!(
        created, joined,
        "the later process joined the very same namespace"
    );
    assert!(r.stdout.contains("exit code 0: no process is left"));
    assert!(r.stdout.contains("hostname \"nslab-kept\""));
    assert_run_snapshot!("persist_fd", r);
}

/// Unmounts and removes a pin if a test fails half way.
struct PinGuard(PathBuf);

impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mounted(path: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
}

#[test]
fn persist_pin_outlives_the_run_and_unpin_ends_it() {
    if needs_root("persist_pin_outlives_the_run_and_unpin_ends_it") {
        return;
    }
    let dir = TempDir::new("pin");
    let pin = PinGuard(dir.path().join("uts"));
    let pin_str = pin.0.to_str().unwrap();
    let made = demo(&["persist", "--hostname", "nslab-pinned", "--pin", pin_str]);
    made.expect_code(0);
    assert!(mounted(&pin.0), "the pin is a bind mount after the run");
    assert_run_snapshot!("persist_pin", made);

    let joined = demo(&["setns", pin_str, "--", "cat", "/proc/sys/kernel/hostname"]);
    joined.expect_code(0);
    assert_eq!(
        joined.stdout.lines().last(),
        Some("nslab-pinned"),
        "a later process reads the name back"
    );

    let removed = demo(&["unpin", pin_str]);
    removed.expect_code(0);
    assert!(!mounted(&pin.0), "no mount left");
    assert!(!pin.0.exists(), "no file left");
    assert_run_snapshot!("unpin", removed);
}

#[test]
fn persist_pin_refuses_an_existing_file_and_leaves_it_alone() {
    let dir = TempDir::new("pin");
    let existing = dir.path().join("taken");
    std::fs::write(&existing, "mine").unwrap();
    let r = demo(&["persist", "--pin", existing.to_str().unwrap()]);
    if nix::unistd::geteuid().is_root() {
        r.expect_code(2);
        assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    } else {
        r.expect_code(77); // --pin needs root, said before anything is made
    }
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "mine");
    assert!(!mounted(&existing));
}

#[test]
fn unpin_rejects_a_file_that_is_not_a_pin() {
    let r = demo(&["unpin", "/etc/hostname"]);
    r.expect_code(2);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    assert!(r.stderr.contains("/etc/hostname is not a namespace file"));
}

#[test]
fn ns_rejects_a_pid_that_does_not_exist() {
    let r = demo(&["ns", "999999999"]);
    r.expect_code(2);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    assert_run_snapshot!("ns_no_such_pid", r);
}

#[test]
fn setns_rejects_a_file_that_is_not_a_namespace() {
    let r = demo(&["setns", "/etc/hostname"]);
    r.expect_code(2);
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    assert_run_snapshot!("setns_not_a_namespace", r);
}

#[test]
fn clone_rejects_a_hostname_over_64_bytes_before_making_anything() {
    let long = "n".repeat(65);
    let r = demo(&["clone", "--hostname", &long]);
    r.expect_code(2);
    assert_eq!(r.stdout, "", "nothing was done");
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    assert_run_snapshot!("clone_name_too_long", r);
}

#[test]
fn show_of_another_users_process_is_refused_with_a_hint() {
    if needs_root("show_of_another_users_process_is_refused_with_a_hint") {
        return;
    }
    let roots = Background::spawn(Path::new("cat"), &[]);
    let r = run_as_nobody(bin(), &["show", "--pid", &roots.pid().to_string()]);
    r.expect_code(77);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert_run_snapshot!("show_denied", r);
}

#[test]
fn show_of_a_process_in_another_uts_namespace_joins_it_to_read_the_name() {
    if needs_root("show_of_a_process_in_another_uts_namespace_joins_it_to_read_the_name") {
        return;
    }
    let target = renamed_process("nslab-show-target");
    let r = demo(&["show", "--pid", &target.pid().to_string()]);
    r.expect_code(0);
    assert!(
        r.stdout.contains("hostname   \"nslab-show-target\""),
        "{}",
        r.stdout
    );
    assert_run_snapshot!("show_other", r);
}
