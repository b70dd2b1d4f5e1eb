//! Runs the real `cow-demo` binary, snapshots its output (timings redacted) and asserts the
//! mechanism: files copied up whole, lower files untouched, whiteouts and opaque directories
//! present, overlays far smaller than copies, shared pages turning private after writes; and
//! that nothing stays mounted or on disk.

use std::path::Path;

use labkit::assert_run_snapshot;
use labkit::testing::{
    Run, needs_root, needs_unprivileged_userns, pids_of, run, run_as_nobody_with_pid, run_with_pid,
    serial, temp_leftovers_of,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cow-demo"))
}

/// Temp directories and mounts the demo might have left.
fn leftovers(pid: i32, r: &Run) -> Vec<String> {
    temp_leftovers_of(&pids_of(pid, r))
}

fn demo(test: &str, args: &[&str]) -> Option<Run> {
    let _one = serial();
    let mut all = vec!["--rootless"];
    all.extend_from_slice(args);
    let (pid, r) = run_with_pid(bin(), &all);
    if r.code == 77 && needs_unprivileged_userns(test) {
        return None;
    }
    r.expect_code(0);
    assert_eq!(
        leftovers(pid, &r),
        Vec::<String>::new(),
        "left mounted or on disk"
    );
    Some(r)
}

/// Timings, and values that move with them.
const TIMES: &[(&str, &str)] = &[
    (r"\d+\.\d{3} (ms|s)\b", "[T] $1"),
    (r"\b\d+x\b", "[R]x"),
    (r"\|#+ ", "|[BAR] "),
    (r"Rss \d+ MiB", "Rss [N] MiB"),
];

#[test]
fn help_lists_every_subcommand() {
    let r = run(bin(), &["--help"]);
    r.expect_code(0);
    for sub in ["layers", "copyup", "whiteout", "many", "memory"] {
        assert!(r.stdout.contains(sub));
    }
    assert_run_snapshot!("help", r);
}

#[test]
fn overlay_merges_read_only_layers_under_a_writable_one() {
    let Some(r) = demo(
        "overlay_merges_read_only_layers_under_a_writable_one",
        &["layers"],
    ) else {
        return;
    };
    let row = |f: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(&format!("] {f} ")) || l.contains(&format!("    {f} ")))
            .unwrap_or_else(|| panic!("{f}"))
            .to_string()
    };
    assert!(
        row("bin/tool").ends_with("tool version 2"),
        "the upper of the two lower layers wins"
    );
    assert!(
        row("app/data").contains(".     .    x"),
        "a new file goes to upper only: {}",
        row("app/data")
    );
    assert!(row("etc/os-release").contains("x     .    ."));
    assert_run_snapshot!("layers", r, TIMES);
}

#[test]
fn a_write_copies_the_whole_file_up_and_leaves_the_lower_alone() {
    let Some(r) = demo(
        "a_write_copies_the_whole_file_up_and_leaves_the_lower_alone",
        &["copyup", "--sizes", "4K,64K,1M,4M"],
    ) else {
        return;
    };
    assert!(
        r.stdout
            .contains("upper/ holds 4 whole copies (5312512 bytes)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("lower 0x01 (unchanged), container 1 0x21, container 2 0x01")
    );
    // The table's cells have fixed widths (a 9-character time, a 5-character ratio): replace
    // each whole field by a placeholder of the same width, so the columns stay where they are
    // whatever the timings. Then the chart's times.
    assert_run_snapshot!(
        "copyup",
        r,
        &[
            (r"[ \d]{4}\d\.\d{3} ms", "      [T] ms"),
            (r"[ \d]{4}\dx\b", "  [R]x"),
            (r"\d+\.\d{3} (ms|s)\b", "[T] $1"),
            (r"\|#+ ", "|[BAR] "),
        ]
    );
}

#[test]
fn copy_up_writes_an_svg_plot() {
    let dir = labkit::testing::TempDir::new("svg");
    let svg = dir.path().join("plot.svg");
    let Some(_) = demo(
        "copy_up_writes_an_svg_plot",
        &["copyup", "--sizes", "4K,1M", "--svg", svg.to_str().unwrap()],
    ) else {
        return;
    };
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg ") && text.trim_end().ends_with("</svg>"));
    assert_eq!(text.matches("<polyline").count(), 2);
}

#[test]
fn deleting_leaves_whiteouts_and_recreating_makes_opaque_dirs() {
    let Some(r) = demo(
        "deleting_leaves_whiteouts_and_recreating_makes_opaque_dirs",
        &["whiteout"],
    ) else {
        return;
    };
    assert!(r.stdout.contains("upper/old.txt: character device 0:0 (a whiteout); lower/old.txt: file; merged/old.txt: (none)"));
    assert!(r.stdout.contains("overlay.opaque = \"y\""), "{}", r.stdout);
    assert!(r.stdout.contains("(empty: the lower logs/a.log is hidden)"));
    assert!(
        r.stdout
            .contains("rename(merged/cache, merged/cache2) -> EXDEV")
    );
    assert!(
        r.stdout.contains("redirect_dir=on -> EINVAL") || r.stdout.contains("overlay.redirect = "),
        "{}",
        r.stdout
    );
    assert_run_snapshot!("whiteout_rootless", r, TIMES);
}

#[test]
fn as_root_redirect_dir_lets_a_lower_directory_move() {
    if needs_root("as_root_redirect_dir_lets_a_lower_directory_move") {
        return;
    }
    let _one = serial();
    let (pid, r) = run_with_pid(bin(), &["whiteout"]);
    r.expect_code(0);
    assert!(r.stdout.contains("trusted.overlay.opaque = \"y\""));
    assert!(
        r.stdout
            .contains("rename(merged/cache, merged/cache2) -> 0")
    );
    assert!(r.stdout.contains("trusted.overlay.redirect = \"cache\""));
    assert_eq!(leftovers(pid, &r), Vec::<String>::new());
    assert_run_snapshot!("whiteout_root", r, TIMES);
}

#[test]
fn many_containers_share_one_image() {
    let Some(r) = demo(
        "many_containers_share_one_image",
        &["many", "--count", "4", "--size", "8M"],
    ) else {
        return;
    };
    let line = |what: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(what))
            .unwrap()
            .to_string()
    };
    let kib = |l: &str| -> u64 {
        let t: Vec<&str> = l.split_whitespace().collect();
        let i = t.iter().position(|w| *w == "KiB" || *w == "MiB").unwrap();
        let n: u64 = t[i - 1].parse().unwrap();
        if t[i] == "MiB" { n * 1024 } else { n }
    };
    let (overlays, copies) = (kib(&line("4 overlays")), kib(&line("4 copies")));
    assert!(copies >= 4 * 8 * 1024, "4 copies of 8 MiB: {copies} KiB");
    assert!(
        overlays * 100 < copies,
        "overlays {overlays} KiB, copies {copies} KiB"
    );
    assert_run_snapshot!(
        "many",
        r,
        &[
            (r"\d+\.\d{3} s", "[T] s"),
            (r"\b\d+x\b", "[R]x"),
            (r"(4 overlays +)\d+ KiB", "${1}[N] KiB")
        ]
    );
}

