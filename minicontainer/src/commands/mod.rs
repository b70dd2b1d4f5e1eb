//! One file per command (youki's `commands/<name>.rs`): its arguments, parsed by clap, and the
//! call into the library that does it. The OCI ones are runc's, as container managers call them.

mod cp;
mod exec;
mod images;
mod inspect;
mod kill;
mod logs;
mod oci;
mod ps;
mod rm;
mod run;
mod stop;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use labkit::Narrator;
use minicontainer::store::Store;

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run CMD in a new container (docker's order: an image, or --rootfs DIR, or the host's
    /// /usr, then CMD); its exit status is minicontainer's. Or runc's `run [--bundle DIR] ID`.
    #[command(
        override_usage = "minicontainer run [OPTIONS] [IMAGE | --image PATH | --rootfs DIR] [--] CMD [ARG...]\n       \
                                minicontainer run [OPTIONS] --image PATH | IMAGE    (the image's Cmd)\n       \
                                minicontainer run [-d] [--bundle DIR] ID            (runc's: DIR/config.json)"
    )]
    Run(run::Args),
    /// List the running containers: name, host PID of PID 1, PID of their minicontainer, command.
    /// With an OCI container's ID, runc's `ps ID`: the processes in its PID namespace.
    Ps(ps::Args),
    /// Run CMD in a running container (joins its cgroups and namespaces with setns, as docker
    /// exec does); the exit status is CMD's.
    Exec(exec::Args),
    /// Stop a running container: SIGTERM, then SIGKILL after the grace period.
    Stop(stop::Args),
    /// Print what a detached container has written (kept until `rm`); -f follows it.
    Logs(logs::Args),
    /// Print containers' records as JSON: config, state, PID, cgroups, address, mounts.
    Inspect(inspect::Args),
    /// Copy a file or a directory into or out of a running container (resolved inside its
    /// root; no symlink followed out of it, none at the end of the path).
    Cp(cp::Args),
    /// List the images the layer cache (~/.cache/nslab) holds, with their sizes.
    Images,
    /// Manage the layer cache: `image ls`, `image prune`.
    Image {
        #[command(subcommand)]
        cmd: images::ImageCmd,
    },
    /// Remove containers that have ended (their record and log); -f kills a running one first.
    Rm(rm::Args),
    /// Send a signal to a container's process: one of `ps` by name (default KILL), or an OCI
    /// container by ID (`kill ID [SIGNAL]`, default TERM, as runc).
    Kill(kill::Args),
    /// OCI: set up a container from a bundle (DIR/config.json and its root); its process waits
    /// for `start`.
    Create(oci::CreateArgs),
    /// OCI: let a created container's process run.
    Start(oci::StartArgs),
    /// OCI: print a container's state as the runtime specification defines it (JSON).
    State(oci::StateArgs),
    /// OCI: remove a stopped container (its state and cgroups); --force kills it first.
    Delete(oci::DeleteArgs),
    /// OCI: freeze every process of a running container (its cgroup's freezer).
    Pause(oci::IdArgs),
    /// OCI: thaw a paused container.
    Resume(oci::IdArgs),
    /// OCI: change a container's resources (an OCI linux.resources object, or the flags).
    Update(oci::UpdateArgs),
    /// OCI: print a container's usage (CPU, memory, PIDs) as JSON lines, every --interval
    /// until it ends, or once with --stats.
    Events(oci::EventsArgs),
    /// OCI: list the containers in the state root.
    List(oci::ListArgs),
    /// OCI: write a default config.json (sh on a terminal, root in ./rootfs) into the bundle.
    Spec(oci::SpecArgs),
    /// Remove what a killed minicontainer left behind (temp directories, cgroups, the bridge).
    Gc,
    /// OCI: what this runtime implements, as the runtime specification's features.md defines
    /// the JSON (runc's `features`).
    Features,
    /// Tell which of run's features work on this machine, and why not (nothing is created).
    Doctor,
}

/// Run the command on the caller's store.
pub fn dispatch(cmd: Cmd, store: &Store) -> Result<ExitCode> {
    let mut out = Narrator::new();
    let out = &mut out;
    match cmd {
        Cmd::Run(args) => run::run(std::mem::take(out), store, args),
        Cmd::Ps(args) => ps::run(out, store, args),
        Cmd::Exec(args) => exec::run(out, store, args),
        Cmd::Stop(args) => stop::run(out, store, args),
        Cmd::Logs(args) => logs::run(out, store, args),
        Cmd::Rm(args) => rm::run(out, store, args),
        Cmd::Inspect(args) => inspect::run(out, store, args),
        Cmd::Cp(args) => cp::run(out, store, args),
        Cmd::Images => images::list(out),
        Cmd::Image { cmd } => images::run(out, store, cmd),
        Cmd::Kill(args) => kill::run(out, store, args),
        Cmd::Create(args) => oci::create(out, store, args),
        Cmd::Start(args) => oci::start(out, store, args),
        Cmd::State(args) => oci::state(out, store, args),
        Cmd::Delete(args) => oci::delete(out, store, args),
        Cmd::List(args) => oci::list(out, store, args),
        Cmd::Pause(args) => oci::pause(store, args, true),
        Cmd::Resume(args) => oci::pause(store, args, false),
        Cmd::Update(args) => oci::update(store, args),
        Cmd::Events(args) => oci::events(out, store, args),
        Cmd::Spec(args) => oci::spec(out, store, args),
        Cmd::Features => oci::features(out, store),
        Cmd::Gc => {
            minicontainer::gc(out, store)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Doctor => {
            let findings = labkit::doctor::examine()?;
            let checks = minicontainer::doctor::checks(&findings);
            print!("{}", minicontainer::doctor::render(&findings, &checks));
            Ok(ExitCode::SUCCESS)
        }
    }
}
