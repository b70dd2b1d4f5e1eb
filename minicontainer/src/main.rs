//! `minicontainer`: a minimal container runtime. Parsing and dispatch only (a file per command
//! in `commands/`); the engine is the library, which calls the demos' libraries.
#![forbid(unsafe_code)]

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use labkit::bad_input;
use minicontainer::store::Store;

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
    command: commands::Cmd,
}

fn run(cli: Cli) -> Result<ExitCode> {
    if cli.systemd_cgroup {
        return Err(bad_input(
            "--systemd-cgroup: minicontainer makes its cgroups itself, with no systemd; leave it out (podman: --cgroup-manager=cgroupfs)",
        ));
    }
    // Chosen here, before a rootless run enters its user namespace (where it would be root).
    let store = Store::new(cli.root.clone());
    commands::dispatch(cli.command, &store)
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
