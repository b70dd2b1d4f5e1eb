//! `exec [-i] [-t] [-e K=V] [-w DIR] [-u UID[:GID]] NAME [--] CMD...`: run a command in a running
//! container, with docker exec's flags and runc exec's (`--process`, `--detach`, `--pid-file`, `--console-socket`, `--tty`, `--cwd`,
//! `--env`, `--user`, `--cap`), as containerd, podman's conmon and CRI-O call it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use labkit::{Narrator, bad_input};
use minicontainer::state::ExecOptions;
use minicontainer::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container's name (see `ps`) or OCI ID (see `list`).
    pub name: String,
    /// runc's --process: a JSON file with the whole process to run (an OCI `process` object).
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the command runs; its exit status is the caller's subreaper's to collect.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the command's host PID here.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Give the command a terminal, its master side sent to this Unix socket.
    #[arg(long = "console-socket", value_name = "SOCK")]
    pub console_socket: Option<PathBuf>,
    /// Give the command a terminal of the container's own: copied to and from yours (docker's
    /// -t), or with --console-socket, its master side sent there (runc's).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Keep standard input attached (it always is, as with runc exec: accepted for docker
    /// exec's -it habit).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Working directory inside the container (docker's -w/--workdir, runc's --cwd).
    #[arg(short = 'w', long, visible_alias = "workdir", value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run as this user (UID[:GID]).
    #[arg(short = 'u', long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Add a capability (CAP_NET_ADMIN, ...) to every set; repeatable.
    #[arg(short = 'c', long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the command.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Pass the caller's descriptors 3 to 2 + N on to the command.
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Print every step.
    #[arg(long)]
    pub explain: bool,
    /// The command and its arguments (after the name, with or without `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

pub fn run(out: &mut Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    out.set_quiet(!args.explain);
    minicontainer::oci::check_preserved(args.preserve_fds)?;
    if args.tty && args.detach && args.console_socket.is_none() {
        return Err(bad_input(
            "exec -d with -t: a detached command has no terminal to attach (give --console-socket)",
        ));
    }
    let process = match &args.process {
        Some(file) => {
            let text = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
            Some(serde_json::from_slice(&text).map_err(|e| {
                bad_input(format!(
                    "--process {}: not an OCI process: {e}",
                    file.display()
                ))
            })?)
        }
        None => None,
    };
    let mut cmd = args.cmd;
    if cmd.first().is_some_and(|a| a == "--") {
        cmd.remove(0);
    }
    if process.is_none() && cmd.is_empty() {
        return Err(bad_input(
            "exec: no command (exec NAME CMD... or --process FILE)",
        ));
    }
    let user = args
        .user
        .as_deref()
        .map(|u| {
            minicontainer::parse_user(u)
                .ok_or_else(|| bad_input(format!("--user {u:?}: expected UID[:GID] as numbers")))
        })
        .transpose()?;
    if let Some(kv) = args.env.iter().find(|kv| !kv.contains('=')) {
        return Err(bad_input(format!("-e {kv:?}: expected KEY=VALUE")));
    }
    let opts = ExecOptions {
        process,
        cmd,
        env: args.env,
        cwd: args.cwd,
        user,
        caps: args.cap,
        no_new_privs: args.no_new_privs,
        terminal: args.tty,
        console_socket: args.console_socket,
        detach: args.detach,
        pid_file: args.pid_file,
        preserve_fds: args.preserve_fds,
    };
    let code = minicontainer::state::exec(out, store, &args.name, &opts)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}
