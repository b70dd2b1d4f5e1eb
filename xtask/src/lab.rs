//! `cargo xtask lab`: classroom exercises cut out of the demos themselves, checked by the demos'
//! own snapshot tests (as rustlings does for its exercises).
//!
//! # One source of truth
//!
//! An exercise is a region of a demo's real source, between two marker comments:
//!
//! ```text
//!         // lab:begin uts-named-child tests=persist_keeps_a_namespace_alive
//!         // TODO(lab): name the child's new UTS namespace, then stay alive until the parent is done.
//!         // TODO(lab): ... (more guidance lines)
//!         // lab:hint sethostname(name), then child.step(...), then child.ready_and_wait()? ...
//!         sethostname(name).with_context(|| format!("sethostname(\"{name}\")"))?;
//!         ...
//!         // lab:end uts-named-child
//! ```
//!
//! - `lab:begin ID tests=F1,F2 [crate=CRATE]`: the ID (its prefix before the first `-` names the
//!   chapter, see [`CHAPTERS`]), the test-name filters of `CRATE/tests/cli.rs` that exercise
//!   the region (`CRATE` defaults to the crate whose `src/` holds it).
//! - `TODO(lab):` lines are the guidance. They stay in the reference, where they read as
//!   explanation, and the skeleton keeps them (as `TODO:`). The first one is the title.
//! - `lab:hint` lines are shown by `cargo xtask lab hint ID` and left out of the skeleton.
//! - `lab:end ID` closes the region.
//!
//! The skeleton is the region with its code replaced by `todo!("ID");`. A region is therefore a
//! run of whole statements that declares nothing the code after it uses (a whole function or
//! closure body, or statements in the middle of one): the skeleton must compile, so that an
//! unsolved exercise fails its tests, not the build. Keep the narration (`out.step(...)`)
//! outside the region where the lesson allows it: the learner writes the mechanism, not the
//! exact wording of the transcript.
//!
//! Nothing is duplicated: this file only knows the chapter prefixes; the list of exercises, the
//! skeletons, the hints and the solutions all come from the markers in the crates' `src/`.
//!
//! # How a learner works
//!
//! `cargo xtask lab` writes `lab/ID.rs` for every exercise (never overwriting one) and lists
//! them with their progress. The learner fills in the code between the `lab:begin` and
//! `lab:end` lines of the current one and runs `cargo xtask lab next` (check it, and on a pass
//! move on) or `cargo xtask lab watch` (the same, again on every save). A check copies the
//! workspace sources to `target/lab/ws`, splices the learner's code into the marked region,
//! and runs `cargo test -p CRATE --test cli -- FILTERS` there (`NSLAB_NO_SKIP=1`, so a skipped
//! test cannot pass as solved), with its own target directory `target/lab/target` so that
//! rebuilds are incremental. The learner's version must make the same snapshots as the
//! reference, with the same redactions.
//!
//! # Adding an exercise
//!
//! 1. Put `// lab:begin ID tests=...` and `// lab:end ID` around the statements in the demo's
//!    source, with one or more `// TODO(lab):` lines (what to do, in the reader's words; the
//!    first, a one-line title) and `// lab:hint` lines (the call to use, the trap to avoid).
//!    The tests are those of `tests/cli.rs` (`--test cli`). Pick tests whose snapshot or
//!    assertion shows the region's work, and keep them few: they run on every check. Put the
//!    markers outside a book `ANCHOR` region where you can, so the book does not show them.
//!    For the container chapter (`minicontainer`, book/src/container.md) the prefix is `ctr-`.
//! 2. Run `cargo xtask lab verify ID`: the splice must give back the file byte for byte, the
//!    skeleton must compile, and the named tests must exist, fail with it and pass with the
//!    reference.
//! 3. List it in the table "In code: `cargo xtask lab`" at the end of its chapter in
//!    `book/src/` (verify checks that every ID appears, in backquotes, in its chapter).
//!
//! # Without root
//!
//! The tests need root. `cargo xtask lab check ID --vm` runs them in a VM instead, for the
//! exercises checked by the crates `cargo xtask vm-test` runs there (cgroup-demo): it runs the
//! workspace copy's own `cargo xtask vm-test` with `NSLAB_VM_FILTER` set to the exercise's
//! filters, which builds the tests (with the learner's code) statically, boots QEMU and runs
//! them as root inside. For the other crates, vm.rs's `SUITES` would have to come from its
//! caller (and net-demo needs kernel modules the VM does not load).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// Chapter prefixes, in the book's order: (ID prefix, chapter file in book/src, title).
pub const CHAPTERS: &[(&str, &str, &str)] = &[
    ("ns", "namespace-api.md", "The namespace API"),
    ("uts", "uts.md", "UTS"),
    ("ipc", "ipc.md", "IPC"),
    ("pid", "pid.md", "PID"),
    ("mnt", "mount.md", "Mount"),
    ("net", "network.md", "Network"),
    ("user", "user.md", "User"),
    ("cg", "cgroups.md", "cgroups"),
    ("cow", "cow.md", "Copy-on-write"),
    ("ctr", "container.md", "A minimal container"),
];

