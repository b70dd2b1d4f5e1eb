//! `ipc-demo`: IPC namespaces. Parsing and dispatch only; the lessons are in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use labkit::{Narrator, rootless};

/// IPC namespaces: System V message queues, semaphores, shared memory, and POSIX message queues
/// are per namespace.
///
/// Each demo works in a new IPC namespace of its own, so the host's IPC namespace never holds
/// its objects. Run as root, or as a normal user: then the demo continues inside a user
/// namespace of its own.
#[derive(Debug, Parser)]
#[command(name = "ipc-demo", version, max_term_width = 100)]
struct Cli {
    /// Run inside a new user namespace even as root (what a normal user gets).
    #[arg(long, global = true)]
    rootless: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// System V objects made in one IPC namespace: found by key (and in /proc/sysvipc) in the
    /// same namespace, not in a new one (ENOENT); a message sent in one cannot be received in
    /// the other.
    Sysv,
    /// A POSIX message queue exists in the mqueue filesystem of its own IPC namespace only.
    Mqueue,
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Narrator::new();
    rootless::enter(cli.rootless, &out)?;
    match cli.command {
        Cmd::Sysv => ipc_demo::sysv_demo(&mut out)?,
        Cmd::Mqueue => ipc_demo::mqueue_demo(&mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    labkit::errors::run_main("ipc-demo", || run(cli))
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
