//! `cargo xtask lab`: classroom exercises cut out of the demos themselves, checked by the demos'
//! own tests (as rustlings does for its exercises).
//!
//! # Two places, one job each
//!
//! The code of an exercise is a region of a demo's real source between two one-line markers,
//! and nothing else marks it there:
//!
//! ```text
//!         // lab:begin uts-named-child
//!         sethostname(name).with_context(|| format!("sethostname(\"{name}\")"))?;
//!         ...
//!         // lab:end uts-named-child
//! ```
//!
//! Everything else is in the manifest, `xtask/labs.toml` ([`MANIFEST`], rustlings' `info.toml`
//! is the model): the chapter, the tests that check it, the goal (the title), the guidance (the
//! skeleton's `TODO` lines), the hints (`cargo xtask lab hint ID [N]`, one more each time), the
//! explanation shown after a pass, hints chosen by what went wrong (`feedback`: the first whose
//! `when` occurs in the failed output), and the wrong variants. So the lesson code, and the book
//! that includes it, carries no exercise text, and `lab verify` and the book check make sure no
//! chapter shows a region (the answer).
//!
//! The skeleton is the region with its code replaced by the guidance and `todo!("ID");`. A
//! region is therefore a run of whole statements that declares nothing the code after it uses (a
//! whole function or closure body, or statements in the middle of one): the skeleton must
//! compile, so that an unsolved exercise fails its tests, not the build. Keep the narration
//! (`out.step(...)`) outside the region where the lesson allows it: the learner writes the
//! mechanism, not the exact wording of the transcript.
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
//! rebuilds are incremental. A failure shows the failed assertions (expected and actual, with
//! units), the demo's error, and the hint that matches the failure; a pass, the explanation.
//!
//! # Checkers that refuse wrong answers
//!
//! Each exercise keeps three or more wrong variants in the manifest (the reference with a step
//! removed, two steps swapped, a wrong flag or constant, the mistake students really make),
//! each as `[from, to]` replacements of the reference and the text its failure must show.
//! `lab verify` proves that the skeleton and every wrong variant fail the exercise's tests, for
//! the expected reason and with a failure-specific hint, prints what the learner would see for each, and that the reference
//! passes (`--repeat N`: N times, each right after a rebuild). It builds each crate once: the
//! regions are multiplexed ([`multiplexed`]) into a `match` on `NSLAB_LAB_VARIANT`, which the
//! test runs set, so every variant is the same test binary run with another value.
//!
//! # Adding an exercise
//!
//! 1. Put `// lab:begin ID` and `// lab:end ID` around the statements in the demo's source,
//!    outside any book `ANCHOR` region (the book check fails on an excerpt that shows one).
//! 2. Describe it in `xtask/labs.toml`: tests (of `tests/cli.rs`, few: they run on every check;
//!    where the kernel refuses the mistake only without privilege, a test that runs the demo as
//!    `nobody`), goal, guidance, hints, explanation, feedback, three wrong variants.
//! 3. Run `cargo xtask lab verify ID`.
//! 4. List it in the table "In code: `cargo xtask lab`" at the end of its chapter in
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

/// The labs' manifest: what each exercise asks, its hints, its wrong variants.
pub const MANIFEST: &str = "xtask/labs.toml";

/// `xtask/labs.toml`, as written (rustlings' `info.toml` is the model).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    exercise: Vec<Entry>,
}

/// One `[[exercise]]` of the manifest.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    /// The chapter's file in book/src (it must match the ID's prefix).
    pub chapter: String,
    /// The crate whose `tests/cli.rs` checks it (default: the crate whose `src/` holds it).
    #[serde(rename = "crate")]
    pub test_crate: Option<String>,
    /// Test-name filters of that `tests/cli.rs`.
    pub tests: Vec<String>,
    /// One line: what to do (the exercise's title).
    pub goal: String,
    /// What the learner needs to know, in the reader's words (the skeleton's `TODO` lines).
    pub guidance: String,
    /// Shown one by one by `cargo xtask lab hint ID`.
    pub hints: Vec<String>,
    /// Shown after a pass: what the kernel did, why the code is as it is.
    pub explanation: String,
    /// Hints chosen by what went wrong: the first whose `when` occurs in the failed output.
    #[serde(default)]
    pub feedback: Vec<Feedback>,
    /// Plausible wrong solutions: each must fail the checker (`lab verify`).
    #[serde(default)]
    pub wrong: Vec<Wrong>,
    /// Run the tests in a mount namespace of their own whose mounts are all shared (as on a
    /// systemd host), where a runtime that forgets to make its mounts private is refused; on a
    /// host whose root is private, the mistake would go unseen.
    #[serde(default)]
    pub shared_mounts: bool,
}

