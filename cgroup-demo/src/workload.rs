//! helpers for processes that use resources.

use std::fs;

use crate::waiting_child;
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::Child;
use nix::sys::signal::{Signal, kill};

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`, in seconds.
pub fn cpu_seconds(pid: i32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the state (f[0]): utime is field 14 of the line, f[11]; stime f[12].
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    Ok(ticks as f64 / hz)
}

/// A child that spins on the CPU once released, until killed.
pub(crate) fn spinner(out: &mut Narrator, name: &str) -> Result<Child> {
    waiting_child(out, name, |_| {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    })
}

pub(crate) fn end(child: Child) -> Result<()> {
    let mut child = child;
    let _ = kill(child.pid(), Signal::SIGKILL);
    child.wait()?;
    Ok(())
}