/// The crates whose sources may hold exercises.
const CRATES: &[&str] = &[
    "labkit",
    "uts-demo",
    "ipc-demo",
    "pid-demo",
    "mnt-demo",
    "net-demo",
    "user-demo",
    "cgroup-demo",
    "cow-demo",
    "minicontainer",
];

/// How long the tests of one check may run (the build is not counted).
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

const BEGIN: &str = "// lab:begin ";
const END: &str = "// lab:end";
const TODO: &str = "// TODO(lab):";
const HINT: &str = "// lab:hint";

/// One exercise, as its markers describe it.
#[derive(Debug, Clone)]
pub struct Exercise {
    pub id: String,
    /// Source file, relative to the workspace root.
    pub file: PathBuf,
    /// The crate whose tests check it.
    pub test_crate: String,
    pub tests: Vec<String>,
    pub title: String,
    pub guidance: Vec<String>,
    pub hint: Vec<String>,
    /// Line indexes (0-based) of the begin and end markers.
    begin: usize,
    end: usize,
    /// Indentation of the begin marker.
    indent: String,
    chapter: usize,
}

impl Exercise {
    fn lab_file(&self, root: &Path) -> PathBuf {
        root.join("lab").join(format!("{}.rs", self.id))
    }

    /// The region's inside as the learner starts it: guidance and `todo!()`.
    fn skeleton_body(&self) -> Vec<String> {
        let mut body: Vec<String> = self
            .guidance
            .iter()
            .map(|g| format!("{}// TODO: {g}", self.indent))
            .collect();
        body.push(format!("{}todo!(\"{}\");", self.indent, self.id));
        body
    }
}

fn lines_of(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Every exercise in the crates' sources, in chapter order (then file and line).
pub fn exercises(root: &Path) -> Result<Vec<Exercise>> {
    let mut all = Vec::new();
    for krate in CRATES {
        let src = root.join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files)?;
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            let rel = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
            parse_file(&rel, krate, &text, &mut all)?;
        }
    }
    let mut seen = BTreeSet::new();
    for e in &all {
        ensure!(
            seen.insert(e.id.clone()),
            "exercise {} is marked twice",
            e.id
        );
    }
    all.sort_by(|a, b| (a.chapter, &a.file, a.begin).cmp(&(b.chapter, &b.file, b.begin)));
    Ok(all)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let p = e?.path();
        if p.is_dir() {
            rust_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

fn parse_file(rel: &Path, krate: &str, text: &str, out: &mut Vec<Exercise>) -> Result<()> {
    let lines = lines_of(text);
    let mut open: Option<Exercise> = None;
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        let here = || format!("{}:{}", rel.display(), i + 1);
        if let Some(rest) = line.strip_prefix(BEGIN) {
            ensure!(
                open.is_none(),
                "{}: lab:begin inside another exercise",
                here()
            );
            let mut words = rest.split_whitespace();
            let id = words.next().context("lab:begin without an ID")?.to_string();
            let prefix = id.split('-').next().unwrap_or_default();
            let chapter = CHAPTERS
                .iter()
                .position(|(p, _, _)| *p == prefix)
                .with_context(|| {
                    format!("{}: {id}: the prefix {prefix:?} names no chapter", here())
                })?;
            let (mut tests, mut test_crate) = (Vec::new(), krate.to_string());
            for w in words {
                match w.split_once('=') {
                    Some(("tests", list)) => {
                        tests = list.split(',').map(String::from).collect();
                    }
                    Some(("crate", c)) => test_crate = c.to_string(),
                    _ => bail!("{}: {id}: unknown lab:begin word {w:?}", here()),
                }
            }
            ensure!(!tests.is_empty(), "{}: {id}: no tests=", here());
            let indent = raw[..raw.len() - raw.trim_start().len()].to_string();
            open = Some(Exercise {
                id,
                file: rel.to_path_buf(),
                test_crate,
                tests,
                title: String::new(),
                guidance: Vec::new(),
                hint: Vec::new(),
                begin: i,
                end: 0,
                indent,
                chapter,
            });
        } else if let Some(rest) = line.strip_prefix(END) {
            let mut e = open
                .take()
                .with_context(|| format!("{}: lab:end without lab:begin", here()))?;
            ensure!(
                rest.trim() == e.id,
                "{}: lab:end {:?} closes {}",
                here(),
                rest.trim(),
                e.id
            );
            ensure!(
                !e.guidance.is_empty(),
                "{}: {} has no TODO(lab) line",
                here(),
                e.id
            );
            e.end = i;
            e.title = e.guidance[0].clone();
            out.push(e);
        } else if let Some(e) = open.as_mut() {
            if let Some(g) = line.strip_prefix(TODO) {
                e.guidance.push(g.trim().to_string());
            } else if let Some(h) = line.strip_prefix(HINT) {
                e.hint.push(h.trim().to_string());
            }
        }
    }
    if let Some(e) = open {
        bail!("{}: {} has no lab:end", rel.display(), e.id);
    }
    Ok(())
}