#[test]
fn written_pages_stop_being_shared_after_fork() {
    let r = run(bin(), &["memory", "--size", "64M"]);
    r.expect_code(0);
    let nums = |marker: &str| -> (u64, u64) {
        let l = r.stdout.lines().find(|l| l.contains(marker)).unwrap();
        let n: Vec<u64> = l
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (n[n.len() - 2], n[n.len() - 1])
    };
    let (shared0, private0) = nums("after fork(): Shared_Dirty");
    let (shared1, private1) = nums("first half: Shared_Dirty");
    // The messages give the expected and the actual values side by side, with their units,
    // and name the unit slip when the numbers show one.
    let scale = if shared0.max(private0) > 32 * 1024 {
        " (about 1024 times too large: bytes where KiB were meant?)"
    } else {
        ""
    };
    assert!(
        (63..=65).contains(&shared0) && private0 <= 1,
        "after fork() the whole 64 MiB buffer is shared: expected Shared_Dirty 64 MiB and \
         Private_Dirty 0 MiB (within 1 MiB), got Shared_Dirty {shared0} MiB and Private_Dirty \
         {private0} MiB{scale}"
    );
    let moved_out = shared0 as i64 - shared1 as i64;
    assert!(
        (31..=33).contains(&moved_out),
        "the child wrote half the buffer: expected Shared_Dirty to fall by 32 MiB (within \
         1 MiB), got {shared0} MiB -> {shared1} MiB ({moved_out} MiB)"
    );
    let moved_in = private1 as i64 - private0 as i64;
    assert!(
        (31..=34).contains(&moved_in),
        "the child's copies are its own: expected Private_Dirty to grow by 32 MiB (31 to \
         34 MiB), got {private0} MiB -> {private1} MiB ({moved_in} MiB)"
    );
    assert_run_snapshot!("memory", r, TIMES);
}

#[test]
fn overlay_demos_run_as_root_and_as_nobody() {
    if needs_root("overlay_demos_run_as_root_and_as_nobody")
        || needs_unprivileged_userns("overlay_demos_run_as_root_and_as_nobody")
    {
        return;
    }
    let _one = serial();
    for sub in ["layers", "copyup", "many"] {
        for (pid, r) in [
            run_with_pid(bin(), &[sub]),
            run_as_nobody_with_pid(bin(), &[sub]),
        ] {
            r.expect_code(0);
            assert_eq!(leftovers(pid, &r), Vec::<String>::new(), "{sub}");
        }
    }
}

#[test]
fn bad_sizes_are_refused() {
    for (args, needle) in [
        (vec!["copyup", "--sizes", "lots"], "is not a size"),
        (vec!["copyup", "--sizes", "512M"], "at most 256M"),
        (vec!["many", "--count", "0"], "choose 1 to 50"),
        (vec!["memory", "--size", "0"], "above 0"),
    ] {
        let _one = serial();
        let (pid, r) = run_with_pid(bin(), &args);
        r.expect_code(2);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(leftovers(pid, &r), Vec::<String>::new());
    }
}
