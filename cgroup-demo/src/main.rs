//! `cgroup-demo`: control groups. Parsing and dispatch only; the lessons are in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Result;
use cgroup_demo::cg::Version;
use clap::{Parser, Subcommand};
use labkit::Narrator;

/// cgroups: the API is a filesystem; limits, priorities, accounting and control; the v1
/// hierarchy rules and the v2 unified tree.
///
/// Works on v1, v2 and hybrid hosts and says which it uses. Groups are made under this
/// process's own cgroup, named nslab-..., and removed afterwards (also on error or Ctrl-C).
/// Making groups needs root, or a cgroup v2 subtree delegated to you (found by itself: the
/// parent of your own cgroup, when it is yours to write, as systemd's user@UID.service is).
#[derive(Debug, Parser)]
#[command(name = "cgroup-demo", version, max_term_width = 100)]
struct Cli {
    /// Use cgroup v1 hierarchies only.
    #[arg(long, global = true, conflicts_with = "v2")]
    v1: bool,
    /// Use the cgroup v2 hierarchy only.
    #[arg(long, global = true)]
    v2: bool,
    /// Make groups under this cgroup directory instead of under this process's own cgroup (for
    /// example a cgroup delegated to you).
    #[arg(long, global = true, value_name = "DIR")]
    parent: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The layout (v1, v2 or hybrid), hierarchies, controllers (/proc/cgroups), and the cgroups
    /// of a process (/proc/PID/cgroup). Read only.
    Show {
        /// The process to look at (default: this one).
        #[arg(long)]
        pid: Option<i32>,
    },
    /// mkdir makes a group, writing a PID moves a process; per-thread placement; one cgroup per
    /// hierarchy; children start in their parent's group; how a group's emptiness is told.
    Basics,
    /// A memory limit: a child allocating past it is OOM-killed, and the group counts it.
    Memory {
        /// The limit (64M, 1G, or bytes).
        #[arg(long, default_value = "64M")]
        limit: String,
    },
    /// A pids limit stops a fork bomb.
    Pids {
        /// The most processes the group may have.
        #[arg(long, default_value_t = 16)]
        max: u32,
    },
    /// Two busy loops pinned to one CPU (cpuset), weighted 2:1, get CPU time near 2:1.
    Cpu {
        /// How long to measure (0.1 to 600 seconds).
        #[arg(long, default_value_t = 2.0, value_parser = measurement_window)]
        seconds: f64,
    },
    /// A CPU quota throttles a busy loop to the configured share of one CPU.
    Quota {
        /// The share of one CPU, in percent.
        #[arg(long, default_value_t = 20)]
        percent: u32,
        /// How long to measure (0.1 to 600 seconds).
        #[arg(long, default_value_t = 1.5, value_parser = measurement_window)]
        seconds: f64,
    },
    /// The CPU time and memory a group reports, next to what its process measured itself.
    Accounting,
    /// Freeze and thaw a group (v1 freezer, v2 cgroup.freeze); on v2 also cgroup.kill.
    Freeze,
    /// The v1 devices controller denies a device node (EPERM on open).
    Devices,
    /// The v1 hierarchy rules, in a private mount namespace: named hierarchies, reuse, EBUSY,
    /// and a hierarchy that outlives its mount.
    Rules,
    /// The v2 rules: controllers pass down through cgroup.subtree_control; no internal processes.
    V2,
    /// The cgroup namespace: inside one, /proc/self/cgroup shows "/" (works without root, in a
    /// user namespace).
    Ns,
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Narrator::new();
    let force = if cli.v1 {
        Some(Version::V1)
    } else if cli.v2 {
        Some(Version::V2)
    } else {
        None
    };
    // Groups are removed when their handles drop: hold Ctrl-C until then (the demos are short),
    // so an interrupted run still cleans up, then ends.
    let _hold = labkit::signals::hold_interrupts()?;
    if let Some(dir) = &cli.parent {
        cgroup_demo::cg::set_parent(dir)?;
    } else if !nix::unistd::geteuid().is_root() && !cli.v1 {
        // Without root, the groups go in the caller's delegated v2 subtree, when it has one.
        if let Some(dir) = cgroup_demo::cg::delegated_subtree() {
            cgroup_demo::cg::use_delegated(&dir)?;
        }
    }
    match cli.command {
        Cmd::Show { pid } => cgroup_demo::show(&mut out, pid)?,
        Cmd::Basics => cgroup_demo::basics(&mut out, force)?,
        Cmd::Memory { limit } => {
            let limit = cgroup_demo::parse_size(&limit)?;
            cgroup_demo::memory(&mut out, limit, force)?
        }
        Cmd::Pids { max } => cgroup_demo::pids(&mut out, max, force)?,
        Cmd::Cpu { seconds } => {
            cgroup_demo::cpu_weights(&mut out, seconds, force)?;
        }
        Cmd::Quota { percent, seconds } => {
            cgroup_demo::quota(&mut out, percent, seconds, force)?;
        }
        Cmd::Accounting => cgroup_demo::accounting(&mut out, force)?,
        Cmd::Freeze => cgroup_demo::freeze(&mut out, force)?,
        Cmd::Devices => cgroup_demo::devices(&mut out)?,
        Cmd::Rules => cgroup_demo::rules(&mut out)?,
        Cmd::V2 => cgroup_demo::v2_rules(&mut out)?,
        Cmd::Ns => {
            // A cgroup namespace needs no cgroup of our own: without root, a user namespace will do.
            labkit::rootless::enter(false, &out)?;
            cgroup_demo::cgroup_ns(&mut out)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A measurement window in seconds: a finite number from 0.1 to 600 (NaN, infinities and huge
/// values are no duration at all).
fn measurement_window(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if seconds.is_finite() && (0.1..=600.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!("{text}: choose 0.1 to 600 seconds"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    labkit::errors::run_main("cgroup-demo", || run(cli))
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
