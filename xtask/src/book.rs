//! Checks mdBook does not make: it renders a missing include or anchor as nothing (or leaves the
//! `{{#include}}` text in the page) and builds anyway.
//!
//! Sources: every `{{#include}}` names an existing file, anchor and line range; snapshot includes
//! start right after the 3-line header; every chapter but the introduction and appendices shows
//! real output (a snapshot); every row of the claims table names a test that exists and a
//! chapter that exists and names the claim; every hint in labkit's errno table is explained,
//! word for word, in the troubleshooting appendix; every SVG picture is well-formed,
//! self-contained XML with a size, and some chapter shows it.
//! HTML: no `{{#` is left in any built page, and every internal link and image points to a file
//! that exists (and a `#fragment` to an `id` on that page). [`browser`] then loads every page in
//! headless Chromium.

mod browser;

pub use browser::check_browser;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Chapters that need not include program output.
const NO_OUTPUT_NEEDED: &[&str] = &[
    "introduction.md",
    "claims.md",
    "beyond.md",
    "glossary.md",
    "troubleshooting.md",
];

/// The appendix that explains every hint the programs print.
const TROUBLESHOOTING: &str = "troubleshooting.md";

/// The lines `{{#include PATH:SPEC}}` takes from `text`: (first, last), 1-based, inclusive.
fn included_lines(text: &str, spec: Option<&str>) -> Option<(usize, usize)> {
    let n = text.lines().count();
    let Some(spec) = spec else {
        return Some((1, n));
    };
    if spec.starts_with(|c: char| c.is_ascii_digit() || c == ':') {
        let mut parts = spec.split(':');
        let first = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
        let last = match parts.next() {
            Some(l) => l.parse().unwrap_or(n),
            None => first, // a single line number
        };
        return Some((first, last.min(n)));
    }
    let mut start = None;
    for (i, l) in text.lines().enumerate() {
        let t = l
            .trim_start()
            .trim_start_matches("//")
            .trim_start_matches('#')
            .trim();
        if t == format!("ANCHOR: {spec}") {
            start = Some(i + 2);
        } else if t == format!("ANCHOR_END: {spec}") {
            return start.map(|s| (s, i));
        }
    }
    None
}

/// An excerpt that would show an exercise: it overlaps a `lab:begin`..`lab:end` region, or
/// carries a marker, a `TODO(lab)` or a `lab:hint` line.
fn shows_an_exercise(
    root: &Path,
    chapter: &Path,
    inc: &Include,
    regions: &[(PathBuf, usize, usize, String)],
) -> Option<String> {
    let file = chapter.parent()?.join(&inc.path);
    let text = std::fs::read_to_string(&file).ok()?;
    let (first, last) = included_lines(&text, inc.spec.as_deref())?;
    let rel = std::fs::canonicalize(&file).ok()?;
    for (path, begin, end, id) in regions {
        let same = std::fs::canonicalize(root.join(path)).ok().as_ref() == Some(&rel);
        if same && first <= *end && *begin <= last {
            return Some(format!("the code of exercise {id} (the answer)"));
        }
    }
    let excerpt: Vec<&str> = text
        .lines()
        .skip(first.saturating_sub(1))
        .take(last + 1 - first.min(last + 1))
        .collect();
    for marker in ["lab:begin", "lab:end", "TODO(lab)", "lab:hint"] {
        if excerpt.iter().any(|l| l.contains(marker)) {
            return Some(format!("a `{marker}` line"));
        }
    }
    None
}

/// One `{{#include PATH[:SPEC]}}` in a chapter.
#[derive(Debug, PartialEq, Eq)]
pub struct Include {
    pub path: String,
    pub spec: Option<String>,
}

/// The includes in a Markdown text.
pub fn includes(text: &str) -> Vec<Include> {
    let mut found = Vec::new();
    for (start, _) in text.match_indices("{{#") {
        let rest = &text[start + 3..];
        let Some(end) = rest.find("}}") else { continue };
        let body = rest[..end].trim();
        let Some(arg) = body
            .strip_prefix("include ")
            .or_else(|| body.strip_prefix("rustdoc_include "))
        else {
            continue;
        };
        let arg = arg.trim();
        let (path, spec) = match arg.split_once(':') {
            Some((p, s)) => (p.to_string(), Some(s.to_string())),
            None => (arg.to_string(), None),
        };
        found.push(Include { path, spec });
    }
    found
}

