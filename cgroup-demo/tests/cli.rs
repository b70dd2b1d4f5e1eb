//! Runs the real `cgroup-demo` binary, snapshots its output and asserts what the kernel did: the
//! limits held, the ratios came out near what was configured (with tolerances that hold on a
//! busy 2-core machine), and no cgroup or process is left afterwards. Tests that make cgroups
//! need root and skip loudly without it.
//!
//! The layout decides the code path: on v1 and hybrid hosts the v1 files, on v2 hosts the v2
//! files; `--v2` tests what v2 can do without controllers (groups, freeze, kill, events) wherever
//! a cgroup2 filesystem is mounted.

use std::path::Path;

use labkit::assert_run_snapshot;
use labkit::testing::{
    Run, assert_no_process_left, cgroup_leftovers_of, needs_root, pids_of, run, run_as_nobody,
    run_as_nobody_with_pid, run_with_pid, serial, skip,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cgroup-demo"))
}

/// Run a demo as root (skip loudly otherwise); check that it left nothing behind.
fn demo(test: &str, args: &[&str]) -> Option<Run> {
    if needs_root(test) {
        return None;
    }
    let _one = serial();
    let (pid, r) = run_with_pid(bin(), args);
    r.expect_code(0);
    assert_eq!(
        leftovers(&pids_of(pid, &r)),
        Vec::<String>::new(),
        "cgroups left behind"
    );
    assert_no_process_left(&r, "cgroup-demo");
    Some(r)
}

/// The cgroups that processes in `pids` (a run of the demo and the children it printed) made
/// below this process's own cgroups, where the demo makes its groups: this test's names only,
/// never another run's.
fn leftovers(pids: &[i32]) -> Vec<String> {
    let parents: Vec<_> = cgroup_demo::cg::hierarchies()
        .map(|all| all.into_iter().map(|h| h.own).collect())
        .unwrap_or_default();
    cgroup_leftovers_of(&parents, pids)
}

/// The cgroup paths and values that differ between hosts and runs.
fn machine_filters() -> Vec<(String, String)> {
    let mut filters = vec![
        (
            r"nslab-([a-z0-9]+)-\d+-\d+".to_string(),
            "nslab-$1-[ID]".to_string(),
        ),
        // Readings vary; an exact 0.00 (a frozen group) does not, and stays visible.
        (
            r"\b(?:[1-9]\d*\.\d+|0\.\d*[1-9]\d*)( CPU seconds| s\b)".into(),
            "[x.xx]$1".into(),
        ),
        (
            r"(?m)^(heavy|light)( +\d+ +)\d+\.\d+$".into(),
            "$1$2[x.xx]".into(),
        ),
        (
            r"ratio heavy/light: \d+\.\d+".into(),
            "ratio heavy/light: [x.xx]".into(),
        ),
        (
            r"used \d+\.\d+ CPU seconds: \d+%".into(),
            "used [x.xx] CPU seconds: [NN]%".into(),
        ),
        (
            r"nr_periods \d+, nr_throttled \d+".into(),
            "nr_periods [N], nr_throttled [N]".into(),
        ),
        (r"VmRSS +\d+ kB".into(), "VmRSS [N] kB".into()),
        (r"memory \d+ MiB".into(), "memory [N] MiB".into()),
        (r"CPU \d+\.\d+ s".into(), "CPU [x.xx] s".into()),
        (
            r"pids.events: max \d+".into(),
            "pids.events: max [N]".into(),
        ),
        (
            r"\d+ succeeded, \d+ failed".into(),
            "[N] succeeded, [N] failed".into(),
        ),
        (r"CPU \d+\b".into(), "CPU [N]".into()),
        (
            r"cpuset.cpus; echo \d+ > cpuset.mems".into(),
            "cpuset.cpus; echo [N] > cpuset.mems".into(),
        ),
        (
            r"echo \d+ > cpuset.cpus".into(),
            "echo [N] > cpuset.cpus".into(),
        ),
        (
            r"Cpus_allowed_list of both: \d+".into(),
            "Cpus_allowed_list of both: [N]".into(),
        ),
        (r"with \d+ files".into(), "with [N] files".into()),
        (r"hierarchy \d+".into(), "hierarchy [N]".into()),
        (r"\b\d+:name=".into(), "[N]:name=".into()),
        (r"\b[1-9]\d*:([a-z][a-z_,]*):/".into(), "[N]:$1:/".into()),
        (r"its \d+ lines".into(), "its [N] lines".into()),
        (
            r"memory.events: max \d+".into(),
            "memory.events: max [N]".into(),
        ),
        (r"failcnt: \d+".into(), "failcnt: [N]".into()),
        (
            r"v2 hierarchy at /sys/fs/cgroup(/unified)?;".into(),
            "v2 hierarchy at [CGROUP2-MOUNT];".into(),
        ),
        (
            r"v2 at /sys/fs/cgroup(/unified)?;".into(),
            "v2 at [CGROUP2-MOUNT];".into(),
        ),
        (
            r"CPU seconds: \d+% of one CPU".into(),
            "CPU seconds: [NN]% of one CPU".into(),
        ),
    ];
    // This process's own cgroup paths (the demo's groups are made below them).
    for line in std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
    {
        let path = line.splitn(3, ':').nth(2).unwrap_or("/");
        if path.len() > 1 {
            filters.push((regex_escape(path), "[OWN]".into()));
        }
    }
    filters
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// The version this host's layout selects for a controller: snapshots are kept per version
/// (`memory_v1`, `memory_v2`), so the same test checks either code path.
fn version_for(controller: &str) -> &'static str {
    match cgroup_demo::cg::for_controller(controller, None).map(|h| h.version) {
        Ok(cgroup_demo::cg::Version::V2) => "v2",
        Ok(cgroup_demo::cg::Version::V1) => "v1",
        // No hierarchy has it (v2 has no freezer controller): the demo falls back to v2 files.
        Err(_) if has_cgroup2() => "v2",
        Err(_) => "v1",
    }
}

