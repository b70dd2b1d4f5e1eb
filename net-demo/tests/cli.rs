//! Runs the real `net-demo` binary, snapshots its output and asserts what the kernel did: real
//! TCP round trips crossed the veth pair and the bridge, and nothing (no link, no process) is left
//! afterwards. As root, each run's "host" is a network namespace the test made (see
//! [`in_test_netns`]): no test makes a link in the machine's namespace, and another run going on
//! at the same time cannot fail a check.

use std::path::Path;

use labkit::assert_run_snapshot;
use labkit::testing::{
    Run, assert_no_process_left, in_test_namespaces, needs_root, needs_unprivileged_userns, run,
    run_as_nobody, thread_links,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_net-demo"))
}

/// Run `f` with a network namespace this test made as the demo's "host" (see
/// [`in_test_namespaces`]); returns its result and the links left there besides those it had.
fn in_test_netns<T: Send>(f: impl FnOnce() -> T + Send) -> (T, Vec<String>) {
    let ((before, result, after), _) =
        in_test_namespaces(nix::sched::CloneFlags::CLONE_NEWNET, f, thread_links);
    let left = after.into_iter().filter(|l| !before.contains(l)).collect();
    (result, left)
}

fn demo(test: &str, args: &[&str]) -> Option<Run> {
    let mut all = vec!["--rootless"];
    all.extend_from_slice(args);
    let (r, left) = in_test_netns(|| run(bin(), &all));
    if r.code == 77 && needs_unprivileged_userns(test) {
        return None;
    }
    r.expect_code(0);
    assert_eq!(left, Vec::<String>::new(), "nothing left in the \"host\"");
    assert_no_process_left(&r, "net-demo");
    Some(r)
}

/// Values that differ from run to run: ports, link-local addresses (from random MACs), counts
/// of the host's devices.
const VARYING: &[(&str, &str)] = &[
    // Ephemeral ports (32768 and up); the demos' own fixed port 7000 stays.
    (r"port \d{5}", "port [PORT]"),
    (r"0\.0\.0\.0:\d{5}", "0.0.0.0:[PORT]"),
    (r"fe80::[0-9a-f:]+/64", "fe80::[LINK-LOCAL]/64"),
    (r"-> \d+ entries", "-> [N] entries"),
];

#[test]
fn help_lists_every_subcommand() {
    let r = run(bin(), &["--help"]);
    r.expect_code(0);
    for sub in ["fresh", "veth", "bridge", "ip"] {
        assert!(r.stdout.contains(sub));
    }
    assert_run_snapshot!("help", r);
}

#[test]
fn a_new_network_namespace_has_only_lo_down_and_its_own_ports() {
    let Some(r) = demo(
        "a_new_network_namespace_has_only_lo_down_and_its_own_ports",
        &["fresh"],
    ) else {
        return;
    };
    assert!(
        r.stdout
            .contains("[lab]             1: lo <DOWN> state DOWN\n[lab]          4."),
        "only lo, down:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("(no routes)"));
    assert!(r.stdout.contains("read /proc/net/dev -> lo\n"));
    assert!(
        r.stdout.contains("ls /sys/class/net: lo\n"),
        "after mounting sysfs, only lo"
    );
    assert!(r.stdout.contains(") -> 0: the host's port is free here"));
    assert!(r.stdout.contains("-> EADDRINUSE"));
    assert!(r.stdout.contains("sent \"ping\", got \"pong\""));
    assert_run_snapshot!("fresh", r, VARYING);
}

#[test]
fn a_veth_pair_carries_packets_between_parent_and_child() {
    let Some(r) = demo(
        "a_veth_pair_carries_packets_between_parent_and_child",
        &["veth"],
    ) else {
        return;
    };
    // NET-5: the child waits before the wiring and speaks after it.
    let wait = r.stdout.find("wait until the parent has wired").unwrap();
    let wired = r
        .stdout
        .find("ip addr add 198.51.100.2/24 dev eth0")
        .unwrap();
    let used = r
        .stdout
        .find("[container]   13.")
        .or_else(|| r.stdout.find("TCP connect("))
        .unwrap();
    assert!(
        wait < wired && wired < used,
        "child waits, parent wires, child goes on"
    );
    // NET-2: after the move, nslab-c0 is gone from the lab.
    let after_move = r
        .stdout
        .split("leaves this namespace")
        .nth(1)
        .unwrap()
        .split("RTM_NEWADDR")
        .next()
        .unwrap();
    assert!(
        !after_move.contains("nslab-c0") && after_move.contains("nslab-h0"),
        "{after_move}"
    );
    // NET-3: real packets both ways over the pair.
    assert!(
        r.stdout
            .contains("accept() -> a connection from 198.51.100.2")
    );
    assert!(
        r.stdout
            .contains("TCP connect(198.51.100.1:7000), sent \"ping\", got \"pong\"")
    );
    assert!(r.stdout.contains("eth0: inet 198.51.100.2/24"));
    let end = r.stdout.split("a veth pair ends as one").nth(1).unwrap();
    assert!(
        !end.contains("nslab-h0"),
        "the pair ended with the container's namespace:\n{end}"
    );
    assert!(
        r.stdout
            .contains("in the host's network namespace -> EPERM"),
        "rootless: the host is out of reach"
    );
    assert_run_snapshot!("veth", r, VARYING);
}

#[test]
fn namespaces_on_a_bridge_all_reach_each_other() {
    let Some(r) = demo(
        "namespaces_on_a_bridge_all_reach_each_other",
        &["bridge", "--count", "3"],
    ) else {
        return;
    };
    assert!(r.stdout.contains("9 of 9 answered"), "{}", r.stdout);
    let rows: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| {
            l.contains("] ") && l.split("] ").nth(1).unwrap().trim_start().starts_with("ns")
        })
        .filter(|l| l.contains("pong"))
        .collect();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row.matches("pong").count(), 3, "{row}");
    }
    assert_eq!(r.stdout.matches("state UP master nslab-br0").count(), 3);
    assert_run_snapshot!("bridge", r, VARYING);
}

#[test]
fn bridge_refuses_a_count_out_of_range() {
    for count in ["1", "9"] {
        let r = run(bin(), &["bridge", "--count", count]);
        r.expect_code(2);
        assert_eq!(r.stdout, "");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
}

#[test]
fn ip_lists_this_namespace_and_rejects_other_kinds() {
    let r = run(bin(), &["ip"]);
    r.expect_code(0);
    assert!(r.stdout.contains(": lo "), "{}", r.stdout);
    assert!(r.stdout.contains("RTM_GETROUTE"));
    let wrong = run(bin(), &["ip", "--netns", "/proc/self/ns/uts"]);
    wrong.expect_code(2);
    assert!(wrong.stderr.contains("not a network namespace"));
    let missing = run(bin(), &["ip", "--pid", "999999999"]);
    missing.expect_code(2);
}

#[test]
fn every_demo_runs_as_real_root_and_as_nobody() {
    if needs_root("every_demo_runs_as_real_root_and_as_nobody")
        || needs_unprivileged_userns("every_demo_runs_as_real_root_and_as_nobody")
    {
        return;
    }
    for sub in ["fresh", "veth", "bridge"] {
        for as_nobody in [false, true] {
            let (r, left) = in_test_netns(|| {
                if as_nobody {
                    run_as_nobody(bin(), &[sub])
                } else {
                    run(bin(), &[sub])
                }
            });
            r.expect_code(0);
            assert!(r.stdout.contains("\"pong\""), "{sub}: {}", r.stdout);
            assert_eq!(left, Vec::<String>::new(), "{sub}: left in the \"host\"");
        }
    }
}