fn check_include(chapter: &Path, inc: &Include, problems: &mut Vec<String>) {
    let dir = chapter.parent().expect("chapter has a directory");
    let file = dir.join(&inc.path);
    let here = chapter.display();
    let Ok(text) = std::fs::read_to_string(&file) else {
        problems.push(format!("{here}: include of missing file {}", inc.path));
        return;
    };
    let lines = text.lines().count();
    // A benchmark's figures are a recorded run's output (`cargo xtask bench --record`, which
    // dates it and names the machine), never a table typed in.
    if inc.path.ends_with("bench-run.txt")
        && !(text.starts_with("recorded ") && text.contains("\nnslab bench: kernel "))
    {
        problems.push(format!(
            "{here}: {} is not the output of `cargo xtask bench --record`",
            inc.path
        ));
    }
    match inc.spec.as_deref() {
        None => {}
        Some(spec)
            if spec
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == ':') =>
        {
            let first: usize = spec
                .split(':')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            if first > lines {
                problems.push(format!(
                    "{here}: {} has {lines} lines, include starts at {first}",
                    inc.path
                ));
            }
            if inc.path.ends_with(".snap") {
                // insta's 3-line header, then the harness's `exit code: N` and
                // `----- stdout -----`: a transcript starts on line 6, with the program's output.
                let header: Vec<&str> = text.lines().take(5).collect();
                let ok = header.len() == 5
                    && header[0] == "---"
                    && header[1].starts_with("source:")
                    && header[2] == "---"
                    && header[3].starts_with("exit code: ")
                    && header[4] == "----- stdout -----";
                if !ok || first != 6 {
                    problems.push(format!(
                        "{here}: {} must be included from line 6, after the snapshot's header and the `exit code` and `----- stdout -----` lines",
                        inc.path
                    ));
                }
            }
        }
        Some(anchor) => {
            let has = |marker: &str| {
                text.lines().any(|l| {
                    l.trim_start()
                        .trim_start_matches("//")
                        .trim_start_matches('#')
                        .trim()
                        == format!("{marker}: {anchor}")
                })
            };
            if !has("ANCHOR") || !has("ANCHOR_END") {
                problems.push(format!(
                    "{here}: anchor {anchor:?} not found (ANCHOR and ANCHOR_END) in {}",
                    inc.path
                ));
            }
        }
    }
}

/// The placeholders (`[PORT]`, `[PID-1]`, `[INODE]`) named in backquotes in `prose`: the
/// bracketed words of upper-case letters, digits and dashes.
fn placeholders(prose: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, span) in prose.split('`').enumerate() {
        if i % 2 == 0 {
            continue; // outside backquotes
        }
        let mut rest = span;
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            let Some(close) = after.find(']') else { break };
            let word = &after[..close];
            if !word.is_empty()
                && word.starts_with(|c: char| c.is_ascii_uppercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                found.push(format!("[{word}]"));
            }
            rest = &after[close..];
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Every placeholder a chapter's prose names must occur in a transcript the chapter shows
/// (`[INODE]` in the prose matches `[INODE-1]` in a transcript), so the text never describes
/// a redaction the output no longer has.
/// The introduction's list of redacted values speaks of the whole book: its placeholders are
/// looked for in every transcript of the book (`all`).
fn check_placeholders(
    chapter: &Path,
    text: &str,
    incs: &[Include],
    all: &str,
    problems: &mut Vec<String>,
) {
    let dir = chapter.parent().expect("chapter has a directory");
    let own: String = incs
        .iter()
        .filter(|i| i.path.ends_with(".snap"))
        .filter_map(|i| std::fs::read_to_string(dir.join(&i.path)).ok())
        .collect();
    let transcripts = if chapter.ends_with("introduction.md") {
        all
    } else {
        own.as_str()
    };
    if transcripts.is_empty() {
        return;
    }
    // Prose: the text outside code blocks.
    let mut prose = String::new();
    let mut in_code = false;
    for l in text.lines() {
        if l.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code {
            prose.push_str(l);
            prose.push('\n');
        }
    }
    for p in placeholders(&prose) {
        let stem = &p[..p.len() - 1];
        if !transcripts.contains(&p) && !transcripts.contains(&format!("{stem}-")) {
            let msg = format!(
                "{}: the prose names the placeholder {p}, which no transcript of the chapter shows",
                chapter.display()
            );
            problems.push(msg);
        }
    }
}

/// How a "predict the kernel's answer" question starts; its answer follows in a
/// `<details>` block whose summary is "Answer" (folded until the reader opens it: mdBook renders
/// the HTML as it is, offline, with no preprocessor).
const QUESTION: &str = "**Question.**";

/// Fewest questions a chapter with exercises has.
const QUESTIONS_PER_CHAPTER: usize = 3;

/// The questions of a chapter: each must be followed, before the next question or heading, by
/// `<details>` with `<summary>Answer</summary>`, some text, and `</details>`. Returns how many
/// there are, with a problem for each question without an answer.
fn check_questions(chapter: &Path, text: &str, problems: &mut Vec<String>) -> usize {
    let starts: Vec<usize> = text.match_indices(QUESTION).map(|(i, _)| i).collect();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(text.len());
        let mut part = &text[start..end];
        if let Some(h) = part.find("\n#") {
            part = &part[..h];
        }
        let line = text[..start].lines().count() + 1;
        let answered = part.find("<details>").and_then(|d| {
            let rest = &part[d..];
            let body = rest.split_once("<summary>Answer</summary>")?.1;
            let body = body.split_once("</details>")?.0;
            (body.trim().len() > 20).then_some(())
        });
        if answered.is_none() {
            problems.push(format!(
                "{}:{line}: a question without an answer (a <details> with <summary>Answer</summary>, the answer and why, then </details>)",
                chapter.display()
            ));
        }
    }
    starts.len()
}

