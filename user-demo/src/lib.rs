//! User namespaces: a process gets its own user and group IDs and its own capabilities, which
//! count only for what its user namespace owns. They are what lets an ordinary user run a
//! container (rootless), so these demos run as an ordinary user, and as root.
//!
//! A child in a new user namespace waits on a pipe while its parent, outside, writes its ID
//! maps (`/proc/CHILD/uid_map`, `gid_map`): the order of the two sides is always the same.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::os::fd::AsFd;

use anyhow::{Context, Result, bail};
use caps::CapSet;
use labkit::child::{Child, Reporter, clone_child, fork_child};
use labkit::narrate::table;
use labkit::ns::{self, NsFile, NsKind};
use labkit::procfs::Proc;
use labkit::{Narrator, bad_input};
use nix::sched::{CloneFlags, unshare};
use nix::time::{ClockId, clock_gettime, clock_settime};
use nix::unistd::{
    Gid, Uid, getegid, geteuid, getgid, getgroups, getuid, setgroups, sethostname, setresgid,
    setresuid,
};

/// The overflow ID ("nobody"): what an unmapped ID looks like (`/proc/sys/kernel/overflowuid`).
pub const NOBODY: u32 = 65534;

/// One line of a uid_map or gid_map: `count` IDs from `inside` map to `count` IDs from `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.inside, self.outside, self.count)
    }
}

/// Parse `inside:outside:count` (as `newuidmap` takes its ranges).
pub fn parse_range(text: &str) -> Result<IdRange> {
    let parts: Vec<&str> = text.split(':').collect();
    let [inside, outside, count] = parts[..] else {
        return Err(bad_input(format!(
            "--map {text:?}: expected INSIDE:OUTSIDE:COUNT, for example 0:1000:1"
        )));
    };
    let num = |what: &str, v: &str| -> Result<u32> {
        v.parse().map_err(|_| {
            bad_input(format!(
                "--map {text:?}: {what} {v:?} is not a number from 0 to 4294967295"
            ))
        })
    };
    let range = IdRange {
        inside: num("INSIDE", inside)?,
        outside: num("OUTSIDE", outside)?,
        count: num("COUNT", count)?,
    };
    if range.count == 0 {
        return Err(bad_input(format!(
            "--map {text:?}: COUNT must be at least 1"
        )));
    }
    for (what, start) in [("INSIDE", range.inside), ("OUTSIDE", range.outside)] {
        if u64::from(start) + u64::from(range.count) > u64::from(u32::MAX) {
            return Err(bad_input(format!(
                "--map {text:?}: {what} + COUNT goes past 4294967295"
            )));
        }
    }
    Ok(range)
}

/// Check a set of ranges as the kernel would (user_namespaces(7)): at most 340 lines, and no
/// two ranges may overlap, inside or outside.
pub fn check_ranges(ranges: &[IdRange]) -> Result<()> {
    if ranges.len() > 340 {
        return Err(bad_input(format!(
            "{} ranges: the kernel takes at most 340",
            ranges.len()
        )));
    }
    let overlap = |a: u32, b: u32, n: u32, m: u32| {
        u64::from(a) < u64::from(b) + u64::from(m) && u64::from(b) < u64::from(a) + u64::from(n)
    };
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            if overlap(a.inside, b.inside, a.count, b.count) {
                return Err(bad_input(format!(
                    "--map {a} and {b} overlap inside (IDs {}..)",
                    a.inside.max(b.inside)
                )));
            }
            if overlap(a.outside, b.outside, a.count, b.count) {
                return Err(bad_input(format!(
                    "--map {a} and {b} overlap outside (IDs {}..)",
                    a.outside.max(b.outside)
                )));
            }
        }
    }
    Ok(())
}

fn map_text(ranges: &[IdRange]) -> String {
    ranges.iter().map(|r| format!("{r}\n")).collect()
}

/// `/proc/self/uid_map` (or gid_map) with its columns squeezed, lines joined with "; ".
fn read_map(file: &str) -> Result<String> {
    let text = fs::read_to_string(format!("/proc/self/{file}"))
        .with_context(|| format!("/proc/self/{file}"))?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Ok(if lines.is_empty() {
        "(empty)".into()
    } else {
        lines.join("; ")
    })
}

