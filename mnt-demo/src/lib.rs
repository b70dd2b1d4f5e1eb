//! Mount namespaces: each has its own list of mounts, copied from its parent's at creation;
//! propagation (shared, slave, private, unbindable) decides which later mount events cross from
//! one mount to another; `pivot_root` locks a process into a new root where `chroot` does not.
//!
//! Every lesson runs in a **lab**: a child in a new mount namespace that first makes every mount
//! private (so nothing it does can reach the host), then mounts a tmpfs on `/tmp` as its scratch
//! area (so nothing it creates touches the host's disk). The host's mount table is the same
//! before and after, and there is nothing to clean up: the lab's mounts end with its namespace.
#![forbid(unsafe_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use labkit::child::{Reporter, clone_child, fork_child};
use labkit::narrate::table;
use labkit::{Narrator, bad_input};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::unistd::{chdir, chroot, pivot_root};
use procfs::process::{MountInfo, MountOptFields, Process};

/// Where the lab works: under its own tmpfs on /tmp.
pub const LAB: &str = "/tmp/lab";

/// The mount table of a process (`None`: this one), from `/proc/PID/mountinfo`.
pub fn mountinfo(pid: Option<i32>) -> Result<Vec<MountInfo>> {
    let process = match pid {
        Some(pid) => Process::new(pid).map_err(|_| {
            bad_input(format!(
                "no process with PID {pid} (/proc/{pid} does not exist)"
            ))
        })?,
        None => Process::myself().context("/proc/self")?,
    };
    let path = format!(
        "/proc/{}/mountinfo",
        pid.map_or("self".to_string(), |p| p.to_string())
    );
    Ok(process.mountinfo().with_context(|| path)?.0)
}

/// The mount on top at `path` (the last one listed there), if `path` is a mount point.
pub fn mount_at<'a>(table: &'a [MountInfo], path: &str) -> Option<&'a MountInfo> {
    table
        .iter()
        .rev()
        .find(|m| m.mount_point == Path::new(path))
}

/// Whether `path` is a mount point in the mount namespace of `pid` (`None`: this process).
fn is_mount_point(pid: Option<i32>, path: &str) -> Result<bool> {
    Ok(mount_at(&mountinfo(pid)?, path).is_some())
}

/// A mount's propagation as mountinfo shows it: `shared:N`, `master:N`, both, `unbindable`, or
/// (no optional field) `private`.
pub fn propagation(m: &MountInfo) -> String {
    let fields: Vec<String> = m
        .opt_fields
        .iter()
        .map(|f| match f {
            MountOptFields::Shared(n) => format!("shared:{n}"),
            MountOptFields::Master(n) => format!("master:{n}"),
            MountOptFields::PropagateFrom(n) => format!("propagate_from:{n}"),
            MountOptFields::Unbindable => "unbindable".to_string(),
        })
        .collect();
    if fields.is_empty() {
        "private".to_string()
    } else {
        fields.join(" ")
    }
}

fn mount_tmpfs(path: &str) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("mkdir({path})"))?;
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=4m"),
    )
    .with_context(|| format!("mount(\"tmpfs\", \"{path}\", \"tmpfs\")"))
}

fn bind(from: &str, to: &str) -> nix::Result<()> {
    mount(Some(from), to, None::<&str>, MsFlags::MS_BIND, None::<&str>)
}

fn set_propagation(path: &str, flag: MsFlags) -> Result<()> {
    mount(None::<&str>, path, None::<&str>, flag, None::<&str>)
        .with_context(|| format!("mount(\"{path}\", {flag:?})"))
}

