//! `inspect NAME...`: containers' records as JSON, as docker inspect prints them (an array).

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The containers' names (see `ps` and `list`).
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let all = args
        .names
        .iter()
        .map(|name| minicontainer::state::inspect(store, name))
        .collect::<Result<Vec<_>>>()?;
    out.raw(serde_json::to_string_pretty(&all)?);
    Ok(ExitCode::SUCCESS)
}
