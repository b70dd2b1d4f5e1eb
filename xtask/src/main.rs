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
