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
    /// The bundle: a directory with config.json and the root filesystem it names [default:
    /// the current directory].
    #[arg(short = 'b', long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Write the container's PID here.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// With process.terminal: send the terminal's master side to this Unix socket.
    #[arg(long = "console-socket", value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Pass the caller's descriptors 3 to 2 + N on to the container's process (a socket
    /// activation, a log pipe).
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Enter the root with MS_MOVE and chroot(2) instead of pivot_root(2) (a root on ramfs);
    /// weaker: a process with CAP_SYS_CHROOT may leave a chroot.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
}

pub fn create_args(args: &OciArgs) -> oci::CreateArgs {
    oci::CreateArgs {
        bundle: args.bundle.clone().unwrap_or_else(|| PathBuf::from(".")),
        pid_file: args.pid_file.clone(),
        console_socket: args.console_socket.clone(),
        preserve_fds: args.preserve_fds,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
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
    out.raw(serde_json::to_string_pretty(&store.state_json(&id)?)?);
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
            .filter_map(|r| store.state_json(&r.id).ok())
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

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// The container's ID.
    pub id: String,
}

pub fn pause(store: &Store, args: IdArgs, pause: bool) -> Result<ExitCode> {
    oci::pause(store, &args.id, pause)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The new resources as an OCI `linux.resources` object, from FILE or `-` (standard
    /// input); the flags below change single values on top of it.
    #[arg(short = 'r', long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (k, m, g suffixes), -1 for none.
    #[arg(short = 'm', long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap in bytes, -1 for none.
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// The memory soft limit in bytes.
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// CFS quota in microseconds per period, -1 for none.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPUs allowed (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// The most processes, 0 or -1 for no limit.
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block I/O weight (10 to 1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// The container's ID.
    pub id: String,
}

/// A size as runc's update takes it: bytes, or with a k, m or g suffix; -1 for no limit.
fn size(flag: &str, text: &str) -> Result<i64> {
    if text == "-1" {
        return Ok(-1);
    }
    labkit::parse_size(text).map(|b| b as i64).map_err(|_| {
        bad_input(format!(
            "--{flag} {text:?}: a size in bytes (64m, 1g) or -1"
        ))
    })
}

pub fn update(store: &Store, args: UpdateArgs) -> Result<ExitCode> {
    use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPidsBuilder, LinuxResources};
    let mut r: LinuxResources = match &args.resources {
        None => LinuxResources::default(),
        Some(file) => {
            let text = if file.as_os_str() == "-" {
                let mut text = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)?;
                text
            } else {
                std::fs::read(file)
                    .map_err(|e| bad_input(format!("--resources {}: {e}", file.display())))?
            };
            serde_json::from_slice(&text).map_err(|e| {
                bad_input(format!(
                    "--resources: not an OCI linux.resources object: {e}"
                ))
            })?
        }
    };
    let mut memory = r.memory().unwrap_or_default();
    if let Some(m) = &args.memory {
        memory.set_limit(Some(size("memory", m)?));
    }
    if let Some(m) = &args.memory_swap {
        memory.set_swap(Some(size("memory-swap", m)?));
    }
    if let Some(m) = &args.memory_reservation {
        memory.set_reservation(Some(size("memory-reservation", m)?));
    }
    if memory != LinuxMemory::default() {
        r.set_memory(Some(memory));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    if args.cpu_quota.is_some() {
        cpu.set_quota(args.cpu_quota);
    }
    if args.cpu_period.is_some() {
        cpu.set_period(args.cpu_period);
    }
    if args.cpu_shares.is_some() {
        cpu.set_shares(args.cpu_shares);
    }
    if args.cpuset_cpus.is_some() {
        cpu.set_cpus(args.cpuset_cpus.clone());
    }
    if args.cpuset_mems.is_some() {
        cpu.set_mems(args.cpuset_mems.clone());
    }
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }
    if let Some(limit) = args.pids_limit {
        r.set_pids(Some(LinuxPidsBuilder::default().limit(limit).build()?));
    }
    if let Some(w) = args.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    oci::update(store, &args.id, &r)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Print the usage once and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to print the usage (Go's duration syntax: 500ms, 5s, 1m).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// The container's ID.
    pub id: String,
}

/// Go's duration syntax, as runc's --interval takes it: a number and a unit (ns, us, ms, s, m,
/// h), positive.
fn duration(text: &str) -> Result<std::time::Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let scale = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    let secs = n.parse::<f64>().unwrap_or(f64::NAN) * scale;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(bad_input(format!(
            "--interval {text:?}: a duration such as 500ms, 5s or 1m (at most 24h)"
        )));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

pub fn events(out: &mut Narrator, store: &Store, args: EventsArgs) -> Result<ExitCode> {
    let interval = duration(&args.interval)?;
    let record = store.load(&args.id)?;
    loop {
        out.raw(oci::stats_event(store, &args.id)?.to_string());
        if args.stats {
            return Ok(ExitCode::SUCCESS);
        }
        // Until the container ends: its pidfd becomes readable then, or the interval passes.
        let Ok(pidfd) = minicontainer::state::pidfd(record.process()) else {
            return Ok(ExitCode::SUCCESS);
        };
        if pidfd.wait_exit(interval)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_read_as_go_durations() {
        assert_eq!(duration("5s").unwrap(), std::time::Duration::from_secs(5));
        assert_eq!(
            duration("250ms").unwrap(),
            std::time::Duration::from_millis(250)
        );
        assert_eq!(duration("1m").unwrap(), std::time::Duration::from_secs(60));
        for bad in ["", "5", "0s", "-1s", "1e400s", "5x", "100000h"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
