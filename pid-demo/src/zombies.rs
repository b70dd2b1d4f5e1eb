//! zombies (PID-11).

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use crate::init;
use crate::{block, host_pid};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::{Reporter, clone_child, exit_code, fork_child};
use labkit::procfs::Proc;
use labkit::sys::wait_signal;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::{Pid, getpid, pause, pipe2};

/// Leave `n` orphans behind, the way a daemon does: fork a middle process that forks the
/// orphan-to-be and exits. Each orphan waits until it has been re-parented (PR_SET_PDEATHSIG),
/// writes "PID-inside host-PID" to a pipe, and exits. Returns once all have exited.
fn leave_orphans(top: &mut Reporter, n: usize) -> Result<Vec<(i32, i32)>> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2()")?;
    for _ in 0..n {
        let mut middle = fork_child(|_| {
            let mut orphan = fork_child(|o| {
                let usr1 = block(Signal::SIGUSR1)?;
                nix::sys::prctl::set_pdeathsig(Signal::SIGUSR1)
                    .context("prctl(PR_SET_PDEATHSIG)")?;
                o.ready();
                wait_signal(&usr1).context("sigwaitinfo(SIGUSR1)")?;
                let mut pipe = std::fs::File::from(write_end.try_clone()?);
                // One write(2) of less than PIPE_BUF bytes: atomic, never mixed with another
                // orphan's line (writeln! may split a line into several writes).
                pipe.write_all(format!("{} {}\n", getpid(), host_pid()?).as_bytes())?;
                Ok(0)
            })?;
            orphan.wait_ready()?;
            orphan.detach();
            Ok(0)
        })?;
        middle.wait()?;
    }
    // Every orphan holds the write end until it exits: end-of-file means all have exited.
    drop(write_end);
    let mut orphans = Vec::new();
    for line in BufReader::new(std::fs::File::from(read_end)).lines() {
        let line = line?;
        let (inside, host) = line.split_once(' ').context("orphan line")?;
        orphans.push((inside.parse()?, host.parse()?));
    }
    orphans.sort_unstable();
    top.step(format!(
        "fork() x{n}, each child forks and exits: {} orphans, re-parented, exit",
        orphans
            .iter()
            .map(|(p, _)| format!("pid {p}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(orphans)
}

/// `zombies`: the same application twice. First it is PID 1 itself and never reaps the orphans
/// its daemons leave: they stay zombies. Then [`init::run`] is PID 1 and the application its
/// child: init reaps the orphans, and forwards the SIGTERM sent to it from the host.
pub fn zombies(out: &mut Narrator) -> Result<()> {
    out.heading("PID 1 is the application: nobody reaps the orphans");
    let first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1: app");
        let orphans = leave_orphans(top, 3)?;
        for (inside, host) in orphans {
            // WNOWAIT: wait until the orphan is dead, but leave it a zombie.
            waitid(
                Id::Pid(Pid::from_raw(inside)),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
            )
            .with_context(|| format!("waitid({inside}, WEXITED | WNOWAIT)"))?;
            let state = Proc::host().state(host)?;
            top.say(format!(
                "pid {inside}: state {state}{}",
                if state == 'Z' {
                    " (zombie: dead, never reaped)"
                } else {
                    ""
                }
            ));
            top.data(format!("{host} {state}"));
        }
        Ok(0)
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {}", first.pid()),
    );
    let done = first.finish(out, "pid 1: app")?;
    let zombies = done.data.iter().filter(|d| d.ends_with(" Z")).count();
    out.say(
        "host",
        format!("{zombies} zombies until the namespace ended"),
    );

    out.heading("PID 1 is an init: it reaps orphans and forwards signals");
    let mut first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1: init");
        top.step("init::run(app): block signals, fork the app, sigwaitinfo() in a loop");
        let report = init::run(|_| {
            top.speaker("pid 2: app");
            let orphans = leave_orphans(top, 3)?;
            for (inside, host) in orphans {
                // Reaped by init: the entry disappears from /proc (a state change, not a sleep).
                let gone = wait_until_gone(inside, host, Duration::from_secs(10))?;
                top.say(format!(
                    "pid {inside}: {}",
                    if gone {
                        "gone: init reaped it"
                    } else {
                        "still there"
                    }
                ));
                top.data(format!("{host} {}", if gone { "reaped" } else { "left" }));
            }
            top.step("pause(): waiting for a signal");
            top.ready();
            pause();
            Ok(0)
        })?;
        top.speaker("pid 1: init");
        top.step(format!(
            "the app ended with {} ({}); init reaped {} orphans, forwarded {} signal{}",
            report.exit_code,
            if report.exit_code > 128 {
                format!("killed by signal {}", report.exit_code - 128)
            } else {
                "its exit status".into()
            },
            report.reaped_orphans,
            report.forwarded,
            if report.forwarded == 1 { "" } else { "s" }
        ));
        Ok(report.exit_code)
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {}", first.pid()),
    );
    first.relay_until_ready(out, "pid 1: init")?;
    // ANCHOR: stop
    kill(first.pid(), Signal::SIGTERM).context("kill(SIGTERM)")?;
    // ANCHOR_END: stop
    out.step(
        "host",
        format!(
            "kill({}, SIGTERM) -> 0  (what `docker stop` sends first)",
            first.pid()
        ),
    );
    let done = first.finish(out, "pid 1: init")?;
    out.step(
        "host",
        format!(
            "waitpid({}) -> exit code {}",
            done.status.pid().map_or(0, Pid::as_raw),
            exit_code(done.status)
        ),
    );
    Ok(())
}

/// Wait until `/proc/PID` is gone (the process was reaped), for at most `limit`: its pidfd
/// (opened by its PID `inside`, in the caller's namespace) turns readable when it exits, then
/// the reap by init follows, which no event announces.
fn wait_until_gone(inside: i32, host: i32, limit: Duration) -> Result<bool> {
    let proc = Proc::host();
    let start = Instant::now();
    labkit::wait::process_exit(inside, limit)?;
    labkit::wait::until(limit.saturating_sub(start.elapsed()), || {
        Ok(!proc.exists(host))
    })
}