/// A hint for one kind of failure (iximiuz Labs' "hintcheck"): shown when `when` is part of
/// the failed tests' output.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    pub when: String,
    pub hint: String,
}

/// A wrong solution: the reference with `replace` applied (each `[from, to]`: `from` occurs
/// exactly once in the reference's region).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wrong {
    pub name: String,
    /// What kind of mistake: "step removed", "steps swapped", "wrong flag", "student mistake", ...
    pub mistake: String,
    pub replace: Vec<[String; 2]>,
    /// Part of what the learner must see when the checker refuses it: the failure is for
    /// the lesson's reason, not by luck.
    pub expect: String,
}

/// One exercise: where its markers are, and its manifest entry.
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
    pub explanation: String,
    pub feedback: Vec<Feedback>,
    pub wrong: Vec<Wrong>,
    pub shared_mounts: bool,
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
        let mut body: Vec<String> = std::iter::once(&self.title)
            .chain(&self.guidance)
            .map(|g| format!("{}// TODO: {g}", self.indent))
            .collect();
        body.push(format!("{}todo!(\"{}\");", self.indent, self.id));
        body
    }

    /// The reference's region with a wrong variant's replacements made.
    fn wrong_body(&self, reference: &[String], w: &Wrong) -> Result<Vec<String>> {
        let mut text = reference.join("\n") + "\n";
        for [from, to] in &w.replace {
            let n = text.matches(from.as_str()).count();
            ensure!(
                n == 1,
                "{}: wrong variant {}: {from:?} occurs {n} times in the reference (once expected)",
                self.id,
                w.name
            );
            text = text.replacen(from.as_str(), to, 1);
        }
        Ok(text.lines().map(String::from).collect())
    }

    /// The hint that matches this failure's output, if one does.
    fn feedback_for(&self, log: &str) -> Option<&str> {
        self.feedback
            .iter()
            .find(|f| log.contains(&f.when))
            .map(|f| f.hint.as_str())
    }
}

/// Where the exercises' code is: (file relative to the root, first and last line of the region,
/// 1-based and counting the markers, ID). The book check keeps the chapters away from them.
pub fn regions(root: &Path) -> Result<Vec<(PathBuf, usize, usize, String)>> {
    Ok(exercises(root)?
        .into_iter()
        .map(|e| (e.file, e.begin + 1, e.end + 1, e.id))
        .collect())
}

fn lines_of(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The manifest's entries, by ID.
fn manifest(root: &Path) -> Result<BTreeMap<String, Entry>> {
    let path = root.join(MANIFEST);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let m: Manifest = toml::from_str(&text).with_context(|| format!("parse {MANIFEST}"))?;
    let mut by_id = BTreeMap::new();
    for e in m.exercise {
        let id = e.id.clone();
        ensure!(
            by_id.insert(id.clone(), e).is_none(),
            "{MANIFEST}: exercise {id} is described twice"
        );
    }
    Ok(by_id)
}

/// A marker found in a source: ID, file, crate, lines, indentation.
struct Marked {
    id: String,
    file: PathBuf,
    krate: String,
    begin: usize,
    end: usize,
    indent: String,
}

/// Every exercise in the crates' sources, in chapter order (then file and line).
pub fn exercises(root: &Path) -> Result<Vec<Exercise>> {
    let mut marked = Vec::new();
    for krate in CRATES {
        let src = root.join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files)?;
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            let rel = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
            parse_file(&rel, krate, &text, &mut marked)?;
        }
    }
    let mut entries = manifest(root)?;
    let mut all = Vec::new();
    for m in marked {
        let e = entries.remove(&m.id).with_context(|| {
            format!(
                "{}:{}: exercise {} has no [[exercise]] in {MANIFEST}",
                m.file.display(),
                m.begin + 1,
                m.id
            )
        })?;
        all.push(exercise(m, e)?);
    }
    if let Some(id) = entries.keys().next() {
        bail!("{MANIFEST}: exercise {id} has no `// lab:begin {id}` marker in a crate's src/");
    }
    all.sort_by(|a, b| (a.chapter, &a.file, a.begin).cmp(&(b.chapter, &b.file, b.begin)));
    Ok(all)
}

