//! `rm [-f] NAME...`: remove containers that have ended, as docker rm.

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill a running container first (SIGKILL to its PID 1).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Print every step.
    #[arg(long)]
    pub explain: bool,
    /// The containers' names (see `ps` and `list`).
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let Args {
        force,
        explain,
        names,
    } = args;
    out.set_quiet(!explain);
    // Each name in turn, as docker rm: one that cannot be removed is reported and the others
    // still go; the last error is the command's.
    let mut failed = None;
    for name in &names {
        match minicontainer::rm(out, store, name, force) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                if let Some(earlier) = failed.replace(e) {
                    eprintln!("minicontainer: {earlier:#}");
                }
            }
        }
    }
    failed.map_or(Ok(ExitCode::SUCCESS), Err)
}