/// A chapter's file name.
fn name_of(chapter: &Path) -> &str {
    chapter
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

/// The chapter files SUMMARY.md links to.
fn summary_chapters(src: &Path) -> Result<Vec<PathBuf>> {
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).context("book/src/SUMMARY.md")?;
    Ok(summary
        .match_indices("](")
        .filter_map(|(i, _)| {
            let rest = &summary[i + 2..];
            let target = &rest[..rest.find(')')?];
            target.ends_with(".md").then(|| src.join(target))
        })
        .collect())
}

/// Every `#[test] fn name(` in the workspace's integration tests, with how many crates have one
/// by that name (a claim must name a test that exists exactly once).
fn test_names(root: &Path) -> Result<std::collections::BTreeMap<String, usize>> {
    let mut names = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(root)? {
        let tests = entry?.path().join("tests");
        let Ok(files) = std::fs::read_dir(&tests) else {
            continue;
        };
        for file in files {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)?;
                for (i, _) in text.match_indices("fn ") {
                    let name: String = text[i + 3..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    *names.entry(name).or_insert(0) += 1;
                }
            }
        }
    }
    Ok(names)
}

/// Whether `text` names the claim `id` (`UTS-1`, but not as the start of `UTS-10`).
fn mentions(text: &str, id: &str) -> bool {
    text.match_indices(id)
        .any(|(i, _)| !text[i + id.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Check the claims table: `| ID | Claim | Command | Test | Chapter |`, the claim in one line.
fn check_claims(
    root: &Path,
    src: &Path,
    chapters: &[PathBuf],
    problems: &mut Vec<String>,
) -> Result<usize> {
    let text = std::fs::read_to_string(src.join("claims.md")).context("book/src/claims.md")?;
    let tests = test_names(root)?;
    let mut rows = 0;
    let mut in_table = false;
    for line in text.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if line.trim_start().starts_with("| ID |") {
            if cells != ["ID", "Claim", "Command", "Test", "Chapter"] {
                problems.push(format!(
                    "claims.md: the header must be | ID | Claim | Command | Test | Chapter |, not {line}"
                ));
            }
            in_table = true;
            continue;
        }
        if !in_table
            || !line.trim_start().starts_with('|')
            || cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        rows += 1;
        let [id, claim, command, test, chapter] = cells[..] else {
            problems.push(format!("claims.md: row needs 5 cells: {line}"));
            continue;
        };
        // The claim itself, as a statement a reader can check: a sentence, not a label.
        if claim.split_whitespace().count() < 6 || !claim.ends_with('.') {
            problems.push(format!(
                "claims.md: {id}: the claim {claim:?} is not a one-line statement (a sentence ending in a period)"
            ));
        }
        let valid_id = id.split_once('-').is_some_and(|(a, n)| {
            !a.is_empty() && a.chars().all(|c| c.is_ascii_uppercase()) && n.parse::<u32>().is_ok()
        });
        if !valid_id {
            problems.push(format!("claims.md: {id:?} is not a claim ID like UTS-1"));
        }
        if command.trim_matches('`').is_empty() {
            problems.push(format!("claims.md: {id} has no command"));
        }
        for name in test.split(',').map(|t| t.trim().trim_matches('`')) {
            match tests.get(name) {
                None => problems.push(format!("claims.md: {id}: no test named {name:?} in any */tests/*.rs")),
                Some(n) if *n > 1 => problems.push(format!("claims.md: {id}: {n} tests are named {name:?}; give the one meant a unique name")),
                Some(_) => {}
            }
        }
        let target = chapter
            .split("](")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .map(|t| t.split('#').next().unwrap_or(t));
        match target {
            Some(t) if chapters.contains(&src.join(t)) => {
                let text = std::fs::read_to_string(src.join(t)).unwrap_or_default();
                if !mentions(&text, id) {
                    problems.push(format!(
                        "claims.md: {id}: its chapter {t} never names {id} (say where the claim is shown)"
                    ));
                }
            }
            _ => problems.push(format!(
                "claims.md: {id}: chapter {chapter:?} is not a link to a chapter in SUMMARY.md"
            )),
        }
    }
    if rows == 0 {
        problems.push("claims.md: no claim rows".into());
    }
    Ok(rows)
}

/// Check the book's sources under `root/book/src`.
pub fn check_sources(root: &Path) -> Result<()> {
    let src = root.join("book/src");
    let chapters = summary_chapters(&src)?;
    let mut problems = Vec::new();
    let regions = crate::lab::regions(root)?;
    let mut questions = 0;
    let mut every_transcript = String::new();
    for chapter in &chapters {
        let text = std::fs::read_to_string(chapter).unwrap_or_default();
        for inc in includes(&text).iter().filter(|i| i.path.ends_with(".snap")) {
            let dir = chapter.parent().expect("chapter has a directory");
            every_transcript
                .push_str(&std::fs::read_to_string(dir.join(&inc.path)).unwrap_or_default());
        }
    }
    for chapter in &chapters {
        let Ok(text) = std::fs::read_to_string(chapter) else {
            problems.push(format!("SUMMARY.md links to missing {}", chapter.display()));
            continue;
        };
        let incs = includes(&text);
        for inc in &incs {
            check_include(chapter, inc, &mut problems);
            if let Some(what) = shows_an_exercise(root, chapter, inc, &regions) {
                let here = chapter.display().to_string();
                let msg = format!(
                    "{here}: the excerpt {}:{} shows {what}",
                    inc.path,
                    inc.spec.as_deref().unwrap_or("")
                );
                problems.push(msg);
            }
        }
        check_placeholders(chapter, &text, &incs, &every_transcript, &mut problems);
        let asked = check_questions(chapter, &text, &mut problems);
        let has_exercises = crate::lab::CHAPTERS
            .iter()
            .any(|(_, f, _)| *f == name_of(chapter));
        if has_exercises && asked < QUESTIONS_PER_CHAPTER {
            let msg = format!(
                "{}: {asked} \"predict the kernel's answer\" question(s) ({QUESTION}); a chapter has {QUESTIONS_PER_CHAPTER} or more",
                chapter.display()
            );
            problems.push(msg);
        }
        questions += asked;
        let name = chapter
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !NO_OUTPUT_NEEDED.contains(&name) && !incs.iter().any(|i| i.path.ends_with(".snap")) {
            problems.push(format!(
                "{}: shows no program output (include a snapshot)",
                chapter.display()
            ));
        }
    }
    let rows = check_claims(root, &src, &chapters, &mut problems)?;
    let hints = check_hints(root, &src, &chapters, &mut problems)?;
    let pictures = check_svgs(&src, &chapters, &mut problems)?;
    if !problems.is_empty() {
        bail!(
            "the book has {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    eprintln!(
        "xtask: book sources ok ({} chapters, {rows} claims, {hints} hints explained, {pictures} pictures, {questions} questions answered)",
        chapters.len()
    );
    Ok(())
}

/// The Rust string literals in `text`, in order, with their escapes resolved (`\` + newline
/// skips the newline and the next line's indentation, as rustc does).
fn string_literals(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // A char literal such as '"' must not open a string; lifetimes ('a) have no closing
            // quote within two characters and are skipped harmlessly.
            '\'' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                chars.next();
                if chars.peek() == Some(&'\'') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                let mut lit = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('\n') => {
                                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                                    chars.next();
                                }
                            }
                            Some('n') => lit.push('\n'),
                            Some('t') => lit.push('\t'),
                            Some(other) => lit.push(other),
                            None => {}
                        },
                        _ => lit.push(c),
                    }
                }
                found.push(lit);
            }
            _ => {}
        }
    }
    found
}

