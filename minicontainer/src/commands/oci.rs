//! runc's command line: `create`, `start`, `state`, `delete`, `list`, `spec` (and `run ID`, in
//! [`super::run`]), on the same store and engine as the docker-style commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use labkit::{Narrator, bad_input};
use minicontainer::oci;
use minicontainer::store::Store;

/// The options runc's create and run share.
#[derive(Debug, Clone, clap::Args)]
pub struct OciArgs {
    /// The bundle: a directory with config.json and the root filesystem it names.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's PID here.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// With process.terminal: send the terminal's master side to this Unix socket.
    #[arg(long = "console-socket", value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc's command line (the root is always pivoted).
    #[arg(long = "no-pivot", hide = true)]
    pub no_pivot: bool,
    /// Accepted for runc's command line (no session keyring is made).
    #[arg(long = "no-new-keyring", hide = true)]
    pub no_new_keyring: bool,
}

pub fn create_args(args: &OciArgs) -> oci::CreateArgs {
    oci::CreateArgs {
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub oci: OciArgs,
    /// The container's ID.
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The container's ID.
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// The container's ID.
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The container's ID.
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// table or json.
    #[arg(short = 'f', long = "format", default_value = "table")]
    pub format: String,
    /// Only the IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct SpecArgs {
    /// The bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// A config for a user without root: a user namespace mapping you to root, no limits.
    #[arg(long)]
    pub rootless: bool,
}

pub fn create(out: &mut Narrator, store: &Store, args: CreateArgs) -> Result<ExitCode> {
    let CreateArgs { oci: args, id } = args;
    out.set_quiet(true);
    // A SIGTERM during setup goes to the container's process, whose end fails the
    // create, which then removes everything: never a half-made container.
    let hold = labkit::signals::hold_interrupts()?;
    oci::create(out, store, &id, &create_args(&args))?;
    labkit::signals::discard_pending();
    drop(hold);
    Ok(ExitCode::SUCCESS)
}

pub fn start(out: &mut Narrator, store: &Store, args: StartArgs) -> Result<ExitCode> {
    let StartArgs { id } = args;
    let _ = out;
    oci::start(store, &id)?;
    Ok(ExitCode::SUCCESS)
}

pub fn state(out: &mut Narrator, store: &Store, args: StateArgs) -> Result<ExitCode> {
    let StateArgs { id } = args;
    out.raw(serde_json::to_string_pretty(&store.state(&id)?)?);
    Ok(ExitCode::SUCCESS)
}

pub fn delete(out: &mut Narrator, store: &Store, args: DeleteArgs) -> Result<ExitCode> {
    let DeleteArgs { force, id } = args;
    let _ = out;
    oci::delete(store, &id, force)?;
    Ok(ExitCode::SUCCESS)
}

pub fn list(out: &mut Narrator, store: &Store, args: ListArgs) -> Result<ExitCode> {
    let ListArgs { format, quiet } = args;
    let records = store.list()?;
    if quiet {
        for r in &records {
            out.raw(&r.id);
        }
    } else if format == "json" {
        let states: Vec<_> = records
            .iter()
            .filter_map(|r| store.state(&r.id).ok())
            .collect();
        out.raw(serde_json::to_string(&states)?);
    } else if format == "table" {
        out.raw(oci::list(store)?.trim_end_matches('\n'));
    } else {
        return Err(bad_input(format!(
            "list --format {format:?}: table or json"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn features(out: &mut Narrator, _store: &Store) -> Result<ExitCode> {
    out.raw(serde_json::to_string_pretty(&oci::features())?);
    Ok(ExitCode::SUCCESS)
}

pub fn spec(out: &mut Narrator, store: &Store, args: SpecArgs) -> Result<ExitCode> {
    let SpecArgs { bundle, rootless } = args;
    let _ = (out, store);
    oci::write_default_spec(&bundle, rootless)?;
    Ok(ExitCode::SUCCESS)
}
