//! Running containers by name: `ps`, `exec`, `stop`.
//!
//! A running container's state is in its work directory (`/tmp/nslab-ctr-PID-N`, which exists
//! exactly as long as the `minicontainer run` with that PID): `name`, `pid` (the host PID of its
//! PID 1), `command`, and `cgroups` (the `cgroup.procs` files of its limit groups). There is no
//! daemon: `ps` reads these files, `exec` joins the namespaces of the PID 1 with setns(2) as
//! `docker exec` (runc's `exec`) does, and `stop` signals the `minicontainer` that runs it.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use labkit::child::fork_child;
use labkit::{Narrator, bad_input};
use nix::sched::setns;

/// A container that is running now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub name: String,
    /// Host PID of the `minicontainer run` process.
    pub runner: i32,
    /// Host PID of the container's PID 1.
    pub pid: i32,
    pub command: String,
    pub dir: PathBuf,
    /// The `cgroup.procs` files of its limit groups.
    pub cgroups: Vec<PathBuf>,
}

/// Check a `--name`: 1 to 64 of `[A-Za-z0-9_.-]`, starting with a letter or digit (Docker's rule).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad_input(format!(
            "--name {name:?}: 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )))
    }
}

/// Record a running container in its work directory.
pub fn record(dir: &Path, name: &str, pid: i32, command: &str, cgroups: &[PathBuf]) -> Result<()> {
    let files = [
        ("pid", pid.to_string()),
        ("command", command.to_string()),
        (
            "cgroups",
            cgroups
                .iter()
                .map(|p| format!("{}\n", p.display()))
                .collect(),
        ),
        // Written last: a directory with a name is complete.
        ("name", name.to_string()),
    ];
    for (file, text) in files {
        fs::write(dir.join(file), text)
            .with_context(|| format!("write {}", dir.join(file).display()))?;
    }
    Ok(())
}

/// A run's work directory (`TMP/nslab-ctr-PID-N`), with the PID of its `minicontainer run`.
#[derive(Debug, Clone)]
pub struct WorkDir {
    pub path: PathBuf,
    pub runner: i32,
}

impl WorkDir {
    /// Whether its `minicontainer run` is still there (if not, `gc` removes the directory).
    pub fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.runner)).exists()
    }
}

/// Every run's work directory, living or left behind.
pub fn work_dirs() -> Vec<WorkDir> {
    let Ok(dir) = fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let runner = file
                .strip_prefix("nslab-ctr-")?
                .split('-')
                .next()?
                .parse()
                .ok()?;
            Some(WorkDir {
                path: e.path(),
                runner,
            })
        })
        .collect()
}

/// Every running container, oldest first.
pub fn running() -> Vec<Running> {
    let mut found: Vec<(std::time::SystemTime, Running)> = work_dirs()
        .into_iter()
        .filter(WorkDir::alive)
        .filter_map(|WorkDir { path: dir, runner }| {
            let read = |f: &str| fs::read_to_string(dir.join(f)).ok();
            let name = read("name")?;
            let pid = read("pid")?.trim().parse().ok()?;
            let running = Running {
                name,
                runner,
                pid,
                command: read("command").unwrap_or_default(),
                cgroups: read("cgroups")
                    .unwrap_or_default()
                    .lines()
                    .map(PathBuf::from)
                    .collect(),
                dir,
            };
            Some((fs::metadata(&running.dir).ok()?.modified().ok()?, running))
        })
        .collect();
    found.sort_by_key(|(t, _)| *t);
    found.into_iter().map(|(_, r)| r).collect()
}

/// The running container called `name`.
pub fn find(name: &str) -> Result<Running> {
    running()
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| {
            bad_input(format!(
                "no running container is called {name:?} (see minicontainer ps)"
            ))
        })
}

/// `ps`: a table of the running containers.
pub fn ps() -> String {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "PID".into(),
        "RUNNER".into(),
        "COMMAND".into(),
    ]];
    for r in running() {
        rows.push(vec![
            r.name,
            r.pid.to_string(),
            r.runner.to_string(),
            r.command,
        ]);
    }
    labkit::narrate::table(&rows)
}

