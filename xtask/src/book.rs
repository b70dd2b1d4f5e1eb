//! Checks mdBook does not make: it renders a missing include or anchor as nothing (or leaves the
//! `{{#include}}` text in the page) and builds anyway.
//!
//! Sources: every `{{#include}}` names an existing file, anchor and line range; snapshot includes
//! start right after the 3-line header; every chapter but the introduction and appendices shows
//! real output (a snapshot); every row of the claims table names a test that exists and a
//! chapter that exists. HTML: no `{{#` is left in any built page.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Chapters that need not include program output.
const NO_OUTPUT_NEEDED: &[&str] = &["introduction.md", "claims.md"];

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
                let header: Vec<&str> = text.lines().take(3).collect();
                let ok = header.len() == 3
                    && header[0] == "---"
                    && header[1].starts_with("source:")
                    && header[2] == "---";
                if !ok || first != 4 {
                    problems.push(format!(
                        "{here}: {} must be included from line 4, after its 3-line header",
                        inc.path
                    ));
                }
            }
        }
        Some(anchor) => {
            let has = |marker: &str| {
                text.lines().any(|l| {
                    l.trim_start().trim_start_matches("//").trim() == format!("{marker}: {anchor}")
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

/// Check the claims table: `| ID | Command | Test | Chapter |`.
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
            if cells != ["ID", "Command", "Test", "Chapter"] {
                problems.push(format!(
                    "claims.md: the header must be | ID | Command | Test | Chapter |, not {line}"
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
        let [id, command, test, chapter] = cells[..] else {
            problems.push(format!("claims.md: row needs 4 cells: {line}"));
            continue;
        };
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
            Some(t) if chapters.contains(&src.join(t)) => {}
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
    for chapter in &chapters {
        let Ok(text) = std::fs::read_to_string(chapter) else {
            problems.push(format!("SUMMARY.md links to missing {}", chapter.display()));
            continue;
        };
        let incs = includes(&text);
        for inc in &incs {
            check_include(chapter, inc, &mut problems);
        }
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
    if !problems.is_empty() {
        bail!(
            "the book has {} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    eprintln!(
        "xtask: book sources ok ({} chapters, {rows} claims)",
        chapters.len()
    );
    Ok(())
}

/// Check the built HTML: no include left unresolved.
pub fn check_html(dir: &Path) -> Result<()> {
    let mut bad = Vec::new();
    let mut pages = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "html") {
                pages += 1;
                if std::fs::read_to_string(&path)?.contains("{{#") {
                    bad.push(path.display().to_string());
                }
            }
        }
    }
    if pages == 0 {
        bail!("no HTML pages in {}", dir.display());
    }
    if !bad.is_empty() {
        bail!("unresolved {{{{#...}}}} left in: {}", bad.join(", "));
    }
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

    /// The real book: run by `cargo test`, so a broken include fails the tests.
    #[test]
    fn the_book_sources_are_consistent() {
        check_sources(&crate::root()).unwrap();
    }
}
