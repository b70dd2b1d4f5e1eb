//! `user-demo`: user namespaces. Parsing and dispatch only; the lessons are in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use labkit::Narrator;

/// User namespaces: ID maps, capabilities that count only for what the namespace owns, the
/// setgroups rule, and ownership of other namespaces.
///
/// These demos are rootless mode itself: they run as a normal user, and as root.
#[derive(Debug, Parser)]
#[command(name = "user-demo", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// A process in a new user namespace is nobody (65534) until its maps are written, then 0
    /// inside while its IDs outside stay what they were.
    Ids {
        /// A map range INSIDE:OUTSIDE:COUNT (as newuidmap takes them), for both uid_map and
        /// gid_map; repeat for more ranges. Default: your own uid and gid to 0. Without root,
        /// only your own ID can be mapped.
        #[arg(long = "map", value_name = "INSIDE:OUTSIDE:COUNT")]
        maps: Vec<String>,
    },
    /// Root in a new user namespace has every capability, for what its namespace owns only: it
    /// can rename a UTS namespace it creates, not the host; it cannot read root's files or load
    /// modules.
    Caps,
    /// Without privilege, gid_map can be written only after "deny" is written to setgroups.
    Setgroups,
    /// Namespaces are owned by the user namespace they were created in (NS_GET_USERNS): that is
    /// why an unprivileged user can create them inside a user namespace.
    Owner,
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Narrator::new();
    match cli.command {
        Cmd::Ids { maps } => {
            let ranges = maps
                .iter()
                .map(|m| user_demo::parse_range(m))
                .collect::<Result<Vec<_>>>()?;
            user_demo::check_ranges(&ranges)?;
            user_demo::check_privilege_for(&ranges)?;
            user_demo::ids(&mut out, &ranges)?;
        }
        Cmd::Caps => user_demo::capabilities(&mut out)?,
        Cmd::Setgroups => user_demo::setgroups_rule(&mut out)?,
        Cmd::Owner => user_demo::ownership(&mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    labkit::errors::run_main("user-demo", || run(cli))
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