/// The hints of labkit's errno table (`const HINTS` in labkit/src/errors.rs): the second string
/// of every `(Errno::X, "operation", "hint")` row, with the errno's name.
fn labkit_hints(errors_rs: &str) -> Vec<(String, String)> {
    let Some(start) = errors_rs.find("const HINTS") else {
        return Vec::new();
    };
    let table = &errors_rs[start..];
    let table = &table[..table.find("];").unwrap_or(table.len())];
    table
        .split("Errno::")
        .skip(1)
        .filter_map(|row| {
            let errno: String = row
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let lits = string_literals(row);
            (lits.len() == 2).then(|| (errno, lits[1].clone()))
        })
        .collect()
}

/// Runs of whitespace made one space, so a hint wrapped in Markdown still matches.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every hint in labkit's table appears word for word in the troubleshooting appendix, which
/// SUMMARY.md links to: the page cannot drift from what the programs print.
fn check_hints(
    root: &Path,
    src: &Path,
    chapters: &[PathBuf],
    problems: &mut Vec<String>,
) -> Result<usize> {
    let errors_rs = std::fs::read_to_string(root.join("labkit/src/errors.rs"))
        .context("labkit/src/errors.rs")?;
    let hints = labkit_hints(&errors_rs);
    let rows = errors_rs
        .split("const HINTS")
        .nth(1)
        .and_then(|t| t.split("];").next())
        .map_or(0, |t| t.matches("Errno::").count());
    if hints.is_empty() || hints.len() != rows {
        problems.push(format!(
            "labkit/src/errors.rs: read {} of {rows} (Errno, \"operation\", \"hint\") rows of \
                 const HINTS: update xtask's labkit_hints to the table's new shape",
            hints.len()
        ));
        return Ok(0);
    }
    let page = src.join(TROUBLESHOOTING);
    if !chapters.contains(&page) {
        problems.push(format!("SUMMARY.md does not link to {TROUBLESHOOTING}"));
    }
    let Ok(text) = std::fs::read_to_string(&page) else {
        problems.push(format!("{} is missing", page.display()));
        return Ok(0);
    };
    let text = squeeze(&text);
    for (errno, hint) in &hints {
        if !text.contains(&squeeze(hint)) {
            problems.push(format!(
                "{TROUBLESHOOTING} does not explain labkit's {errno} hint (quote it word for word): {hint:?}"
            ));
        }
    }
    Ok(hints.len())
}

