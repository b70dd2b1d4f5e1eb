//! show.

use crate::{names, uts_inode};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::fork_child;
use labkit::ns::{self, NsFile};
use nix::sched::{CloneFlags, setns};
use nix::unistd::getpid;

/// `show [--pid PID]`: the hostname, domain name and UTS namespace of a process.
///
/// For this process `uname(2)` answers. For another process in the same UTS namespace too; for
/// one in another namespace, a forked child joins it with `setns(2)` and asks `uname(2)` there
/// (there is no system call that reads another namespace's hostname from outside).
pub fn show(out: &mut Narrator, pid: Option<i32>) -> Result<()> {
    let own = uts_inode()?;
    let Some(pid) = pid.filter(|&p| p != getpid().as_raw()) else {
        out.step(
            "host",
            format!("readlink(/proc/self/ns/uts) -> uts:[{own}]"),
        );
        let (host, domain) = names()?;
        out.step("host", "uname()");
        out.say("host", format!("hostname   \"{host}\""));
        out.say("host", format!("domainname \"{domain}\""));
        return Ok(());
    };
    ns::check_pid(pid)?;
    let theirs = ns::inode(Some(pid), "uts")?;
    out.step(
        "host",
        format!("readlink(/proc/{pid}/ns/uts) -> uts:[{theirs}]"),
    );
    if theirs == own {
        out.say(
            "host",
            format!(
                "the same UTS namespace as this process (uts:[{own}]), so uname() answers for it"
            ),
        );
        let (host, domain) = names()?;
        out.step("host", "uname()");
        out.say("host", format!("hostname   \"{host}\""));
        out.say("host", format!("domainname \"{domain}\""));
        return Ok(());
    }
    out.say(
        "host",
        format!("another UTS namespace than this process's (uts:[{own}])"),
    );
    let target = NsFile::open(&ns::ns_dir(Some(pid)).join("uts"))?;
    // A UTS namespace made in another user namespace (a rootless demo's) can be joined only with
    // CAP_SYS_ADMIN in that user namespace: join it first, as nsenter does.
    let their_user = NsFile::open(&ns::ns_dir(Some(pid)).join("user"))?;
    let user = (their_user.inode != ns::inode(None, "user")?).then_some(their_user);
    let child = fork_child(move |child| {
        if let Some(user) = user {
            setns(&user.file, CloneFlags::CLONE_NEWUSER)
                .with_context(|| format!("setns(/proc/{pid}/ns/user, CLONE_NEWUSER)"))?;
            child.step(format!("setns(/proc/{pid}/ns/user, CLONE_NEWUSER)"));
        }
        child.step(format!("setns(/proc/{pid}/ns/uts, CLONE_NEWUTS)"));
        setns(&target.file, CloneFlags::CLONE_NEWUTS)
            .with_context(|| format!("setns(/proc/{pid}/ns/uts, CLONE_NEWUTS)"))?;
        let (host, domain) = names()?;
        child.step("uname()");
        child.say(format!("hostname   \"{host}\""));
        child.say(format!("domainname \"{domain}\""));
        Ok(0)
    })?;
    out.step("host", format!("fork() -> child pid {}", child.pid()));
    child.finish(out, "child")?;
    Ok(())
}
