//! monitor (PID-10).

use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::{clone_child, fork_child};
use labkit::ns::{self, NsFile};
use labkit::procfs::Proc;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::pause;

/// A process seen from the host, as a member of the watched namespace.
#[derive(Debug, Clone)]
struct Member {
    host: i32,
    inside: i32,
    ppid: i32,
    comm: String,
}

/// The processes of the PID namespace of `pid` (and of namespaces below it), from the host's
/// `/proc`: each one's host PID, its PID in that namespace, and its parent.
fn members(pid: i32) -> Result<(u64, usize, Vec<Member>)> {
    ns::check_pid(pid)?;
    let proc = Proc::host();
    let target = NsFile::open(&ns::ns_dir(Some(pid)).join("pid"))?;
    let level = proc.nspid(pid)?.len();
    let mut found = Vec::new();
    for p in proc.pids()? {
        // A process of the namespace or of one below it has a number at the namespace's level.
        let Ok(nspid) = proc.nspid(p) else { continue }; // gone meanwhile
        if nspid.len() < level {
            continue;
        }
        let Ok(own) = ns::inode(Some(p), "pid") else {
            continue;
        };
        if own != target.inode && !descends_from(p, target.inode, nspid.len() - level)? {
            continue;
        }
        found.push(Member {
            host: p,
            inside: nspid[level - 1],
            ppid: proc.ppid(p).unwrap_or(0),
            comm: proc.comm(p).unwrap_or_default(),
        });
    }
    Ok((target.inode, level, found))
}

/// Whether the PID namespace of `pid` has `ancestor` among its first `hops` parents
/// (`ioctl(NS_GET_PARENT)`).
fn descends_from(pid: i32, ancestor: u64, hops: usize) -> Result<bool> {
    let Ok(mut ns) = NsFile::open(&ns::ns_dir(Some(pid)).join("pid")) else {
        return Ok(false);
    };
    for _ in 0..hops {
        ns = match ns.parent() {
            Ok(parent) => parent,
            Err(_) => return Ok(false),
        };
        if ns.inode == ancestor {
            return Ok(true);
        }
    }
    Ok(false)
}

fn print_tree(out: &Narrator, members: &[Member]) {
    let hosts: Vec<i32> = members.iter().map(|m| m.host).collect();
    let roots: Vec<&Member> = members
        .iter()
        .filter(|m| !hosts.contains(&m.ppid))
        .collect();
    fn walk(out: &Narrator, all: &[Member], m: &Member, prefix: &str, last: bool, root: bool) {
        let branch = if root {
            ""
        } else if last {
            "└── "
        } else {
            "├── "
        };
        out.raw(format!(
            "{prefix}{branch}{} {}  (host pid {})",
            m.inside, m.comm, m.host
        ));
        let kids: Vec<&Member> = all.iter().filter(|c| c.ppid == m.host).collect();
        let next = if root {
            prefix.to_string()
        } else {
            format!("{prefix}{}", if last { "    " } else { "│   " })
        };
        for (i, k) in kids.iter().enumerate() {
            walk(out, all, k, &next, i + 1 == kids.len(), false);
        }
    }
    for r in roots {
        walk(out, members, r, "", true, true);
    }
}

/// `monitor PID`: from the host, every process of the PID namespace that PID is in, with its
/// host PID and its PID inside, as a tree.
pub fn monitor_pid(out: &mut Narrator, pid: i32) -> Result<()> {
    let (inode, level, mut found) = members(pid)?;
    found.sort_by_key(|m| (m.inside, m.host));
    out.step(
        "host",
        format!(
            "readlink(/proc/{pid}/ns/pid) -> pid:[{inode}], level {} below the host's",
            level - 1
        ),
    );
    out.step(
        "host",
        format!(
            "scan /proc/*/status (NSpid:) and /proc/*/ns/pid: {} process{}",
            found.len(),
            if found.len() == 1 { "" } else { "es" }
        ),
    );
    out.raw("PID inside, command, (PID in the host):");
    print_tree(out, &found);
    Ok(())
}

/// `monitor` without a PID: start a small namespace (an init, two workers, one of them with a
/// child), watch it from the host, then end it.
pub fn monitor_demo(out: &mut Narrator) -> Result<()> {
    let mut first = clone_child(CloneFlags::CLONE_NEWPID, |top| {
        top.speaker("pid 1");
        let spawn = |grandchild: bool| {
            fork_child(move |w| {
                if grandchild {
                    let mut gc = fork_child(|g| {
                        g.ready();
                        pause();
                        Ok(0)
                    })?;
                    gc.wait_ready()?;
                    gc.detach();
                }
                w.ready();
                pause();
                Ok(0)
            })
        };
        for grandchild in [true, false] {
            let mut worker = spawn(grandchild)?;
            worker.wait_ready()?;
            top.step(format!("fork() -> pid {}", worker.pid()));
            worker.detach();
        }
        top.ready_and_wait()?;
        Ok(0)
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWPID | SIGCHLD) -> child pid {}", first.pid()),
    );
    first.relay_until_ready(out, "pid 1")?;
    monitor_pid(out, first.pid().as_raw())?;
    kill(first.pid(), Signal::SIGKILL).context("kill(SIGKILL)")?;
    first.wait()?;
    out.step(
        "host",
        format!(
            "kill({}, SIGKILL): the namespace ends with its init",
            first.pid()
        ),
    );
    Ok(())
}