/// `text` with the inside of `e`'s region replaced by `body` (lines without newlines).
fn splice(text: &str, e: &Exercise, body: &[String]) -> Result<String> {
    let lines = lines_of(text);
    ensure!(
        e.end < lines.len() && lines[e.begin].trim().starts_with(BEGIN),
        "{}: the markers of {} moved; run the command again",
        e.file.display(),
        e.id
    );
    let mut out = String::with_capacity(text.len());
    out.extend(lines[..=e.begin].iter().copied());
    for l in body {
        out.push_str(l);
        out.push('\n');
    }
    out.extend(lines[e.end..].iter().copied());
    Ok(out)
}

/// The inside of the region in `text` (the reference solution), without newlines.
fn region_body(text: &str, e: &Exercise) -> Vec<String> {
    lines_of(text)[e.begin + 1..e.end]
        .iter()
        .map(|l| l.strip_suffix('\n').unwrap_or(l).to_string())
        .collect()
}

/// The learner's lines between the markers of their file.
fn learner_body(root: &Path, e: &Exercise) -> Result<Vec<String>> {
    let path = e.lab_file(root);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let begin = lines
        .iter()
        .position(|l| l.trim().starts_with(BEGIN))
        .with_context(|| {
            format!(
                "{}: the `// lab:begin {}` line is gone (cargo xtask lab reset {} starts again)",
                path.display(),
                e.id,
                e.id
            )
        })?;
    let end = lines[begin..]
        .iter()
        .position(|l| l.trim().starts_with(END))
        .map(|n| n + begin)
        .with_context(|| format!("{}: the `// lab:end {}` line is gone", path.display(), e.id))?;
    Ok(lines[begin + 1..end]
        .iter()
        .map(|l| l.to_string())
        .collect())
}

/// The learner's starting file: where the code goes, context around it, and the skeleton.
fn lab_file_text(root: &Path, e: &Exercise) -> Result<String> {
    let src = std::fs::read_to_string(root.join(&e.file))?;
    let lines: Vec<&str> = src.lines().collect();
    let (chapter_file, chapter_title) = (CHAPTERS[e.chapter].1, CHAPTERS[e.chapter].2);
    let mut s = String::new();
    let _ = writeln!(s, "// Exercise {}: {}", e.id, e.title);
    let _ = writeln!(
        s,
        "// Chapter: {chapter_title} (book/src/{chapter_file}). Region: {}:{}.",
        e.file.display(),
        e.begin + 1
    );
    let _ = writeln!(
        s,
        "// Write the code between the lab:begin and lab:end lines; only that part is used.\n\
         // It replaces the region in {}, so it sees the same variables and imports.\n\
         // Check:  cargo xtask lab check {}     Hint:  cargo xtask lab hint {}\n\
         // Tests:  cargo test -p {} --test cli -- {}\n//",
        e.file.display(),
        e.id,
        e.id,
        e.test_crate,
        e.tests.join(" ")
    );
    // Context: the enclosing function's signature, and the lines just above the region.
    let is_fn = |l: &str| {
        let t = l.trim_start();
        t.starts_with("fn ") || t.starts_with("pub fn ") || t.starts_with("pub(crate) fn ")
    };
    let near = e.begin.saturating_sub(12);
    if let Some(f) = (0..e.begin).rev().find(|&i| is_fn(lines[i])) {
        if f < near {
            let sig_end = (f..near)
                .find(|&i| lines[i].trim_end().ends_with('{'))
                .unwrap_or(f);
            for l in &lines[f..=sig_end] {
                let _ = writeln!(s, "//| {l}");
            }
            let _ = writeln!(s, "//| ...");
        }
    }
    let start = (near..e.begin).find(|&i| is_fn(lines[i])).unwrap_or(near);
    for l in &lines[start..e.begin] {
        let _ = writeln!(s, "//| {l}");
    }
    let _ = writeln!(s, "{}", lines[e.begin]);
    for l in e.skeleton_body() {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(s, "{}", lines[e.end]);
    for l in lines.iter().skip(e.end + 1).take(8) {
        let _ = writeln!(s, "//| {l}");
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// The scratch workspace

fn skip_entry(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    matches!(s.as_ref(), "target" | ".git" | "lab" | "book/book")
        || s.ends_with(".snap.new")
        || s.ends_with(".pending-snap")
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("readdir {}", dir.display()))? {
        let e = e?;
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
        if skip_entry(&rel) {
            continue;
        }
        let t = e.file_type()?;
        if t.is_dir() {
            collect(root, &p, out)?;
        } else if t.is_file() {
            out.insert(rel);
        }
    }
    Ok(())
}

/// Make `ws` a copy of the workspace sources with `overrides` (relative path -> content),
/// writing only what differs, so that cargo rebuilds only what changed.
fn sync_workspace(root: &Path, ws: &Path, overrides: &BTreeMap<PathBuf, String>) -> Result<()> {
    let mut files = BTreeSet::new();
    collect(root, root, &mut files)?;
    for rel in &files {
        let want = match overrides.get(rel) {
            Some(text) => text.as_bytes().to_vec(),
            None => std::fs::read(root.join(rel))?,
        };
        let dest = ws.join(rel);
        if std::fs::read(&dest).ok().as_deref() != Some(&want[..]) {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&dest, &want).with_context(|| format!("write {}", dest.display()))?;
        }
    }
    // Files removed from the workspace go from the copy too.
    let mut there = BTreeSet::new();
    if ws.exists() {
        collect(ws, ws, &mut there)?;
    }
    for rel in there.difference(&files) {
        let _ = std::fs::remove_file(ws.join(rel));
    }
    Ok(())
}

/// What one run of an exercise's tests gave.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Passed(usize),
    /// Tests ran and failed (how many passed, how many failed).
    Failed(usize, usize),
    NoTests,
    CompileError,
    TimedOut,
}

