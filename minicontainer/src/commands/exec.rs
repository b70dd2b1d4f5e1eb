//! `exec NAME -- CMD`: run a command in a running container (docker exec).

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container's name (see `ps`).
    pub name: String,
    /// Print every step.
    #[arg(long)]
    pub explain: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let Args { name, explain, cmd } = args;
    out.set_quiet(!explain);
    let code = minicontainer::state::exec(out, store, &name, &cmd)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