/// Every `*.svg` in the book's sources: well-formed XML whose root is an `<svg>` in the SVG
/// namespace with a width, a height and a viewBox, nothing fetched from elsewhere, and shown
/// by a chapter (a picture no page shows is one that went stale unnoticed).
fn check_svgs(src: &Path, chapters: &[PathBuf], problems: &mut Vec<String>) -> Result<usize> {
    let shown: String = chapters
        .iter()
        .filter_map(|c| std::fs::read_to_string(c).ok())
        .collect();
    let mut count = 0;
    for entry in std::fs::read_dir(src)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "svg") {
            continue;
        }
        count += 1;
        let text = std::fs::read_to_string(&path)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if let Err(why) = svg_problem(&text) {
            problems.push(format!("{name}: {why}"));
        }
        if !shown.contains(&format!("]({name})")) && !shown.contains(&format!("src=\"{name}\"")) {
            problems.push(format!("{name}: no chapter shows it (![...]({name}))"));
        }
    }
    Ok(count)
}

/// Why an SVG text is not a well-formed, self-contained picture, if it is not.
fn svg_problem(text: &str) -> std::result::Result<(), String> {
    let mut open: Vec<String> = Vec::new();
    let mut root: Option<String> = None;
    let mut rest = text;
    while let Some(lt) = rest.find('<') {
        check_entities(&rest[..lt])?;
        rest = &rest[lt..];
        let skip = [
            ("<!--", "-->"),
            ("<?", "?>"),
            ("<![CDATA[", "]]>"),
            ("<!", ">"),
        ]
        .into_iter()
        .find(|(opener, _)| rest.starts_with(opener));
        if let Some((opener, closer)) = skip {
            let end = rest
                .find(closer)
                .ok_or(format!("{opener} is never closed"))?;
            rest = &rest[end + closer.len()..];
            continue;
        }
        // A tag: find its end outside quoted attribute values.
        let mut quote = None;
        let end = rest
            .char_indices()
            .find(|&(_, c)| match quote {
                Some(q) => {
                    if c == q {
                        quote = None;
                    }
                    false
                }
                None => {
                    if c == '"' || c == '\'' {
                        quote = Some(c);
                    }
                    c == '>'
                }
            })
            .map(|(i, _)| i)
            .ok_or("a tag is never closed with >")?;
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            match open.pop() {
                Some(o) if o == name => {}
                Some(o) => return Err(format!("</{name}> closes <{o}>")),
                None => return Err(format!("</{name}> closes nothing")),
            }
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '/')
            .collect();
        if name.is_empty() {
            return Err("a < that starts no tag (write &lt;)".into());
        }
        check_entities(tag)?;
        for attr in ["href=\"", "xlink:href=\"", "src=\""] {
            for (i, _) in tag.match_indices(attr) {
                if !tag[i + attr.len()..].starts_with('#') {
                    return Err(format!(
                        "<{name}> refers to another file ({attr}...): a picture must be self-contained"
                    ));
                }
            }
        }
        if root.is_none() {
            if open.is_empty() && name != "svg" {
                return Err(format!("the root element is <{name}>, not <svg>"));
            }
            for needed in [
                "xmlns=\"http://www.w3.org/2000/svg\"",
                "width=\"",
                "height=\"",
                "viewBox=\"",
            ] {
                if !tag.contains(needed) {
                    return Err(format!("<svg> lacks {needed}..."));
                }
            }
            root = Some(name.clone());
        } else if open.is_empty() {
            return Err(format!("<{name}> after the root element ended"));
        }
        if !tag.trim_end().ends_with('/') {
            open.push(name);
        }
    }
    check_entities(rest)?;
    match (root, open.pop()) {
        (None, _) => Err("no <svg> element".into()),
        (_, Some(o)) => Err(format!("<{o}> is never closed")),
        _ => Ok(()),
    }
}

