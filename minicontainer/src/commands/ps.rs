//! `ps`: the running containers of the caller's store; with an ID, runc's `ps ID`.

use std::process::ExitCode;

use anyhow::Result;
use labkit::Narrator;
use minicontainer::store::Store;

use labkit::bad_input;
use minicontainer::oci;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An OCI container (see `list`).
    pub id: Option<String>,
    /// Every container with a record, those that have ended too (with their status).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// With an ID: table, or json (an array of host PIDs, as runc prints it).
    #[arg(short = 'f', long = "format", default_value = "table")]
    pub format: String,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let Args { id, all, format } = args;
    let Some(id) = id else {
        // Through the narrator: a reader that goes away (`| head -1`) ends it with 141, not a
        // panic.
        out.raw(minicontainer::state::ps(store, all)?.trim_end_matches('\n'));
        return Ok(ExitCode::SUCCESS);
    };
    let procs = oci::processes(store, &id)?;
    match format.as_str() {
        "json" => out.raw(serde_json::to_string(
            &procs.iter().map(|(pid, _)| *pid).collect::<Vec<_>>(),
        )?),
        "table" => {
            let mut rows = vec![vec!["PID".to_string(), "CMD".to_string()]];
            rows.extend(
                procs
                    .into_iter()
                    .map(|(pid, cmd)| vec![pid.to_string(), cmd]),
            );
            out.raw(labkit::narrate::table(&rows).trim_end_matches('\n'));
        }
        other => return Err(bad_input(format!("--format {other:?}: table or json"))),
    }
    Ok(ExitCode::SUCCESS)
}