/// `exec NAME -- CMD`: run CMD in a running container, as `docker exec` does: join its cgroups,
/// then its namespaces with setns(2) (user first, mount last), fork (a PID namespace takes only
/// the children of a process that joins it), cut the capabilities as `run` does, and exec.
/// Returns CMD's exit status.
pub fn exec(out: &mut Narrator, name: &str, cmd: &[String]) -> Result<i32> {
    let ctr = find(name)?;
    let pid = ctr.pid;
    // The container's own description: the same user, capabilities, environment and seccomp
    // filter as its first process (read before setns: /tmp is the host's until then).
    let plan = crate::spec::Plan::new(&crate::spec::load(&ctr.dir)?)?;
    let filters = plan.seccomp_programs()?;
    // Open every namespace file first: after setns(mnt), /proc is the container's.
    let files = labkit::ns::to_join(pid)?;
    // ANCHOR: exec
    for procs in &ctr.cgroups {
        fs::write(procs, std::process::id().to_string())
            .with_context(|| format!("echo {} > {}", std::process::id(), procs.display()))?;
    }
    if !ctr.cgroups.is_empty() {
        out.step(
            "exec",
            "echo $$ > cgroup.procs of each of the container's limit groups",
        );
    }
    for file in &files {
        setns(&file.file, file.kind.flag()).with_context(|| {
            format!(
                "setns(/proc/{pid}/ns/{}, {})",
                file.kind.name(),
                file.kind.flag_name()
            )
        })?;
    }
    // ANCHOR_END: exec
    out.step(
        "exec",
        format!(
            "setns(/proc/{pid}/ns/X) for X in: {}",
            files
                .iter()
                .map(|f| f.kind.name())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    let cmd = cmd.to_vec();
    let mut child = fork_child(move |r| {
        r.speaker("container");
        nix::unistd::chdir(&plan.cwd).with_context(|| format!("chdir({})", plan.cwd.display()))?;
        crate::apply_identity(&plan)?;
        crate::seccomp::install(&filters)?;
        r.step(format!(
            "fork() -> pid {} in the container; the config's user, capabilities, PR_SET_NO_NEW_PRIVS, seccomp; execvp({:?})",
            nix::unistd::getpid(),
            cmd.join(" ")
        ));
        r.ready_and_wait()?;
        let mut command = Command::new(&cmd[0]);
        command.args(&cmd[1..]).env_clear().envs(plan.env_pairs());
        let err = command.exec();
        Err(err).with_context(|| format!("execvp(\"{}\")", cmd[0]))
    })?;
    child.relay_until_ready(out, "container")?;
    child.release()?;
    let done = child.finish(out, "container")?;
    Ok(done.exit_code())
}

/// `stop NAME`: SIGTERM to its `minicontainer run` (which passes it to the container), then,
/// after `grace`, SIGKILL to the container's PID 1 (the run then cleans up). Returns what it took.
pub fn stop(out: &mut Narrator, name: &str, grace: Duration) -> Result<&'static str> {
    let ctr = find(name)?;
    let runner = labkit::signals::PidFd::open(ctr.runner)?;
    let init = labkit::signals::PidFd::open(ctr.pid)?;
    runner.send(nix::sys::signal::Signal::SIGTERM)?;
    out.step(
        "stop",
        format!(
            "pidfd_send_signal(minicontainer {}, SIGTERM): passed on to the container",
            ctr.runner
        ),
    );
    let started = Instant::now();
    if runner.wait_exit(grace)? {
        out.step(
            "stop",
            format!("ended after {:.1} s", started.elapsed().as_secs_f64()),
        );
        return Ok("SIGTERM");
    }
    init.send(nix::sys::signal::Signal::SIGKILL)?;
    out.step(
        "stop",
        format!(
            "still running after {} s: pidfd_send_signal(PID 1 = {}, SIGKILL)",
            grace.as_secs(),
            ctr.pid
        ),
    );
    runner.wait_exit(Duration::from_secs(10))?;
    Ok("SIGKILL")
}

/// `kill [-s SIGNAL] NAME`: send a signal to the container's PID 1 (through a pidfd).
pub fn kill(out: &mut Narrator, name: &str, signal: nix::sys::signal::Signal) -> Result<()> {
    let ctr = find(name)?;
    labkit::signals::PidFd::open(ctr.pid)?.send(signal)?;
    out.step(
        "kill",
        format!("pidfd_send_signal(PID 1 = {}, {signal})", ctr.pid),
    );
    Ok(())
}

/// A signal by name (`TERM`, `SIGTERM`) or number (`15`).
pub fn parse_signal(text: &str) -> Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    let upper = text.to_ascii_uppercase();
    let named = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    text.parse::<i32>()
        .ok()
        .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
        .or_else(|| nix::sys::signal::Signal::from_str(&named).ok())
        .ok_or_else(|| {
            bad_input(format!(
                "signal {text:?}: not a signal name or number (TERM, SIGKILL, HUP, 9, ...)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("1").unwrap(), Signal::SIGHUP);
        assert!(parse_signal("NOPE").is_err());
        assert!(validate_name("web-1.a_b").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("a/b").is_err());
    }
}
