//! `logs [-f] [--tail N] NAME`: what a detached container has written.

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Follow: go on printing what it writes until it ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines (then, with -f, what follows).
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<usize>,
    /// The container's name (see `ps`).
    pub name: String,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let Args { follow, tail, name } = args;
    let _ = out; // the log is copied as it is, not narrated
    let stdout = std::io::stdout();
    match minicontainer::state::logs(store, &name, tail, follow, &mut stdout.lock()) {
        // A reader that went away (`logs -f NAME | head -1`): as a tool killed by SIGPIPE.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(ExitCode::from(141))
        }
        other => other.map(|()| ExitCode::SUCCESS),
    }
}
