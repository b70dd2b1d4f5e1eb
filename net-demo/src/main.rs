//! `net-demo`: network namespaces. Parsing and dispatch only; the lessons are in the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use labkit::{Narrator, rootless};

/// Network namespaces: a fresh stack, veth pairs, a bridge, real packets between namespaces,
/// all configured over netlink (each step shows the equivalent `ip` command).
///
/// Every demo works in a throw-away network namespace that plays the host: nothing is created
/// in your real host's network namespace, and packets travel only between the demo's own
/// namespaces, to documentation addresses (198.51.100.0/24, 203.0.113.0/24). Run as root, or as
/// a normal user: then the demo continues inside a user namespace of its own.
#[derive(Debug, Parser)]
#[command(name = "net-demo", version, max_term_width = 100)]
struct Cli {
    /// Run inside a new user namespace even as root (what a normal user gets).
    #[arg(long, global = true)]
    rootless: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// A new network namespace: only lo, down; no routes; its own /proc/net, /sys/class/net and
    /// ports.
    Fresh,
    /// A veth pair between a parent and a child namespace: the child waits on a pipe while the
    /// parent wires it (one end moved in as eth0), then sends real packets to the parent's end.
    Veth,
    /// N namespaces on a bridge: the topology as a picture, and a table of which pairs reached
    /// each other with a TCP round trip.
    Bridge {
        /// How many namespaces to attach (2 to 8).
        #[arg(long, default_value_t = 3)]
        count: usize,
    },
    /// Devices, addresses and routes of a network namespace (yours by default), read over
    /// netlink.
    Ip {
        /// A process whose network namespace to list.
        #[arg(long, conflicts_with = "netns")]
        pid: Option<i32>,
        /// A network namespace file (/proc/PID/ns/net, or /run/netns/NAME).
        #[arg(long)]
        netns: Option<PathBuf>,
    },
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Narrator::new();
    match cli.command {
        Cmd::Ip { pid, netns } => {
            if let Some(pid) = pid {
                labkit::ns::check_pid(pid)?;
            }
            let path = pid
                .map(|p| PathBuf::from(format!("/proc/{p}/ns/net")))
                .or(netns);
            net_demo::ip_show(&mut out, path.as_deref())?;
        }
        Cmd::Bridge { count } if !(2..=8).contains(&count) => {
            return Err(labkit::bad_input(format!(
                "--count {count}: choose 2 to 8 namespaces"
            )));
        }
        command => {
            let privilege = rootless::enter(cli.rootless, &out)?;
            match command {
                Cmd::Fresh => net_demo::fresh(&mut out)?,
                Cmd::Veth => net_demo::veth(&mut out, privilege)?,
                Cmd::Bridge { count } => net_demo::bridge(&mut out, count)?,
                Cmd::Ip { .. } => unreachable!("handled above"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    labkit::errors::run_main("net-demo", || run(cli))
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
