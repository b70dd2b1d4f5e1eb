//! `cow-demo`: copy-on-write. Parsing and dispatch only; the lessons are in the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use labkit::{Narrator, rootless};

/// Copy-on-write: overlayfs layers, copy-up, whiteouts, many containers on one image, and
/// memory after fork().
///
/// The overlay demos work in a private mount namespace with their layers in an nslab-cow-...
/// temp directory, removed afterwards. Run as root, or as a normal user: then the demo continues
/// inside a user namespace of its own (overlayfs there needs Linux 5.11+).
#[derive(Debug, Parser)]
#[command(name = "cow-demo", version, max_term_width = 100)]
struct Cli {
    /// Run inside a new user namespace even as root (what a normal user gets).
    #[arg(long, global = true)]
    rootless: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Two read-only layers and a writable one, merged: what each layer has, what the merged
    /// view shows.
    Layers,
    /// Writing a lower file copies it up whole first: the time grows with the file's size.
    Copyup {
        /// File sizes to measure, comma-separated (K, M suffixes).
        #[arg(long, default_value = "4K,64K,1M,8M,32M", value_delimiter = ',')]
        sizes: Vec<String>,
        /// Also write the plot as an SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Deleting a lower file leaves a whiteout; a recreated directory is opaque; renaming a
    /// lower directory needs redirect_dir.
    Whiteout,
    /// N containers on one image: disk used and time taken, overlays against full copies.
    Many {
        /// How many containers.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// The image's size.
        #[arg(long, default_value = "16M")]
        size: String,
    },
    /// After fork(), a buffer's pages are shared until written (the buffer's mapping in smaps). Needs no
    /// namespace.
    Memory {
        /// The buffer's size.
        #[arg(long, default_value = "64M")]
        size: String,
    },
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Narrator::new();
    // The layers live in a temp directory: hold Ctrl-C until it is removed (the demos are short).
    let _hold = labkit::signals::hold_interrupts()?;
    match cli.command {
        Cmd::Memory { size } => {
            let size = cow_demo::parse_size(&size)?;
            cow_demo::memory(&mut out, size)?;
        }
        Cmd::Copyup { sizes, svg } => {
            let sizes = sizes
                .iter()
                .map(|s| cow_demo::parse_size(s))
                .collect::<Result<Vec<_>>>()?;
            if sizes.iter().any(|s| *s > 256 << 20) {
                return Err(labkit::bad_input("--sizes: at most 256M each"));
            }
            rootless::enter(cli.rootless, &out)?;
            cow_demo::copy_up(&mut out, &sizes, svg.as_deref())?;
        }
        Cmd::Many { count, size } => {
            let size = cow_demo::parse_size(&size)?;
            rootless::enter(cli.rootless, &out)?;
            cow_demo::many(&mut out, count, size)?;
        }
        Cmd::Layers => {
            rootless::enter(cli.rootless, &out)?;
            cow_demo::layers(&mut out)?;
        }
        Cmd::Whiteout => {
            rootless::enter(cli.rootless, &out)?;
            cow_demo::whiteout(&mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    labkit::errors::run_main("cow-demo", || run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