fn exercise(m: Marked, e: Entry) -> Result<Exercise> {
    let prefix = m.id.split('-').next().unwrap_or_default();
    let chapter = CHAPTERS
        .iter()
        .position(|(p, _, _)| *p == prefix)
        .with_context(|| format!("{}: the prefix {prefix:?} names no chapter", m.id))?;
    ensure!(
        CHAPTERS[chapter].1 == e.chapter,
        "{MANIFEST}: {}: chapter {:?}, but the prefix {prefix:?} is {:?}",
        m.id,
        e.chapter,
        CHAPTERS[chapter].1
    );
    ensure!(!e.tests.is_empty(), "{MANIFEST}: {}: no tests", m.id);
    ensure!(
        !e.goal.contains('\n') && !e.goal.trim().is_empty(),
        "{MANIFEST}: {}: the goal is one line",
        m.id
    );
    let names: BTreeSet<&str> = e.wrong.iter().map(|w| w.name.as_str()).collect();
    ensure!(
        names.len() == e.wrong.len() && !names.contains("skeleton"),
        "{MANIFEST}: {}: wrong variants need distinct names (not \"skeleton\")",
        m.id
    );
    Ok(Exercise {
        test_crate: e.test_crate.unwrap_or(m.krate),
        tests: e.tests,
        title: e.goal.trim().to_string(),
        guidance: e
            .guidance
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        hint: e.hints,
        explanation: e.explanation.trim().to_string(),
        feedback: e.feedback,
        wrong: e.wrong,
        shared_mounts: e.shared_mounts,
        id: m.id,
        file: m.file,
        begin: m.begin,
        end: m.end,
        indent: m.indent,
        chapter,
    })
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

/// The markers of one file. A marker line is `// lab:begin ID` or `// lab:end ID`, nothing
/// else; anything more (the old format's `tests=` words, `TODO(lab)` and `lab:hint` lines) is
/// refused: exercise text belongs in the manifest.
fn parse_file(rel: &Path, krate: &str, text: &str, out: &mut Vec<Marked>) -> Result<()> {
    let lines = lines_of(text);
    let mut open: Option<Marked> = None;
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        let here = || format!("{}:{}", rel.display(), i + 1);
        let refuse = |what: &str| -> Result<()> {
            bail!(
                "{}: {what}: exercise text belongs in {MANIFEST}; the source keeps only \
                 `// lab:begin ID` and `// lab:end ID`",
                here()
            )
        };
        if let Some(rest) = line.strip_prefix(BEGIN) {
            ensure!(
                open.is_none(),
                "{}: lab:begin inside another exercise",
                here()
            );
            let mut words = rest.split_whitespace();
            let id = words.next().context("lab:begin without an ID")?.to_string();
            let indent = raw[..raw.len() - raw.trim_start().len()].to_string();
            open = Some(Marked {
                id,
                file: rel.to_path_buf(),
                krate: krate.to_string(),
                begin: i,
                end: 0,
                indent,
            });
            if let Some(w) = words.next() {
                refuse(&format!("lab:begin word {w:?}"))?;
            }
        } else if let Some(rest) = line.strip_prefix(END) {
            let mut m = open
                .take()
                .with_context(|| format!("{}: lab:end without lab:begin", here()))?;
            ensure!(
                rest.trim() == m.id,
                "{}: lab:end {:?} closes {}",
                here(),
                rest.trim(),
                m.id
            );
            m.end = i;
            out.push(m);
        } else if line.starts_with(TODO) || line.starts_with(HINT) {
            ensure!(open.is_some(), "{}: {line:?} outside an exercise", here());
            let what = if line.starts_with(TODO) {
                "TODO(lab)"
            } else {
                "lab:hint"
            };
            refuse(&format!("a {what} line"))?;
        }
    }
    if let Some(m) = open {
        bail!("{}: {} has no lab:end", rel.display(), m.id);
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

/// Remove a test run's temporary directory, unless something is still mounted below it (then
/// it is left, and said: removing it would reach into the mounted filesystem).
fn remove_tmp(tmp: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = tmp.display().to_string();
    if mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| labkit::cgroupfs::unescape(m).starts_with(&prefix))
    {
        eprintln!(
            "lab: {} still has a mount below it; left in place",
            tmp.display()
        );
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(tmp) {
        eprintln!("lab: rm -r {}: {e}", tmp.display());
    }
}

/// The `nslab-*` cgroups below this process's own cgroup in each hierarchy (two levels down),
/// and the `nslab-*` entries of the temporary directory: what verify compares before and after.
fn nslab_objects() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let path = path.trim_start_matches('/');
        if ctrls.is_empty() {
            dirs.push(Path::new("/sys/fs/cgroup/unified").join(path));
            dirs.push(Path::new("/sys/fs/cgroup").join(path));
        } else {
            for c in ctrls.split(',') {
                let c = c.trim_start_matches("name=");
                dirs.push(Path::new("/sys/fs/cgroup").join(c).join(path));
            }
            dirs.push(Path::new("/sys/fs/cgroup").join(ctrls).join(path));
        }
    }
    dirs.push(std::env::temp_dir());
    for dir in dirs {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("nslab-") && e.file_type().is_ok_and(|t| t.is_dir()) {
                found.insert(e.path().display().to_string());
            }
        }
    }
    found
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