/// Every `&` in XML text starts an entity XML knows without a DTD.
fn check_entities(text: &str) -> std::result::Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let ent = &text[i + 1..];
        let ok = ["amp;", "lt;", "gt;", "quot;", "apos;"]
            .iter()
            .any(|e| ent.starts_with(e))
            || ent.strip_prefix('#').is_some_and(|num| {
                let end = num.find(';').unwrap_or(0);
                end > 0
                    && num[..end]
                        .trim_start_matches('x')
                        .chars()
                        .all(|c| c.is_ascii_hexdigit())
            });
        if !ok {
            let near: String = text[i..].chars().take(12).collect();
            return Err(format!("a bare & (write &amp;) near {near:?}"));
        }
    }
    Ok(())
}

/// Pages mdBook writes for a web server, not for reading from disk: `404.html` sets
/// `<base href="/">`, so its relative links resolve against the server's root.
const SERVED_ONLY: &[&str] = &["404.html"];

/// The built HTML pages under `dir`, sorted, without [`SERVED_ONLY`] ones.
fn html_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut pages = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "html")
                && !SERVED_ONLY.iter().any(|s| path.ends_with(s))
            {
                pages.push(path);
            }
        }
    }
    pages.sort();
    if pages.is_empty() {
        bail!("no HTML pages in {}", dir.display());
    }
    Ok(pages)
}