fn snapshot(name: &str, r: &Run) {
    let owned = machine_filters();
    let filters: Vec<(&str, &str)> = owned
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut settings = labkit::testing::settings(&filters);
    settings.set_snapshot_suffix("");
    let transcript = labkit::testing::number_values(&r.transcript());
    settings.bind(|| insta::assert_snapshot!(name, transcript));
}

fn v1_has(controller: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" - cgroup ") && l.split(',').any(|o| o.trim() == controller))
}

fn has_cgroup2() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" - cgroup2 "))
}

#[test]
fn help_lists_every_subcommand() {
    let r = run(bin(), &["--help"]);
    r.expect_code(0);
    for sub in [
        "show",
        "basics",
        "memory",
        "pids",
        "cpu",
        "quota",
        "accounting",
        "freeze",
        "devices",
        "rules",
        "v2",
        "ns",
    ] {
        assert!(r.stdout.contains(sub));
    }
    assert_run_snapshot!("help", r);
}

#[test]
fn show_tells_the_layout_and_every_controller() {
    let r = run(bin(), &["show"]);
    r.expect_code(0);
    let layout = labkit::cgroupfs::detect().unwrap();
    assert!(r.stdout.contains(&layout.kind.to_string()));
    for line in std::fs::read_to_string("/proc/cgroups")
        .unwrap()
        .lines()
        .skip(1)
    {
        let name = line.split_whitespace().next().unwrap();
        assert!(
            r.stdout.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing"
        );
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.contains("[demo]            ") && l.contains(':'))
            .count(),
        own.lines().count()
    );
}

#[test]
fn basics_moves_processes_and_threads_between_groups() {
    let Some(r) = demo(
        "basics_moves_processes_and_threads_between_groups",
        &["basics"],
    ) else {
        return;
    };
    assert!(r.stdout.contains("(CG-1: mkdir makes a cgroup)"));
    assert!(
        r.stdout
            .contains("a/cgroup.procs: (empty); b/cgroup.procs: "),
        "moving removes it from the first group"
    );
    assert!(
        r.stdout.contains("for the other hierarchies in /proc/")
            && r.stdout.contains(": unchanged")
    );
    let forked = r
        .stdout
        .split("the child forked pid ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert!(
        r.stdout
            .contains(&format!("a/cgroup.procs: {forked}; b/cgroup.procs: ")),
        "the child moved alone"
    );
    if r.stdout.contains("in the v1 hierarchy") {
        assert!(
            r.stdout.contains("moves a single thread")
                && r.stdout.contains("notify_on_release -> 0")
        );
    } else {
        assert!(r.stdout.contains("populated 0"));
    }
    snapshot(&format!("basics_{}", version_for("pids")), &r);
}