/// The crates whose tests `cargo xtask vm-test` runs in its VM for an exercise (vm.rs's `SUITES`).
const VM_CRATES: &[&str] = &["cgroup-demo"];

struct Scratch {
    ws: PathBuf,
    target: PathBuf,
    /// Capture the output (verify) instead of showing it (check).
    quiet: bool,
    /// Run the tests in the VM of `cargo xtask vm-test` instead of on this machine.
    vm: bool,
}

impl Scratch {
    fn new(root: &Path, quiet: bool) -> Scratch {
        Scratch {
            ws: root.join("target/lab/ws"),
            target: root.join("target/lab/target"),
            quiet,
            vm: false,
        }
    }

    fn cargo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(args)
            .current_dir(&self.ws)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("NSLAB_NO_SKIP", "1")
            .env("INSTA_UPDATE", "no")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .env_remove("INSTA_FORCE_PASS");
        cmd
    }

    /// Build and run `e`'s tests in the workspace copy as it is.
    fn run_tests(&self, e: &Exercise) -> Result<(Outcome, String)> {
        let mut build = self.cargo(&["test", "-p", &e.test_crate, "--test", "cli", "--no-run"]);
        if !self.quiet {
            eprintln!(
                "lab: building {} with your code (cargo test --no-run)",
                e.test_crate
            );
        }
        let out = build.output().context("spawn cargo")?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Ok((Outcome::CompileError, log));
        }
        let mut args = vec!["test", "-p", &e.test_crate, "--test", "cli", "--"];
        args.extend(e.tests.iter().map(String::as_str));
        let mut cmd = if self.vm {
            // The copy's own `cargo xtask vm-test` builds its tests statically and runs those
            // that match NSLAB_VM_FILTER in the VM, as root there (no root needed here).
            let mut cmd = self.cargo(&["xtask", "vm-test"]);
            cmd.env("NSLAB_VM_FILTER", e.tests.join(" "));
            cmd
        } else {
            self.cargo(&args)
        };
        cmd.process_group(0);
        if !self.quiet {
            if self.vm {
                eprintln!(
                    "lab: cargo xtask vm-test in target/lab/ws, NSLAB_VM_FILTER={:?}",
                    e.tests.join(" ")
                );
            } else {
                eprintln!(
                    "lab: cargo test -p {} --test cli -- {}",
                    e.test_crate,
                    e.tests.join(" ")
                );
            }
        }
        // The output goes to a file: the learner sees it afterwards, verify keeps it for a
        // failure report.
        let log_path = self.target.join(format!("{}.log", e.id));
        std::fs::create_dir_all(&self.target)?;
        let log_file = std::fs::File::create(&log_path)?;
        cmd.stdout(log_file.try_clone()?).stderr(log_file);
        let mut child = cmd.spawn().context("spawn cargo test")?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break Some(status);
            }
            if started.elapsed() > TEST_TIMEOUT * if self.vm { 4 } else { 1 } {
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let Some(status) = status else {
            return Ok((Outcome::TimedOut, text));
        };
        let (mut passed, mut failed) = (0, 0);
        for line in text
            .lines()
            .map(|l| l.strip_prefix("vm| ").unwrap_or(l))
            .filter(|l| l.starts_with("test result:"))
        {
            let count = |word: &str| -> usize {
                line.split(';')
                    .find(|p| p.trim_end().ends_with(word))
                    .and_then(|p| p.split_whitespace().rev().nth(1))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            passed += count("passed");
            failed += count("failed");
        }
        let outcome = if passed + failed == 0 {
            Outcome::NoTests
        } else if status.success() && failed == 0 {
            Outcome::Passed(passed)
        } else {
            Outcome::Failed(passed, failed)
        };
        Ok((outcome, text))
    }
}

