//! `kill`: a signal to a container's process, docker's way or runc's.

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The signal, by name (KILL or SIGKILL) or number.
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    /// runc's --all: the signal goes to every process of the container (those in its cgroup,
    /// or in its PID namespace), not only to its first.
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// The container's name (see `ps`) or OCI ID (see `list`).
    pub name: String,
    /// The signal, as runc takes it after the ID.
    pub signal_arg: Option<String>,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let Args {
        signal,
        all,
        name,
        signal_arg,
    } = args;
    // runc's default is TERM; a docker-style container's (docker kill) is KILL.
    let docker_style = store.load(&name).is_ok_and(|r| r.runner.is_some());
    let default = if docker_style { "KILL" } else { "TERM" };
    let text = signal.or(signal_arg).unwrap_or_else(|| default.into());
    let signal = minicontainer::state::parse_signal(&text)?;
    minicontainer::state::kill(out, store, &name, signal, all)?;
    Ok(ExitCode::SUCCESS)
}
