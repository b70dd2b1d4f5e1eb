//! `run`: docker-style (flags, an image or a directory as the root), or runc's `run ID` on a
//! bundle.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use labkit::{Narrator, bad_input, rootless};
use minicontainer::store::Store;
use minicontainer::{Config, oci};

use super::oci::{OciArgs, create_args};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum NetArg {
    None,
    Bridge,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Use this directory as the (read-only) image; writes go to a fresh upper layer.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub rootfs: Option<PathBuf>,
    /// Run an image: an OCI image layout directory or a docker/podman save tarball. Its
    /// layers are unpacked once into ~/.cache/nslab (digests checked); its Env, Entrypoint,
    /// Cmd, WorkingDir and User are the defaults.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// A name for `ps`, `exec` and `stop` (default: ctr-PID, PID being minicontainer's).
    #[arg(long)]
    pub name: Option<String>,
    /// The container's hostname.
    #[arg(long, default_value = "minicontainer")]
    pub hostname: String,
    /// Memory limit (64M, 1G, or bytes).
    #[arg(long)]
    pub memory: Option<String>,
    /// The most processes the container may have.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<u32>,
    /// CPU limit, in CPUs (0.5 = half of one).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container [default: the image's, or /].
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<PathBuf>,
    /// Network: `none` (only lo) or `bridge` (eth0 on the host's nslab-br0 bridge, with the
    /// other bridge containers and the host reachable, nothing else; needs root).
    #[arg(long, value_enum, default_value_t = NetArg::None)]
    pub net: NetArg,
    /// Bind-mount a host path into the container (HOST:CONTAINER[:ro]); repeatable.
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volume: Vec<String>,
    /// Run as this user (UID[:GID]).
    #[arg(long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Run pid_demo::init as PID 1 (reaps orphans, forwards signals); --init=false makes the
    /// command PID 1 itself.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub init: bool,
    /// Give the command a terminal of the container's own (a pseudo-terminal in its devpts),
    /// with your terminal in raw mode meanwhile: job control and window size work inside.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Detached: run in the background (output to `logs NAME`), print the name, and return;
    /// the container is removed when its command ends.
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Keep standard input attached (it always is: accepted for docker run's -it habit).
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Install the default seccomp filter (--seccomp=false: none, like Docker's
    /// --security-opt seccomp=unconfined).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub seccomp: bool,
    /// Print every step (numbered, naming the syscall).
    #[arg(long)]
    pub explain: bool,
    /// Afterwards, print on stderr how long each step took (from the step before it), and the
    /// total: where the time of starting a container goes.
    #[arg(long)]
    pub timings: bool,
    /// Run inside a new user namespace even as root (what a normal user gets).
    #[arg(long)]
    pub rootless: bool,
    /// Print the container as an OCI runtime spec (the config.json runc would read) and
    /// exit without running it: what the engine is given.
    #[arg(long)]
    pub print_spec: bool,
    /// OCI: runc's `run ID`: create and start the bundle's container (with -d, return once
    /// it runs; else wait for it, then delete it).
    #[command(flatten)]
    pub oci: OciArgs,
    /// OCI: the container's ID (runc's `run [--bundle DIR] ID`); the bundle's config replaces
    /// every option above.
    #[arg(value_name = "ID")]
    pub id: Option<String>,
    /// The command and its arguments (with --image: the image's Cmd when left out).
    #[arg(last = true, required_unless_present_any = ["image", "id"])]
    pub cmd: Vec<String>,
}

pub fn run(mut out: Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let Args {
        rootfs,
        image,
        name,
        hostname,
        memory,
        pids_limit,
        cpus,
        env,
        workdir,
        net,
        volume,
        user,
        init,
        seccomp,
        tty,
        detach,
        interactive: _,
        explain,
        timings,
        rootless: force,
        print_spec,
        oci,
        id,
        cmd,
    } = args;
    if let Some(id) = id {
        return oci_run(&mut out, store, &id, &oci, detach);
    }
    out.set_quiet(!explain);
    let memory = memory.as_deref().map(cgroup_demo::parse_size).transpose()?;
    if cpus.is_some_and(|c| !(0.01..=1024.0).contains(&c)) {
        return Err(bad_input("--cpus: choose 0.01 to 1024"));
    }
    cow_like_validate(&hostname)?;
    let env = env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| bad_input(format!("-e {kv:?}: expected KEY=VALUE")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut options = minicontainer::spec::RunOptions {
        hostname,
        memory,
        pids: pids_limit,
        cpus,
        env,
        workdir: PathBuf::from("/"),
        user: user.as_deref().map(parse_user).transpose()?,
        volumes: volume
            .iter()
            .map(|v| v.parse())
            .collect::<Result<Vec<minicontainer::Volume>>>()?,
        seccomp,
        tty,
        cmd,
    };
    let root = minicontainer::resolve_root(&mut out, rootfs, image, workdir, &mut options)?;
    let config = Config {
        spec: minicontainer::spec::from_options(&options)?,
        root,
        net: match net {
            NetArg::None => minicontainer::Net::None,
            NetArg::Bridge => minicontainer::Net::Bridge,
        },
        name,
        init,
        log: false,
    };
    if print_spec {
        print!("{}", minicontainer::spec::to_json(&config.spec)?);
        return Ok(ExitCode::SUCCESS);
    }
    if detach {
        return run_detached(out, store.clone(), config, force);
    }
    // Setup and cleanup must not be cut short: Ctrl-C goes to the container (it is in the
    // foreground too), and minicontainer ends once everything is removed.
    let hold = labkit::signals::hold_interrupts()?;
    if timings {
        out.start_timing();
    }
    let privilege = rootless::enter(force, &out)?;
    let code = match minicontainer::run(&mut out, store, &config, privilege) {
        // As a shell, and docker run, report a command that cannot be run.
        Err(e) if e.chain().any(|c| c.is::<minicontainer::CommandNotFound>()) => {
            eprintln!("minicontainer: {e:#}");
            127
        }
        other => other?,
    };
    if let Some(table) = out.timings() {
        eprint!("{table}");
    }
    labkit::signals::discard_pending();
    drop(hold);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn parse_user(text: &str) -> Result<(u32, u32)> {
    minicontainer::parse_user(text).ok_or_else(|| {
        bad_input(format!(
            "--user {text:?}: expected UID[:GID] as numbers from 0 to {}",
            minicontainer::MAX_ID
        ))
    })
}

/// runc's `run ID`: create and start; in the foreground, wait for the process (it is this
/// process's child), then delete the container; its exit status is ours.
fn oci_run(
    out: &mut Narrator,
    store: &Store,
    id: &str,
    args: &OciArgs,
    detach: bool,
) -> Result<ExitCode> {
    out.set_quiet(true);
    // As with `run`: SIGTERM and SIGHUP go to the container (as runc forwards them), and this
    // process is never cut short between create and delete.
    let hold = labkit::signals::hold_interrupts()?;
    let record = oci::create(out, store, id, &create_args(args))?;
    if let Err(e) = oci::start(store, id) {
        let _ = oci::delete(store, id, true);
        return Err(e);
    }
    if detach {
        labkit::signals::discard_pending();
        drop(hold);
        return Ok(ExitCode::SUCCESS);
    }
    let status = loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(record.pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    let deleted = oci::delete(store, id, true);
    let status = status.context("waitpid(the container's process)")?;
    deleted?;
    labkit::signals::discard_pending();
    drop(hold);
    Ok(ExitCode::from(
        u8::try_from(labkit::child::exit_code(status)).unwrap_or(1),
    ))
}

/// `run -d`: a process of its own runs the container (in a new session, standard input from
/// /dev/null, output to the container's log) and cleans up when it ends, as `docker run -d --rm`
/// does; this one prints the name once `ps` knows it, and exits.
fn run_detached(
    mut out: Narrator,
    store: Store,
    mut config: Config,
    force: bool,
) -> Result<ExitCode> {
    if config.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
        return Err(bad_input(
            "-d with -t: a detached container has no terminal to attach (use exec later)",
        ));
    }
    let name = config
        .name
        .get_or_insert_with(|| format!("ctr-{}", std::process::id()))
        .clone();
    minicontainer::state::validate_name(&name)?;
    if store.load(&name).is_ok() {
        return Err(bad_input(format!(
            "--name {name}: already in use (see minicontainer ps)"
        )));
    }
    config.log = true;
    let for_runner = store.clone();
    let mut runner = labkit::child::fork_child(move |r| {
        // Outlive this process: no parent-death signal, a session of its own.
        nix::sys::prctl::set_pdeathsig(None).context("prctl(PR_SET_PDEATHSIG, 0)")?;
        nix::unistd::setsid().context("setsid()")?;
        let null = std::fs::File::open("/dev/null").context("open(/dev/null)")?;
        nix::unistd::dup2_stdin(&null).context("dup2(/dev/null, 0)")?;
        let _hold = labkit::signals::hold_interrupts()?;
        let privilege = rootless::enter(force, &out)?;
        // Ready once started: the waiting parent prints the name and returns.
        let code =
            minicontainer::run_then(&mut out, &for_runner, &config, privilege, || r.ready())?;
        labkit::signals::discard_pending();
        Ok(code)
    })?;
    // Its report pipe says when it has started, or why it could not (its error, or its end).
    runner.wait_ready()?;
    println!("{name}");
    runner.detach();
    Ok(ExitCode::SUCCESS)
}

fn cow_like_validate(hostname: &str) -> Result<()> {
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(bad_input(format!("--hostname {hostname:?}: 1 to 64 bytes")));
    }
    Ok(())
}