struct Scratch {
    ws: PathBuf,
    target: PathBuf,
    /// Capture the output (verify) instead of showing it (check).
    quiet: bool,
    /// Run the tests in the VM of `cargo xtask vm-test` instead of on this machine.
    vm: bool,
}

impl Scratch {
    /// The copy and its target directory are in `target/lab`, or in `$NSLAB_LAB_DIR` (so that
    /// two `lab verify` can run at once, each in a directory of its own).
    fn new(root: &Path, quiet: bool) -> Scratch {
        let dir = std::env::var_os("NSLAB_LAB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/lab"));
        Scratch {
            ws: dir.join("ws"),
            target: dir.join("target"),
            quiet,
            vm: false,
        }
    }

    fn cargo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(args);
        self.checked(&mut cmd);
        cmd
    }

    /// The workspace copy, its target directory, and a test environment that skips nothing,
    /// never rewrites a snapshot and prints no colour: for cargo, or for what wraps it.
    fn checked(&self, cmd: &mut Command) {
        cmd.current_dir(&self.ws)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("NSLAB_NO_SKIP", "1")
            .env("INSTA_UPDATE", "no")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .env_remove("INSTA_FORCE_PASS");
    }

    /// Build and run `e`'s tests in the workspace copy as it is. `variant` selects one arm of
    /// a region `lab verify` multiplexed (`ID/skeleton`, `ID/NAME`; `None`: the reference).
    fn run_tests(&self, e: &Exercise, variant: Option<&str>) -> Result<(Outcome, String)> {
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
        } else if e.shared_mounts {
            // unshare(1) makes the mount namespace and marks every mount in it shared; the
            // tests and the host's mounts stay apart.
            let mut cmd = Command::new("unshare");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            cmd.args(["--mount", "--propagation", "shared", "--", &cargo])
                .args(&args);
            self.checked(&mut cmd);
            cmd
        } else {
            self.cargo(&args)
        };
        cmd.process_group(0);
        match variant {
            Some(v) => cmd.env(VARIANT_VAR, v),
            None => cmd.env_remove(VARIANT_VAR),
        };
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
        // With shared mounts, a wrong solution's mounts propagate where its runtime cannot
        // remove them, and so do its directories: give the run a temporary directory of its
        // own (mode 1777, as /tmp), removed with what it holds once the namespace is gone.
        // (Other runs keep /tmp: the snapshots' filters know its paths.)
        let tmp = e.shared_mounts.then(|| {
            std::env::temp_dir().join(format!(
                "nslab-lab-{}-{}",
                std::process::id(),
                variant.unwrap_or(&e.id).replace('/', "-")
            ))
        });
        if let Some(tmp) = &tmp {
            std::fs::create_dir_all(tmp).with_context(|| format!("mkdir {}", tmp.display()))?;
            std::fs::set_permissions(tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))?;
            cmd.env("TMPDIR", tmp);
        }
        // The output goes to a file: the learner sees it afterwards, verify keeps it for a
        // failure report.
        let log_path = self.target.join(format!(
            "{}.log",
            variant.unwrap_or(&e.id).replace('/', "-")
        ));
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
        if let Some(tmp) = &tmp {
            remove_tmp(tmp);
        }
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
    let (outcome, log) = scratch.run_tests(e, None)?;
    let passed = matches!(outcome, Outcome::Passed(_));
    match &outcome {
        Outcome::CompileError => {
            eprintln!("{log}");
            eprintln!("lab: {}: your code does not compile (errors above)", e.id);
        }
        Outcome::Passed(n) => {
            println!("lab: ✓ {}: {n} test(s) pass with your code", e.id);
            println!("\n{}\n", e.explanation);
        }
        Outcome::Failed(p, f) => {
            println!("{log}");
            println!(
                "lab: ✗ {}: {f} test(s) failed, {p} passed (output above)",
                e.id
            );
            for l in student_view(&log) {
                println!("     {l}");
            }
            match e.feedback_for(&log) {
                Some(h) => println!("lab: hint for this failure: {h}"),
                None => println!("lab: `cargo xtask lab hint {}` gives a hint", e.id),
            }
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

/// The guidance and the first `upto` hints (each call can ask for one more).
fn hint(e: &Exercise, upto: usize) {
    println!("{}: {}", e.id, e.title);
    if !e.guidance.is_empty() {
        println!("\n{}", e.guidance.join(" "));
    }
    let upto = upto.clamp(1, e.hint.len().max(1));
    for (i, h) in e.hint.iter().take(upto).enumerate() {
        println!("\nhint {}/{}: {h}", i + 1, e.hint.len());
    }
    if upto < e.hint.len() {
        println!(
            "\nthe next hint: cargo xtask lab hint {} {}",
            e.id,
            upto + 1
        );
    }
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

/// The environment variable that picks an arm of a multiplexed region (see [`multiplexed`]).
const VARIANT_VAR: &str = "NSLAB_LAB_VARIANT";

/// The sources with every region turned into a `match` on [`VARIANT_VAR`]: one arm per wrong
/// variant (`ID/NAME`), one for the skeleton (`ID/skeleton`), and the reference for anything
/// else. One build of a crate then serves every variant of its exercises: `lab verify` runs
/// the same test binary with another value, where a splice per variant would rebuild the crate
/// each time. Each arm is the region's code as the splice would put it, in a block of its own,
/// and the variable is inherited by every process the demo starts.
fn multiplexed(root: &Path, all: &[Exercise]) -> Result<BTreeMap<PathBuf, String>> {
    let mut files: BTreeMap<PathBuf, Vec<&Exercise>> = BTreeMap::new();
    for e in all {
        files.entry(e.file.clone()).or_default().push(e);
    }
    let mut out = BTreeMap::new();
    for (file, mut list) in files {
        let mut text = std::fs::read_to_string(root.join(&file))?;
        // Bottom up, so the line numbers of the regions above stay right.
        list.sort_by_key(|e| std::cmp::Reverse(e.begin));
        for e in list {
            let reference = region_body(&text, e);
            let i = &e.indent;
            let mut body = vec![format!(
                "{i}match std::env::var(\"{VARIANT_VAR}\").as_deref() {{"
            )];
            let mut arm = |name: &str, lines: &[String]| {
                body.push(format!("{i}    {name} => {{"));
                body.extend(lines.iter().cloned());
                body.push(format!("{i}    }}"));
            };
            arm(&format!("Ok(\"{}/skeleton\")", e.id), &e.skeleton_body());
            for w in &e.wrong {
                arm(
                    &format!("Ok(\"{}/{}\")", e.id, w.name),
                    &e.wrong_body(&reference, w)?,
                );
            }
            arm("_", &reference);
            body.push(format!("{i}}}"));
            text = splice(&text, e, &body)?;
        }
        out.insert(file, text);
    }
    Ok(out)
}

/// What a learner sees of a failure, in a few lines: the failed assertions (expected and
/// actual), the errors the demo printed, and the first lines of a snapshot's difference.
fn student_view(log: &str) -> Vec<String> {
    let mut view = Vec::new();
    let (mut diff, mut after_panic, mut stderr) = (0, 0, 0);
    for l in log.lines() {
        let t = l.trim_end();
        if t.contains("panicked at") {
            after_panic = 3;
            continue;
        }
        if t == "----- stderr -----" {
            // The demo's own error and hint, from the transcript in a failed assertion.
            stderr = 3;
            continue;
        }
        if stderr > 0 {
            stderr -= 1;
            if t.trim().is_empty() || t.trim_start().starts_with("left:") {
                stderr = 0;
            } else {
                view.push(t.trim().to_string());
            }
            continue;
        }
        if after_panic > 0 {
            after_panic -= 1;
            let skip = ["note:", "stack backtrace", "----- stdout"];
            if !t.is_empty() && !skip.iter().any(|s| t.starts_with(s)) {
                view.push(t.trim().to_string());
            }
            continue;
        }
        if t.starts_with("Snapshot: ") {
            view.push(t.to_string());
        } else if (t.contains("│-") || t.contains("│+")) && diff < 6 {
            diff += 1;
            view.push(t.trim().to_string());
        }
    }
    view.dedup();
    view.truncate(14);
    view
}

/// For every exercise (or those named): the manifest and the markers agree, the splice gives
/// the source back byte for byte, every chapter has two exercises and lists them, and the book
/// shows no exercise's region; then (unless `static_only`) that the skeleton and every wrong
/// variant fail their tests, each wrong one for its `expect`ed reason, and that the reference
/// passes them (`repeat` times in a row, each right after a rebuild).
fn verify(
    root: &Path,
    all: &[Exercise],
    only: &[String],
    static_only: bool,
    repeat: usize,
) -> Result<()> {
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
        // The chapter's table row names the tests the manifest gives.
        if let Some(row) = book
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", e.id)))
        {
            for t in &e.tests {
                if !row.contains(t.as_str()) {
                    problems.push(format!(
                        "{}: its row in book/src/{} does not name the test filter {t}",
                        e.id, CHAPTERS[e.chapter].1
                    ));
                }
            }
        }
        if e.wrong.len() < 3 {
            problems.push(format!(
                "{}: {} wrong variant(s) in {MANIFEST}; three or more prove the checker refuses wrong answers",
                e.id,
                e.wrong.len()
            ));
        }
        let reference = region_body(&text, e);
        for w in &e.wrong {
            match e.wrong_body(&reference, w) {
                Ok(body) if body == reference => problems.push(format!(
                    "{}: wrong variant {} is the reference",
                    e.id, w.name
                )),
                Ok(_) => {}
                Err(why) => problems.push(format!("{why:#}")),
            }
            if w.expect.trim().is_empty() {
                problems.push(format!(
                    "{}: wrong variant {} expects nothing",
                    e.id, w.name
                ));
            }
        }
        if e.hint.is_empty() || e.explanation.is_empty() {
            problems.push(format!(
                "{}: no hints or no explanation in {MANIFEST}",
                e.id
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
    let before = nslab_objects();
    if !static_only && problems.is_empty() {
        let scratch = Scratch::new(root, true);
        let mut sources = multiplexed(root, all)?;
        sync_workspace(root, &scratch.ws, &sources)?;
        // Group by the crate tested: one build per crate serves every variant.
        let mut order = chosen.clone();
        order.sort_by_key(|e| (e.test_crate.clone(), e.file.clone(), e.begin));
        let row = |e: &Exercise, what: &str, verdict: &str, t: Instant| {
            eprintln!(
                "lab verify: {:<20} {:<22} {verdict}  [{:.0} s]",
                e.id,
                what,
                t.elapsed().as_secs_f64()
            )
        };
        let tail = |log: &str| {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        for &e in &order {
            // The skeleton.
            let t = Instant::now();
            let (outcome, log) = scratch.run_tests(e, Some(&format!("{}/skeleton", e.id)))?;
            match outcome {
                Outcome::Failed(_, f) if f > 0 => {
                    row(e, "skeleton", &format!("fails ({f} test(s))"), t)
                }
                Outcome::CompileError => {
                    eprintln!("{}", tail(&log));
                    bail!(
                        "the multiplexed sources of {} do not compile (a wrong variant in {MANIFEST}?)",
                        e.test_crate
                    );
                }
                other => {
                    row(e, "skeleton", &format!("{other:?}"), t);
                    eprintln!("{}", tail(&log));
                    problems.push(format!("{}: the skeleton does not fail: {other:?}", e.id));
                }
            }
            // The wrong variants: each fails, for its reason, and this is what a learner sees.
            for w in &e.wrong {
                let t = Instant::now();
                let (outcome, log) = scratch.run_tests(e, Some(&format!("{}/{}", e.id, w.name)))?;
                let view = student_view(&log);
                let reason = log.contains(&w.expect);
                match outcome {
                    Outcome::Failed(_, f) if f > 0 && reason => row(
                        e,
                        &w.name,
                        &format!("fails ({f} test(s)): {}", w.mistake),
                        t,
                    ),
                    Outcome::Failed(_, f) if f > 0 => {
                        row(e, &w.name, "fails, but not for its reason", t);
                        problems.push(format!(
                            "{}/{}: fails, but its output lacks {:?}",
                            e.id, w.name, w.expect
                        ));
                    }
                    other => {
                        row(e, &w.name, &format!("is NOT refused: {other:?}"), t);
                        problems.push(format!(
                            "{}/{}: the checker does not refuse it ({other:?})",
                            e.id, w.name
                        ));
                    }
                }
                for l in &view {
                    eprintln!("lab verify:     | {l}");
                }
                match e.feedback_for(&log) {
                    Some(h) => eprintln!("lab verify:     | hint for this failure: {h}"),
                    None => {
                        eprintln!("lab verify:     | (no failure-specific hint)");
                        problems.push(format!(
                            "{}/{}: no [[exercise.feedback]] matches its failure: a learner who makes this mistake gets no hint for it",
                            e.id, w.name
                        ));
                    }
                }
            }
            // The reference, `repeat` times, each run right after a rebuild of the crate.
            for n in 0..repeat.max(1) {
                let t = Instant::now();
                if n > 0 {
                    let text = sources.get_mut(&e.file).context("multiplexed source")?;
                    text.push_str(&format!("// lab verify: rebuild {n}\n"));
                    sync_workspace(root, &scratch.ws, &sources)?;
                }
                let (outcome, log) = scratch.run_tests(e, None)?;
                if let Outcome::Passed(k) = outcome {
                    row(
                        e,
                        "reference",
                        &format!("passes ({k} test(s)), run {} of {}", n + 1, repeat.max(1)),
                        t,
                    );
                } else {
                    row(e, "reference", &format!("does not pass: {outcome:?}"), t);
                    eprintln!("{}", tail(&log));
                    problems.push(format!(
                        "{}: the reference does not pass ({outcome:?}), run {}",
                        e.id,
                        n + 1
                    ));
                }
            }
        }
    }
    if !static_only {
        // A wrong variant must fail without leaving anything on the host. Something new named
        // nslab-* may also come from another run at the same time (two verifies at once), so
        // this says what, and removes nothing; CI's last step fails on anything left.
        let new: Vec<String> = nslab_objects().difference(&before).cloned().collect();
        if !new.is_empty() {
            eprintln!(
                "lab verify: warning: new nslab-* objects since verify started (this run's leftovers, or another run's):\n  {}",
                new.join("\n  ")
            );
        }
    }
    eprintln!(
        "lab verify: {} exercise(s){}, {:.0} s",
        chosen.len(),
        if static_only {
            " (markers, manifest and book only)"
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
        "lab verify: every splice is exact; every skeleton and wrong variant fails its tests (each wrong one with its hint), \
         and the reference passes them"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------

const USAGE: &str = "usage: cargo xtask lab [list | next | watch | check [ID... | --all] [--vm] | hint ID [N] | reset ID | verify [--static] [--repeat N] [ID...]]";

pub fn lab(root: &Path, args: &[String]) -> Result<()> {
    let all = exercises(root)?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] | ["list"] => list(root, &all),
        ["next"] => next(root, &all).map(|_| ()),
        ["watch"] => watch(root, &all),
        ["hint", id] => {
            hint(find(&all, id)?, 1);
            Ok(())
        }
        ["hint", id, n] => {
            let n = n.parse().context("lab hint ID N: N is a number")?;
            hint(find(&all, id)?, n);
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
                // The VM's mounts are private (no systemd there makes them shared): a runtime's
                // missing private step would go unseen.
                if let Some(e) = chosen.iter().find(|e| e.shared_mounts) {
                    bail!(
                        "--vm cannot check {}: it is checked where every mount is shared, as on a \
                         systemd host, and the VM's mounts are private; run it without --vm, as root",
                        e.id
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
            let (mut static_only, mut repeat, mut ids) = (false, 1, Vec::new());
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match *a {
                    "--static" => static_only = true,
                    "--repeat" => {
                        repeat = it
                            .next()
                            .and_then(|n| n.parse().ok())
                            .context("--repeat N: N is a number")?
                    }
                    id => ids.push(id.to_string()),
                }
            }
            verify(root, &all, &ids, static_only, repeat)
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

    const SRC: &str = "fn f() -> u32 {\n    // lab:begin ns-demo\n    let x = 40;\n    x + 2\n    // lab:end ns-demo\n}\n";

    fn entry() -> Entry {
        toml::from_str::<Manifest>(
            r#"
            [[exercise]]
            id = "ns-demo"
            chapter = "namespace-api.md"
            tests = ["a", "b"]
            goal = "return the answer."
            guidance = "It is a number.\n"
            hints = ["it is 42"]
            explanation = "because"
            [[exercise.feedback]]
            when = "left: 41"
            hint = "one more"
            [[exercise.wrong]]
            name = "off-by-one"
            mistake = "wrong constant"
            replace = [["x + 2", "x + 1"]]
            expect = "41"
            "#,
        )
        .unwrap()
        .exercise
        .remove(0)
    }

    fn parsed(src: &str) -> Exercise {
        let mut marked = Vec::new();
        parse_file(Path::new("x/src/lib.rs"), "x", src, &mut marked).unwrap();
        exercise(marked.remove(0), entry()).unwrap()
    }

    #[test]
    fn markers_and_manifest_make_an_exercise_whose_splice_round_trips() {
        let e = parsed(SRC);
        assert_eq!(
            (e.id.as_str(), e.tests.clone(), e.title.as_str()),
            (
                "ns-demo",
                vec!["a".into(), "b".into()],
                "return the answer."
            )
        );
        assert_eq!(e.hint, ["it is 42"]);
        let skeleton = splice(SRC, &e, &e.skeleton_body()).unwrap();
        assert!(skeleton.contains(
            "    // TODO: return the answer.\n    // TODO: It is a number.\n    todo!(\"ns-demo\");\n"
        ));
        assert!(!skeleton.contains("let x"));
        let mut e2 = e.clone();
        e2.end = e.begin + 1 + e.skeleton_body().len();
        assert_eq!(splice(&skeleton, &e2, &region_body(SRC, &e)).unwrap(), SRC);
    }

    #[test]
    fn a_wrong_variant_is_the_reference_with_its_replacements() {
        let e = parsed(SRC);
        let reference = region_body(SRC, &e);
        assert_eq!(
            e.wrong_body(&reference, &e.wrong[0]).unwrap(),
            ["    let x = 40;", "    x + 1"]
        );
        let mut twice = e.wrong[0].clone();
        twice.replace = vec![["x".into(), "y".into()]];
        assert!(e.wrong_body(&reference, &twice).is_err(), "x occurs twice");
        assert_eq!(
            e.feedback_for("assert left: 41 right: 42"),
            Some("one more")
        );
        assert_eq!(e.feedback_for("something else"), None);
    }

    #[test]
    fn exercise_text_in_a_source_is_refused() {
        let mut marked = Vec::new();
        let words = SRC.replace("lab:begin ns-demo", "lab:begin ns-demo tests=a");
        assert!(parse_file(Path::new("x.rs"), "x", &words, &mut marked).is_err());
        let todo = SRC.replace("    let x", "    // TODO(lab): do it\n    let x");
        assert!(parse_file(Path::new("x.rs"), "x", &todo, &mut marked).is_err());
        let hint = SRC.replace("    let x", "    // lab:hint 42\n    let x");
        assert!(parse_file(Path::new("x.rs"), "x", &hint, &mut marked).is_err());
    }

    #[test]
    fn the_workspace_exercises_splice_back_and_are_in_the_book() {
        let root = crate::root();
        let all = exercises(&root).unwrap();
        assert!(all.len() >= 18, "{} exercises", all.len());
        verify(&root, &all, &[], true, 1).unwrap();
    }

    #[test]
    fn every_region_multiplexes_into_one_match() {
        let root = crate::root();
        let all = exercises(&root).unwrap();
        let sources = multiplexed(&root, &all).unwrap();
        for e in &all {
            let text = &sources[&e.file];
            assert!(
                text.contains(&format!("Ok(\"{}/skeleton\") => {{", e.id)),
                "{}",
                e.id
            );
            for w in &e.wrong {
                assert!(text.contains(&format!("Ok(\"{}/{}\") => {{", e.id, w.name)));
            }
        }
    }

    #[test]
    fn unbalanced_or_unknown_markers_are_refused() {
        let mut marked = Vec::new();
        let open = SRC.replace("// lab:end ns-demo", "");
        assert!(parse_file(Path::new("x.rs"), "x", &open, &mut marked).is_err());
        marked.clear();
        let chapterless = SRC.replace("ns-demo", "zz-demo");
        parse_file(Path::new("x.rs"), "x", &chapterless, &mut marked).unwrap();
        let mut e = entry();
        e.id = "zz-demo".into();
        assert!(exercise(marked.remove(0), e).is_err());
    }
}
