//! Developer tasks, run as `cargo xtask <task>` (the cargo-xtask pattern: plain Rust instead of
//! a Makefile).
//!
//! - `ci`: what `.ci/run` runs after installing packages: fmt check, clippy, the tests, the book,
//!   the labs.
//! - `book`: build the book with mdBook and check it (sources, built HTML and links, then every
//!   page in headless Chromium when it is installed).
//! - `book-check`: check the book's sources (no mdBook needed; `cargo test` runs this part too),
//!   then, if the book was built, its HTML and the pages in headless Chromium.
//! - `vm-test [--accept]`: the cgroup tests on a pure cgroup v2 machine, in a QEMU VM.
//! - `vm`: the same VM as a classroom sandbox: every demo on the PATH, a root shell.
//! - `bench [--runs N] [--warmup N] [--install] [--minicontainer PATH]`: time starting a container
//!   that runs /bin/true with minicontainer, crun, runc, bwrap and unshare; medians and ratios.
//! - `lab [next | watch | check ID | hint ID | reset ID | verify]`: the classroom exercises cut
//!   out of the demos, checked by their snapshot tests (see `lab.rs`).
#![forbid(unsafe_code)]

mod bench;
mod book;
mod lab;
mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

/// Escapes decoded: `marker` then `digits` digits in `radix` stand for one byte (mountinfo's
/// `\040`, a URL's `%20`); anything else is kept as it is.
fn decode_escapes(text: &str, marker: u8, digits: usize, radix: u32) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 1 + digits)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, radix).ok());
        match (bytes[i], code) {
            (b, Some(decoded)) if b == marker => {
                out.push(decoded);
                i += 1 + digits;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("xtask: running {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("spawn {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn book() -> Result<()> {
    book::check_sources(&root())?;
    run("mdbook", &["build", "book"])?;
    book::check_html(&root().join("book/book"))?;
    book::check_browser(&root().join("book/book"))?;
    eprintln!("xtask: the book is built in book/book and checked");
    Ok(())
}

fn book_check() -> Result<()> {
    book::check_sources(&root())?;
    let built = root().join("book/book");
    if !built.join("index.html").is_file() {
        eprintln!(
            "xtask: the book is not built: SKIPPED its HTML and browser checks (cargo xtask book builds and checks it)"
        );
        return Ok(());
    }
    book::check_html(&built)?;
    book::check_browser(&built)
}

fn ci() -> Result<()> {
    run("cargo", &["fmt", "--all", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run("cargo", &["test", "--workspace"])?;
    book()?;
    lab::lab(&root(), &["verify".to_string()])
}

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "ci" => ci(),
        "book" => book(),
        "book-check" => book_check(),
        "vm-test" => vm::vm_test(&root(), std::env::args().any(|a| a == "--accept")),
        "vm" => vm::sandbox(&root()),
        "bench" => bench::bench(&root(), &std::env::args().skip(2).collect::<Vec<_>>()),
        "lab" => lab::lab(&root(), &std::env::args().skip(2).collect::<Vec<_>>()),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | book | book-check | vm-test [--accept] | vm | bench [--runs N] [--install] | lab [next | check ID | hint ID | verify]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask {task}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_decode_in_either_form() {
        assert_eq!(
            super::decode_escapes(r"/a\040b\\c", b'\\', 3, 8),
            r"/a b\\c"
        );
        assert_eq!(
            super::decode_escapes("%C3%A9t%E9%zz", b'%', 2, 16),
            "ét\u{fffd}%zz"
        );
    }
}
