//! ip (listing).

use std::path::Path;

use crate::rtnl::Rtnl;
use crate::{addr_lines, link_lines, route_lines};
use anyhow::{Context, Result};
use labkit::child::fork_child;
use labkit::ns::{NsFile, NsKind};
use labkit::{Narrator, bad_input};
use nix::sched::{CloneFlags, setns};

/// `ip [--pid PID | --netns FILE]`: devices, addresses and routes of a network namespace, read
/// over netlink from a helper that joins it.
pub fn ip_show(out: &mut Narrator, target: Option<&Path>) -> Result<()> {
    let file = target.map(NsFile::open).transpose()?;
    if let Some(f) = &file {
        if f.kind != NsKind::Net {
            return Err(bad_input(format!(
                "{} is a {} namespace, not a network namespace",
                f.path.display(),
                f.kind
            )));
        }
    }
    let child = fork_child(|c| {
        c.speaker("ip");
        if let Some(f) = &file {
            setns(&f.file, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("setns({}, CLONE_NEWNET)", f.path.display()))?;
            c.step(format!(
                "setns({}, CLONE_NEWNET) -> net:[{}]",
                f.path.display(),
                f.inode
            ));
        }
        let rtnl = Rtnl::open()?;
        c.step("RTM_GETLINK (ip link)");
        link_lines(c, &rtnl)?;
        c.step("RTM_GETADDR (ip addr)");
        addr_lines(c, &rtnl)?;
        c.step("RTM_GETROUTE (ip route)");
        if route_lines(c, &rtnl)? == 0 {
            c.say("(no routes)");
        }
        Ok(0)
    })?;
    out.step("host", format!("fork() -> pid {}", child.pid()));
    child.finish(out, "ip")?;
    Ok(())
}