fn id_line() -> Result<String> {
    let groups: Vec<String> = getgroups()?.iter().map(|g| g.to_string()).collect();
    Ok(format!(
        "uid={} gid={} groups={}",
        getuid(),
        getgid(),
        if groups.is_empty() {
            "(none)".into()
        } else {
            groups.join(",")
        }
    ))
}

// ANCHOR: write_maps
/// Write a child's maps from outside, the way a runtime (or newuidmap) does.
fn write_maps(out: &mut Narrator, pid: i32, uids: &[IdRange], gids: &[IdRange]) -> Result<()> {
    let base = format!("/proc/{pid}");
    // lab:begin user-write-maps tests=ids_are_nobody_until_mapped,ids_with_a_range_map_as_root
    // TODO(lab): write the child's uid_map and gid_map from outside, as a runtime does.
    // TODO(lab): Each map is written once, whole, in one write(2) of "INSIDE OUTSIDE COUNT" lines.
    // TODO(lab): For gid_map, setgroups(2) must be denied in that process first (USER-4).
    // lab:hint fs::write(format!("{base}/uid_map"), map_text(uids)); then "deny" into
    // lab:hint {base}/setgroups; then fs::write(format!("{base}/gid_map"), map_text(gids)).
    fs::write(format!("{base}/uid_map"), map_text(uids))
        .with_context(|| format!("write({base}/uid_map)"))?;
    // gid_map: an unprivileged writer must deny setgroups(2) first (USER-4).
    fs::write(format!("{base}/setgroups"), "deny")
        .with_context(|| format!("write({base}/setgroups)"))?;
    fs::write(format!("{base}/gid_map"), map_text(gids))
        .with_context(|| format!("write({base}/gid_map)"))?;
    // lab:end user-write-maps
    // ANCHOR_END: write_maps
    let show = |r: &[IdRange]| {
        r.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    out.step(
        "parent",
        format!("write(/proc/{pid}/uid_map, \"{}\")", show(uids)),
    );
    out.step(
        "parent",
        format!(
            "write(/proc/{pid}/setgroups, \"deny\"); write(/proc/{pid}/gid_map, \"{}\")",
            show(gids)
        ),
    );
    Ok(())
}

/// Start a child in a new user namespace (and the namespaces in `more`) that reports what it is
/// before its maps exist and waits for them.
fn start_child<F>(out: &mut Narrator, more: CloneFlags, body: F) -> Result<Child>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let mut child = clone_child(CloneFlags::CLONE_NEWUSER | more, |c| {
        c.speaker("child");
        c.ready_and_wait()?; // until the parent has written the maps
        body(c)
    })?;
    let flags = labkit::child::flag_names(CloneFlags::CLONE_NEWUSER | more);
    out.step(
        "parent",
        format!("clone({flags} | SIGCHLD) -> child pid {}", child.pid()),
    );
    child.relay_until_ready(out, "child")?;
    Ok(child)
}

/// The maps to use by default: the caller's own IDs to 0 inside, the only map an unprivileged
/// process may write.
pub fn default_ranges() -> (Vec<IdRange>, Vec<IdRange>) {
    (
        vec![IdRange {
            inside: 0,
            outside: geteuid().as_raw(),
            count: 1,
        }],
        vec![IdRange {
            inside: 0,
            outside: getegid().as_raw(),
            count: 1,
        }],
    )
}

// ---------------------------------------------------------------------------------------------
// ids (USER-1, USER-2)

