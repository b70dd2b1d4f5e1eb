//! `mnt-demo`: mount namespaces. Parsing and dispatch only; the lessons are in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use labkit::{Narrator, rootless};

/// Mount namespaces: copies of the mount list, propagation, pivot_root vs chroot.
///
/// Every demo works in a lab: a new mount namespace whose mounts are made private first, with a
/// tmpfs on /tmp as scratch space. The host's mount table gets no new mount from it. Run as
/// root, or as a normal user: then the demo continues inside a user namespace of its own.
#[derive(Debug, Parser)]
#[command(name = "mnt-demo", version, max_term_width = 100)]
struct Cli {
    /// Run inside a new user namespace even as root (what a normal user gets).
    #[arg(long, global = true)]
    rootless: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The mounts of a process, with each one's propagation (read only).
    Show {
        /// The process to look at (default: this one).
        #[arg(long)]
        pid: Option<i32>,
    },
    /// A new mount namespace starts as a copy of its parent's; mounts made afterwards on either
    /// side stay there. Shows /proc/PID/mounts, mountinfo and mountstats.
    Copy,
    /// The propagation lab: shared, slave, private and unbindable mounts, and where each new
    /// mount appears, as a matrix.
    Propagation,
    /// What the host uses for / (shared on systemd hosts), and why a container runtime makes
    /// its root private or slave first.
    Root,
    /// A root process escapes a chroot; after pivot_root and unmounting the old root it cannot.
    Chroot,
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Narrator::new();
    if let Cmd::Show { pid } = cli.command {
        mnt_demo::show(&mut out, pid)?;
        return Ok(ExitCode::SUCCESS);
    }
    rootless::enter(cli.rootless, &out)?;
    match cli.command {
        Cmd::Show { .. } => unreachable!("handled above"),
        Cmd::Copy => mnt_demo::copy(&mut out)?,
        Cmd::Propagation => mnt_demo::propagation_lab(&mut out)?,
        Cmd::Root => mnt_demo::root_propagation(&mut out)?,
        Cmd::Chroot => mnt_demo::chroot_vs_pivot(&mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    labkit::errors::run_main("mnt-demo", || run(cli))
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