/// The values of `attr="..."` in an HTML text, with `&amp;` decoded.
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let pattern = format!(" {attr}=\"");
    html.match_indices(&pattern)
        .filter_map(|(i, p)| {
            let rest = &html[i + p.len()..];
            rest.find('"').map(|end| rest[..end].replace("&amp;", "&"))
        })
        .collect()
}

/// `%XX` escapes decoded (fragments of non-ASCII headings arrive that way).
fn percent_decode(text: &str) -> String {
    crate::decode_escapes(text, b'%', 2, 16)
}

/// The broken internal links of one page: `href`s and `src`s that are not absolute URLs must
/// name a file that exists, and a `#fragment` must be an `id` (or `name`) in the page it
/// points to. `ids` caches the ids of pages already read.
fn broken_links(
    dir: &Path,
    page: &Path,
    html: &str,
    ids: &mut std::collections::HashMap<PathBuf, std::collections::HashSet<String>>,
) -> Vec<String> {
    let mut broken = Vec::new();
    let here = page.parent().unwrap_or(dir);
    let links = attr_values(html, "href")
        .into_iter()
        .chain(attr_values(html, "src"));
    for link in links {
        let external = link.contains("://")
            || link.starts_with("//")
            || ["mailto:", "javascript:", "data:", "tel:"]
                .iter()
                .any(|s| link.starts_with(s));
        if external || link.is_empty() {
            continue;
        }
        let (file, fragment) = match link.split_once('#') {
            Some((f, frag)) => (f, Some(percent_decode(frag))),
            None => (link.as_str(), None),
        };
        let file = file.split('?').next().unwrap_or(file);
        let target = if file.is_empty() {
            page.to_path_buf()
        } else if let Some(abs) = file.strip_prefix('/') {
            dir.join(abs)
        } else {
            here.join(percent_decode(file))
        };
        let target = if target.is_dir() {
            target.join("index.html")
        } else {
            target
        };
        if !target.is_file() {
            broken.push(format!("{link} (no file {})", target.display()));
            continue;
        }
        let Some(fragment) = fragment.filter(|f| !f.is_empty()) else {
            continue;
        };
        if target.extension().is_none_or(|e| e != "html") {
            continue;
        }
        let known = ids.entry(target.clone()).or_insert_with(|| {
            let text = std::fs::read_to_string(&target).unwrap_or_default();
            attr_values(&text, "id")
                .into_iter()
                .chain(attr_values(&text, "name"))
                .collect()
        });
        if !known.contains(&fragment) {
            broken.push(format!(
                "{link} (no id {fragment:?} in {})",
                target.display()
            ));
        }
    }
    broken
}

