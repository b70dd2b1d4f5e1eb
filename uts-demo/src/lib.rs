//! The namespace API, shown with the UTS namespace (hostname and NIS domain name).
//!
//! Each public function is one lesson: it makes the syscalls and prints what the kernel
//! answered. The book includes these functions between the `ANCHOR` comments.
#![forbid(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use labkit::child::{clone_child, fork_child};
use labkit::errors::MissingFeature;
use labkit::narrate::table;
use labkit::ns::{self, NsFile, NsKind, NsLink};
use labkit::procfs::Proc;
use labkit::rootless::Privilege;
use labkit::{Narrator, bad_input};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::utsname::uname;
use nix::unistd::{getpid, sethostname};

/// The kernel's limit for a hostname (and a domain name): `__NEW_UTS_LEN` in `<linux/utsname.h>`.
pub const UTS_LEN: usize = 64;

/// Check a hostname before any namespace is made, so bad input leaves nothing behind.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.len() > UTS_LEN {
        return Err(bad_input(format!(
            "{what} is {} bytes long; the kernel's limit is {UTS_LEN} (__NEW_UTS_LEN)",
            name.len()
        )));
    }
    Ok(())
}

/// The names of the caller's UTS namespace, from `uname(2)`.
pub fn names() -> Result<(String, String)> {
    let u = uname().context("uname()")?;
    Ok((
        u.nodename().to_string_lossy().into_owned(),
        u.domainname().to_string_lossy().into_owned(),
    ))
}

fn hostname() -> Result<String> {
    names().map(|(host, _)| host)
}

fn uts_inode() -> Result<u64> {
    ns::inode(None, "uts")
}

// ---------------------------------------------------------------------------------------------
// show

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

// ---------------------------------------------------------------------------------------------
// ns

