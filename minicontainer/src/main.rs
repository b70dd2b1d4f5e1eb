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

/// `--version` in runc's shape (`runc version X`, then `spec: Y`), which clients parse.
const VERSION: &str = concat!("version ", env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0");

/// runc's global flags: before the command, as runc takes them (and container managers pass
/// them), so they are shown once, here, and not in every command's help.
const OCI_GLOBALS: &str = "OCI global options (before the command, as runc takes them)";

/// A minimal container runtime, made of the mechanisms of the book: namespaces, cgroups, an
/// overlay root with pivot_root, reduced capabilities, and an init as PID 1.
///
/// Without --rootfs the container's root is a fresh writable layer over the host's own /usr,
/// read-only: `minicontainer run -- sh -c 'hostname; ps; id'` works with nothing to download.
#[derive(Debug, Parser)]
#[command(name = "minicontainer", version = VERSION, max_term_width = 100)]
struct Cli {
    /// Where the OCI commands (create, start, state, kill, delete, list) keep their containers'
    /// state [default: /run/nslab as root, else $XDG_RUNTIME_DIR/nslab].
    #[arg(long, help_heading = OCI_GLOBALS, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Also write errors to FILE (runc's --log, which container managers read).
    #[arg(long, help_heading = OCI_GLOBALS, value_name = "FILE")]
    log: Option<PathBuf>,
    /// The format of --log: text or json.
    #[arg(long = "log-format", help_heading = OCI_GLOBALS, default_value = "text")]
    log_format: String,
    /// Accepted for runc's command line; cgroups are made by this program, never by systemd.
    #[arg(long = "systemd-cgroup", help_heading = OCI_GLOBALS)]
    systemd_cgroup: bool,
    /// Accepted for runc's command line (minicontainer has --explain instead).
    #[arg(long, help_heading = OCI_GLOBALS)]
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A container manager reads why from --log (the command line was not understood,
            // so --log is looked for by hand).
            if !matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                if let Some((file, json)) = log_of(std::env::args_os().skip(1)) {
                    let first = e.to_string();
                    let first = first.lines().next().unwrap_or_default();
                    write_log(&file, json, first.trim_start_matches("error: "));
                }
            }
            e.exit()
        }
    };
    let log = cli.log.clone().map(|f| (f, cli.log_format == "json"));
    labkit::errors::run_main("minicontainer", || {
        let result = run(cli);
        if let (Err(err), Some((file, json))) = (&result, &log) {
            write_log(file, *json, &format!("{err:#}"));
        }
        result
    })
}

/// `--log FILE` (or `--log=FILE`) and whether `--log-format json` comes with it, read from raw
/// arguments.
fn log_of(args: impl Iterator<Item = std::ffi::OsString>) -> Option<(PathBuf, bool)> {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let value = |flag: &str| {
        args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix(&format!("{flag}="))
                .map(String::from)
                .or_else(|| (a == flag).then(|| args.get(i + 1).cloned()).flatten())
        })
    };
    let file = value("--log")?;
    Some((
        PathBuf::from(file),
        value("--log-format").as_deref() == Some("json"),
    ))
}

/// runc's --log: one line per error, as text or as JSON (`{"level","msg","time"}`), the time in
/// RFC 3339 as runc writes it (Docker and containerd parse it).
fn write_log(file: &std::path::Path, json: bool, msg: &str) {
    let time = rfc3339(std::time::SystemTime::now());
    let line = if json {
        serde_json::json!({ "level": "error", "msg": msg, "time": time }).to_string()
    } else {
        format!("time=\"{time}\" level=error msg={msg:?}")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        let _ = std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes());
    }
}

/// `2026-12-03T11:52:07Z`: UTC, from the seconds since the epoch (Howard Hinnant's
/// days-to-civil conversion).
fn rfc3339(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_oci_global_flags_are_shown_once_at_the_top() {
        let mut cmd = Cli::command();
        let top = cmd.render_long_help().to_string();
        assert_eq!(top.matches("--systemd-cgroup").count(), 1, "{top}");
        for sub in cmd.get_subcommands_mut() {
            let help = sub.render_long_help().to_string();
            for flag in ["--log-format", "--systemd-cgroup", "--debug"] {
                assert!(!help.contains(flag), "{}: {flag}\n{help}", sub.get_name());
            }
        }
    }

    #[test]
    fn the_version_names_the_spec_the_engine_follows() {
        assert!(VERSION.ends_with(&format!("spec: {}", minicontainer::spec::OCI_VERSION)));
    }

    #[test]
    fn log_is_found_in_a_command_line_clap_refused() {
        let args = |a: &[&str]| log_of(a.iter().map(std::ffi::OsString::from));
        assert_eq!(
            args(&[
                "--log",
                "/x/log.json",
                "--log-format",
                "json",
                "pause",
                "id"
            ]),
            Some((PathBuf::from("/x/log.json"), true))
        );
        assert_eq!(
            args(&["--log=/l", "bogus"]),
            Some((PathBuf::from("/l"), false))
        );
        assert_eq!(args(&["bogus"]), None);
    }

    #[test]
    fn log_times_are_rfc3339_in_utc() {
        let at = |s: u64| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z", "a leap day");
        assert_eq!(
            at(1_796_289_903),
            "2026-12-03T09:25:03Z",
            "date -u -d @1796289903"
        );
    }
}