/// Check the built HTML: no include left unresolved, no broken internal link or image.
pub fn check_html(dir: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut ids = std::collections::HashMap::new();
    let pages = html_pages(dir)?;
    let mut links = 0;
    for page in &pages {
        let html = std::fs::read_to_string(page).with_context(|| format!("{}", page.display()))?;
        let name = page.strip_prefix(dir).unwrap_or(page).display().to_string();
        if html.contains("{{#") {
            problems.push(format!(
                "{name}: an unresolved {{{{#...}}}} is left in the page"
            ));
        }
        links += attr_values(&html, "href").len() + attr_values(&html, "src").len();
        for link in broken_links(dir, page, &html, &mut ids) {
            problems.push(format!("{name}: broken link {link}"));
        }
    }
    if !problems.is_empty() {
        bail!(
            "the built book has {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    eprintln!(
        "xtask: built book ok ({} pages, {links} links and images checked)",
        pages.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_are_found_with_their_specs() {
        let md =
            "a {{#include ../../x/src/lib.rs:clone}} b\n{{#include ../s.snap:4:}}\n{{#title t}}";
        assert_eq!(
            includes(md),
            vec![
                Include {
                    path: "../../x/src/lib.rs".into(),
                    spec: Some("clone".into())
                },
                Include {
                    path: "../s.snap".into(),
                    spec: Some("4:".into())
                },
            ]
        );
    }

    #[test]
    fn a_claim_is_named_only_by_its_whole_id() {
        assert!(mentions("*Claim CG-1.* and CG-10", "CG-10"));
        assert!(mentions("*Claim CG-1.*", "CG-1"));
        assert!(!mentions("*Claim CG-10.*", "CG-1"));
    }

    #[test]
    fn hints_are_read_from_the_table_with_continued_lines_joined() {
        let rs = r#"
fn x() { let c = '"'; }
    const HINTS: &[(Errno, &str, &str)] = &[
        (
            Errno::EPERM,
            "setns", // a comment with "quotes"
            "joining needs \
             CAP_SYS_ADMIN: \"run\" as root",
        ),
        (Errno::ENOSYS, "", "no such call"),
    ];
    const OTHER: &str = "not a hint";
"#;
        assert_eq!(
            labkit_hints(rs),
            vec![
                (
                    "EPERM".into(),
                    "joining needs CAP_SYS_ADMIN: \"run\" as root".into()
                ),
                ("ENOSYS".into(), "no such call".into()),
            ]
        );
    }

    #[test]
    fn the_real_hint_table_is_read_whole() {
        let rs = std::fs::read_to_string(crate::root().join("labkit/src/errors.rs")).unwrap();
        let hints = labkit_hints(&rs);
        assert!(hints.len() > 10, "{hints:?}");
        assert!(
            hints
                .iter()
                .all(|(e, h)| e.starts_with('E') && h.len() > 20)
        );
    }

    #[test]
    fn well_formed_svgs_pass_and_broken_ones_say_why() {
        let good = r##"<?xml version="1.0"?>
<!-- a picture -->
<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" viewBox="0 0 10 10">
  <defs><marker id="m"><path d="M0 0"/></marker></defs>
  <text x="1" y="1">a &lt; b &amp; c &#x2192;</text><use href="#m"/>
</svg>"##;
        assert_eq!(svg_problem(good), Ok(()));
        let cases = [
            (good.replace("</svg>", ""), "never closed"),
            (good.replace("&amp;", "&"), "bare &"),
            (good.replace("</text>", "</tspan>"), "closes <text>"),
            (good.replace(" width=\"10\"", ""), "lacks width"),
            (good.replace("#m", "other.svg"), "self-contained"),
            ("<html></html>".to_string(), "not <svg>"),
        ];
        for (svg, why) in cases {
            let err = svg_problem(&svg).unwrap_err();
            assert!(err.contains(why), "{err:?} should say {why:?}");
        }
    }

    #[test]
    fn broken_links_and_fragments_are_found() {
        let dir = std::env::temp_dir().join(format!("nslab-xtask-links-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let page = dir.join("a.html");
        std::fs::write(dir.join("b.html"), r#"<h2 id="here">x</h2>"#).unwrap();
        let html = r##"<a href="b.html#here">ok</a> <a href="https://man7.org/">ext</a>
            <a href="b.html#gone">bad</a> <img src="pic.svg"> <a href="c.html">none</a>
            <h1 id="top"></h1> <a href="#top">self</a>"##;
        std::fs::write(&page, html).unwrap();
        let broken = broken_links(&dir, &page, html, &mut Default::default());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert!(broken[0].starts_with("b.html#gone"));
        assert!(broken[1].starts_with("c.html"));
        assert!(broken[2].starts_with("pic.svg"));
    }

    #[test]
    fn a_question_needs_its_answer_in_details() {
        let ok = "**Question.** What?\n\n<details>\n<summary>Answer</summary>\n\nThis, because the kernel says so.\n\n</details>\n";
        let mut problems = Vec::new();
        assert_eq!(check_questions(Path::new("c.md"), ok, &mut problems), 1);
        assert!(problems.is_empty(), "{problems:?}");
        let bare = "**Question.** What?\n\n## Next\n\n<details><summary>Answer</summary>late, under another heading</details>";
        assert_eq!(check_questions(Path::new("c.md"), bare, &mut problems), 1);
        let empty = ok.replace("This, because the kernel says so.", "");
        check_questions(Path::new("c.md"), &empty, &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn placeholders_are_bracketed_capitals_in_backquotes() {
        assert_eq!(
            placeholders("the port shows as `[PORT]`, `pid [PID-1]` and [NOT] `[x.xx]` `a[0]`"),
            ["[PID-1]", "[PORT]"]
        );
    }

    /// The real book: run by `cargo test`, so a broken include fails the tests.
    #[test]
    fn the_book_sources_are_consistent() {
        check_sources(&crate::root()).unwrap();
    }
}
