//! clone.

use crate::{hostname, names, uts_inode, validate_name};
use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::clone_child;
use labkit::narrate::table;
use nix::sched::{CloneFlags, unshare};
use nix::unistd::sethostname;

/// What a child reported about its UTS namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildView {
    /// The child's UTS namespace inode.
    pub inode: u64,
    /// The hostname the parent reads after the child is done.
    pub parent_sees: String,
}

/// Run one child with `flags`, have it set the hostname (and domain name), and report what the
/// parent sees afterwards.
// ANCHOR: clone_and_rename
fn clone_and_rename(
    out: &mut Narrator,
    flags: CloneFlags,
    name: &str,
    domain: Option<&str>,
) -> Result<ChildView> {
    let child = clone_child(flags, |child| {
        // This closure runs in the child, on the stack clone_child gave it.
        // ANCHOR_END: clone_and_rename
        // lab:begin uts-child-renames
        sethostname(name).with_context(|| format!("sethostname(\"{name}\")"))?;
        child.step(format!("sethostname(\"{name}\")"));
        if let Some(domain) = domain {
            labkit::sys::setdomainname(domain)
                .with_context(|| format!("setdomainname(\"{domain}\")"))?;
            child.step(format!("setdomainname(\"{domain}\")"));
        }
        let (host, dom) = names()?;
        child.say(format!(
            "uname() -> hostname \"{host}\", domainname \"{dom}\""
        ));
        child.data(uts_inode()?);
        Ok(0)
        // lab:end uts-child-renames
        // ANCHOR: clone_and_rename_after
    })?;
    let call = if flags.is_empty() {
        "SIGCHLD".to_string()
    } else {
        format!("{} | SIGCHLD", labkit::child::flag_names(flags))
    };
    out.step(
        "parent",
        format!("clone({call}) -> child pid {}", child.pid()),
    );
    let finished = child.finish(out, "child")?;
    let inode: u64 = finished
        .data
        .first()
        .context("the child sent no data line (its UTS inode)")?
        .parse()?;
    let parent_sees = hostname()?;
    Ok(ChildView { inode, parent_sees })
}

// ANCHOR_END: clone_and_rename_after

/// `clone --hostname NAME`: two children made by `clone(2)`, one without and one with
/// `CLONE_NEWUTS`, each setting the hostname; the parent reads its own hostname afterwards.
///
/// Everything happens inside a throw-away UTS namespace (`unshare(CLONE_NEWUTS)` first), so the
/// "without" child, which does change its parent's hostname, never changes the real host's.
pub fn clone_demo(out: &mut Narrator, name: &str, domain: Option<&str>) -> Result<()> {
    validate_name("hostname", name)?;
    if let Some(d) = domain {
        validate_name("domain name", d)?;
    }
    let host_inode = uts_inode()?;
    // ANCHOR: scratch
    // The parent's own scratch UTS namespace: the "without" child renames it, not the host.
    unshare(CloneFlags::CLONE_NEWUTS).context("unshare(CLONE_NEWUTS)")?;
    // ANCHOR_END: scratch
    let (original, original_domain) = names()?;
    let parent_inode = uts_inode()?;
    out.step(
        "parent",
        format!("unshare(CLONE_NEWUTS): uts:[{host_inode}] -> uts:[{parent_inode}]"),
    );
    out.say(
        "parent",
        format!(
            "a scratch copy of the host's names (\"{original}\"), so the real host is never renamed"
        ),
    );

    out.heading("without CLONE_NEWUTS: the child shares the parent's UTS namespace");
    let without = clone_and_rename(out, CloneFlags::empty(), name, domain)?;
    out.say(
        "parent",
        format!(
            "child was in uts:[{}] ({})",
            without.inode,
            same_or_new(without.inode, parent_inode)
        ),
    );
    out.step(
        "parent",
        format!("uname() -> hostname \"{}\"", without.parent_sees),
    );
    // Put the names back, so the second half starts where the first did.
    sethostname(&original).with_context(|| format!("sethostname(\"{original}\")"))?;
    labkit::sys::setdomainname(&original_domain)
        .with_context(|| format!("setdomainname(\"{original_domain}\")"))?;
    out.step(
        "parent",
        format!("sethostname(\"{original}\"): the name back as it was"),
    );

    out.heading("with CLONE_NEWUTS: the child gets a UTS namespace of its own");
    let with = clone_and_rename(out, CloneFlags::CLONE_NEWUTS, name, domain)?;
    out.say(
        "parent",
        format!(
            "child was in uts:[{}] ({})",
            with.inode,
            same_or_new(with.inode, parent_inode)
        ),
    );
    out.step(
        "parent",
        format!("uname() -> hostname \"{}\"", with.parent_sees),
    );

    out.raw("");
    out.raw(
        table(&[
            vec![
                String::new(),
                "without CLONE_NEWUTS".into(),
                "with CLONE_NEWUTS".into(),
            ],
            vec![
                "child's UTS namespace".into(),
                same_or_new(without.inode, parent_inode).into(),
                same_or_new(with.inode, parent_inode).into(),
            ],
            vec![
                "child set hostname to".into(),
                format!("\"{name}\""),
                format!("\"{name}\""),
            ],
            vec![
                "parent then reads".into(),
                format!("\"{}\"", without.parent_sees),
                format!("\"{}\"", with.parent_sees),
            ],
        ])
        .trim_end(),
    );
    Ok(())
}

fn same_or_new(inode: u64, parent: u64) -> &'static str {
    if inode == parent {
        "the parent's"
    } else {
        "a new one"
    }
}
