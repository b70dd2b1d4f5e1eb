//! `uts-demo`: the namespace API (clone, unshare, setns, /proc/PID/ns) shown with the UTS
//! namespace. Parsing and dispatch only; the lessons are in the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use labkit::Narrator;
use labkit::ns::NsKind;
use labkit::rootless;
use uts_demo::JoinTarget;

/// The namespace API, shown with the UTS namespace (hostname and domain name).
///
/// Run as root, or as a normal user: then the demos that create namespaces continue inside a
/// user namespace of their own (and say so). No demo changes the host's real hostname.
#[derive(Debug, Parser)]
#[command(name = "uts-demo", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show the hostname, domain name and UTS namespace of a process (read only, no privilege
    /// needed for your own processes).
    Show {
        /// The process to look at (default: this one).
        #[arg(long)]
        pid: Option<i32>,
    },
    /// List every namespace of one or more processes from /proc/PID/ns, marking which are
    /// shared and which differ (like lsns for these PIDs).
    Ns {
        /// Processes to compare (default: this one).
        pids: Vec<i32>,
    },
    /// clone(2) a child without and with CLONE_NEWUTS, let each set the hostname, and show what
    /// the parent sees. Runs in a throw-away UTS namespace: the host keeps its name.
    Clone {
        /// The name the children set.
        #[arg(long, default_value = "nslab-child")]
        hostname: String,
        /// Also set this NIS domain name (setdomainname(2)).
        #[arg(long)]
        domainname: Option<String>,
        /// Run inside a new user namespace even as root (what a normal user gets).
        #[arg(long)]
        rootless: bool,
    },
    /// unshare(2): this process (same PID) moves into a new UTS namespace, sets the hostname
    /// there, then optionally runs CMD in it.
    Unshare {
        /// The name to set in the new namespace.
        #[arg(long, default_value = "nslab-unshared")]
        hostname: String,
        /// Run inside a new user namespace even as root.
        #[arg(long)]
        rootless: bool,
        /// A command to exec in the new namespace.
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// setns(2): join the namespaces of another process (--target) or the given namespace files,
    /// then run CMD there (default: print the hostname seen there). Like nsenter.
    Setns {
        /// Join every namespace of this process that differs from ours.
        #[arg(long, short = 't', conflicts_with = "paths")]
        target: Option<i32>,
        /// Namespace files: /proc/PID/ns/TYPE, or a pin made by `persist --pin`.
        #[arg(required_unless_present = "target")]
        paths: Vec<PathBuf>,
        /// Pass this type to setns(2), which then checks the file is of that type (EINVAL if
        /// not); without it, nstype is 0 and any type is accepted.
        #[arg(long = "type", value_parser = parse_kind)]
        kind: Option<NsKind>,
        /// The command to run in the joined namespaces.
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Keep a UTS namespace alive after its last process exits: by an open fd (within this
    /// run), or with --pin FILE by a bind mount that lasts until `unpin FILE` (needs root).
    Persist {
        /// The name set in the namespace.
        #[arg(long, default_value = "nslab-persisted")]
        hostname: String,
        /// Bind-mount the namespace onto this new file, so it outlives this run.
        #[arg(long, value_name = "FILE")]
        pin: Option<PathBuf>,
        /// Run inside a new user namespace even as root.
        #[arg(long)]
        rootless: bool,
    },
    /// Unmount and remove a pin made by `persist --pin FILE`; the namespace then ends.
    Unpin {
        /// The pin file.
        file: PathBuf,
    },
}

fn parse_kind(s: &str) -> Result<NsKind, String> {
    NsKind::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = NsKind::ALL.iter().map(|k| k.name()).collect();
        format!(
            "unknown namespace type {s:?} (one of: {})",
            names.join(", ")
        )
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Narrator::new();
    match cli.command {
        Cmd::Show { pid } => uts_demo::show(&mut out, pid)?,
        Cmd::Ns { pids } => uts_demo::ns_table(&mut out, &pids)?,
        Cmd::Clone {
            hostname,
            domainname,
            rootless,
        } => {
            uts_demo::validate_name("hostname", &hostname)?;
            rootless::enter(rootless, &out)?;
            uts_demo::clone_demo(&mut out, &hostname, domainname.as_deref())?;
        }
        Cmd::Unshare {
            hostname,
            rootless,
            cmd,
        } => {
            uts_demo::validate_name("hostname", &hostname)?;
            rootless::enter(rootless, &out)?;
            return uts_demo::unshare_demo(&mut out, &hostname, &cmd);
        }
        Cmd::Setns {
            target,
            paths,
            kind,
            cmd,
        } => {
            let target = target.map_or(JoinTarget::Paths(paths), JoinTarget::Pid);
            return uts_demo::setns_demo(&mut out, &target, kind, &cmd);
        }
        Cmd::Persist {
            hostname,
            pin,
            rootless,
        } => {
            uts_demo::validate_name("hostname", &hostname)?;
            let privilege = rootless::enter(rootless, &out)?;
            uts_demo::persist(&mut out, &hostname, pin.as_deref(), privilege)?;
        }
        Cmd::Unpin { file } => uts_demo::unpin(&mut out, &file)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    labkit::errors::run_main("uts-demo", || run(cli))
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
