//! caps (USER-3).

use std::fmt;
use std::fs;
use std::os::fd::AsFd;

use crate::{IdRange, NOBODY, start_child, write_maps};
use anyhow::{Context, Result};
use caps::CapSet;
use labkit::Narrator;
use nix::sched::{CloneFlags, unshare};
use nix::time::{ClockId, clock_gettime, clock_settime};
use nix::unistd::{Gid, Uid, getegid, geteuid, getuid, sethostname, setresgid, setresuid};

/// A file that only root may read, to try from inside.
fn root_only_file() -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    ["/etc/shadow", "/etc/gshadow", "/root"]
        .into_iter()
        .find(|p| {
            fs::metadata(p).is_ok_and(|m| m.uid() == 0 && m.permissions().mode() & 0o004 == 0)
        })
}

use std::os::unix::fs::MetadataExt;

pub(crate) fn outcome<T>(r: Result<T, impl fmt::Display>) -> String {
    match r {
        Ok(_) => "0 (allowed)".into(),
        Err(e) => e.to_string(),
    }
}

fn names(set: CapSet) -> Result<Vec<String>> {
    let mut names: Vec<String> = caps::read(None, set)
        .context("capget()")?
        .iter()
        .map(ToString::to_string)
        .collect();
    names.sort();
    Ok(names)
}

/// `caps`: root in a new user namespace holds every capability, which works on what its user
/// namespace owns (a UTS namespace it creates) and not on the host's (hostname, files, modules).
pub fn capabilities(out: &mut Narrator) -> Result<()> {
    // As real root, map 0 inside to nobody outside, so that "root inside" is an ordinary user
    // outside, as in a rootless container. As a user, map 0 to yourself.
    let outer = if geteuid().is_root() {
        NOBODY
    } else {
        geteuid().as_raw()
    };
    let outer_gid = if geteuid().is_root() {
        NOBODY
    } else {
        getegid().as_raw()
    };
    let secret = root_only_file();
    let mut child = start_child(out, CloneFlags::empty(), |c| {
        // ANCHOR: become_root
        // Writing the maps changed how this process's IDs look, not the IDs themselves: become
        // the mapped root (0 inside, `outer` outside), as a runtime does before it execs.
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .context("setresgid(0, 0, 0)")?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .context("setresuid(0, 0, 0)")?;
        // ANCHOR_END: become_root
        c.step("setresgid(0, 0, 0), setresuid(0, 0, 0): become the mapped root");
        // ANCHOR: caps
        let effective = names(CapSet::Effective)?;
        let bounding = names(CapSet::Bounding)?;
        // ANCHOR_END: caps
        c.step(format!(
            "getuid() -> {}; capget(): {} effective capabilities, {} in the bounding set",
            getuid(),
            effective.len(),
            bounding.len()
        ));
        c.say(format!("effective: {}", effective.join(" ")));
        // ANCHOR: tries
        let host = sethostname("nslab-not-allowed");
        c.step(format!(
            "sethostname() in the host's UTS namespace -> {}",
            outcome(host)
        ));
        if let Some(path) = secret {
            let read = fs::read_dir(path)
                .map(drop)
                .or_else(|_| fs::read(path).map(drop));
            c.step(format!(
                "read {path} (root-only on the host) -> {}",
                outcome(read.map_err(|e| errno_name(&e)))
            ));
        }
        let now = clock_gettime(ClockId::CLOCK_REALTIME)?;
        c.step(format!(
            "clock_settime(CLOCK_REALTIME, now) -> {}",
            outcome(clock_settime(ClockId::CLOCK_REALTIME, now))
        ));
        let null = fs::File::open("/dev/null")?;
        let module = labkit::sys::finit_module(null.as_fd());
        let note = if module == Err(nix::errno::Errno::ENOSYS) {
            " (this kernel has no loadable modules at all)"
        } else {
            ""
        };
        c.step(format!(
            "finit_module(/dev/null) -> {}{note}",
            outcome(module)
        ));
        unshare(CloneFlags::CLONE_NEWUTS).context("unshare(CLONE_NEWUTS)")?;
        sethostname("nslab-userns").context("sethostname()")?;
        // ANCHOR_END: tries
        c.step(format!(
            "unshare(CLONE_NEWUTS), sethostname(\"nslab-userns\") -> 0: this UTS namespace is owned by ours; uname: \"{}\"",
            nix::sys::utsname::uname()?.nodename().to_string_lossy()
        ));
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    let uids = [IdRange {
        inside: 0,
        outside: outer,
        count: 1,
    }];
    let gids = [IdRange {
        inside: 0,
        outside: outer_gid,
        count: 1,
    }];
    write_maps(out, pid, &uids, &gids)?;
    if geteuid().is_root() {
        out.say(
            "parent",
            "as real root, 0 inside is mapped to nobody outside: what a rootless container gets",
        );
    }
    child.release()?;
    child.finish(out, "child")?;
    Ok(())
}

pub(crate) fn errno_name(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(
        || e.to_string(),
        |n| nix::errno::Errno::from_raw(n).to_string(),
    )
}
