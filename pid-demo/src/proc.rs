//! proc (PID-9).

use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::clone_child;
use labkit::procfs::Proc;
use nix::mount::{MsFlags, mount};
use nix::sched::CloneFlags;
use nix::unistd::getpid;

/// `proc`: a process in a new PID namespace still sees the host's processes in `/proc`, because
/// `/proc` is the host's procfs; once it mounts a new procfs (in a new mount namespace, made
/// private first), it sees only its own namespace.
pub fn proc_view(out: &mut Narrator) -> Result<()> {
    let child = clone_child(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS, |r| {
        r.speaker("pid 1");
        r.step(format!("getpid() -> {}", getpid()));
        let before = Proc::host().pids()?;
        r.step(format!(
            "ls /proc -> {} processes: still the host's procfs",
            before.len()
        ));
        r.say(format!(
            "readlink(/proc/self) -> pid {}",
            std::fs::read_link("/proc/self")?.display()
        ));
        // ANCHOR: mount_proc
        // Private first: without it, on a host whose / is shared, the new /proc would
        // propagate back into the host's mount namespace.
        labkit::lab::make_root_private()?;
        // ANCHOR_END: mount_proc
        // lab:begin pid-mount-proc
        mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .context("mount(\"proc\", \"/proc\", \"proc\")")?;
        // lab:end pid-mount-proc
        r.step("mount(NULL, \"/\", NULL, MS_REC | MS_PRIVATE)");
        r.step("mount(\"proc\", \"/proc\", \"proc\", MS_NOSUID | MS_NODEV | MS_NOEXEC)");
        let after = Proc::host().pids()?;
        r.step(format!(
            "ls /proc -> {} process{}:",
            after.len(),
            if after.len() == 1 { "" } else { "es" }
        ));
        for pid in &after {
            r.say(format!("{pid:>5}  {}", Proc::host().comm(*pid)?));
        }
        r.say(format!(
            "readlink(/proc/self) -> {}",
            std::fs::read_link("/proc/self")?.display()
        ));
        Ok(0)
    })?;
    out.step(
        "host",
        format!(
            "clone(CLONE_NEWPID | CLONE_NEWNS | SIGCHLD) -> child pid {}",
            child.pid()
        ),
    );
    child.finish(out, "pid 1")?;
    Ok(())
}
