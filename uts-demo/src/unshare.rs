//! unshare.

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use crate::{hostname, uts_inode, validate_name};
use anyhow::{Context, Result};
use labkit::Narrator;
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{getpid, sethostname};

/// `unshare --hostname NAME [-- CMD...]`: this very process (same PID) moves into a new UTS
/// namespace, sets the name there, and optionally becomes CMD (`execvp`).
pub fn unshare_demo(out: &mut Narrator, name: &str, cmd: &[String]) -> Result<ExitCode> {
    validate_name("hostname", name)?;
    let pid = getpid();
    let before = uts_inode()?;
    out.step(
        "self",
        format!("getpid() -> pid {pid}; readlink(/proc/self/ns/uts) -> uts:[{before}]"),
    );
    // ANCHOR: unshare
    unshare(CloneFlags::CLONE_NEWUTS).context("unshare(CLONE_NEWUTS)")?;
    let after = uts_inode()?;
    // ANCHOR_END: unshare
    out.step("self", "unshare(CLONE_NEWUTS)");
    out.say(
        "self",
        format!(
            "getpid() -> pid {} (no new process); now in uts:[{after}]",
            getpid()
        ),
    );
    sethostname(name).with_context(|| format!("sethostname(\"{name}\")"))?;
    out.step("self", format!("sethostname(\"{name}\")"));
    out.say("self", format!("uname() -> hostname \"{}\"", hostname()?));
    exec_or_done(out, "self", cmd)
}

/// `execvp` the command (this process becomes it), or return success when there is none.
pub(crate) fn exec_or_done(out: &mut Narrator, who: &str, cmd: &[String]) -> Result<ExitCode> {
    let Some((program, args)) = cmd.split_first() else {
        return Ok(ExitCode::SUCCESS);
    };
    out.step(who, format!("execvp(\"{program}\") in this namespace"));
    out.flush();
    let err = Command::new(program).args(args).exec();
    Err(err).with_context(|| format!("execvp(\"{program}\")"))
}
