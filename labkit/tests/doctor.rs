//! `nslab-doctor` runs on any machine and reports what the kernel says.

use std::path::Path;

use labkit::testing::run;

#[test]
fn doctor_reports_kernel_namespaces_cgroups_and_chapters() {
    let r = run(Path::new(env!("CARGO_BIN_EXE_nslab-doctor")), &[]);
    r.expect_code(0);
    let release = nix::sys::utsname::uname()
        .unwrap()
        .release()
        .to_string_lossy()
        .into_owned();
    assert!(
        r.stdout.contains(&release),
        "names the running kernel:\n{}",
        r.stdout
    );
    for kind in labkit::ns::kinds_present().unwrap() {
        assert!(r.stdout.contains(kind.name()), "lists {kind}");
    }
    let layout = labkit::cgroupfs::detect().unwrap();
    assert!(
        r.stdout.contains(&layout.kind.to_string()),
        "says which cgroup layout:\n{}",
        r.stdout
    );
    for chapter in ["namespace API", "UTS", "PID", "cgroups", "copy-on-write"] {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(chapter)),
            "has a row for {chapter}"
        );
    }
}

#[test]
fn doctor_help_says_what_it_does() {
    let r = run(Path::new(env!("CARGO_BIN_EXE_nslab-doctor")), &["--help"]);
    r.expect_code(0);
    assert!(r.stdout.contains("Usage: nslab-doctor"));
}

#[test]
fn doctor_refuses_arguments_it_does_not_take() {
    use std::os::unix::ffi::OsStrExt;
    let bin = Path::new(env!("CARGO_BIN_EXE_nslab-doctor"));
    let r = run(bin, &["--bogus"]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("unexpected argument \"--bogus\""),
        "{}",
        r.stderr
    );
    // Not UTF-8: refused the same way, no panic.
    let out = std::process::Command::new(bin)
        .arg(std::ffi::OsStr::from_bytes(b"\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument"));
}
