//! `logs NAME`: what a detached container has written.

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container's name (see `ps`).
    pub name: String,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let Args { name } = args;
    let _ = out; // the log is copied as it is, not narrated
    let text = minicontainer::state::logs(store, &name)?;
    std::io::Write::write_all(&mut std::io::stdout(), &text)?;
    Ok(ExitCode::SUCCESS)
}