#[test]
fn basics_on_v2_tells_emptiness_through_cgroup_events() {
    if !has_cgroup2() {
        skip(
            "basics_on_v2_tells_emptiness_through_cgroup_events",
            "no cgroup2 filesystem mounted",
        );
        return;
    }
    let Some(r) = demo(
        "basics_on_v2_tells_emptiness_through_cgroup_events",
        &["--v2", "basics"],
    ) else {
        return;
    };
    assert!(r.stdout.contains("in the v2 hierarchy"));
    assert!(
        r.stdout.contains("cgroup.threads -> EOPNOTSUPP"),
        "single threads move only in threaded mode"
    );
    assert!(
        r.stdout.contains("-> populated 1") && r.stdout.contains("; populated 0"),
        "{}",
        r.stdout
    );
    snapshot("basics_v2", &r);
}

#[test]
fn a_memory_limit_gets_a_greedy_process_oom_killed() {
    let Some(r) = demo(
        "a_memory_limit_gets_a_greedy_process_oom_killed",
        &["memory", "--limit", "64M"],
    ) else {
        return;
    };
    assert!(r.stdout.contains("killed by SIGKILL"));
    assert!(
        !r.stdout.contains("allocated and touched 64 MiB"),
        "it never got past the limit"
    );
    assert!(r.stdout.contains("oom_kill 1"), "{}", r.stdout);
    snapshot(&format!("memory_{}", version_for("memory")), &r);
}