// ---------------------------------------------------------------------------------------------
// Progress

fn progress_path(root: &Path) -> PathBuf {
    root.join("lab/.progress")
}

/// A small stable hash (FNV-1a) of the learner's code, to tell a pass of older code.
fn fnv(lines: &[String]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lines.join("\n").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// ID -> (passed, hash of the code checked).
fn load_progress(root: &Path) -> BTreeMap<String, (bool, u64)> {
    let text = std::fs::read_to_string(progress_path(root)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let id = f.next()?.to_string();
            let passed = f.next()? == "pass";
            let hash = u64::from_str_radix(f.next()?, 16).ok()?;
            Some((id, (passed, hash)))
        })
        .collect()
}

fn save_progress(root: &Path, progress: &BTreeMap<String, (bool, u64)>) -> Result<()> {
    let mut s = String::new();
    for (id, (passed, hash)) in progress {
        let _ = writeln!(
            s,
            "{id} {} {hash:016x}",
            if *passed { "pass" } else { "fail" }
        );
    }
    std::fs::write(progress_path(root), s)?;
    Ok(())
}

enum Mark {
    Passed,
    Failed,
    Unchecked,
}

fn mark(root: &Path, e: &Exercise, progress: &BTreeMap<String, (bool, u64)>) -> Mark {
    let Some(&(passed, hash)) = progress.get(&e.id) else {
        return Mark::Unchecked;
    };
    match learner_body(root, e) {
        Ok(body) if fnv(&body) == hash => {
            if passed {
                Mark::Passed
            } else {
                Mark::Failed
            }
        }
        _ => Mark::Unchecked, // edited since the last check
    }
}

/// Write `lab/ID.rs` for every exercise that has none.
fn ensure_lab_files(root: &Path, all: &[Exercise]) -> Result<()> {
    let dir = root.join("lab");
    std::fs::create_dir_all(&dir)?;
    let readme = dir.join("README.md");
    if !readme.exists() {
        std::fs::write(
            &readme,
            "Your lab work (not in git). One file per exercise; `cargo xtask lab` lists them,\n\
             `cargo xtask lab next` checks the current one. See book/src/labs.md.\n",
        )?;
    }
    for e in all {
        let path = e.lab_file(root);
        if !path.exists() {
            std::fs::write(&path, lab_file_text(root, e)?)?;
        }
    }
    Ok(())
}

fn current<'a>(
    root: &Path,
    all: &'a [Exercise],
    progress: &BTreeMap<String, (bool, u64)>,
) -> Option<&'a Exercise> {
    all.iter()
        .find(|e| !matches!(mark(root, e, progress), Mark::Passed))
}

fn list(root: &Path, all: &[Exercise]) -> Result<()> {
    ensure_lab_files(root, all)?;
    let progress = load_progress(root);
    let cur = current(root, all, &progress).map(|e| e.id.clone());
    let mut chapter = usize::MAX;
    let done = all
        .iter()
        .filter(|e| matches!(mark(root, e, &progress), Mark::Passed))
        .count();
    println!(
        "nslab labs: {done} of {} solved (✓ passed, ✗ failed, · not checked since the last edit)",
        all.len()
    );
    for e in all {
        if e.chapter != chapter {
            chapter = e.chapter;
            println!("\n{} ({})", CHAPTERS[chapter].2, CHAPTERS[chapter].1);
        }
        let m = match mark(root, e, &progress) {
            Mark::Passed => "✓",
            Mark::Failed => "✗",
            Mark::Unchecked => "·",
        };
        let arrow = if cur.as_deref() == Some(&e.id) {
            "→"
        } else {
            " "
        };
        println!("{arrow} {m} {:<22} {}", e.id, e.title);
    }
    match all.iter().find(|e| Some(&e.id) == cur.as_ref()) {
        Some(e) => println!(
            "\ncurrent: {} — edit lab/{}.rs, then `cargo xtask lab next` (or `lab watch`)",
            e.id, e.id
        ),
        None => println!("\nevery exercise passes: well done"),
    }
    Ok(())
}

