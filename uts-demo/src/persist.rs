//! persist / unpin.

use std::path::Path;

use crate::{hostname, uts_inode, validate_name};
use anyhow::{Context, Result, bail};
use labkit::child::{clone_child, fork_child};
use labkit::errors::MissingFeature;
use labkit::ns::{self, NsFile};
use labkit::rootless::Privilege;
use labkit::{Narrator, bad_input};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns};
use nix::unistd::sethostname;

/// Create a child in a new UTS namespace that sets `name`, and wait until it is ready to exit.
fn start_named_child(out: &mut Narrator, name: &str) -> Result<labkit::child::Child> {
    let mut child = clone_child(CloneFlags::CLONE_NEWUTS, |child| {
        // lab:begin uts-named-child
        sethostname(name).with_context(|| format!("sethostname(\"{name}\")"))?;
        child.step(format!("sethostname(\"{name}\")"));
        child.ready_and_wait()?;
        Ok(0)
        // lab:end uts-named-child
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWUTS | SIGCHLD) -> child pid {}", child.pid()),
    );
    child.relay_until_ready(out, "child")?;
    Ok(child)
}

fn end_child(out: &mut Narrator, mut child: labkit::child::Child) -> Result<()> {
    child.release()?;
    let pid = child.pid();
    let finished = child.finish(out, "child")?;
    out.step(
        "host",
        format!(
            "waitpid({pid}) -> exit code {}: no process is left in that namespace",
            finished.exit_code()
        ),
    );
    Ok(())
}

/// `persist --hostname NAME [--pin FILE]`: a namespace outlives its last process while something
/// refers to it.
///
/// Without `--pin`, an open file descriptor holds it, all within this run. With `--pin FILE`,
/// `/proc/CHILD/ns/uts` is bind-mounted onto FILE (as `ip netns add` does for network
/// namespaces), and it stays until `unpin FILE`.
pub fn persist(
    out: &mut Narrator,
    name: &str,
    pin: Option<&Path>,
    privilege: Privilege,
) -> Result<()> {
    validate_name("hostname", name)?;
    if let Some(pin) = pin {
        if privilege.is_rootless() {
            return Err(anyhow::Error::new(MissingFeature(format!(
                "--pin {} needs root: a rootless demo can only mount inside its own mount namespace, \
                 which ends with it (run without --pin to see a namespace kept alive by an open fd)",
                pin.display()
            ))));
        }
        if pin.exists() {
            return Err(bad_input(format!(
                "{} already exists; choose a new file for the pin",
                pin.display()
            )));
        }
        let dir = pin
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(bad_input(format!("{} is not a directory", dir.display())));
        }
    }
    // With --pin, Ctrl-C waits until the pin is whole (or removed again): never a bare file.
    let _hold = pin
        .map(|_| labkit::signals::hold_interrupts())
        .transpose()?;
    let child = start_named_child(out, name)?;
    let source = ns::ns_dir(Some(child.pid().as_raw())).join("uts");
    let Some(pin) = pin else {
        // ANCHOR: hold_fd
        let held = NsFile::open(&source)?;
        // ANCHOR_END: hold_fd
        out.step(
            "host",
            format!(
                "open({}) -> uts:[{}], kept open",
                source.display(),
                held.inode
            ),
        );
        end_child(out, child)?;
        let inode = held.inode;
        let joiner = fork_child(|c| {
            setns(&held.file, CloneFlags::CLONE_NEWUTS).context("setns(held fd, CLONE_NEWUTS)")?;
            c.step(format!(
                "setns(held fd, CLONE_NEWUTS) -> now in uts:[{}]",
                uts_inode()?
            ));
            c.say(format!(
                "uname() -> hostname \"{}\": the namespace outlived its last process",
                hostname()?
            ));
            Ok(0)
        })?;
        out.step("host", format!("fork() -> child pid {}", joiner.pid()));
        joiner.finish(out, "child")?;
        drop(held);
        out.step(
            "host",
            format!("close(fd): the last reference to uts:[{inode}] is gone; the kernel frees it"),
        );
        return Ok(());
    };
    // ANCHOR: pin
    std::fs::File::create(pin).with_context(|| format!("create({})", pin.display()))?;
    let pinned = mount(
        Some(&source),
        pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| {
        format!(
            "mount(\"{}\", \"{}\", MS_BIND)",
            source.display(),
            pin.display()
        )
    });
    // ANCHOR_END: pin
    if let Err(err) = pinned {
        let _ = std::fs::remove_file(pin);
        return Err(err);
    }
    out.step(
        "host",
        format!("mount --bind {} {}", source.display(), pin.display()),
    );
    end_child(out, child).inspect_err(|_| {
        let _ = umount2(pin, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(pin);
    })?;
    let held = NsFile::open(pin)?;
    out.step(
        "host",
        format!(
            "open({}) -> {}:[{}]: still alive, held by the bind mount",
            pin.display(),
            held.kind,
            held.inode
        ),
    );
    out.say(
        "host",
        format!("join it:   uts-demo setns {} -- hostname", pin.display()),
    );
    out.say(
        "host",
        format!("remove it: uts-demo unpin {}", pin.display()),
    );
    Ok(())
}

/// `unpin FILE`: unmount a pin made by `persist --pin` and remove the file. Once no process and
/// no file refer to the namespace, the kernel frees it.
pub fn unpin(out: &mut Narrator, pin: &Path) -> Result<()> {
    // lab:begin ns-unpin
    let held = NsFile::open(pin)?;
    out.step(
        "host",
        format!("open({}) -> {}:[{}]", pin.display(), held.kind, held.inode),
    );
    drop(held);
    umount2(pin, MntFlags::empty()).with_context(|| format!("umount2({})", pin.display()))?;
    out.step("host", format!("umount2({})", pin.display()));
    match NsFile::open(pin) {
        Ok(still) => bail!(
            "{} is still a namespace file after umount ({}:[{}])",
            pin.display(),
            still.kind,
            still.inode
        ),
        Err(_) => out.say(
            "host",
            format!("{} is a plain empty file again", pin.display()),
        ),
    }
    std::fs::remove_file(pin).with_context(|| format!("unlink({})", pin.display()))?;
    out.step("host", format!("unlink({})", pin.display()));
    Ok(())
    // lab:end ns-unpin
}