#[test]
fn a_pids_limit_stops_a_fork_bomb() {
    let Some(r) = demo("a_pids_limit_stops_a_fork_bomb", &["pids", "--max", "16"]) else {
        return;
    };
    assert!(
        r.stdout.contains("15 succeeded"),
        "the bomb itself plus 15 children make 16:\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("failed with EAGAIN"));
    assert!(r.stdout.contains("cat pids.current -> 16 "));
    assert!(r.stdout.contains("pids.current -> 0"));
    snapshot(&format!("pids_{}", version_for("pids")), &r);
}

fn measured(r: &Run, marker: &str) -> f64 {
    r.stdout
        .split(marker)
        .nth(1)
        .unwrap()
        .split([' ', '%'])
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn cpu_weights_split_one_cpu_about_two_to_one() {
    let Some(r) = demo(
        "cpu_weights_split_one_cpu_about_two_to_one",
        &["cpu", "--seconds", "2"],
    ) else {
        return;
    };
    let ratio = measured(&r, "measured ratio heavy/light: ");
    eprintln!("measured CPU ratio: {ratio:.2} (configured 2.00)");
    assert!(
        (1.4..=2.8).contains(&ratio),
        "ratio {ratio} far from 2:1\n{}",
        r.stdout
    );
    assert!(r.stdout.contains("Cpus_allowed_list of both: "));
    snapshot(&format!("cpu_{}", version_for("cpu")), &r);
}

#[test]
fn a_cpu_quota_throttles_a_busy_loop() {
    let Some(r) = demo(
        "a_cpu_quota_throttles_a_busy_loop",
        &["quota", "--percent", "20", "--seconds", "1.5"],
    ) else {
        return;
    };
    let percent = measured(&r, "CPU seconds: ");
    eprintln!("measured CPU share: {percent}% (configured 20%)");
    assert!(
        (10.0..=30.0).contains(&percent),
        "{percent}% far from 20%\n{}",
        r.stdout
    );
    let throttled: u64 = r
        .stdout
        .split("nr_throttled ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(throttled > 0);
    snapshot(&format!("quota_{}", version_for("cpu")), &r);
}

#[test]
fn a_groups_accounting_matches_what_its_process_measured() {
    let Some(r) = demo(
        "a_groups_accounting_matches_what_its_process_measured",
        &["accounting"],
    ) else {
        return;
    };
    let own: f64 = measured(&r, "getrusage() CPU ");
    let group: f64 = measured(&r, "the group's files: CPU ");
    assert!(
        (group - own).abs() <= 0.15 + own * 0.2,
        "CPU: group {group} vs own {own}"
    );
    let mib: u64 = r
        .stdout
        .split("; memory ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (40..=120).contains(&mib),
        "memory {mib} MiB for 48 MiB held"
    );
    snapshot(&format!("accounting_{}", version_for("memory")), &r);
}

#[test]
fn a_frozen_group_makes_no_progress() {
    let Some(r) = demo("a_frozen_group_makes_no_progress", &["freeze"]) else {
        return;
    };
    assert!(
        r.stdout.contains("frozen: 0.00 CPU seconds"),
        "{}",
        r.stdout
    );
    let thawed = measured(&r, "thawed: ");
    assert!(thawed > 0.05, "it runs again after thawing");
    snapshot(&format!("freeze_{}", version_for("freezer")), &r);
}

#[test]
fn a_v2_group_freezes_and_is_killed_whole() {
    if !has_cgroup2() {
        skip(
            "a_v2_group_freezes_and_is_killed_whole",
            "no cgroup2 filesystem mounted",
        );
        return;
    }
    let Some(r) = demo(
        "a_v2_group_freezes_and_is_killed_whole",
        &["--v2", "freeze"],
    ) else {
        return;
    };
    assert!(r.stdout.contains("cgroup.events -> frozen 1"));
    assert!(r.stdout.contains("frozen: 0.00 CPU seconds"));
    assert!(
        r.stdout.contains("echo 1 > cgroup.kill; waitpid(")
            && r.stdout.contains("killed by SIGKILL")
    );
    snapshot("freeze_v2", &r);
}

#[test]
fn a_devices_group_denies_dev_null() {
    if !v1_has("devices") {
        // cgroup v2 has no devices files: the demo says what it would need and stops (exit 77).
        let _one = serial();
        let r = run(bin(), &["devices"]);
        r.expect_code(77);
        assert!(
            r.stderr.contains("BPF_PROG_TYPE_CGROUP_DEVICE"),
            "{}",
            r.stderr
        );
        return;
    }
    let Some(r) = demo("a_devices_group_denies_dev_null", &["devices"]) else {
        return;
    };
    assert!(r.stdout.contains("open(/dev/null, O_RDWR) -> EPERM"));
    assert!(r.stdout.contains("open(/dev/zero, O_RDWR) -> 0 (allowed)"));
    snapshot("devices", &r);
}

#[test]
fn v1_hierarchy_rules_hold_and_leave_nothing() {
    if !std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .contains("\tcgroup\n")
    {
        skip(
            "v1_hierarchy_rules_hold_and_leave_nothing",
            "no cgroup v1 filesystem in this kernel",
        );
        return;
    }
    let Some(r) = demo("v1_hierarchy_rules_hold_and_leave_nothing", &["rules"]) else {
        return;
    };
    assert!(
        r.stdout.contains("/tmp/two/child exists: true"),
        "same options, same hierarchy"
    );
    assert!(
        r.stdout.contains(" -> EBUSY"),
        "a different set of busy controllers is refused:
{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("/proc/self/cgroup still lists: ")
            && !r.stdout.contains("still lists: nothing"),
        "the hierarchy outlives its mounts"
    );
    assert!(r.stdout.contains("/tmp/again/child exists: true"));
    assert!(r.stdout.contains("no, the hierarchy is gone"));
    let layout = if labkit::cgroupfs::detect().unwrap().kind == labkit::cgroupfs::LayoutKind::V2 {
        "v2"
    } else {
        "v1"
    };
    snapshot(&format!("rules_{layout}"), &r);
}

#[test]
fn v2_passes_controllers_down_only_from_groups_without_processes() {
    if !has_cgroup2() {
        skip(
            "v2_passes_controllers_down_only_from_groups_without_processes",
            "no cgroup2 filesystem mounted",
        );
        return;
    }
    let Some(r) = demo(
        "v2_passes_controllers_down_only_from_groups_without_processes",
        &["v2"],
    ) else {
        return;
    };
    // Delegation: the unprivileged user moves itself within its subtree, not out of it, and
    // cannot raise its own group's limits.
    for expected in [
        "/deleg/work -> 0  (the directory is its own)",
        "/deleg/work/cgroup.procs -> 0",
        "/other/cgroup.procs -> EACCES",
        "/deleg/cgroup.max.descendants -> EACCES",
        "/deleg/work/cgroup.max.descendants -> 0",
    ] {
        assert!(r.stdout.contains(expected), "{expected}:\n{}", r.stdout);
    }
    if r.stdout.contains("cgroup.controllers -> (none") {
        // This host's own cgroup delegates no v2 controller (hybrid hosts): the rule itself is
        // tested where one is delegated (`cargo xtask vm-test`).
        assert!(r.stdout.contains("no controller to pass down from here"));
    } else {
        assert!(
            r.stdout.contains("cgroup.subtree_control -> EBUSY"),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("echo +") && r.stdout.contains("-> 0"));
    }
    // Its own transcript where a controller reaches the demo's group (the v2 VM), and where
    // none does (a hybrid host's cgroup2 mount).
    snapshot(
        if r.stdout.contains("no controller to pass down") {
            "v2_rules_no_controller"
        } else {
            "v2_rules"
        },
        &r,
    );
}

#[test]
fn a_cgroup_namespace_shows_its_root_as_slash() {
    let r = run(bin(), &["ns"]);
    if r.code == 77 {
        skip(
            "a_cgroup_namespace_shows_its_root_as_slash",
            "no user namespaces for a non-root run",
        );
        return;
    }
    r.expect_code(0);
    let inside: Vec<&str> = r
        .stdout
        .lines()
        .skip_while(|l| !l.contains("in the new cgroup namespace"))
        .skip(1)
        .take_while(|l| l.starts_with("[child]"))
        .collect();
    assert!(!inside.is_empty());
    assert!(inside.iter().all(|l| l.ends_with(":/")), "{inside:?}");
    if let Some(n) = (nix::unistd::geteuid().is_root()).then(|| run_as_nobody(bin(), &["ns"])) {
        n.expect_code(0);
        assert!(n.stdout.contains("rootless: continuing"));
    }
}

#[test]
fn making_a_cgroup_without_root_fails_with_a_hint() {
    if needs_root("making_a_cgroup_without_root_fails_with_a_hint") {
        return;
    }
    let _one = serial();
    let (pid, r) = run_as_nobody_with_pid(bin(), &["memory"]);
    r.expect_code(77);
    assert!(
        r.stderr.contains("Permission denied")
            && r.stderr
                .contains("hint: making and changing cgroups needs root"),
        "{}",
        r.stderr
    );

    assert_eq!(leftovers(&pids_of(pid, &r)), Vec::<String>::new());
}

/// The lessons a delegated subtree allows, run by `runner` (as nobody in root's delegation, or
/// as the caller itself): they say where their groups go, do what they do as root, and leave
/// nothing in `top`. `controllers`: memory and pids are delegated too (pure v2).
fn lessons_in_a_delegated_subtree(
    runner: &dyn Fn(&[&str]) -> (i32, Run),
    top: &Path,
    controllers: bool,
) {
    let mut pids = Vec::new();
    let mut lessons = vec![vec!["--v2", "basics"]];
    if controllers {
        lessons.push(vec!["memory", "--limit", "64M"]);
        lessons.push(vec!["pids", "--max", "16"]);
    }
    for args in &lessons {
        let (pid, r) = runner(args);
        pids.extend(pids_of(pid, &r));
        r.expect_code(0);
        assert!(
            r.stderr.contains(&format!(
                "cgroup-demo: rootless: groups in your delegated cgroup {}",
                top.display()
            )),
            "{}",
            r.transcript()
        );
        match args[0] {
            "memory" => assert!(
                r.stdout.contains("killed by SIGKILL") && r.stdout.contains("oom_kill 1"),
                "{}",
                r.stdout
            ),
            "pids" => assert!(r.stdout.contains("failed with EAGAIN"), "{}", r.stdout),
            _ => assert!(
                r.stdout.contains("in the v2 hierarchy") && r.stdout.contains("populated 0"),
                "{}",
                r.stdout
            ),
        }
    }
    assert_eq!(
        cgroup_leftovers_of(&[top.to_path_buf()], &pids),
        Vec::<String>::new()
    );
}

#[test]
fn lessons_run_without_root_in_a_delegated_v2_subtree() {
    const TEST: &str = "lessons_run_without_root_in_a_delegated_v2_subtree";
    let v2_has = |c: &str| {
        cgroup_demo::cg::unified().is_ok_and(|h| h.controllers.iter().any(|x| x == c)) && !v1_has(c)
    };
    if !nix::unistd::geteuid().is_root() {
        // A user's own run (vm-test's pass as uid 1000, a student's `cargo test` in a systemd
        // session): the caller's own delegated subtree, if it has one.
        let Some(top) = cgroup_demo::cg::delegated_subtree() else {
            skip(
                TEST,
                "needs root, or a cgroup v2 subtree delegated to you (the parent of your cgroup is not yours to write)",
            );
            return;
        };
        let _one = serial();
        let controllers = v2_has("memory") && v2_has("pids");
        lessons_in_a_delegated_subtree(&|args| run_with_pid(bin(), args), &top, controllers);
        return;
    }
    if !has_cgroup2() {
        skip(TEST, "no cgroup2 filesystem mounted");
        return;
    }
    let _one = serial();
    // Pure v2: memory and pids delegated too. Hybrid: v2 has no controller to give (they are
    // v1's, which is root's), but groups can still be made and processes moved.
    let controllers = v2_has("memory") && v2_has("pids");
    let d = labkit::testing::Delegated::make(if controllers {
        &["memory", "pids"]
    } else {
        &[]
    });
    lessons_in_a_delegated_subtree(
        &|args| labkit::testing::run_as_nobody_in_cgroup(bin(), args, &d.shell_procs()),
        &d.top,
        controllers,
    );
}

#[test]
fn bad_sizes_and_limits_are_refused() {
    for (args, needle) in [
        (vec!["memory", "--limit", "lots"], "is not a size"),
        (vec!["memory", "--limit", "1M"], "below 8M"),
        (vec!["pids", "--max", "1"], "choose 2 to 200"),
        (vec!["quota", "--percent", "100"], "choose 5 to 95"),
    ] {
        let _one = serial();
        let (pid, r) = run_with_pid(bin(), &args);
        r.expect_code(2);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1);
        assert_eq!(leftovers(&pids_of(pid, &r)), Vec::<String>::new());
    }
    // No duration at all: refused by name, never a panic.
    for seconds in ["nan", "inf", "1e300", "0"] {
        for lesson in ["cpu", "quota"] {
            let r = run_with_pid(bin(), &[lesson, "--seconds", seconds]).1;
            r.expect_code(2);
            assert!(
                r.stderr.contains("choose 0.1 to 600 seconds"),
                "{seconds}: {}",
                r.stderr
            );
        }
    }
}

/// Start the demo with piped output and read until a line contains `marker`.
fn start_until(
    args: &[&str],
    marker: &str,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStdout>,
    Vec<i32>,
) {
    use std::io::BufRead;
    let mut child = labkit::testing::command(bin(), args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if line.contains(marker) {
            break;
        }
        line.clear();
    }
    assert!(line.contains(marker), "the demo never printed {marker:?}");
    let pid = i32::try_from(child.id()).unwrap();
    (child, out, vec![pid])
}

#[test]
fn ctrl_c_in_the_middle_still_removes_every_group() {
    if needs_root("ctrl_c_in_the_middle_still_removes_every_group") {
        return;
    }
    let _one = serial();
    let (mut child, _out, pids) = start_until(&["cpu", "--seconds", "2"], "fork() -> light");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(2),
        "it ends by the SIGINT, after cleaning up: {status:?}"
    );
    assert_eq!(
        leftovers(&pids),
        Vec::<String>::new(),
        "Ctrl-C left cgroups behind"
    );
}

#[test]
fn a_closed_output_pipe_still_removes_every_group() {
    if needs_root("a_closed_output_pipe_still_removes_every_group") {
        return;
    }
    let _one = serial();
    let (mut child, out, pids) = start_until(&["pids"], "fork() -> bomb");
    drop(out); // like `cgroup-demo pids | head -2`
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(141),
        "128 + SIGPIPE, as a classic tool would: {status:?}"
    );
    assert_eq!(
        leftovers(&pids),
        Vec::<String>::new(),
        "a closed pipe left cgroups behind"
    );
}