/// Check one exercise with the learner's code; record and print the result.
fn check_one(root: &Path, e: &Exercise, scratch: &Scratch) -> Result<bool> {
    let body = learner_body(root, e)?;
    let mut overrides = BTreeMap::new();
    let text = std::fs::read_to_string(root.join(&e.file))?;
    overrides.insert(e.file.clone(), splice(&text, e, &body)?);
    sync_workspace(root, &scratch.ws, &overrides)?;
    let (outcome, log) = scratch.run_tests(e)?;
    let passed = matches!(outcome, Outcome::Passed(_));
    match &outcome {
        Outcome::CompileError => {
            eprintln!("{log}");
            eprintln!("lab: {}: your code does not compile (errors above)", e.id);
        }
        Outcome::Passed(n) => {
            println!("lab: ✓ {}: {n} test(s) pass with your code", e.id)
        }
        Outcome::Failed(p, f) => {
            println!("{log}");
            println!(
                "lab: ✗ {}: {f} test(s) failed, {p} passed (output above; `cargo xtask lab hint {}`)",
                e.id, e.id
            );
        }
        Outcome::NoTests => {
            println!("{log}");
            println!("lab: {}: no test matched {:?}", e.id, e.tests);
        }
        Outcome::TimedOut => {
            println!("{log}");
            println!(
                "lab: ✗ {}: the tests ran longer than {} s and were stopped (a wait that never ends?)",
                e.id,
                TEST_TIMEOUT.as_secs()
            );
        }
    }
    let mut progress = load_progress(root);
    progress.insert(e.id.clone(), (passed, fnv(&body)));
    save_progress(root, &progress)?;
    Ok(passed)
}

fn find<'a>(all: &'a [Exercise], id: &str) -> Result<&'a Exercise> {
    all.iter().find(|e| e.id == id).with_context(|| {
        format!(
            "no exercise {id:?}; `cargo xtask lab` lists them ({})",
            all.iter()
                .map(|e| e.id.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        )
    })
}

fn hint(e: &Exercise) {
    println!("{}: {}", e.id, e.title);
    if e.guidance.len() > 1 {
        println!("\n{}", e.guidance[1..].join(" "));
    }
    println!(
        "\nhint: {}",
        if e.hint.is_empty() {
            "(none)".to_string()
        } else {
            e.hint.join(" ")
        }
    );
    println!(
        "\nthe region is in {}:{}; its tests: cargo test -p {} --test cli -- {}",
        e.file.display(),
        e.begin + 1,
        e.test_crate,
        e.tests.join(" ")
    );
}

/// Check the current exercise; on a pass, move on and show the next one.
fn next(root: &Path, all: &[Exercise]) -> Result<bool> {
    ensure_lab_files(root, all)?;
    let progress = load_progress(root);
    let Some(e) = current(root, all, &progress) else {
        println!("lab: every exercise passes");
        return Ok(true);
    };
    let scratch = Scratch::new(root, false);
    if !check_one(root, e, &scratch)? {
        return Ok(false);
    }
    let progress = load_progress(root);
    match current(root, all, &progress) {
        Some(n) => println!(
            "lab: next exercise: {} — {}\n     edit lab/{}.rs, then `cargo xtask lab next`",
            n.id, n.title, n.id
        ),
        None => println!("lab: that was the last one: every exercise passes"),
    }
    Ok(true)
}

/// `next`, again each time the current exercise's file changes. After a pass, the next
/// exercise is checked once its file has been saved.
fn watch(root: &Path, all: &[Exercise]) -> Result<()> {
    ensure_lab_files(root, all)?;
    let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut check_now = true;
    loop {
        let progress = load_progress(root);
        let Some(e) = current(root, all, &progress) else {
            println!("lab: every exercise passes");
            return Ok(());
        };
        let path = e.lab_file(root);
        let before = stamp(&path);
        if check_now {
            next(root, all)?;
            let progress = load_progress(root);
            if current(root, all, &progress).map(|n| &n.id) != Some(&e.id) {
                check_now = false; // passed: wait for the next one's file
                continue;
            }
        }
        println!(
            "lab: watching lab/{}.rs (save to check it, Ctrl-C to stop)",
            e.id
        );
        while stamp(&path) == before {
            std::thread::sleep(Duration::from_millis(500));
        }
        check_now = true;
    }
}

