//! basics (CG-1, CG-2, CG-9, CG-10, CG-11, CG-12).

use std::fs;
use std::time::Duration;

use crate::cg;
use crate::cg::{Group, Hierarchy, Version, unique};
use crate::{rel, waiting_child};
use anyhow::{Context, Result, ensure};
use labkit::Narrator;
use labkit::child::fork_child;

/// The cgroup line of `/proc/PID/cgroup` for a hierarchy (`4:memory:/a/b`).
fn membership(pid: i32, h: &Hierarchy) -> Result<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("/proc/{pid}/cgroup"))?;
    let wanted = if h.version == Version::V2 {
        String::new()
    } else {
        h.controllers.join(",")
    };
    text.lines()
        .find(|l| {
            let mut parts = l.splitn(3, ':');
            let (id, ctl) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if h.version == Version::V2 {
                id == "0"
            } else {
                let mut a: Vec<&str> = ctl.split(',').collect();
                let mut b: Vec<&str> = wanted.split(',').collect();
                a.sort_unstable();
                b.sort_unstable();
                a == b
            }
        })
        .map(String::from)
        .with_context(|| format!("/proc/{pid}/cgroup: no line for {}", h.mount.display()))
}

/// `basics`: the API is files. Make two groups, move a process between them, watch where its
/// threads and its children go, and what each group's files say.
pub fn basics(out: &mut Narrator, force: Option<Version>) -> Result<()> {
    // A hierarchy to work in: v1 pids (if present) or v2; and another one, to show rule 3.
    let h = match force {
        Some(Version::V2) => cg::unified()?,
        _ => cg::for_controller("pids", Some(Version::V1)).or_else(|_| cg::unified())?,
    };
    out.step(
        "demo",
        format!(
            "working in the {} hierarchy at {}; this process's cgroup there: {}",
            h.version,
            h.mount.display(),
            own_rel(&h)
        ),
    );
    let mut top = Group::create(&h.own, &unique("basics"), h.version)?;
    let a = top.child("a")?;
    let b = top.child("b")?;
    out.step(
        "demo",
        format!(
            "mkdir {0}/a, {0}/b  (CG-1: mkdir makes a cgroup)",
            rel(&h, &top)
        ),
    );
    let mut files: Vec<String> = fs::read_dir(&a.path)?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    files.sort();
    // The core interface files, the same on every kernel version (the full list grows).
    const CORE: &[&str] = &[
        "cgroup.controllers",
        "cgroup.events",
        "cgroup.freeze",
        "cgroup.kill",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
        "cgroup.type",
        "notify_on_release",
        "tasks",
    ];
    let core: Vec<&String> = files
        .iter()
        .filter(|f| CORE.contains(&f.as_str()))
        .collect();
    out.say(
        "demo",
        format!(
            "the kernel filled {} with {} files, among them: {}",
            rel(&h, &a),
            files.len(),
            core.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );

    // A process with a second thread, to show per-thread placement (CG-2).
    let mut child = waiting_child(out, "child", |c| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let _ = tid_tx.send(nix::unistd::gettid());
            let _ = rx.recv();
        });
        c.data(tid_rx.recv().context("the thread's TID")?);
        c.ready_and_wait()?; // the parent moves things around, then lets us fork
        // fork(2) copies only the calling thread, and a lock the other one held would stay
        // locked in the copy: end the thread first (labkit's fork_child refuses otherwise). Its
        // exit completes a moment after join returns; no event announces it.
        drop(tx);
        let _ = thread.join();
        let alone = labkit::wait::until(Duration::from_secs(10), || {
            Ok(labkit::child::thread_count()? == 1)
        })?;
        ensure!(alone, "the second thread is still alive after 10 s");
        let grandchild = fork_child(|g| {
            g.ready_and_wait()?;
            Ok(0)
        })?;
        c.data(grandchild.pid());
        c.ready_and_wait()?;
        let mut grandchild = grandchild;
        grandchild.release()?;
        grandchild.wait()?;
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    child.release()?;
    let data = child.relay_until_ready(out, "child")?;
    let tid: i32 = data[0].parse()?;
    let threads: Vec<i32> = fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    out.say(
        "demo",
        format!(
            "child pid {pid} has {} threads: {}",
            threads.len(),
            list_tids(&threads)
        ),
    );

    // ANCHOR: attach
    a.attach(pid)?;
    // ANCHOR_END: attach
    out.step("demo", format!("echo {pid} > {}/cgroup.procs", rel(&h, &a)));
    out.say(
        "demo",
        format!("{}/cgroup.procs: {}", rel(&h, &a), list(&a.procs()?)),
    );
    out.say(
        "demo",
        format!("/proc/{pid}/cgroup: {}  (CG-11)", membership(pid, &h)?),
    );

    // CG-2: one thread alone.
    if h.version == Version::V1 {
        b.write("tasks", &tid.to_string())?;
        out.step(
            "demo",
            format!(
                "echo {tid} > {}/tasks  (CG-2: v1 moves a single thread)",
                rel(&h, &b)
            ),
        );
        out.say(
            "demo",
            format!(
                "a: cgroup.procs {} tasks {}; b: cgroup.procs {} tasks {}",
                list(&a.procs()?),
                list(&a.threads()?),
                list(&b.procs()?),
                list(&b.threads()?)
            ),
        );
        a.write("tasks", &tid.to_string())?;
        out.step(
            "demo",
            format!(
                "echo {tid} > {}/tasks: the thread back with its process",
                rel(&h, &a)
            ),
        );
    } else {
        // v2 moves threads only between groups in threaded mode.
        let refused = b.write("cgroup.threads", &tid.to_string());
        out.step("demo", format!("echo {tid} > {}/cgroup.threads -> {}  (CG-2: v2 moves single threads only in threaded mode)", rel(&h, &b), errno_text(&refused)));
        out.say("demo", format!("cgroup.type: a {}, b {} (a subtree made \"threaded\" may split a process's threads)", a.read("cgroup.type")?, b.read("cgroup.type")?));
    }

    // CG-9: rule 3, one cgroup per hierarchy.
    let others: Vec<Hierarchy> = cg::hierarchies()?
        .into_iter()
        .filter(|o| o.mount != h.mount)
        .collect();
    let before: Vec<String> = others
        .iter()
        .filter_map(|o| membership(pid, o).ok())
        .collect();
    b.attach(pid)?;
    out.step(
        "demo",
        format!(
            "echo {pid} > {}/cgroup.procs  (CG-9: a process is in one cgroup per hierarchy)",
            rel(&h, &b)
        ),
    );
    out.say(
        "demo",
        format!(
            "a/cgroup.procs: {}; b/cgroup.procs: {}",
            list(&a.procs()?),
            list(&b.procs()?)
        ),
    );
    let after: Vec<String> = others
        .iter()
        .filter_map(|o| membership(pid, o).ok())
        .collect();
    out.say(
        "demo",
        format!(
            "its {} lines for the other hierarchies in /proc/{pid}/cgroup: {}",
            before.len(),
            if before == after {
                "unchanged"
            } else {
                "CHANGED"
            }
        ),
    );

    // CG-10: rule 4, a child starts where its parent is.
    child.release()?;
    let data = child.relay_until_ready(out, "child")?;
    let grandchild: i32 = data[0].parse()?;
    out.step(
        "demo",
        format!("the child forked pid {grandchild}  (CG-10: it starts in its parent's cgroup)"),
    );
    out.say("demo", format!("b/cgroup.procs: {}", list(&b.procs()?)));
    a.attach(grandchild)?;
    out.step(
        "demo",
        format!(
            "echo {grandchild} > {}/cgroup.procs: the child moves alone",
            rel(&h, &a)
        ),
    );
    out.say(
        "demo",
        format!(
            "a/cgroup.procs: {}; b/cgroup.procs: {}",
            list(&a.procs()?),
            list(&b.procs()?)
        ),
    );

    // CG-12: how a program learns a group became empty.
    if h.version == Version::V1 {
        out.step("demo", format!("cat notify_on_release -> {} (1 would run the hierarchy's release_agent when the group empties)", a.read("notify_on_release")?));
        let agent = h.mount.join("release_agent");
        out.say("demo", format!("release_agent exists only in the root: {} {}; never written here (it is the host's)", agent.display(), if agent.exists() { "exists" } else { "absent" }));
        child.release()?;
        child.finish(out, "child")?;
        out.say(
            "demo",
            format!(
                "after both exited: a/cgroup.procs {}, b/cgroup.procs {}",
                list(&a.procs()?),
                list(&b.procs()?)
            ),
        );
    } else {
        out.step(
            "demo",
            format!(
                "cat {}/cgroup.events -> populated {}",
                rel(&h, &b),
                a_populated(&b)?
            ),
        );
        let watch = nix::sys::inotify::Inotify::init(nix::sys::inotify::InitFlags::IN_CLOEXEC)
            .context("inotify_init1()")?;
        watch
            .add_watch(
                &b.file("cgroup.events"),
                nix::sys::inotify::AddWatchFlags::IN_MODIFY,
            )
            .context("inotify_add_watch(cgroup.events)")?;
        child.release()?;
        child.finish(out, "child")?;
        let events = watch.read_events().context("read(inotify)")?;
        out.step(
            "demo",
            format!(
                "inotify: {} event(s) on b/cgroup.events; populated {}",
                events.len(),
                a_populated(&b)?
            ),
        );
    }
    drop((a, b));
    top.remove()?;
    out.step("demo", format!("rmdir {0}/a {0}/b {0}", rel(&h, &top)));
    Ok(())
}

pub(crate) fn own_rel(h: &Hierarchy) -> String {
    format!(
        "/{}",
        h.own.strip_prefix(&h.mount).unwrap_or(&h.own).display()
    )
}

fn a_populated(g: &Group) -> Result<u64> {
    g.key("cgroup.events", "populated")
}

fn list_tids(tids: &[i32]) -> String {
    let mut tids = tids.to_vec();
    tids.sort_unstable();
    tids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn list(pids: &[i32]) -> String {
    if pids.is_empty() {
        "(empty)".into()
    } else {
        pids.iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub(crate) fn errno_text<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "0".into(),
        Err(e) => labkit::errors::errno_of(e).map_or_else(|| format!("{e:#}"), |e| e.to_string()),
    }
}
