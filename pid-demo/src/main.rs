//! `pid-demo`: PID namespaces. Parsing and dispatch only; the lessons are in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use labkit::{Narrator, rootless};

/// PID namespaces: numbering, nesting, what PID 1 must do, which signals reach it.
///
/// Run as root, or as a normal user: then each demo continues inside a user namespace of its
/// own (and says so). Every process a demo starts ends with it.
#[derive(Debug, Parser)]
#[command(name = "pid-demo", version, max_term_width = 100)]
struct Cli {
    /// Run inside a new user namespace even as root (what a normal user gets).
    #[arg(long, global = true)]
    rootless: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Nested PID namespaces (clone(CLONE_NEWPID) inside clone(CLONE_NEWPID)...): each process is
    /// PID 1 in its own and has a number in every namespace above it (NSpid:), as a table and a tree.
    Tree {
        /// How many nested namespaces below the host's (1 to 31).
        #[arg(long, default_value_t = 3)]
        depth: u32,
    },
    /// Two PID namespaces side by side, each with its own PID 1.
    Siblings,
    /// From inside, processes of the parent namespace cannot be seen: kill and ptrace get ESRCH,
    /// getppid() is 0. From outside, a process inside is an ordinary target.
    Isolation,
    /// An orphan inside is re-parented to the namespace's PID 1, not to the host's init.
    Orphan,
    /// PID 1 ignores signals it has no handler for: from inside even SIGKILL; from the parent
    /// namespace only SIGKILL and SIGSTOP take effect.
    InitSignals,
    /// When PID 1 dies, the kernel kills every other process of the namespace, and no process
    /// can be created in it any more (fork gets ENOMEM).
    InitExit,
    /// /proc still shows the host's processes until a new procfs is mounted (in a new, private
    /// mount namespace); then it shows only the namespace's own.
    Proc,
    /// From the host, list every process of the PID namespace that PID is in, with its host PID
    /// and its PID inside, as a tree. Without PID: start a small namespace and watch it.
    Monitor {
        /// Any process of the namespace to watch (a host PID).
        pid: Option<i32>,
    },
    /// Zombies pile up under a PID 1 that does not reap; a minimal init (pid_demo::init) reaps
    /// them and forwards SIGTERM to the application.
    Zombies,
    /// A time namespace: unshare(CLONE_NEWTIME) moves only later children (and the caller
    /// itself once it execs), whose monotonic and boot-time clocks run OFFSET seconds ahead.
    Time {
        /// Seconds added to CLOCK_MONOTONIC and CLOCK_BOOTTIME in the new namespace.
        #[arg(long, default_value_t = 86400, allow_negative_numbers = true)]
        offset: i64,
    },
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Narrator::new();
    if let Cmd::Tree { depth } = cli.command {
        if !(1..=pid_demo::MAX_DEPTH).contains(&depth) {
            return Err(labkit::bad_input(format!(
                "--depth {depth}: the kernel nests at most 32 PID namespaces, the host's included, so 1 to {}",
                pid_demo::MAX_DEPTH
            )));
        }
    }
    // Watching a namespace from the host only reads /proc: no namespace of its own needed.
    if !matches!(cli.command, Cmd::Monitor { pid: Some(_) }) {
        rootless::enter(cli.rootless, &out)?;
    }
    match cli.command {
        Cmd::Tree { depth } => pid_demo::tree(&mut out, depth)?,
        Cmd::Siblings => pid_demo::siblings(&mut out)?,
        Cmd::Isolation => pid_demo::isolation(&mut out)?,
        Cmd::Orphan => pid_demo::orphan(&mut out)?,
        Cmd::InitSignals => pid_demo::init_signals(&mut out)?,
        Cmd::InitExit => pid_demo::init_exit(&mut out)?,
        Cmd::Proc => pid_demo::proc_view(&mut out)?,
        Cmd::Monitor { pid: Some(pid) } => pid_demo::monitor_pid(&mut out, pid)?,
        Cmd::Monitor { pid: None } => pid_demo::monitor_demo(&mut out)?,
        Cmd::Zombies => pid_demo::zombies(&mut out)?,
        Cmd::Time { offset } => pid_demo::time_ns(&mut out, offset)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    labkit::errors::run_main("pid-demo", || run(cli))
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