// ---------------------------------------------------------------------------------------------
// verify (CI)

/// For every exercise (or those named): the splice gives the source back byte for byte, every
/// chapter has two exercises and lists them, and the skeleton compiles and fails its tests.
fn verify(root: &Path, all: &[Exercise], only: &[String], static_only: bool) -> Result<()> {
    let started = Instant::now();
    let mut problems = Vec::new();
    // Static checks, for all exercises.
    for e in all {
        let text = std::fs::read_to_string(root.join(&e.file))?;
        let skeleton = splice(&text, e, &e.skeleton_body())?;
        let e2 = {
            // The skeleton's region has other line numbers below the begin marker.
            let mut e2 = e.clone();
            e2.end = e.begin + 1 + e.skeleton_body().len();
            e2
        };
        let back = splice(&skeleton, &e2, &region_body(&text, e))?;
        if back != text {
            problems.push(format!(
                "{}: splicing the reference back does not give {} byte for byte",
                e.id,
                e.file.display()
            ));
        }
        let chapter = root.join("book/src").join(CHAPTERS[e.chapter].1);
        let book = std::fs::read_to_string(&chapter).unwrap_or_default();
        if !book.contains(&format!("`{}`", e.id)) {
            problems.push(format!(
                "{}: not listed in book/src/{}",
                e.id, CHAPTERS[e.chapter].1
            ));
        }
    }
    for (prefix, file, _) in CHAPTERS {
        let n = all
            .iter()
            .filter(|e| CHAPTERS[e.chapter].0 == *prefix)
            .count();
        if n < 2 {
            problems.push(format!(
                "chapter {file} has {n} exercise(s); it should have two or more"
            ));
        }
    }
    let chosen: Vec<&Exercise> = if only.is_empty() {
        all.iter().collect()
    } else {
        only.iter().map(|id| find(all, id)).collect::<Result<_>>()?
    };
    if !static_only {
        let scratch = Scratch::new(root, true);
        // Group by the crate tested, so each step rebuilds as little as possible.
        let mut order = chosen.clone();
        order.sort_by_key(|e| (e.test_crate.clone(), e.file.clone(), e.begin));
        for &e in &order {
            let t = Instant::now();
            let text = std::fs::read_to_string(root.join(&e.file))?;
            let mut overrides = BTreeMap::new();
            overrides.insert(e.file.clone(), splice(&text, e, &e.skeleton_body())?);
            sync_workspace(root, &scratch.ws, &overrides)?;
            let (outcome, log) = scratch.run_tests(e)?;
            let verdict = match outcome {
                Outcome::Failed(_, f) if f > 0 => Ok(format!("fails unsolved ({f} test(s))")),
                Outcome::Failed(..) => Err("the tests failed without a failing test".to_string()),
                Outcome::Passed(n) => Err(format!("PASSES unsolved ({n} test(s))")),
                Outcome::NoTests => Err(format!("no test matches {:?}", e.tests)),
                Outcome::CompileError => Err("the skeleton does not compile".to_string()),
                Outcome::TimedOut => Err("the unsolved tests time out".to_string()),
            };
            match verdict {
                Ok(v) => eprintln!(
                    "lab verify: {:<22} {:<12} {v}  [{:.0} s]",
                    e.id,
                    e.test_crate,
                    t.elapsed().as_secs_f64()
                ),
                Err(why) => {
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    eprintln!(
                        "lab verify: {:<22} {:<12} {why}\n{}",
                        e.id,
                        e.test_crate,
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                    problems.push(format!("{}: {why}", e.id));
                }
            }
        }
        // The reference through the same machinery: the filters name tests that pass with it
        // in the scratch workspace (one build per crate: nothing is spliced).
        sync_workspace(root, &scratch.ws, &BTreeMap::new())?;
        for e in &order {
            let t = Instant::now();
            let (outcome, log) = scratch.run_tests(e)?;
            if let Outcome::Passed(n) = outcome {
                eprintln!(
                    "lab verify: {:<22} {:<12} passes with the reference ({n} test(s))  [{:.0} s]",
                    e.id,
                    e.test_crate,
                    t.elapsed().as_secs_f64()
                );
            } else {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!(
                    "lab verify: {:<22} {:<12} the reference does not pass: {outcome:?}\n{}",
                    e.id,
                    e.test_crate,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
                problems.push(format!(
                    "{}: the reference does not pass ({outcome:?})",
                    e.id
                ));
            }
        }
    }
    eprintln!(
        "lab verify: {} exercise(s){}, {:.0} s",
        chosen.len(),
        if static_only {
            " (markers and book only)"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
    if !problems.is_empty() {
        bail!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    eprintln!(
        "lab verify: every splice is exact, every skeleton compiles and fails its tests, \
         and the reference passes them"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

const USAGE: &str = "usage: cargo xtask lab [list | next | watch | check [ID... | --all] [--vm] | hint ID | reset ID | verify [--static] [ID...]]";

pub fn lab(root: &Path, args: &[String]) -> Result<()> {
    let all = exercises(root)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["list"] => list(root, &all),
        ["next"] => next(root, &all).map(|_| ()),
        ["watch"] => watch(root, &all),
        ["hint", id] => {
            hint(find(&all, id)?);
            Ok(())
        }
        ["reset", id] => {
            let e = find(&all, id)?;
            std::fs::create_dir_all(root.join("lab"))?;
            std::fs::write(e.lab_file(root), lab_file_text(root, e)?)?;
            println!("lab: lab/{id}.rs is the skeleton again");
            Ok(())
        }
        ["check", rest @ ..] => {
            ensure_lab_files(root, &all)?;
            let vm = rest.contains(&"--vm");
            let ids: Vec<&str> = rest.iter().copied().filter(|a| *a != "--vm").collect();
            let chosen: Vec<&Exercise> = if ids.is_empty() {
                let progress = load_progress(root);
                current(root, &all, &progress).into_iter().collect()
            } else if ids == ["--all"] {
                all.iter().collect()
            } else {
                ids.iter().map(|id| find(&all, id)).collect::<Result<_>>()?
            };
            let mut scratch = Scratch::new(root, false);
            if vm {
                if let Some(e) = chosen
                    .iter()
                    .find(|e| !VM_CRATES.contains(&e.test_crate.as_str()))
                {
                    bail!(
                        "--vm checks the exercises of {} only ({} is checked by {}): \
                         `cargo xtask vm-test`, which it reuses, runs only those tests in its VM",
                        VM_CRATES.join(", "),
                        e.id,
                        e.test_crate
                    );
                }
                scratch.vm = true;
            }
            let mut failed = Vec::new();
            for e in &chosen {
                if !check_one(root, e, &scratch)? {
                    failed.push(e.id.clone());
                }
            }
            if chosen.len() > 1 {
                println!(
                    "lab: {} of {} pass{}",
                    chosen.len() - failed.len(),
                    chosen.len(),
                    if failed.is_empty() {
                        String::new()
                    } else {
                        format!("; not yet: {}", failed.join(" "))
                    }
                );
            }
            ensure!(failed.is_empty(), "not solved yet: {}", failed.join(" "));
            Ok(())
        }
        ["verify", rest @ ..] => {
            let static_only = rest.contains(&"--static");
            let ids: Vec<String> = rest
                .iter()
                .filter(|a| **a != "--static")
                .map(|s| s.to_string())
                .collect();
            verify(root, &all, &ids, static_only)
        }
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown lab command")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "fn f() -> u32 {\n    // lab:begin ns-demo tests=a,b\n    // TODO(lab): return the answer.\n    // lab:hint it is 42\n    let x = 40;\n    x + 2\n    // lab:end ns-demo\n}\n";

    #[test]
    fn markers_parse_and_the_splice_round_trips() {
        let mut all = Vec::new();
        parse_file(Path::new("x/src/lib.rs"), "x", SRC, &mut all).unwrap();
        let e = &all[0];
        assert_eq!(
            (e.id.as_str(), e.tests.clone(), e.title.as_str()),
            (
                "ns-demo",
                vec!["a".into(), "b".into()],
                "return the answer."
            )
        );
        assert_eq!(e.hint, ["it is 42"]);
        let skeleton = splice(SRC, e, &e.skeleton_body()).unwrap();
        assert!(skeleton.contains("    // TODO: return the answer.\n    todo!(\"ns-demo\");\n"));
        assert!(!skeleton.contains("let x"));
        let mut e2 = e.clone();
        e2.end = e.begin + 1 + e.skeleton_body().len();
        assert_eq!(splice(&skeleton, &e2, &region_body(SRC, e)).unwrap(), SRC);
    }

    #[test]
    fn the_workspace_exercises_splice_back_and_are_in_the_book() {
        let root = crate::root();
        let all = exercises(&root).unwrap();
        assert!(all.len() >= 18, "{} exercises", all.len());
        verify(&root, &all, &[], true).unwrap();
    }

    #[test]
    fn unbalanced_or_unknown_markers_are_refused() {
        let mut all = Vec::new();
        let open = SRC.replace("// lab:end ns-demo", "");
        assert!(parse_file(Path::new("x.rs"), "x", &open, &mut all).is_err());
        let chapterless = SRC.replace("ns-demo", "zz-demo");
        assert!(parse_file(Path::new("x.rs"), "x", &chapterless, &mut all).is_err());
    }
}
