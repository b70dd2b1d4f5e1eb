//! What the minicontainer test programs share: running the binary while remembering the PIDs of
//! the runs they start, and the leftover check that looks only for what those runs made (their
//! names carry their PID: `nslab-ctr-PID-N`, `nslab-memory-PID-N`), never at another test run's
//! or another user's objects on the same machine.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use labkit::testing::{
    Run, cgroup_leftovers_of, run_as_nobody_with_pid, run_with_pid, temp_leftovers_of,
};

static STARTED: Mutex<Vec<i32>> = Mutex::new(Vec::new());

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_minicontainer"))
}

/// Remember a minicontainer process this test started (a `Background`, a detached runner).
pub fn started(pid: i32) {
    STARTED.lock().unwrap_or_else(|p| p.into_inner()).push(pid);
}

/// `minicontainer ARGS` (labkit's `run`), remembering its PID.
pub fn run(bin: &Path, args: &[&str]) -> Run {
    let (pid, r) = run_with_pid(bin, args);
    started(pid);
    r
}

/// `minicontainer ARGS` as nobody, remembering its PID.
pub fn run_as_nobody(bin: &Path, args: &[&str]) -> Run {
    let (pid, r) = run_as_nobody_with_pid(bin, args);
    started(pid);
    r
}

/// Temp directories, mounts and cgroups that the runs this test program started left: their
/// own names only.
pub fn leftovers() -> Vec<String> {
    let pids = STARTED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let parents: Vec<PathBuf> = cgroup_demo::cg::hierarchies()
        .map(|all| all.into_iter().map(|h| h.own).collect())
        .unwrap_or_default();
    let mut found = temp_leftovers_of(&pids);
    found.extend(cgroup_leftovers_of(&parents, &pids));
    found
}

/// Debian's static busybox (the tests' images and root filesystems are made of it), or `None`
/// after a loud skip.
pub fn busybox(test: &str) -> Option<&'static Path> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists()
        && labkit::testing::skip(test, "no /bin/busybox (apt-get install busybox-static)")
    {
        return None;
    }
    Some(busybox)
}