/// `ns [PID...]`: every namespace link of one or more processes, side by side, marking the
/// namespaces they share and those that differ (like `lsns` restricted to these PIDs).
pub fn ns_table(out: &mut Narrator, pids: &[i32]) -> Result<()> {
    let pids: Vec<i32> = if pids.is_empty() {
        vec![getpid().as_raw()]
    } else {
        pids.to_vec()
    };
    let mut columns: Vec<Vec<NsLink>> = Vec::new();
    for &pid in &pids {
        // ANCHOR: read_ns_links
        // Each entry of /proc/PID/ns is a symlink whose target is "type:[inode]".
        let links = ns::list(Some(pid))?;
        // ANCHOR_END: read_ns_links
        columns.push(links);
    }
    let list = pids
        .iter()
        .map(|p| format!("/proc/{p}/ns"))
        .collect::<Vec<_>>()
        .join(", ");
    out.step("host", format!("readlink() every link in {list}"));
    // Columns are headed A, B, ... and a legend says which PID each is: the PIDs change from run
    // to run, and the table's alignment must not change with them.
    let label = |i: usize| char::from(b'A' + (i % 26) as u8).to_string();
    let legend: Vec<String> = pids
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            format!(
                "{} = pid {p} ({})",
                label(i),
                Proc::host().comm(p).unwrap_or_else(|_| "?".into())
            )
        })
        .collect();
    out.say("host", legend.join(", "));
    let mut header = vec!["LINK".to_string()];
    header.extend((0..pids.len()).map(label));
    if pids.len() > 1 {
        header.push(String::new());
    }
    let mut rows = vec![header];
    let names = &columns[0];
    let (mut shared, mut differ) = (Vec::new(), Vec::new());
    for link in names {
        let mut row = vec![link.name.clone()];
        let inodes: Vec<Option<u64>> = columns
            .iter()
            .map(|c| c.iter().find(|l| l.name == link.name).map(|l| l.inode))
            .collect();
        row.extend(
            inodes
                .iter()
                .map(|i| i.map_or("-".to_string(), |i| format!("{}:[{i}]", link.kind))),
        );
        if pids.len() > 1 {
            if inodes.iter().all(|i| *i == inodes[0]) {
                row.push("shared".into());
                shared.push(link.name.clone());
            } else {
                row.push("DIFFERENT".into());
                differ.push(link.name.clone());
            }
        }
        rows.push(row);
    }
    out.raw(table(&rows).trim_end());
    if pids.len() > 1 {
        if differ.is_empty() {
            out.say(
                "host",
                "every link has the same inode: these processes share all their namespaces",
            );
        } else {
            out.say(
                "host",
                format!(
                    "different inodes, so different namespaces: {}",
                    differ.join(", ")
                ),
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// clone

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
        // lab:begin uts-child-renames tests=clone_changes_the_parents_hostname
        // TODO(lab): rename the child's UTS namespace and report what uname() then says.
        // TODO(lab): Set the hostname (and the domain name when one is given), one step each;
        // TODO(lab): say what uname() answers; send the child's UTS inode to the parent as data.
        // lab:hint nix's sethostname(name) and labkit::sys::setdomainname(domain); names() reads
        // lab:hint both back. The lines: child.step("sethostname(\"NAME\")"), the same for
        // lab:hint setdomainname, child.say("uname() -> hostname \"H\", domainname \"D\""),
        // lab:hint then child.data(uts_inode()?) and Ok(0).
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
    let inode: u64 = finished.data[0].parse()?;
    let parent_sees = hostname()?;
    Ok(ChildView { inode, parent_sees })
}
// ANCHOR_END: clone_and_rename

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

// ---------------------------------------------------------------------------------------------
// unshare

/// `unshare --hostname NAME [-- CMD...]`: this very process (same PID) moves into a new UTS
/// namespace, sets the name there, and optionally becomes CMD (`execvp`).
pub fn unshare_demo(out: &mut Narrator, name: &str, cmd: &[String]) -> Result<ExitCode> {
    validate_name("hostname", name)?;
    let pid = getpid();
    let before = uts_inode()?;
    out.step(
        "self",
        format!("getpid() -> pid {pid}; readlink(/proc/self/ns/uts) -> uts:[{before}]"),
    );
    // ANCHOR: unshare
    unshare(CloneFlags::CLONE_NEWUTS).context("unshare(CLONE_NEWUTS)")?;
    let after = uts_inode()?;
    // ANCHOR_END: unshare
    out.step("self", "unshare(CLONE_NEWUTS)");
    out.say(
        "self",
        format!(
            "getpid() -> pid {} (no new process); now in uts:[{after}]",
            getpid()
        ),
    );
    sethostname(name).with_context(|| format!("sethostname(\"{name}\")"))?;
    out.step("self", format!("sethostname(\"{name}\")"));
    out.say("self", format!("uname() -> hostname \"{}\"", hostname()?));
    exec_or_done(out, "self", cmd)
}

/// `execvp` the command (this process becomes it), or return success when there is none.
fn exec_or_done(out: &mut Narrator, who: &str, cmd: &[String]) -> Result<ExitCode> {
    let Some((program, args)) = cmd.split_first() else {
        return Ok(ExitCode::SUCCESS);
    };
    out.step(who, format!("execvp(\"{program}\") in this namespace"));
    out.flush();
    let err = Command::new(program).args(args).exec();
    Err(err).with_context(|| format!("execvp(\"{program}\")"))
}

// ---------------------------------------------------------------------------------------------
// setns

pub use labkit::ns::JOIN_ORDER;

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
        // lab:begin ns-setns-join tests=setns_joins_the_uts_namespace,setns_with_a_type
        // TODO(lab): join the namespace of one opened file with setns(2), then report the call.
        // TODO(lab): With --type, pass that type's CLONE_NEW* flag so the kernel checks the file's
        // TODO(lab): type (EINVAL if it differs); without it, pass 0 (any type).
        // lab:hint kind.map_or(CloneFlags::empty(), NsKind::flag) is the nstype; setns(&file.file,
        // lab:hint nstype). The error context and the step are both "setns(PATH, FLAG)" with FLAG
        // lab:hint from kind.map_or("0", NsKind::flag_name): out.step("host", call).
        // ANCHOR: setns
        // nstype 0 accepts a namespace of any type; a CLONE_NEW* flag makes the kernel check it.
        let nstype = kind.map_or(CloneFlags::empty(), NsKind::flag);
        let call = format!(
            "setns({}, {})",
            file.path.display(),
            kind.map_or("0", NsKind::flag_name)
        );
        setns(&file.file, nstype).context(call.clone())?;
        // ANCHOR_END: setns
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

// ---------------------------------------------------------------------------------------------
// persist / unpin

/// Create a child in a new UTS namespace that sets `name`, and wait until it is ready to exit.
fn start_named_child(out: &mut Narrator, name: &str) -> Result<labkit::child::Child> {
    let mut child = clone_child(CloneFlags::CLONE_NEWUTS, |child| {
        // ANCHOR: lab_region
        // lab:begin uts-named-child tests=persist_keeps_a_namespace_alive
        // TODO(lab): name the child's new UTS namespace, then stay alive until the parent is done.
        // TODO(lab): The parent opens /proc/CHILD/ns/uts while the child still exists: the child
        // TODO(lab): must tell it that it is ready and wait to be released.
        // lab:hint sethostname(name), then child.step("sethostname(\"NAME\")"), then
        // lab:hint child.ready_and_wait()? (it returns once the parent calls release()); Ok(0).
        sethostname(name).with_context(|| format!("sethostname(\"{name}\")"))?;
        child.step(format!("sethostname(\"{name}\")"));
        child.ready_and_wait()?;
        Ok(0)
        // lab:end uts-named-child
        // ANCHOR_END: lab_region
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
    // lab:begin ns-unpin tests=persist_pin_outlives_the_run,unpin_rejects_a_file
    // TODO(lab): release a namespace pinned by a bind mount: unmount the pin, then remove the file.
    // TODO(lab): First open the pin as a namespace file (this refuses a plain file) and report
    // TODO(lab): it; after the unmount, show that the file is no longer a namespace file.
    // lab:hint NsFile::open(pin)? gives .kind and .inode; drop it before umount2(pin,
    // lab:hint MntFlags::empty()). The steps: "open(PIN) -> uts:[INODE]", "umount2(PIN)", then say
    // lab:hint "PIN is a plain empty file again" and step "unlink(PIN)" after remove_file.
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
