//! `stop NAME`: SIGTERM, then SIGKILL after the grace period.

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container's name (see `ps`).
    pub name: String,
    /// Seconds to wait after SIGTERM before SIGKILL (at most 2^32 - 1: a deadline further away
    /// than the clock can count would overflow it).
    #[arg(short = 't', long = "time", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=u64::from(u32::MAX)))]
    pub time: u64,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let Args { name, time } = args;
    let how = minicontainer::state::stop(out, store, &name, std::time::Duration::from_secs(time))?;
    println!("{name} stopped ({how})");
    Ok(ExitCode::SUCCESS)
}
