//! `minicontainer`: a minimal container runtime. Parsing and dispatch only; the engine is the
//! library, which calls the demos' libraries.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use labkit::{Narrator, bad_input, rootless};
use minicontainer::{Config, oci};

/// A minimal container runtime, made of the mechanisms of the book: namespaces, cgroups, an
/// overlay root with pivot_root, reduced capabilities, and an init as PID 1.
///
/// Without --rootfs the container's root is a fresh writable layer over the host's own /usr,
/// read-only: `minicontainer run -- sh -c 'hostname; ps; id'` works with nothing to download.
#[derive(Debug, Parser)]
#[command(name = "minicontainer", version, max_term_width = 100)]
struct Cli {
    /// Where the OCI commands (create, start, state, kill, delete, list) keep their containers'
    /// state [default: /run/nslab as root, else $XDG_RUNTIME_DIR/nslab].
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Also write errors to FILE (runc's --log, which container managers read).
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<PathBuf>,
    /// The format of --log: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Accepted for runc's command line; cgroups are made by this program, never by systemd.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc's command line (minicontainer has --explain instead).
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Cmd,
}

/// The options runc's create and run share.
#[derive(Debug, Clone, clap::Args)]
struct OciArgs {
    /// The bundle: a directory with config.json and the root filesystem it names.
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Write the container's PID here.
    #[arg(long = "pid-file", value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// With process.terminal: send the terminal's master side to this Unix socket.
    #[arg(long = "console-socket", value_name = "SOCK")]
    console_socket: Option<PathBuf>,
    /// Accepted for runc's command line (the root is always pivoted).
    #[arg(long = "no-pivot", hide = true)]
    no_pivot: bool,
    /// Accepted for runc's command line (no session keyring is made).
    #[arg(long = "no-new-keyring", hide = true)]
    no_new_keyring: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum NetArg {
    None,
    Bridge,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run CMD in a new container; its exit status is minicontainer's.
    Run {
        /// Use this directory as the (read-only) image; writes go to a fresh upper layer.
        #[arg(long, value_name = "DIR", conflicts_with = "image")]
        rootfs: Option<PathBuf>,
        /// Run an image: an OCI image layout directory or a docker/podman save tarball. Its
        /// layers are unpacked once into ~/.cache/nslab (digests checked); its Env, Entrypoint,
        /// Cmd, WorkingDir and User are the defaults.
        #[arg(long, value_name = "PATH")]
        image: Option<PathBuf>,
        /// A name for `ps`, `exec` and `stop` (default: ctr-PID, PID being minicontainer's).
        #[arg(long)]
        name: Option<String>,
        /// The container's hostname.
        #[arg(long, default_value = "minicontainer")]
        hostname: String,
        /// Memory limit (64M, 1G, or bytes).
        #[arg(long)]
        memory: Option<String>,
        /// The most processes the container may have.
        #[arg(long = "pids-limit")]
        pids_limit: Option<u32>,
        /// CPU limit, in CPUs (0.5 = half of one).
        #[arg(long)]
        cpus: Option<f64>,
        /// Set an environment variable (KEY=VALUE); repeatable.
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Working directory inside the container [default: the image's, or /].
        #[arg(short = 'w', long = "workdir")]
        workdir: Option<PathBuf>,
        /// Network: `none` (only lo) or `bridge` (eth0 on the host's nslab-br0 bridge, with the
        /// other bridge containers and the host reachable, nothing else; needs root).
        #[arg(long, value_enum, default_value_t = NetArg::None)]
        net: NetArg,
        /// Bind-mount a host path into the container (HOST:CONTAINER[:ro]); repeatable.
        #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
        volume: Vec<String>,
        /// Run as this user (UID[:GID]).
        #[arg(long, value_name = "UID[:GID]")]
        user: Option<String>,
        /// Run pid_demo::init as PID 1 (reaps orphans, forwards signals); --init=false makes the
        /// command PID 1 itself.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        init: bool,
        /// Give the command a terminal of the container's own (a pseudo-terminal in its devpts),
        /// with your terminal in raw mode meanwhile: job control and window size work inside.
        #[arg(short = 't', long = "tty")]
        tty: bool,
        /// Detached: run in the background (output to `logs NAME`), print the name, and return;
        /// the container is removed when its command ends.
        #[arg(short = 'd', long = "detach")]
        detach: bool,
        /// Keep standard input attached (it always is: accepted for docker run's -it habit).
        #[arg(short = 'i', long = "interactive")]
        interactive: bool,
        /// Install the default seccomp filter (--seccomp=false: none, like Docker's
        /// --security-opt seccomp=unconfined).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        seccomp: bool,
        /// Print every step (numbered, naming the syscall).
        #[arg(long)]
        explain: bool,
        /// Afterwards, print on stderr how long each step took (from the step before it), and the
        /// total: where the time of starting a container goes.
        #[arg(long)]
        timings: bool,
        /// Run inside a new user namespace even as root (what a normal user gets).
        #[arg(long)]
        rootless: bool,
        /// Print the container as an OCI runtime spec (the config.json runc would read) and
        /// exit without running it: what the engine is given.
        #[arg(long)]
        print_spec: bool,
        /// OCI: runc's `run ID`: create and start the bundle's container (with -d, return once
        /// it runs; else wait for it, then delete it).
        #[command(flatten)]
        oci: OciArgs,
        /// OCI: the container's ID (runc's `run [--bundle DIR] ID`); the bundle's config replaces
        /// every option above.
        #[arg(value_name = "ID")]
        id: Option<String>,
        /// The command and its arguments (with --image: the image's Cmd when left out).
        #[arg(last = true, required_unless_present_any = ["image", "id"])]
        cmd: Vec<String>,
    },
    /// List the running containers: name, host PID of PID 1, PID of their minicontainer, command.
    /// With an OCI container's ID, runc's `ps ID`: the processes in its PID namespace.
    Ps {
        /// An OCI container (see `list`).
        id: Option<String>,
        /// With an ID: table, or json (an array of host PIDs, as runc prints it).
        #[arg(short = 'f', long = "format", default_value = "table")]
        format: String,
    },
    /// Run CMD in a running container (joins its cgroups and namespaces with setns, as docker
    /// exec does); the exit status is CMD's.
    Exec {
        /// The container's name (see `ps`).
        name: String,
        /// Print every step.
        #[arg(long)]
        explain: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Stop a running container: SIGTERM, then SIGKILL after the grace period.
    Stop {
        /// The container's name (see `ps`).
        name: String,
        /// Seconds to wait after SIGTERM before SIGKILL.
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
    },
    /// Print what a detached container has written so far.
    Logs {
        /// The container's name (see `ps`).
        name: String,
    },
    /// Send a signal to a container's process: one of `ps` by name (default KILL), or an OCI
    /// container by ID (`kill ID [SIGNAL]`, default TERM, as runc).
    Kill {
        /// The signal, by name (KILL or SIGKILL) or number.
        #[arg(short = 's', long = "signal")]
        signal: Option<String>,
        /// runc's --all (every process of the container): accepted, the signal goes to its
        /// process, whose PID namespace ends with it.
        #[arg(short = 'a', long = "all")]
        all: bool,
        /// The container's name (see `ps`) or OCI ID (see `list`).
        name: String,
        /// The signal, as runc takes it after the ID.
        signal_arg: Option<String>,
    },
    /// OCI: set up a container from a bundle (DIR/config.json and its root); its process waits
    /// for `start`.
    Create {
        #[command(flatten)]
        oci: OciArgs,
        /// The container's ID.
        id: String,
    },
    /// OCI: let a created container's process run.
    Start {
        /// The container's ID.
        id: String,
    },
    /// OCI: print a container's state as the runtime specification defines it (JSON).
    State {
        /// The container's ID.
        id: String,
    },
    /// OCI: remove a stopped container (its state and cgroups); --force kills it first.
    Delete {
        #[arg(short = 'f', long)]
        force: bool,
        /// The container's ID.
        id: String,
    },
    /// OCI: list the containers in the state root.
    List {
        /// table or json.
        #[arg(short = 'f', long = "format", default_value = "table")]
        format: String,
        /// Only the IDs.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// OCI: write a default config.json (sh on a terminal, root in ./rootfs) into the bundle.
    Spec {
        /// The bundle directory.
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A config for a user without root: a user namespace mapping you to root, no limits.
        #[arg(long)]
        rootless: bool,
    },
    /// Remove what a killed minicontainer left behind (temp directories, cgroups, the bridge).
    Gc,
    /// Tell which of run's features work on this machine, and why not (nothing is created).
    Doctor,
}

fn parse_user(text: &str) -> Result<(u32, u32)> {
    minicontainer::parse_user(text).ok_or_else(|| {
        bad_input(format!(
            "--user {text:?}: expected UID[:GID] as numbers from 0 to {}",
            minicontainer::MAX_ID
        ))
    })
}

fn create_args(args: &OciArgs) -> oci::CreateArgs {
    oci::CreateArgs {
        bundle: args.bundle.clone(),
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
    }
}

/// runc's `run ID`: create and start; in the foreground, wait for the process (it is this
/// process's child), then delete the container; its exit status is ours.
fn oci_run(
    out: &mut Narrator,
    store: &oci::Store,
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

fn run(cli: Cli) -> Result<ExitCode> {
    let mut out = Narrator::new();
    if cli.systemd_cgroup {
        return Err(bad_input(
            "--systemd-cgroup: minicontainer makes its cgroups itself, with no systemd; leave it out (podman: --cgroup-manager=cgroupfs)",
        ));
    }
    let store = oci::Store::new(cli.root.clone());
    match cli.command {
        Cmd::Ps { id: None, .. } => {
            // Through the narrator: a reader that goes away (`| head -1`) ends it with 141, not a
            // panic.
            out.raw(minicontainer::state::ps(&store)?.trim_end_matches('\n'));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ps {
            id: Some(id),
            format,
        } => {
            let procs = oci::processes(&store, &id)?;
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
                other => {
                    return Err(bad_input(format!("--format {other:?}: table or json")));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Exec { name, explain, cmd } => {
            out.set_quiet(!explain);
            let code = minicontainer::state::exec(&mut out, &store, &name, &cmd)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Cmd::Stop { name, time } => {
            let how = minicontainer::state::stop(
                &mut out,
                &store,
                &name,
                std::time::Duration::from_secs(time),
            )?;
            println!("{name} stopped ({how})");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Logs { name } => {
            let text = minicontainer::state::logs(&store, &name)?;
            std::io::Write::write_all(&mut std::io::stdout(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kill {
            signal,
            all: _,
            name,
            signal_arg,
        } => {
            // runc's default is TERM; a docker-style container's (docker kill) is KILL.
            let docker_style = store.load(&name).is_ok_and(|r| r.runner.is_some());
            let default = if docker_style { "KILL" } else { "TERM" };
            let text = signal.or(signal_arg).unwrap_or_else(|| default.into());
            let signal = minicontainer::state::parse_signal(&text)?;
            minicontainer::state::kill(&mut out, &store, &name, signal)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Create { oci: args, id } => {
            out.set_quiet(true);
            // A SIGTERM during setup goes to the container's process, whose end fails the
            // create, which then removes everything: never a half-made container.
            let hold = labkit::signals::hold_interrupts()?;
            oci::create(&mut out, &store, &id, &create_args(&args))?;
            labkit::signals::discard_pending();
            drop(hold);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Start { id } => {
            oci::start(&store, &id)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::State { id } => {
            out.raw(serde_json::to_string_pretty(&store.state(&id)?)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Delete { force, id } => {
            oci::delete(&store, &id, force)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::List { format, quiet } => {
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
                out.raw(oci::list(&store)?.trim_end_matches('\n'));
            } else {
                return Err(bad_input(format!(
                    "list --format {format:?}: table or json"
                )));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Spec { bundle, rootless } => {
            oci::write_default_spec(&bundle, rootless)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Doctor => {
            let findings = labkit::doctor::examine()?;
            let checks = minicontainer::doctor::checks(&findings);
            print!("{}", minicontainer::doctor::render(&findings, &checks));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gc => {
            minicontainer::gc(&mut out, &store)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
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
        } => {
            if let Some(id) = id {
                return oci_run(&mut out, &store, &id, &oci, detach);
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
                return run_detached(out, store, config, force);
            }
            // Setup and cleanup must not be cut short: Ctrl-C goes to the container (it is in the
            // foreground too), and minicontainer ends once everything is removed.
            let hold = labkit::signals::hold_interrupts()?;
            if timings {
                out.start_timing();
            }
            let privilege = rootless::enter(force, &out)?;
            let code = match minicontainer::run(&mut out, &store, &config, privilege) {
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
    }
}

/// `run -d`: a process of its own runs the container (in a new session, standard input from
/// /dev/null, output to the container's log) and cleans up when it ends, as `docker run -d --rm`
/// does; this one prints the name once `ps` knows it, and exits.
fn run_detached(
    mut out: Narrator,
    store: oci::Store,
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
    let mut runner = labkit::child::fork_child(move |_| {
        // Outlive this process: no parent-death signal, a session of its own.
        nix::sys::prctl::set_pdeathsig(None).context("prctl(PR_SET_PDEATHSIG, 0)")?;
        nix::unistd::setsid().context("setsid()")?;
        let null = std::fs::File::open("/dev/null").context("open(/dev/null)")?;
        nix::unistd::dup2_stdin(&null).context("dup2(/dev/null, 0)")?;
        let _hold = labkit::signals::hold_interrupts()?;
        let privilege = rootless::enter(force, &out)?;
        let code = minicontainer::run(&mut out, &for_runner, &config, privilege)?;
        labkit::signals::discard_pending();
        Ok(code)
    })?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if minicontainer::state::find(&store, &name).is_ok() {
            println!("{name}");
            runner.detach();
            return Ok(ExitCode::SUCCESS);
        }
        let status = runner.wait_with(nix::sys::wait::WaitPidFlag::WNOHANG)?;
        if !matches!(status, nix::sys::wait::WaitStatus::StillAlive) {
            // It ended before the container was listed: its error is in what it reported.
            let done = runner.finish(&mut Narrator::new(), "minicontainer")?;
            return Ok(ExitCode::from(u8::try_from(done.exit_code()).unwrap_or(1)));
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the detached container {name} did not start within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn cow_like_validate(hostname: &str) -> Result<()> {
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(bad_input(format!("--hostname {hostname:?}: 1 to 64 bytes")));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = cli.log.clone().map(|f| (f, cli.log_format == "json"));
    labkit::errors::run_main("minicontainer", || {
        let result = run(cli);
        if let (Err(err), Some((file, json))) = (&result, &log) {
            write_log(file, *json, &format!("{err:#}"));
        }
        result
    })
}

/// runc's --log: one line per error, as text or as JSON ({"level","msg","time"}).
fn write_log(file: &std::path::Path, json: bool, msg: &str) {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let line = if json {
        serde_json::json!({ "level": "error", "msg": msg, "time": time }).to_string()
    } else {
        format!("level=error msg={msg:?} time={time}")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        let _ = std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