/// Run `body` in a lab: a child in a new mount namespace whose mounts were all made private,
/// with a tmpfs on /tmp as its scratch area. Says whether the host's mount table changed.
pub fn in_lab<F>(out: &mut Narrator, body: F) -> Result<()>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let before = fs::read_to_string("/proc/self/mountinfo").context("/proc/self/mountinfo")?;
    let lab = clone_child(CloneFlags::CLONE_NEWNS, |r| {
        r.speaker("lab");
        // ANCHOR: lab
        // First, cut propagation to and from the host: on a host whose / is shared (systemd),
        // mounts made below would otherwise appear on the host too.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("mount(\"/\", MS_REC | MS_PRIVATE)")?;
        // A scratch area only this namespace sees: nothing is written to the host's /tmp.
        mount(
            Some("tmpfs"),
            "/tmp",
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=16m"),
        )
        .context("mount(\"tmpfs\", \"/tmp\", \"tmpfs\")")?;
        // ANCHOR_END: lab
        r.step("mount(NULL, \"/\", NULL, MS_REC | MS_PRIVATE, NULL)");
        r.step(
            "mount(\"tmpfs\", \"/tmp\", \"tmpfs\", 0, NULL): scratch space for this namespace only",
        );
        fs::create_dir_all(LAB).with_context(|| format!("mkdir({LAB})"))?;
        body(r)
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWNS | SIGCHLD) -> lab pid {}", lab.pid()),
    );
    lab.finish(out, "lab")?;
    let after = fs::read_to_string("/proc/self/mountinfo").context("/proc/self/mountinfo")?;
    let n = after.lines().count();
    out.say(
        "host",
        if before == after {
            format!("/proc/self/mountinfo: {n} mounts, the same before and after")
        } else {
            format!("/proc/self/mountinfo changed while the lab ran ({n} mounts now): another process mounted something")
        },
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// show

/// `show [--pid PID]`: the mounts of a process, with each one's propagation (read only).
pub fn show(out: &mut Narrator, pid: Option<i32>) -> Result<()> {
    let table_rows = mountinfo(pid)?;
    let who = pid.map_or("self".to_string(), |p| p.to_string());
    out.step(
        "host",
        format!("read /proc/{who}/mountinfo: {} mounts", table_rows.len()),
    );
    let mut rows = vec![vec![
        "ID".to_string(),
        "PARENT".into(),
        "PROPAGATION".into(),
        "FSTYPE".into(),
        "MOUNT POINT".into(),
    ]];
    for m in &table_rows {
        rows.push(vec![
            m.mnt_id.to_string(),
            m.pid.to_string(),
            propagation(m),
            m.fs_type.clone(),
            m.mount_point.display().to_string(),
        ]);
    }
    out.raw(table(&rows).trim_end());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// copy (MNT-1, MNT-2)

/// The line of a `/proc/PID/<file>` that mentions `path` as a mount point.
fn line_for(pid: i32, file: &str, path: &str) -> Result<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/{file}"))
        .with_context(|| format!("/proc/{pid}/{file}"))?;
    let needle = format!(" {path} ");
    Ok(text
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or("(none)")
        .trim()
        .to_string())
}

/// `copy`: a new mount namespace starts with a copy of its parent's mounts; after that, mounts
/// on either side are invisible on the other. Shows the three `/proc` files that describe them.
pub fn copy(out: &mut Narrator) -> Result<()> {
    in_lab(out, |lab| {
        let inside = format!("{LAB}/inside");
        let outside = format!("{LAB}/outside");
        fs::create_dir_all(&inside)?;
        fs::create_dir_all(&outside)?;
        let parent = mountinfo(None)?;
        lab.step(format!(
            "read /proc/self/mountinfo: {} mounts",
            parent.len()
        ));
        let parent_points: Vec<PathBuf> = parent.iter().map(|m| m.mount_point.clone()).collect();
        let parent_ids: Vec<i32> = parent.iter().map(|m| m.mnt_id).collect();
        let mut child = clone_child(CloneFlags::CLONE_NEWNS, |c| {
            c.speaker("child");
            // ANCHOR: copy
            let copied = mountinfo(None)?;
            let same_points = copied
                .iter()
                .map(|m| &m.mount_point)
                .eq(parent_points.iter());
            let new_ids = copied.iter().all(|m| !parent_ids.contains(&m.mnt_id));
            // ANCHOR_END: copy
            c.step(format!(
                "read /proc/self/mountinfo: {} mounts; same mount points as the parent: {}; all mount IDs new: {}",
                copied.len(),
                yes(same_points),
                yes(new_ids)
            ));
            mount_tmpfs(&inside)?;
            c.step(format!("mount(\"tmpfs\", \"{inside}\", \"tmpfs\")"));
            c.ready_and_wait()?;
            c.step(format!(
                "is {outside} a mount point here? {}",
                yes(is_mount_point(None, &outside)?)
            ));
            Ok(0)
        })?;
        let pid = child.pid().as_raw();
        lab.step(format!("clone(CLONE_NEWNS | SIGCHLD) -> child pid {pid}"));
        child.forward_until_ready(lab)?;
        lab.step(format!(
            "is {inside} a mount point? in /proc/{pid}/mountinfo: {}; in /proc/self/mountinfo: {}",
            yes(is_mount_point(Some(pid), &inside)?),
            yes(is_mount_point(None, &inside)?)
        ));
        lab.say(format!(
            "the child's new mount, in the three files of /proc/{pid}:"
        ));
        lab.say(format!(
            "  mounts:     {}",
            line_for(pid, "mounts", &inside)?
        ));
        lab.say(format!(
            "  mountinfo:  {}",
            line_for(pid, "mountinfo", &inside)?
        ));
        lab.say(format!(
            "  mountstats: {}",
            line_for(pid, "mountstats", &inside)?
        ));
        mount_tmpfs(&outside)?;
        lab.step(format!("mount(\"tmpfs\", \"{outside}\", \"tmpfs\")"));
        child.release()?;
        child.forward(lab)?;
        Ok(0)
    })
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

// ---------------------------------------------------------------------------------------------
// propagation (MNT-3 to MNT-8)

/// One mount point the propagation lab watches.
struct Watched {
    label: &'static str,
    path: String,
}

/// `propagation`: build shared, slave, private and unbindable mounts, mount something under
/// each in turn, and print where each mount appeared.
pub fn propagation_lab(out: &mut Narrator) -> Result<()> {
    in_lab(out, |lab| {
        let p = |name: &str| format!("{LAB}/{name}");
        let watched: Vec<Watched> = ["a", "b", "c", "m", "s", "t", "s2", "p", "q"]
            .iter()
            .map(|l| Watched {
                label: l,
                path: p(l),
            })
            .collect();

        // ANCHOR: setup
        // shared: a is a tmpfs made shared; b and c are bind mounts of it, so peers of a.
        mount_tmpfs(&p("a"))?;
        set_propagation(&p("a"), MsFlags::MS_SHARED)?;
        for peer in ["b", "c"] {
            fs::create_dir_all(p(peer))?;
            bind(&p("a"), &p(peer))?;
        }
        // slave: m is shared; s is a bind of m turned into a slave of m; t is a bind of s.
        mount_tmpfs(&p("m"))?;
        set_propagation(&p("m"), MsFlags::MS_SHARED)?;
        fs::create_dir_all(p("s"))?;
        bind(&p("m"), &p("s"))?;
        set_propagation(&p("s"), MsFlags::MS_SLAVE)?;
        fs::create_dir_all(p("t"))?;
        bind(&p("s"), &p("t"))?;
        // private: p is private (the lab's default); q is a bind of it.
        mount_tmpfs(&p("p"))?;
        set_propagation(&p("p"), MsFlags::MS_PRIVATE)?;
        fs::create_dir_all(p("q"))?;
        bind(&p("p"), &p("q"))?;
        // unbindable: u cannot be the source of a bind mount.
        mount_tmpfs(&p("u"))?;
        set_propagation(&p("u"), MsFlags::MS_UNBINDABLE)?;
        fs::create_dir_all(p("u2"))?;
        let refused = bind(&p("u"), &p("u2"));
        // ANCHOR_END: setup
        lab.step("a: tmpfs, MS_SHARED; b, c: MS_BIND of a");
        lab.step("m: tmpfs, MS_SHARED; s: MS_BIND of m, then MS_SLAVE; t: MS_BIND of s");
        lab.step("p: tmpfs, MS_PRIVATE; q: MS_BIND of p");
        lab.step("u: tmpfs, MS_UNBINDABLE");
        lab.step(format!(
            "mount(\"{}\", \"{}\", MS_BIND) -> {}",
            p("u"),
            p("u2"),
            match refused {
                Ok(()) => "0".to_string(),
                Err(e) => e.to_string(),
            }
        ));
        ensure!(refused.is_err(), "an unbindable mount was bound");

        print_fields(lab, &watched, "propagation, from /proc/self/mountinfo")?;

        // Each event: a tmpfs mounted at <where>/<name>; the directory exists in every mount of
        // that filesystem, so a propagated copy can appear at the same place in the others.
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut events = vec![
            ("a", "e1", "a peer receives it (MNT-4)"),
            ("b", "e2", "and the other way round (MNT-4)"),
            ("m", "e3", "master to slaves (MNT-5)"),
            ("s", "e4", "never slave to master (MNT-5)"),
            ("p", "e5", "private: nothing (MNT-6)"),
            ("q", "e6", "private: nothing (MNT-6)"),
        ];
        run_events(lab, &watched, &events, &mut rows)?;

        // ANCHOR: shared_and_slave
        // A slave made shared stays a slave of its master and starts its own peer group.
        set_propagation(&p("s"), MsFlags::MS_SHARED)?;
        fs::create_dir_all(p("s2"))?;
        bind(&p("s"), &p("s2"))?;
        // ANCHOR_END: shared_and_slave
        lab.step("s: MS_SHARED (it was a slave); s2: MS_BIND of s");
        print_fields(lab, &watched[3..7], "propagation now")?;
        events = vec![
            ("s", "e7", "s's own peer s2, not m (MNT-8)"),
            ("m", "e8", "still a slave of m (MNT-8)"),
        ];
        run_events(lab, &watched, &events, &mut rows)?;

        let mut header = vec!["event".to_string()];
        header.extend(watched.iter().map(|w| w.label.to_string()));
        header.push(String::new());
        let mut all = vec![header];
        all.extend(rows);
        lab.say("where each mount appeared (x: visible there, .: not, blank: no such mount yet)");
        for line in table(&all).lines() {
            lab.say(line);
        }
        Ok(0)
    })
}

fn print_fields(lab: &mut Reporter, watched: &[Watched], title: &str) -> Result<()> {
    let table_now = mountinfo(None)?;
    let mut rows = vec![vec!["mount".to_string(), title.to_string()]];
    for w in watched {
        if let Some(m) = mount_at(&table_now, &w.path) {
            rows.push(vec![w.label.to_string(), propagation(m)]);
        }
    }
    for line in table(&rows).lines() {
        lab.say(line);
    }
    Ok(())
}

fn run_events(
    lab: &mut Reporter,
    watched: &[Watched],
    events: &[(&str, &str, &str)],
    rows: &mut Vec<Vec<String>>,
) -> Result<()> {
    for (at, name, lesson) in events {
        let source = &watched
            .iter()
            .find(|w| w.label == *at)
            .context("watched mount")?
            .path;
        // The directory is created through one mount; the others show the same filesystem.
        fs::create_dir_all(format!("{source}/{name}"))?;
        mount(
            Some("tmpfs"),
            format!("{source}/{name}").as_str(),
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .with_context(|| format!("mount(\"tmpfs\", \"{source}/{name}\")"))?;
        let now = mountinfo(None)?;
        let mut row = vec![format!("tmpfs on {at}/{name}")];
        for w in watched {
            let exists = mount_at(&now, &w.path).is_some();
            let seen = mount_at(&now, &format!("{}/{name}", w.path)).is_some();
            row.push(match (exists, seen) {
                (false, _) => " ".into(),
                (true, true) => "x".into(),
                (true, false) => ".".into(),
            });
        }
        row.push(lesson.to_string());
        rows.push(row);
    }
    lab.step(format!(
        "mount(\"tmpfs\") on {}",
        events
            .iter()
            .map(|(at, name, _)| format!("{at}/{name}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// root (MNT-9)

/// `root`: what the host uses for `/`, and why a runtime makes the container's root private (or
/// slave) first. The lab plays the host: it makes its own `/` shared, as systemd does.
pub fn root_propagation(out: &mut Narrator) -> Result<()> {
    let host = mountinfo(None)?;
    let root = mount_at(&host, "/").context("no / in /proc/self/mountinfo")?;
    let kind = propagation(root);
    out.step("host", format!("read /proc/self/mountinfo: / is {kind}"));
    out.say(
        "host",
        "(mount(2)'s default is private; systemd makes / shared at boot)",
    );
    in_lab(out, |lab| {
        // ANCHOR: like_systemd
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SHARED,
            None::<&str>,
        )
        .context("mount(\"/\", MS_REC | MS_SHARED)")?;
        // ANCHOR_END: like_systemd
        lab.step("mount(NULL, \"/\", NULL, MS_REC | MS_SHARED): the lab's / is shared, like a systemd host");
        let cases: [(&str, Option<MsFlags>, &str); 3] = [
            ("x1", None, "a runtime that changes nothing"),
            (
                "x2",
                Some(MsFlags::MS_REC | MsFlags::MS_PRIVATE),
                "a runtime that makes / private first",
            ),
            (
                "x3",
                Some(MsFlags::MS_REC | MsFlags::MS_SLAVE),
                "a runtime that makes / a slave first",
            ),
        ];
        for (name, first, who) in cases {
            let target = format!("{LAB}/{name}");
            fs::create_dir_all(&target)?;
            let back = format!("{LAB}/{name}-back");
            fs::create_dir_all(&back)?;
            let mut child = clone_child(CloneFlags::CLONE_NEWNS, |c| {
                c.speaker("container");
                // lab:begin mnt-private-first tests=a_runtime_must_make_its_root_private
                // TODO(lab): make the container's root private (or slave) before it mounts.
                // TODO(lab): `first` holds the flags of this case's runtime (None: it changes
                // TODO(lab): nothing). Apply them to "/" in the container's new mount namespace
                // TODO(lab): and report the call; then a mount in the container stays out of
                // TODO(lab): the (stand-in) host.
                // lab:hint mount(None::<&str>, "/", None::<&str>, flags, None::<&str>): no
                // lab:hint source, no type, only propagation flags. Step "mount(NULL, \"/\",
                // lab:hint NULL, MS_REC | MS_PRIVATE)" or "... MS_REC | MS_SLAVE)", whichever
                // lab:hint flags.contains().
                if let Some(flags) = first {
                    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
                        .context("mount(\"/\")")?;
                    c.step(format!(
                        "mount(NULL, \"/\", NULL, {})",
                        if flags.contains(MsFlags::MS_PRIVATE) {
                            "MS_REC | MS_PRIVATE"
                        } else {
                            "MS_REC | MS_SLAVE"
                        }
                    ));
                }
                // lab:end mnt-private-first
                mount_tmpfs(&target)?;
                c.step(format!("mount(\"tmpfs\", \"{target}\", \"tmpfs\")"));
                c.ready_and_wait()?;
                c.say(format!(
                    "the lab's later mount on {back}: {}",
                    if is_mount_point(None, &back)? {
                        "seen here"
                    } else {
                        "not seen here"
                    }
                ));
                Ok(0)
            })?;
            lab.step(format!(
                "clone(CLONE_NEWNS | SIGCHLD) -> container pid {}: {who}",
                child.pid()
            ));
            child.forward_until_ready(lab)?;
            lab.say(format!(
                "the container's mount on {target}: {}",
                if is_mount_point(None, &target)? {
                    "LEAKED into the lab (the stand-in host)"
                } else {
                    "stayed in the container"
                }
            ));
            mount_tmpfs(&back)?;
            lab.step(format!("mount(\"tmpfs\", \"{back}\", \"tmpfs\")"));
            child.release()?;
            child.forward(lab)?;
        }
        Ok(0)
    })
}

// ---------------------------------------------------------------------------------------------
// chroot vs pivot_root (MNT-10)

/// The device and inode of `/`: what "the root" is, whatever path leads to it.
fn root_id() -> Result<(u64, u64)> {
    let m = fs::metadata("/").context("stat(\"/\")")?;
    Ok((m.dev(), m.ino()))
}

/// A tiny root filesystem: a few directories and files, enough to tell it from the real root.
fn build_rootfs(dir: &str) -> Result<()> {
    for sub in ["bin", "dev", "etc", "proc", "tmp"] {
        fs::create_dir_all(format!("{dir}/{sub}"))
            .with_context(|| format!("mkdir({dir}/{sub})"))?;
    }
    fs::write(format!("{dir}/etc/hostname"), "nslab-tiny-root\n")?;
    fs::write(
        format!("{dir}/etc/os-release"),
        "NAME=\"nslab tiny root\"\n",
    )?;
    Ok(())
}

/// The classic chroot escape: chroot into a subdirectory while the working directory stays
/// outside it, climb with "..", and chroot to where the climb ends.
// ANCHOR: escape
fn try_escape() -> Result<()> {
    fs::create_dir_all("/.escape").context("mkdir(\"/.escape\")")?;
    chroot("/.escape").context("chroot(\"/.escape\")")?; // the working directory is now outside the root
    for _ in 0..64 {
        chdir("..").context("chdir(\"..\")")?; // ".." of the real root is the real root itself
    }
    chroot(".").context("chroot(\".\")")?;
    Ok(())
}
// ANCHOR_END: escape

/// The names in `/`, sorted.
fn list_root() -> Result<String> {
    let mut names: Vec<String> = fs::read_dir("/")
        .context("readdir(\"/\")")?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names.join(" "))
}

fn hostname_file() -> String {
    fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("({e})"))
}

/// `chroot`: a root process escapes a plain `chroot`; after `pivot_root` and unmounting the old
/// root, the same escape leads nowhere.
pub fn chroot_vs_pivot(out: &mut Narrator) -> Result<()> {
    in_lab(out, |lab| {
        let rootfs = format!("{LAB}/rootfs");
        build_rootfs(&rootfs)?;
        let real = root_id()?;
        lab.step(format!(
            "built a tiny root filesystem in {rootfs}; stat(\"/\") gives the real root"
        ));

        let mut escaper = fork_child(|c| {
            c.speaker("chroot");
            chroot(rootfs.as_str()).with_context(|| format!("chroot(\"{rootfs}\")"))?;
            chdir("/").context("chdir(\"/\")")?;
            c.step(format!(
                "chroot(\"{rootfs}\"), chdir(\"/\"): /etc/hostname says \"{}\"",
                hostname_file()
            ));
            try_escape()?;
            c.step("mkdir(\"/.escape\"), chroot(\"/.escape\"), chdir(\"..\") x64, chroot(\".\")");
            c.say(format!(
                "stat(\"/\"): {}",
                if root_id()? == real {
                    "the real root again: ESCAPED"
                } else {
                    "still the tiny root"
                }
            ));
            c.data(root_id()? == real);
            // Out in the real root, every path works again: take the ladder away.
            fs::remove_dir(format!("{rootfs}/.escape"))
                .with_context(|| format!("rmdir({rootfs}/.escape)"))?;
            Ok(0)
        })?;
        lab.step(format!("fork() -> pid {}", escaper.pid()));
        let chrooted = escaper.forward(lab)?;

        let pivoter = clone_child(CloneFlags::CLONE_NEWNS, |c| {
            c.speaker("pivot_root");
            // lab:begin mnt-pivot-root tests=chroot_can_be_escaped
            // TODO(lab): make `rootfs` the root with pivot_root(2) and let go of the old root.
            // TODO(lab): Once the old root is unmounted, no path leads out of the new one.
            // TODO(lab): pivot_root wants the new root to be a mount point, and the old root put on
            // TODO(lab): a directory below it; then unmount that and remove the directory.
            // lab:hint Bind-mount rootfs onto itself (MS_BIND | MS_REC), chdir(rootfs),
            // lab:hint mkdir "old-root", pivot_root(".", "old-root"), chdir("/"),
            // lab:hint umount2("/old-root", MntFlags::MNT_DETACH), fs::remove_dir("/old-root").
            // ANCHOR: pivot
            // pivot_root(2) wants the new root to be a mount point: bind it onto itself.
            mount(
                Some(rootfs.as_str()),
                rootfs.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .context("mount(rootfs, rootfs, MS_BIND)")?;
            chdir(rootfs.as_str()).context("chdir(rootfs)")?;
            fs::create_dir_all("old-root").context("mkdir(\"old-root\")")?;
            pivot_root(".", "old-root").context("pivot_root(\".\", \"old-root\")")?;
            chdir("/").context("chdir(\"/\")")?;
            // The old root is still mounted at /old-root: take it away, and with it every path out.
            umount2("/old-root", MntFlags::MNT_DETACH)
                .context("umount2(\"/old-root\", MNT_DETACH)")?;
            fs::remove_dir("/old-root").context("rmdir(\"/old-root\")")?;
            // ANCHOR_END: pivot
            // lab:end mnt-pivot-root
            c.step(format!(
                "mount --bind {rootfs} {rootfs}, pivot_root(\".\", \"old-root\"), umount2(\"/old-root\", MNT_DETACH)"
            ));
            c.say(format!(
                "ls / -> {}; /etc/hostname says \"{}\"",
                list_root()?,
                hostname_file()
            ));
            try_escape()?;
            c.step("mkdir(\"/.escape\"), chroot(\"/.escape\"), chdir(\"..\") x64, chroot(\".\")");
            let escaped = root_id()? == real;
            c.say(format!(
                "stat(\"/\"): {}; /etc/hostname says \"{}\"",
                if escaped {
                    "the real root: ESCAPED"
                } else {
                    "still the tiny root: no way out"
                },
                hostname_file()
            ));
            c.data(escaped);
            Ok(0)
        })?;
        lab.step(format!(
            "clone(CLONE_NEWNS | SIGCHLD) -> pid {}",
            pivoter.pid()
        ));
        let mut pivoter = pivoter;
        let pivoted = pivoter.forward(lab)?;
        ensure!(
            chrooted == ["true"] && pivoted == ["false"],
            "unexpected: chroot escaped {chrooted:?}, pivot_root escaped {pivoted:?}"
        );
        Ok(0)
    })
}
