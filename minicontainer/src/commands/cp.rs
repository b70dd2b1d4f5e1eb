//! `cp SRC NAME:DST`, `cp NAME:SRC DST`: a file or a directory into or out of a running
//! container.

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A host path, or NAME:PATH in a running container.
    pub src: String,
    /// A host path, or NAME:PATH in a running container (an existing directory takes the
    /// file, or a new copy of the directory, under its own name).
    pub dst: String,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let _ = out;
    minicontainer::copy::cp(store, &args.src, &args.dst)?;
    Ok(ExitCode::SUCCESS)
}