/// `ids [--map I:O:C]...`: before its maps are written, a process in a new user namespace is
/// nobody (65534); after, it is 0 inside while it stays who it was outside.
pub fn ids(out: &mut Narrator, maps: &[IdRange]) -> Result<()> {
    check_ranges(maps)?;
    let (uids, gids) = if maps.is_empty() {
        default_ranges()
    } else {
        (maps.to_vec(), maps.to_vec())
    };
    let root_inside = uids.iter().any(|r| r.inside == 0);
    let mut child = clone_child(CloneFlags::CLONE_NEWUSER, |c| {
        c.speaker("child");
        // ANCHOR: before_maps
        c.step(format!(
            "getuid() -> {}, getgid() -> {}: no map yet, so the overflow IDs",
            getuid(),
            getgid()
        ));
        // ANCHOR_END: before_maps
        c.say(format!("/proc/self/uid_map: {}", read_map("uid_map")?));
        c.ready_and_wait()?;
        c.step(format!(
            "getuid() -> {}, getgid() -> {}",
            getuid(),
            getgid()
        ));
        if getuid().as_raw() == NOBODY && root_inside {
            // Our own ID is not in the map (it shows as the overflow ID): take the mapped root's.
            setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
                .context("setresgid(0, 0, 0)")?;
            setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
                .context("setresuid(0, 0, 0)")?;
            c.step(format!(
                "our own IDs are not in the map; setresuid(0, 0, 0) -> getuid() {}",
                getuid()
            ));
        }
        c.say(format!("id: {}", id_line()?));
        c.say(format!("/proc/self/uid_map: {}", read_map("uid_map")?));
        c.say(format!("/proc/self/gid_map: {}", read_map("gid_map")?));
        c.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    out.step(
        "parent",
        format!("clone(CLONE_NEWUSER | SIGCHLD) -> child pid {pid}"),
    );
    child.relay_until_ready(out, "child")?;
    write_maps(out, pid, &uids, &gids)?;
    child.release()?;
    child.relay_until_ready(out, "child")?;
    let proc = Proc::host();
    out.step(
        "parent",
        format!(
            "read /proc/{pid}/status from outside: Uid: {}, Gid: {}",
            proc.status_field(pid, "Uid")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            proc.status_field(pid, "Gid")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    out.say(
        "parent",
        "the kernel shows IDs as the reader's user namespace numbers them",
    );
    child.release()?;
    child.finish(out, "child")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// caps (USER-3)

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

fn outcome<T>(r: Result<T, impl fmt::Display>) -> String {
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

fn errno_name(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(
        || e.to_string(),
        |n| nix::errno::Errno::from_raw(n).to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// setgroups (USER-4)

/// Drop to nobody (when root) in the calling process: the rules below are those of an
/// unprivileged writer.
fn become_unprivileged() -> Result<()> {
    // lab:begin user-drop-privilege tests=gid_map_needs_setgroups_denied,namespaces_are_owned_by
    // TODO(lab): as root, become nobody for good: groups, group IDs, then user IDs.
    // TODO(lab): NOBODY is 65534. Drop the supplementary groups, then set the real, effective
    // TODO(lab): and saved group IDs, then the same three user IDs.
    // TODO(lab): The order matters: once the user ID is not 0, changing groups is refused. And
    // TODO(lab): a process that changed IDs is no longer "dumpable": its /proc files stay
    // TODO(lab): root's, and so would its children's uid_map. Make it dumpable again.
    // lab:hint setgroups(&[]), setresgid(g, g, g) and setresuid(u, u, u) with
    // lab:hint Gid::from_raw(NOBODY) / Uid::from_raw(NOBODY); then
    // lab:hint nix::sys::prctl::set_dumpable(true). Nothing to do when geteuid() is not root.
    if geteuid().is_root() {
        setgroups(&[]).context("setgroups([])")?;
        setresgid(
            Gid::from_raw(NOBODY),
            Gid::from_raw(NOBODY),
            Gid::from_raw(NOBODY),
        )
        .context("setresgid()")?;
        setresuid(
            Uid::from_raw(NOBODY),
            Uid::from_raw(NOBODY),
            Uid::from_raw(NOBODY),
        )
        .context("setresuid()")?;
        // Changing IDs made this process non-dumpable, and its /proc files (and its children's)
        // root's: make it dumpable again, as a process started by nobody would be.
        nix::sys::prctl::set_dumpable(true).context("prctl(PR_SET_DUMPABLE, 1)")?;
    }
    Ok(())
    // lab:end user-drop-privilege
}

/// `setgroups`: an unprivileged process can write a gid_map for its child only after writing
/// "deny" to the child's /proc/PID/setgroups (else a user could drop a group that was denying
/// it access).
pub fn setgroups_rule(out: &mut Narrator) -> Result<()> {
    let helper = fork_child(|h| {
        h.speaker("writer");
        become_unprivileged()?;
        h.step(format!(
            "as uid {} (no privilege in the parent user namespace)",
            geteuid()
        ));
        let child = clone_child(CloneFlags::CLONE_NEWUSER, |c| {
            c.ready_and_wait()?;
            Ok(0)
        })?;
        let pid = child.pid();
        h.step(format!("clone(CLONE_NEWUSER | SIGCHLD) -> child pid {pid}"));
        let mut child = child;
        child.wait_ready()?;
        let gid = getegid().as_raw();
        let base = format!("/proc/{pid}");
        // ANCHOR: setgroups
        let first = fs::write(format!("{base}/gid_map"), format!("0 {gid} 1\n"));
        h.step(format!(
            "write({base}/gid_map, \"0 {gid} 1\") -> {}",
            outcome(first.map_err(|e| errno_name(&e)))
        ));
        h.say(format!(
            "{base}/setgroups: {}",
            fs::read_to_string(format!("{base}/setgroups"))?.trim()
        ));
        fs::write(format!("{base}/setgroups"), "deny").context("write(setgroups)")?;
        let second = fs::write(format!("{base}/gid_map"), format!("0 {gid} 1\n"));
        // ANCHOR_END: setgroups
        h.step(format!("write({base}/setgroups, \"deny\")"));
        h.step(format!(
            "write({base}/gid_map, \"0 {gid} 1\") -> {}",
            outcome(second.map_err(|e| errno_name(&e)))
        ));
        child.release()?;
        child.wait()?;
        Ok(0)
    })?;
    out.step("parent", format!("fork() -> writer pid {}", helper.pid()));
    helper.finish(out, "writer")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// owner (USER-5)

/// `owner`: every namespace is owned by a user namespace, the one its creator was in. An
/// unprivileged process cannot create a UTS namespace alone, but can together with a user
/// namespace, which then owns it.
pub fn ownership(out: &mut Narrator) -> Result<()> {
    let helper = fork_child(|h| {
        h.speaker("user");
        become_unprivileged()?;
        h.step(format!(
            "unshare(CLONE_NEWUTS) as uid {} -> {}",
            geteuid(),
            outcome(unshare(CloneFlags::CLONE_NEWUTS))
        ));
        // ANCHOR: together
        let both = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWUTS);
        // ANCHOR_END: together
        h.step(format!(
            "unshare(CLONE_NEWUSER | CLONE_NEWUTS) -> {}",
            outcome(both)
        ));
        Ok(0)
    })?;
    out.step("parent", format!("fork() -> pid {}", helper.pid()));
    helper.finish(out, "user")?;

    let more = CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWCGROUP;
    let mut child = start_child(out, more, |c| {
        c.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    let (uids, gids) = default_ranges();
    write_maps(out, pid, &uids, &gids)?;
    child.release()?;
    child.relay_until_ready(out, "child")?;
    let own_user = ns::inode(None, "user")?;
    let child_user = ns::inode(Some(pid), "user")?;
    let mut rows = vec![vec![
        "namespace".to_string(),
        "owned by (ioctl NS_GET_USERNS)".to_string(),
        "inodes".to_string(),
    ]];
    for (who, p) in [("child", Some(pid)), ("this process", None)] {
        for kind in [
            NsKind::Uts,
            NsKind::Ipc,
            NsKind::Net,
            NsKind::Mnt,
            NsKind::Cgroup,
        ] {
            let file = NsFile::open(&ns::ns_dir(p).join(kind.name()))?;
            // ANCHOR: owner
            let owner = file.owner()?;
            // ANCHOR_END: owner
            let whose = if owner.inode == child_user {
                "the child's user namespace"
            } else if owner.inode == own_user {
                "this process's user namespace"
            } else {
                "another user namespace"
            };
            // The inodes last: their length changes when a snapshot numbers them.
            rows.push(vec![
                format!("{who}'s {kind}"),
                whose.to_string(),
                format!("{kind}:[{}] -> user:[{}]", file.inode, owner.inode),
            ]);
        }
    }
    out.step("parent", format!("user namespaces: the child's is user:[{child_user}], this process's is user:[{own_user}]"));
    out.raw(table(&rows).trim_end());
    child.release()?;
    child.finish(out, "child")?;
    Ok(())
}

/// Refuse maps an unprivileged process cannot write, before anything is made.
pub fn check_privilege_for(maps: &[IdRange]) -> Result<()> {
    if geteuid().is_root() || maps.is_empty() {
        return Ok(());
    }
    let own = geteuid().as_raw();
    if maps.len() != 1 || maps[0].count != 1 || maps[0].outside != own {
        bail!(labkit::errors::MissingFeature(format!(
            "--map {}: without root, a process may map only its own uid ({own}), one ID: {{INSIDE}}:{own}:1 \
             (larger ranges need root, or newuidmap and /etc/subuid)",
            maps.iter()
                .map(|m| format!("{}:{}:{}", m.inside, m.outside, m.count))
                .collect::<Vec<_>>()
                .join(" --map ")
        )));
    }
    Ok(())
}
