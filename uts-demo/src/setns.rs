//! setns.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use crate::names;
use crate::unshare::exec_or_done;
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::fork_child;
use labkit::ns::{self, NsFile, NsKind};
use nix::sched::{CloneFlags, setns};
use nix::unistd::getpid;

/// Where `setns` gets its namespace files from.
#[derive(Debug, Clone)]
pub enum JoinTarget {
    /// All namespaces of this process (like `nsenter --all --target PID`).
    Pid(i32),
    /// These namespace files (`/proc/PID/ns/X` or pins).
    Paths(Vec<PathBuf>),
}

/// `setns (--target PID | PATH...) [--type TYPE] [-- CMD...]`: join existing namespaces with
/// `setns(2)`, then run CMD there (by default, print the hostname and namespaces seen there).
///
/// `setns` into a PID namespace does not move the caller, only its future children
/// (`pid_for_children`): then a child is forked to run CMD, as `nsenter` does.
pub fn setns_demo(
    out: &mut Narrator,
    target: &JoinTarget,
    kind: Option<NsKind>,
    cmd: &[String],
) -> Result<ExitCode> {
    let before = ns::list(None)?;
    // Open every file first: once in another mount namespace, /proc paths could mean other things.
    let mut files = Vec::new();
    match target {
        JoinTarget::Pid(pid) => {
            ns::check_pid(*pid)?;
            files = ns::to_join(*pid)?;
            let list = files
                .iter()
                .map(|f| f.kind.name())
                .collect::<Vec<_>>()
                .join(" ");
            out.step(
                "host",
                format!(
                    "open(/proc/{pid}/ns/*): differ from ours: {}",
                    if list.is_empty() { "none" } else { &list }
                ),
            );
        }
        JoinTarget::Paths(paths) => {
            for path in paths {
                let file = NsFile::open(path)?;
                out.step(
                    "host",
                    format!(
                        "open({}) -> {}:[{}] (ioctl NS_GET_NSTYPE: {})",
                        path.display(),
                        file.kind,
                        file.inode,
                        file.kind
                    ),
                );
                files.push(file);
            }
        }
    }
    for file in &files {
        // lab:begin ns-setns-join
        // nstype 0 accepts a namespace of any type; a CLONE_NEW* flag makes the kernel check it.
        let nstype = kind.map_or(CloneFlags::empty(), NsKind::flag);
        let call = format!(
            "setns({}, {})",
            file.path.display(),
            kind.map_or("0", NsKind::flag_name)
        );
        setns(&file.file, nstype).context(call.clone())?;
        out.step("host", call);
        // lab:end ns-setns-join
    }
    // Once in another mount namespace, /proc may be another PID namespace's procfs, where this
    // process has no /proc/self: say what changed from the files joined, not from /proc.
    let joined_mnt = files.iter().any(|f| f.kind == NsKind::Mnt);
    let changed: Vec<String> = if joined_mnt {
        files
            .iter()
            .map(|f| format!("{} -> {}:[{}]", f.kind, f.kind, f.inode))
            .collect()
    } else {
        let after = ns::list(None)?;
        after
            .iter()
            .filter(|l| {
                before
                    .iter()
                    .any(|b| b.name == l.name && b.inode != l.inode)
            })
            .map(|l| format!("{} -> {}", l.name, l.target()))
            .collect()
    };
    out.say(
        "joined",
        format!(
            "/proc/self/ns now differs in: {}",
            if changed.is_empty() {
                "nothing".into()
            } else {
                changed.join(", ")
            }
        ),
    );
    let pid_joined = files.iter().any(|f| f.kind == NsKind::Pid);
    if pid_joined {
        out.say("joined", "pid itself is unchanged: setns moves only the children made from now on (pid_for_children)");
    }
    if !pid_joined {
        if cmd.is_empty() {
            let (host, domain) = names()?;
            out.step(
                "joined",
                format!("uname() -> hostname \"{host}\", domainname \"{domain}\""),
            );
            return Ok(ExitCode::SUCCESS);
        }
        return exec_or_done(out, "joined", cmd);
    }
    // A PID namespace was joined: only a child is in it.
    let cmd = cmd.to_vec();
    let runs_a_program = !cmd.is_empty();
    let mut child = fork_child(move |child| {
        child.step(format!(
            "getpid() -> pid {} (numbered by the joined PID namespace)",
            getpid()
        ));
        let (host, _) = names()?;
        child.say(format!("uname() -> hostname \"{host}\""));
        if let Some((program, args)) = cmd.split_first() {
            child.step(format!("execvp(\"{program}\")"));
            // The program writes to stdout itself: let the parent print our steps first.
            child.ready_and_wait()?;
            let err = Command::new(program).args(args).exec();
            return Err(err).with_context(|| format!("execvp(\"{program}\")"));
        }
        Ok(0)
    })?;
    out.step(
        "joined",
        format!(
            "fork() -> child pid {} (in our PID namespace's numbering)",
            child.pid()
        ),
    );
    if runs_a_program {
        child.relay_until_ready(out, "child")?;
        child.release()?;
    }
    let finished = child.finish(out, "child")?;
    Ok(ExitCode::from(
        u8::try_from(finished.exit_code()).unwrap_or(1),
    ))
}
