//! `nslab-init [--tty PATH] -- CMD [ARG...]`: a container's PID 1 with `minicontainer run
//! --init` (the default), as `docker run --init` has `docker-init`.
//!
//! It is `pid_demo::init` (the PID chapter's init: it reaps every orphan and forwards signals to
//! the command), and nothing else: a program of its own, linked statically so that it runs in
//! any root filesystem (a busybox image has no C library of the host's). minicontainer embeds
//! it (its build script builds this crate with `crt-static`) and execs it from a sealed memfd,
//! so the container's PID 1 is an exec'd program with only the spec's environment, its own
//! command line, and no descriptor of the runtime's: not a clone of the runtime, which would
//! keep the caller's environment, command line and pipes to the host.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

/// The name it runs under (`argv[0]`, `/proc/1/cmdline`'s first word).
const NAME: &str = "nslab-init";

/// `[--tty PATH] -- CMD ARG...`: the terminal and the command.
fn parse(args: &[OsString]) -> Result<(Option<PathBuf>, Vec<OsString>)> {
    let mut rest = args;
    let mut tty = None;
    if rest.first().is_some_and(|a| a == "--tty") {
        tty = Some(PathBuf::from(rest.get(1).context("--tty PATH")?));
        rest = &rest[2..];
    }
    match rest.split_first() {
        Some((dashes, cmd)) if dashes == "--" && !cmd.is_empty() => Ok((tty, cmd.to_vec())),
        _ => anyhow::bail!("usage: {NAME} [--tty PATH] -- CMD [ARG...]"),
    }
}

fn run(args: &[OsString]) -> Result<i32> {
    let (tty, cmd) = parse(args)?;
    // Its name in ps (exec'd from a memfd, it would be the descriptor's number).
    nix::sys::prctl::set_name(c"nslab-init").context("prctl(PR_SET_NAME)")?;
    let report = pid_demo::init::run(move |_| {
        if let Some(path) = &tty {
            // The command leads a session of its own, with the container's terminal as its
            // controlling terminal and its standard input, output and error (login_tty(3)).
            labkit::sys::login_tty_at(path)?;
        }
        let err = Command::new(&cmd[0]).args(&cmd[1..]).exec();
        // Nobody reads this process's report pipe (init reaps it like any child): say it on
        // stderr and end as a shell does when a command cannot be run.
        eprintln!("{NAME}: execvp({:?}): {err}", cmd[0]);
        Ok(127)
    })?;
    Ok(report.exit_code)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let code = run(&args).unwrap_or_else(|e| {
        eprintln!("{NAME}: {e:#}");
        1
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_and_the_command_are_read_from_the_arguments() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let (tty, cmd) = parse(&os(&["--", "sh", "-c", "--tty"])).unwrap();
        assert_eq!((tty, cmd.len()), (None, 3));
        let (tty, cmd) = parse(&os(&["--tty", "/dev/pts/0", "--", "sh"])).unwrap();
        assert_eq!(tty, Some(PathBuf::from("/dev/pts/0")));
        assert_eq!(cmd, os(&["sh"]));
        assert!(parse(&os(&["sh"])).is_err(), "the -- is required");
        assert!(parse(&os(&["--"])).is_err(), "and a command");
    }
}
