//! cgroups: groups of processes whose use of resources the kernel limits, prioritises, counts
//! and controls. Version 1 has many hierarchies, one or more controllers each; version 2 has a
//! single hierarchy. Every lesson says which it uses, makes its groups under this process's own
//! cgroup (see [`cg`]), puts only processes it started in them, and removes them afterwards.
#![forbid(unsafe_code)]

pub mod cg;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use cg::{Group, Hierarchy, Version, group_for, unique};
use labkit::child::{Child, Reporter, clone_child, fork_child};
use labkit::narrate::table;
pub use labkit::parse_size;
use labkit::procfs::Proc;
use labkit::{Narrator, bad_input};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::getpid;

/// What each controller does, in one line (for `show`, CG-13).
pub const CONTROLLERS: &[(&str, &str)] = &[
    (
        "cpu",
        "share of CPU time (shares/weight) and hard caps (quota/max)",
    ),
    ("cpuacct", "v1: counts the CPU time a group uses"),
    ("cpuset", "which CPUs and memory nodes a group may run on"),
    (
        "memory",
        "limits and counts memory; the OOM killer acts per group",
    ),
    ("io", "v2: weights and limits for block I/O"),
    ("blkio", "v1: weights and limits for block I/O"),
    ("pids", "limits the number of processes (a fork bomb stops)"),
    (
        "devices",
        "v1: which device nodes a group may open (v2: an eBPF program)",
    ),
    (
        "freezer",
        "v1: stops and resumes every task of a group (v2: cgroup.freeze)",
    ),
    (
        "net_cls",
        "v1: tags packets with a class ID for traffic control",
    ),
    (
        "net_prio",
        "v1: sets the priority of a group's traffic per interface",
    ),
    ("perf_event", "lets perf monitor the tasks of a group"),
    ("hugetlb", "limits huge-page memory"),
    ("rdma", "limits RDMA resources"),
    (
        "misc",
        "limits miscellaneous scalar resources (such as encrypted VM slots)",
    ),
];

fn describe(controller: &str) -> &'static str {
    CONTROLLERS
        .iter()
        .find(|(c, _)| *c == controller)
        .map_or("", |(_, d)| d)
}

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

/// A child that waits until it has been moved, then runs `work`.
fn waiting_child<F>(out: &mut Narrator, name: &str, work: F) -> Result<Child>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let mut child = fork_child(|c| {
        c.ready_and_wait()?;
        work(c)
    })?;
    out.step(
        "demo",
        format!("fork() -> {name} pid {}, waiting on a pipe", child.pid()),
    );
    child.relay_until_ready(out, name)?;
    Ok(child)
}

/// The short cgroup path of a group, relative to its hierarchy's mount.
fn rel(h: &Hierarchy, g: &Group) -> String {
    format!(
        "/{}",
        g.path.strip_prefix(&h.mount).unwrap_or(&g.path).display()
    )
}

// ---------------------------------------------------------------------------------------------
// show (CG-11, CG-13, CG-15 layout)

/// `show [--pid PID]`: the layout (v1, v2, hybrid), each hierarchy and its controllers, the
/// controllers the kernel has (`/proc/cgroups`), and the cgroups a process is in.
pub fn show(out: &mut Narrator, pid: Option<i32>) -> Result<()> {
    let layout = labkit::cgroupfs::detect()?;
    out.step(
        "demo",
        format!("read /proc/self/mountinfo: {}", layout.kind),
    );
    let mut rows = vec![vec![
        "version".to_string(),
        "mounted at".into(),
        "controllers".into(),
    ]];
    for h in &layout.hierarchies {
        rows.push(vec![
            format!("v{}", h.version),
            h.mount_point.display().to_string(),
            if h.controllers.is_empty() {
                "-".into()
            } else {
                h.controllers.join(",")
            },
        ]);
    }
    out.raw(table(&rows).trim_end());
    let cgroups = fs::read_to_string("/proc/cgroups").context("/proc/cgroups")?;
    out.step(
        "demo",
        "read /proc/cgroups: the controllers this kernel has (hierarchy 0: not on a v1 hierarchy)",
    );
    let mut rows = vec![vec![
        "controller".to_string(),
        "hierarchy".into(),
        "enabled".into(),
        "what it does".into(),
    ]];
    for line in cgroups.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 {
            rows.push(vec![
                f[0].into(),
                f[1].into(),
                f[3].into(),
                describe(f[0]).into(),
            ]);
        }
    }
    out.raw(table(&rows).trim_end());
    let target = pid.unwrap_or_else(|| getpid().as_raw());
    labkit::ns::check_pid(target)?;
    let text = fs::read_to_string(format!("/proc/{target}/cgroup"))
        .with_context(|| format!("/proc/{target}/cgroup"))?;
    out.step(
        "demo",
        format!("read /proc/{target}/cgroup: hierarchy ID, controllers, the cgroup in it"),
    );
    for line in text.lines() {
        out.say("demo", line);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// basics (CG-1, CG-2, CG-9, CG-10, CG-11, CG-12)

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
        let grandchild = fork_child(|g| {
            g.ready_and_wait()?;
            Ok(0)
        })?;
        c.data(grandchild.pid());
        c.ready_and_wait()?;
        let mut grandchild = grandchild;
        grandchild.release()?;
        grandchild.wait()?;
        drop(tx);
        let _ = thread.join();
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

fn own_rel(h: &Hierarchy) -> String {
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

fn list(pids: &[i32]) -> String {
    if pids.is_empty() {
        "(empty)".into()
    } else {
        pids.iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn errno_text<T>(r: &Result<T>) -> String {
    match r {
        Ok(_) => "0".into(),
        Err(e) => labkit::errors::errno_of(e).map_or_else(|| format!("{e:#}"), |e| e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// ns (CG-16)

/// `ns`: in a new cgroup namespace, `/proc/self/cgroup` shows the cgroups relative to where the
/// namespace was made: `/`.
pub fn cgroup_ns(out: &mut Narrator) -> Result<()> {
    let own = fs::read_to_string("/proc/self/cgroup").context("/proc/self/cgroup")?;
    out.step("demo", "read /proc/self/cgroup");
    for line in own.lines() {
        out.say("demo", line);
    }
    let child = clone_child(CloneFlags::CLONE_NEWCGROUP, |c| {
        c.speaker("child");
        // ANCHOR: cgroupns
        let inside = fs::read_to_string("/proc/self/cgroup").context("/proc/self/cgroup")?;
        // ANCHOR_END: cgroupns
        c.step("read /proc/self/cgroup in the new cgroup namespace");
        for line in inside.lines() {
            c.say(line);
        }
        c.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    out.step(
        "demo",
        format!("clone(CLONE_NEWCGROUP | SIGCHLD) -> child pid {pid}"),
    );
    let mut child = child;
    child.relay_until_ready(out, "child")?;
    let outside = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("/proc/{pid}/cgroup"))?;
    let differ = outside
        .lines()
        .zip(own.lines())
        .filter(|(a, b)| a == b)
        .count();
    out.step("demo", format!("read /proc/{pid}/cgroup from outside: {differ} of {} lines as above (the same cgroups, seen from here)", outside.lines().count()));
    child.release()?;
    child.finish(out, "child")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// helpers for processes that use resources

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`, in seconds.
pub fn cpu_seconds(pid: i32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the state (f[0]): utime is field 14 of the line, f[11]; stime f[12].
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    Ok(ticks as f64 / hz)
}

/// A child that spins on the CPU once released, until killed.
fn spinner(out: &mut Narrator, name: &str) -> Result<Child> {
    waiting_child(out, name, |_| {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    })
}

fn end(child: Child) -> Result<()> {
    let mut child = child;
    let _ = kill(child.pid(), Signal::SIGKILL);
    child.wait()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// memory (CG-3)

/// `memory --limit SIZE`: a child allocates past the group's memory limit and is OOM-killed;
/// the group's files count it.
pub fn memory(out: &mut Narrator, limit: u64, force: Option<Version>) -> Result<()> {
    if limit < 8 << 20 {
        return Err(bad_input(
            "--limit below 8M would not let the process start its allocations; use 8M or more",
        ));
    }
    let (h, top) = group_for("memory", force)?;
    let leaf = top.child("leaf")?;
    out.step("demo", format!("{}: mkdir {}", h.version, rel(&h, &leaf)));
    // lab:begin cg-memory-limit tests=a_memory_limit_gets_a_greedy
    // TODO(lab): limit the memory of the group `leaf` to `limit` bytes, for v1 and for v2.
    // TODO(lab): The limit alone would let the kernel push the process's pages to swap instead
    // TODO(lab): of killing it: where the group has a swap limit file, stop that too.
    // lab:hint v1: leaf.write("memory.limit_in_bytes", ...) and, if leaf.has() it,
    // lab:hint "memory.memsw.limit_in_bytes" (memory + swap) to the same value.
    // lab:hint v2: "memory.max" to the limit and, if present, "memory.swap.max" to "0".
    // ANCHOR: memory_limit
    match h.version {
        Version::V1 => {
            leaf.write("memory.limit_in_bytes", &limit.to_string())?;
            // With swap, the limit alone would push pages to swap: cap memory+swap too.
            if leaf.has("memory.memsw.limit_in_bytes") {
                leaf.write("memory.memsw.limit_in_bytes", &limit.to_string())?;
            }
        }
        Version::V2 => {
            leaf.write("memory.max", &limit.to_string())?;
            if leaf.has("memory.swap.max") {
                leaf.write("memory.swap.max", "0")?;
            }
        }
    }
    // ANCHOR_END: memory_limit
    // lab:end cg-memory-limit
    let limit_file = if h.version == Version::V1 {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    out.step(
        "demo",
        format!("echo {limit} > {limit_file}  ({} MiB)", limit >> 20),
    );
    let mib = limit >> 20;
    let child = waiting_child(out, "child", move |c| {
        c.speaker("child");
        let mut kept: Vec<Vec<u8>> = Vec::new();
        for step in 1..=(mib * 4 / 8) {
            // 8 MiB at a time, every page written, so the memory is really used.
            kept.push(vec![1u8; 8 << 20]);
            c.say(format!("allocated and touched {} MiB", step * 8));
        }
        c.step("never killed?!");
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    leaf.attach(pid)?;
    out.step(
        "demo",
        format!("echo {pid} > {}/cgroup.procs", rel(&h, &leaf)),
    );
    let mut child = child;
    child.release()?;
    let done = child.finish(out, "child")?;
    out.step(
        "demo",
        format!("waitpid({pid}) -> {}", status_text(done.status)),
    );
    match h.version {
        Version::V1 => {
            out.say(
                "demo",
                format!(
                    "memory.failcnt: {} (charges that hit memory.limit_in_bytes)",
                    leaf.read("memory.failcnt")?
                ),
            );
            if leaf.has("memory.memsw.failcnt") {
                // With memory+swap limited too, the kernel tries that counter first: the failures land here.
                out.say(
                    "demo",
                    format!(
                        "memory.memsw.failcnt: {} (charges that hit memory.memsw.limit_in_bytes)",
                        leaf.read("memory.memsw.failcnt")?
                    ),
                );
            }
            out.say(
                "demo",
                format!(
                    "memory.max_usage_in_bytes: {} MiB",
                    leaf.read_u64("memory.max_usage_in_bytes")? >> 20
                ),
            );
            out.say(
                "demo",
                format!(
                    "memory.oom_control: oom_kill {}",
                    leaf.key("memory.oom_control", "oom_kill").unwrap_or(0)
                ),
            );
        }
        Version::V2 => {
            out.say(
                "demo",
                format!(
                    "memory.events: max {}, oom {}, oom_kill {}",
                    leaf.key("memory.events", "max")?,
                    leaf.key("memory.events", "oom")?,
                    leaf.key("memory.events", "oom_kill")?
                ),
            );
            if leaf.has("memory.peak") {
                out.say(
                    "demo",
                    format!("memory.peak: {} MiB", leaf.read_u64("memory.peak")? >> 20),
                );
            }
        }
    }
    ensure!(
        matches!(
            done.status,
            nix::sys::wait::WaitStatus::Signaled(_, Signal::SIGKILL, _)
        ),
        "the child was not OOM-killed: {:?}",
        done.status
    );
    Ok(())
}

fn status_text(status: nix::sys::wait::WaitStatus) -> String {
    match status {
        nix::sys::wait::WaitStatus::Exited(_, code) => format!("exited with {code}"),
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// pids (CG-3)

/// `pids --max N`: a fork bomb in a group with `pids.max` N stops at N processes.
pub fn pids(out: &mut Narrator, max: u32, force: Option<Version>) -> Result<()> {
    if !(2..=200).contains(&max) {
        return Err(bad_input(format!("--max {max}: choose 2 to 200")));
    }
    let (h, top) = group_for("pids", force)?;
    let leaf = top.child("leaf")?;
    // ANCHOR: pids_max
    leaf.write("pids.max", &max.to_string())?;
    // ANCHOR_END: pids_max
    out.step(
        "demo",
        format!(
            "{}: mkdir {}; echo {max} > pids.max",
            h.version,
            rel(&h, &leaf)
        ),
    );
    let attempts = max * 3;
    let child = waiting_child(out, "bomb", move |c| {
        c.speaker("bomb");
        let mut kids = Vec::new();
        let mut refused = Vec::new();
        for _ in 0..attempts {
            match fork_child(|_| {
                nix::unistd::pause();
                Ok(0)
            }) {
                Ok(k) => kids.push(k),
                Err(e) => refused.push(
                    labkit::errors::errno_of(&e)
                        .map_or_else(|| format!("{e:#}"), |e| e.to_string()),
                ),
            }
        }
        refused.dedup();
        c.step(format!(
            "fork() x{attempts}: {} succeeded, {} failed with {}",
            kids.len(),
            attempts as usize - kids.len(),
            refused.join(", ")
        ));
        c.data(kids.len());
        c.ready_and_wait()?;
        Ok(0) // dropping `kids` kills and reaps them
    })?;
    let pid = child.pid().as_raw();
    leaf.attach(pid)?;
    out.step(
        "demo",
        format!("echo {pid} > {}/cgroup.procs", rel(&h, &leaf)),
    );
    let mut child = child;
    child.release()?;
    child.relay_until_ready(out, "bomb")?;
    out.step(
        "demo",
        format!(
            "cat pids.current -> {}  (the bomb and its children)",
            leaf.read("pids.current")?
        ),
    );
    if leaf.has("pids.events") {
        out.say(
            "demo",
            format!(
                "pids.events: max {} (forks refused by the limit)",
                leaf.key("pids.events", "max")?
            ),
        );
    }
    child.release()?;
    child.finish(out, "bomb")?;
    out.step(
        "demo",
        format!(
            "the bomb exited: pids.current -> {}",
            leaf.read("pids.current")?
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// cpu (CG-4 weights, cpuset)

/// The first CPU and memory node this process may use (`Cpus_allowed_list`, `Mems_allowed_list`).
fn first_cpu_and_node() -> Result<(u32, u32)> {
    let proc = Proc::host();
    let me = getpid().as_raw();
    let first = |list: String| -> Result<u32> {
        list.split([',', '-'])
            .next()
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("cannot parse CPU list {list:?}"))
    };
    Ok((
        first(proc.status_field(me, "Cpus_allowed_list")?)?,
        first(proc.status_field(me, "Mems_allowed_list")?)?,
    ))
}

/// `cpu --seconds S`: two busy loops pinned to one CPU (cpuset), in two groups weighted 2:1,
/// get CPU time near 2:1.
pub fn cpu_weights(out: &mut Narrator, seconds: f64, force: Option<Version>) -> Result<f64> {
    let (cpu, node) = first_cpu_and_node()?;
    let h = cg::for_controller("cpu", force)?;
    // Groups: v1 has cpu and cpuset on different hierarchies; v2 has one group for both.
    let (heavy, light, _keep) = match h.version {
        Version::V1 => {
            let (hs, pinned) = group_for("cpuset", Some(Version::V1))?;
            let pin = pinned.child("one-cpu")?;
            // ANCHOR: cpuset_v1
            pin.write("cpuset.cpus", &cpu.to_string())?;
            pin.write("cpuset.mems", &node.to_string())?;
            // ANCHOR_END: cpuset_v1
            out.step(
                "demo",
                format!(
                    "v1 cpuset: mkdir {}; echo {cpu} > cpuset.cpus; echo {node} > cpuset.mems",
                    rel(&hs, &pin)
                ),
            );
            let (_, top) = group_for("cpu", Some(Version::V1))?;
            let heavy = top.child("heavy")?;
            let light = top.child("light")?;
            // ANCHOR: shares
            heavy.write("cpu.shares", "2048")?;
            light.write("cpu.shares", "1024")?;
            // ANCHOR_END: shares
            out.step(
                "demo",
                format!(
                    "v1 cpu: mkdir {} {}; cpu.shares 2048 and 1024",
                    rel(&h, &heavy),
                    rel(&h, &light)
                ),
            );
            (heavy, light, vec![(pin, Some(pinned)), (top, None)])
        }
        Version::V2 => {
            let top = Group::create(&h.own, &unique("cpu"), Version::V2)?;
            top.write("cgroup.subtree_control", "+cpu +cpuset")?;
            let heavy = top.child("heavy")?;
            let light = top.child("light")?;
            for (g, w) in [(&heavy, "200"), (&light, "100")] {
                g.write("cpuset.cpus", &cpu.to_string())?;
                g.write("cpu.weight", w)?;
            }
            out.step("demo", format!("v2: mkdir {0}/heavy {0}/light; +cpu +cpuset; cpuset.cpus {cpu}; cpu.weight 200 and 100", rel(&h, &top)));
            (heavy, light, vec![(top, None)])
        }
    };
    let a = spinner(out, "heavy")?;
    let b = spinner(out, "light")?;
    for (child, group) in [(&a, &heavy), (&b, &light)] {
        let pid = child.pid().as_raw();
        if h.version == Version::V1 {
            _keep[0].0.attach(pid)?;
        }
        group.attach(pid)?;
    }
    out.step(
        "demo",
        format!(
            "moved pid {} to heavy, pid {} to light, both onto CPU {cpu}",
            a.pid(),
            b.pid()
        ),
    );
    let (mut a, mut b) = (a, b);
    a.release()?;
    b.release()?;
    let start = (
        cpu_seconds(a.pid().as_raw())?,
        cpu_seconds(b.pid().as_raw())?,
    );
    std::thread::sleep(Duration::from_secs_f64(seconds)); // the measurement window
    let used = (
        cpu_seconds(a.pid().as_raw())? - start.0,
        cpu_seconds(b.pid().as_raw())? - start.1,
    );
    let affinity = Proc::host().status_field(a.pid().as_raw(), "Cpus_allowed_list")?;
    end(a)?;
    end(b)?;
    let ratio = if used.1 > 0.0 {
        used.0 / used.1
    } else {
        f64::INFINITY
    };
    out.step(
        "demo",
        format!("after {seconds:.1} s: CPU time from /proc/PID/stat"),
    );
    out.say("demo", format!("Cpus_allowed_list of both: {affinity}"));
    out.raw(
        table(&[
            vec!["group".into(), "weight".into(), "CPU seconds".into()],
            vec![
                "heavy".into(),
                if h.version == Version::V1 {
                    "2048".into()
                } else {
                    "200".into()
                },
                format!("{:.2}", used.0),
            ],
            vec![
                "light".into(),
                if h.version == Version::V1 {
                    "1024".into()
                } else {
                    "100".into()
                },
                format!("{:.2}", used.1),
            ],
        ])
        .trim_end(),
    );
    out.say(
        "demo",
        format!("measured ratio heavy/light: {ratio:.2} (configured 2.00)"),
    );
    Ok(ratio)
}

// ---------------------------------------------------------------------------------------------
// quota (CG-4)

/// `quota --percent P`: a busy loop in a group allowed P% of one CPU gets about that much;
/// `cpu.stat` counts the periods it was throttled.
pub fn quota(
    out: &mut Narrator,
    percent: u32,
    seconds: f64,
    force: Option<Version>,
) -> Result<f64> {
    if !(5..=95).contains(&percent) {
        return Err(bad_input(format!("--percent {percent}: choose 5 to 95")));
    }
    let (h, top) = group_for("cpu", force)?;
    let leaf = top.child("capped")?;
    let period = 100_000u32;
    let quota = period / 100 * percent;
    // ANCHOR: quota
    match h.version {
        Version::V1 => {
            leaf.write("cpu.cfs_period_us", &period.to_string())?;
            leaf.write("cpu.cfs_quota_us", &quota.to_string())?;
        }
        Version::V2 => leaf.write("cpu.max", &format!("{quota} {period}"))?,
    }
    // ANCHOR_END: quota
    out.step(
        "demo",
        match h.version {
            Version::V1 => format!(
                "v1: {}: cpu.cfs_period_us {period}, cpu.cfs_quota_us {quota}",
                rel(&h, &leaf)
            ),
            Version::V2 => format!("v2: {}: cpu.max \"{quota} {period}\"", rel(&h, &leaf)),
        },
    );
    let mut spin = spinner(out, "loop")?;
    leaf.attach(spin.pid().as_raw())?;
    spin.release()?;
    let wall = Instant::now();
    let start = cpu_seconds(spin.pid().as_raw())?;
    std::thread::sleep(Duration::from_secs_f64(seconds)); // the measurement window
    let used = cpu_seconds(spin.pid().as_raw())? - start;
    let fraction = used / wall.elapsed().as_secs_f64();
    end(spin)?;
    out.step("demo", format!("after {seconds:.1} s: the loop used {used:.2} CPU seconds: {:.0}% of one CPU (configured {percent}%)", fraction * 100.0));
    out.say(
        "demo",
        format!(
            "cpu.stat: nr_periods {}, nr_throttled {}",
            leaf.key("cpu.stat", "nr_periods")?,
            leaf.key("cpu.stat", "nr_throttled")?
        ),
    );
    Ok(fraction)
}

// ---------------------------------------------------------------------------------------------
// accounting (CG-5)

/// `accounting`: a child uses some CPU and memory; the group's files report about what the
/// child measured itself.
pub fn accounting(out: &mut Narrator, force: Option<Version>) -> Result<()> {
    let (hm, mtop) = group_for("memory", force)?;
    let mleaf = mtop.child("leaf")?;
    // CPU time: v1 cpuacct.usage (cpuacct hierarchy); v2 cpu.stat usage_usec, in every group.
    let (hc, ctop, cleaf) = if hm.version == Version::V2 {
        (hm.clone(), None, None)
    } else {
        let (hc, ctop) = group_for("cpuacct", Some(Version::V1))?;
        let leaf = ctop.child("leaf")?;
        (hc, Some(ctop), Some(leaf))
    };
    let cpu_group = cleaf.as_ref().unwrap_or(&mleaf);
    out.step(
        "demo",
        format!(
            "memory: {} ({}); CPU time: {} ({})",
            rel(&hm, &mleaf),
            hm.version,
            rel(&hc, cpu_group),
            hc.version
        ),
    );
    let child = waiting_child(out, "child", |c| {
        c.speaker("child");
        let start = Instant::now();
        let burn = Duration::from_millis(400);
        while cpu_now()? < burn.as_secs_f64() && start.elapsed() < Duration::from_secs(10) {
            std::hint::black_box(0u64);
        }
        let held = vec![7u8; 48 << 20];
        std::hint::black_box(&held);
        let rss = Proc::host().status_field(getpid().as_raw(), "VmRSS")?;
        c.step(format!(
            "own measure: getrusage() CPU {:.3} s; VmRSS {rss}",
            cpu_now()?
        ));
        c.ready_and_wait()?;
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    mleaf.attach(pid)?;
    if let Some(l) = &cleaf {
        l.attach(pid)?;
    }
    let mut child = child;
    child.release()?;
    child.relay_until_ready(out, "child")?;
    // ANCHOR: accounting
    let cpu = match hc.version {
        Version::V1 => cpu_group.read_u64("cpuacct.usage")? as f64 / 1e9,
        Version::V2 => cpu_group.key("cpu.stat", "usage_usec")? as f64 / 1e6,
    };
    let memory = match hm.version {
        Version::V1 => mleaf.read_u64("memory.usage_in_bytes")?,
        Version::V2 => mleaf.read_u64("memory.current")?,
    };
    // ANCHOR_END: accounting
    out.step(
        "demo",
        format!(
            "the group's files: CPU {cpu:.3} s ({}); memory {} MiB ({})",
            if hc.version == Version::V1 {
                "cpuacct.usage"
            } else {
                "cpu.stat usage_usec"
            },
            memory >> 20,
            if hm.version == Version::V1 {
                "memory.usage_in_bytes"
            } else {
                "memory.current"
            }
        ),
    );
    child.release()?;
    child.finish(out, "child")?;
    drop((cleaf, ctop));
    Ok(())
}

/// This process's CPU time (user + system), from getrusage(2).
fn cpu_now() -> Result<f64> {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    Ok(t(u.user_time()) + t(u.system_time()))
}

// ---------------------------------------------------------------------------------------------
// freeze (CG-6)

/// `freeze`: freeze a group (v1 freezer, v2 cgroup.freeze), see its process make no progress,
/// thaw it; on v2 end it with cgroup.kill.
pub fn freeze(out: &mut Narrator, force: Option<Version>) -> Result<()> {
    let h = match force {
        Some(Version::V2) => cg::unified()?,
        Some(Version::V1) => cg::for_controller("freezer", Some(Version::V1))?,
        None => cg::for_controller("freezer", Some(Version::V1)).or_else(|_| cg::unified())?,
    };
    let top = Group::create(&h.own, &unique("freeze"), h.version)?;
    let leaf = top.child("leaf")?;
    out.step("demo", format!("{}: mkdir {}", h.version, rel(&h, &leaf)));
    let mut spin = spinner(out, "loop")?;
    let pid = spin.pid().as_raw();
    leaf.attach(pid)?;
    spin.release()?;
    let proc = Proc::host();
    let window = Duration::from_millis(300);
    let progress = || -> Result<f64> {
        let t0 = cpu_seconds(pid)?;
        std::thread::sleep(window); // the measurement window
        Ok(cpu_seconds(pid)? - t0)
    };
    out.step(
        "demo",
        format!(
            "running: {:.2} CPU seconds in {:.1} s",
            progress()?,
            window.as_secs_f64()
        ),
    );
    // ANCHOR: freeze
    match h.version {
        Version::V1 => leaf.write("freezer.state", "FROZEN")?,
        Version::V2 => leaf.write("cgroup.freeze", "1")?,
    }
    // ANCHOR_END: freeze
    // Freezing takes effect task by task: wait for the group to report it done.
    let deadline = Instant::now() + Duration::from_secs(10);
    let frozen = || -> Result<bool> {
        Ok(match h.version {
            Version::V1 => leaf.read("freezer.state")? == "FROZEN",
            Version::V2 => leaf.key("cgroup.events", "frozen")? == 1,
        })
    };
    while !frozen()? && Instant::now() < deadline {
        std::thread::yield_now();
    }
    out.step(
        "demo",
        match h.version {
            Version::V1 => format!(
                "echo FROZEN > freezer.state; freezer.state -> {}",
                leaf.read("freezer.state")?
            ),
            Version::V2 => format!(
                "echo 1 > cgroup.freeze; cgroup.events -> frozen {}",
                leaf.key("cgroup.events", "frozen")?
            ),
        },
    );
    let state = proc.status_field(pid, "State")?;
    out.say(
        "demo",
        format!(
            "frozen: {:.2} CPU seconds in {:.1} s; /proc/{pid}/status State: {state}",
            progress()?,
            window.as_secs_f64()
        ),
    );
    match h.version {
        Version::V1 => leaf.write("freezer.state", "THAWED")?,
        Version::V2 => leaf.write("cgroup.freeze", "0")?,
    }
    out.step(
        "demo",
        format!(
            "{}; thawed: {:.2} CPU seconds in {:.1} s",
            if h.version == Version::V1 {
                "echo THAWED > freezer.state"
            } else {
                "echo 0 > cgroup.freeze"
            },
            progress()?,
            window.as_secs_f64()
        ),
    );
    if h.version == Version::V2 {
        // ANCHOR: kill
        leaf.write("cgroup.kill", "1")?;
        // ANCHOR_END: kill
        let status = spin.wait()?;
        out.step(
            "demo",
            format!(
                "echo 1 > cgroup.kill; waitpid({pid}) -> {}",
                status_text(status)
            ),
        );
    } else {
        end(spin)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// devices (CG-13)

/// `devices`: a v1 devices group denies /dev/null (char 1:3): open(2) fails with EPERM there,
/// while /dev/zero still opens. (v2 controls devices with an eBPF program instead.)
pub fn devices(out: &mut Narrator) -> Result<()> {
    let h = cg::for_controller("devices", Some(Version::V1)).map_err(|_| {
        anyhow::Error::new(labkit::errors::MissingFeature(
            "no v1 devices hierarchy: on cgroup v2, device access is decided by an eBPF program \
             attached to the group (BPF_PROG_TYPE_CGROUP_DEVICE), which this demo does not load"
                .into(),
        ))
    })?;
    let top = Group::create(&h.own, &unique("devices"), h.version)?;
    let leaf = top.child("leaf")?;
    // ANCHOR: deny
    leaf.write("devices.deny", "c 1:3 rwm")?;
    // ANCHOR_END: deny
    out.step(
        "demo",
        format!(
            "v1: mkdir {}; echo 'c 1:3 rwm' > devices.deny  (/dev/null is char 1:3)",
            rel(&h, &leaf)
        ),
    );
    let child = waiting_child(out, "child", |c| {
        c.speaker("child");
        for dev in ["/dev/null", "/dev/zero"] {
            let opened = fs::OpenOptions::new().read(true).write(true).open(dev);
            c.step(format!(
                "open({dev}, O_RDWR) -> {}",
                opened.map_or_else(
                    |e| e
                        .raw_os_error()
                        .map_or(e.to_string(), |n| nix::errno::Errno::from_raw(n)
                            .to_string()),
                    |_| "0 (allowed)".into()
                )
            ));
        }
        Ok(0)
    })?;
    leaf.attach(child.pid().as_raw())?;
    let mut child = child;
    child.release()?;
    child.finish(out, "child")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// rules (CG-7, CG-8, CG-14): v1 hierarchies

fn mount_v1(at: &str, options: &str) -> nix::Result<()> {
    fs::create_dir_all(at).map_err(|_| nix::errno::Errno::EIO)?;
    nix::mount::mount(
        Some("none"),
        at,
        Some("cgroup"),
        nix::mount::MsFlags::empty(),
        Some(options),
    )
}

fn hierarchy_ids() -> Result<Vec<(String, String)>> {
    Ok(fs::read_to_string("/proc/cgroups")?
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[3] == "1").then(|| (f[0].to_string(), f[1].to_string()))
        })
        .collect())
}

/// `rules`: v1 hierarchies, in a private mount namespace: a hierarchy with no controller (a
/// named one) or several; the same options mount the same hierarchy; a different set of busy
/// controllers fails with EBUSY; a hierarchy outlives its mount while it has child groups.
pub fn rules(out: &mut Narrator) -> Result<()> {
    if !fs::read_to_string("/proc/filesystems")?
        .lines()
        .any(|l| l.split_whitespace().last() == Some("cgroup"))
    {
        return Err(anyhow::Error::new(labkit::errors::MissingFeature(
            "this kernel has no cgroup v1 filesystem".into(),
        )));
    }
    let name = unique("rules");
    let lab = clone_child(CloneFlags::CLONE_NEWNS, |lab| {
        let result = rules_in_lab(lab, &name);
        if result.is_err() {
            // Whatever failed, end the named hierarchy: mount it, remove its child, unmount.
            let opts = format!("none,name={name}");
            if mount_v1("/tmp/cleanup", &opts).is_ok() {
                let _ = fs::remove_dir("/tmp/cleanup/child");
                let _ = nix::mount::umount2("/tmp/cleanup", nix::mount::MntFlags::MNT_DETACH);
            }
        }
        result
    })?;
    out.step(
        "demo",
        format!("clone(CLONE_NEWNS | SIGCHLD) -> lab pid {}", lab.pid()),
    );
    lab.finish(out, "lab")?;
    Ok(())
}

fn rules_in_lab(lab: &mut Reporter, name: &str) -> Result<i32> {
    {
        lab.speaker("lab");
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("mount(\"/\", MS_REC | MS_PRIVATE)")?;
        nix::mount::mount(
            Some("tmpfs"),
            "/tmp",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .context("mount(tmpfs, /tmp)")?;
        lab.step("private mount namespace, tmpfs on /tmp: these mounts are seen nowhere else");
        let opts = format!("none,name={name}");
        // ANCHOR: named
        mount_v1("/tmp/one", &opts).context("mount -t cgroup -o none,name=...")?;
        // ANCHOR_END: named
        let line = |n: &str| {
            fs::read_to_string("/proc/self/cgroup").ok().and_then(|t| {
                t.lines()
                    .find(|l| l.contains(&format!("name={n}")))
                    .map(String::from)
            })
        };
        lab.step(format!(
            "mount -t cgroup -o {opts} none /tmp/one  (CG-7: a hierarchy with no controller)"
        ));
        lab.say(format!(
            "/proc/self/cgroup gains: {}",
            line(name).unwrap_or_default()
        ));
        mount_v1("/tmp/two", &opts).context("mount the same options again")?;
        fs::create_dir("/tmp/one/child").context("mkdir /tmp/one/child")?;
        lab.step(format!("mount -t cgroup -o {opts} none /tmp/two; mkdir /tmp/one/child  (CG-8: same options, same hierarchy)"));
        lab.say(format!(
            "/tmp/two/child exists: {}",
            Path::new("/tmp/two/child").is_dir()
        ));

        // Several controllers on one hierarchy: controllers that no v1 hierarchy holds yet.
        let ids = hierarchy_ids()?;
        let v2_busy: Vec<String> = cg::unified()
            .ok()
            .map(|u| u.controllers)
            .unwrap_or_default();
        let free: Vec<String> = ids
            .iter()
            .filter(|(c, id)| {
                id == "0"
                    && !v2_busy.contains(c)
                    && matches!(c.as_str(), "net_cls" | "net_prio" | "perf_event")
            })
            .map(|(c, _)| c.clone())
            .take(2)
            .collect();
        if free.len() == 2 {
            let set = free.join(",");
            match mount_v1("/tmp/multi", &set) {
                Ok(()) => {
                    let now = hierarchy_ids()?;
                    let shown: Vec<String> = now
                        .iter()
                        .filter(|(c, _)| free.contains(c))
                        .map(|(c, id)| format!("{c} in hierarchy {id}"))
                        .collect();
                    lab.step(format!("mount -t cgroup -o {set} none /tmp/multi  (CG-7: several controllers, one hierarchy)"));
                    lab.say(format!("/proc/cgroups: {}", shown.join(", ")));
                    nix::mount::umount2("/tmp/multi", nix::mount::MntFlags::empty())
                        .context("umount /tmp/multi")?;
                    lab.say("umount /tmp/multi: no child groups, so the hierarchy is gone and the controllers free again");
                }
                Err(e) => lab.step(format!(
                    "mount -t cgroup -o {set} -> {e} (the kernel keeps these controllers elsewhere)"
                )),
            }
        } else {
            lab.step("(no two free v1 controllers here to put on one new hierarchy; see nslab-doctor for the host's hierarchies)");
        }
        // Two controllers that are busy elsewhere (on two v1 hierarchies, or in use on v2):
        // asking for them together on a new hierarchy fails with EBUSY.
        let mut busy: Vec<(String, String)> = Vec::new();
        for (controller, id) in ids.iter().filter(|(_, id)| id != "0") {
            if !busy.iter().any(|(_, seen)| seen == id) {
                busy.push((controller.clone(), format!("v1 hierarchy {id}")));
            }
        }
        let v2_in_use: Vec<String> = cg::unified()
            .ok()
            .and_then(|u| fs::read_to_string(u.own.join("cgroup.subtree_control")).ok())
            .map(|t| t.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        for controller in v2_in_use
            .iter()
            .filter(|c| ids.iter().any(|(n, _)| n == *c))
        {
            busy.push((
                controller.clone(),
                "v2 (enabled in cgroup.subtree_control)".into(),
            ));
        }
        if busy.len() >= 2 {
            let set = format!("{},{}", busy[0].0, busy[1].0);
            // ANCHOR: ebusy
            let refused = mount_v1("/tmp/mixed", &set);
            // ANCHOR_END: ebusy
            if refused.is_ok() {
                // Only possible where no group uses them (a bare v2 tree): give them back at once.
                nix::mount::umount2("/tmp/mixed", nix::mount::MntFlags::empty())
                    .context("umount /tmp/mixed")?;
            }
            lab.step(format!(
                "mount -t cgroup -o {set} none /tmp/mixed -> {}  (CG-8: {} is on {}, {} on {})",
                errno_name(refused),
                busy[0].0,
                busy[0].1,
                busy[1].0,
                busy[1].1
            ));
        }

        // CG-14: unmount both mounts while /tmp/one/child exists.
        nix::mount::umount2("/tmp/one", nix::mount::MntFlags::empty())
            .context("umount /tmp/one")?;
        nix::mount::umount2("/tmp/two", nix::mount::MntFlags::empty())
            .context("umount /tmp/two")?;
        lab.step("umount /tmp/one /tmp/two, while the hierarchy still has a child group  (CG-14)");
        lab.say(format!(
            "/proc/self/cgroup still lists: {}",
            line(name).unwrap_or_else(|| "nothing".into())
        ));
        mount_v1("/tmp/again", &opts).context("mount the hierarchy again")?;
        lab.step(format!(
            "mount -t cgroup -o {opts} none /tmp/again: /tmp/again/child exists: {}",
            Path::new("/tmp/again/child").is_dir()
        ));
        fs::remove_dir("/tmp/again/child").context("rmdir /tmp/again/child")?;
        nix::mount::umount2("/tmp/again", nix::mount::MntFlags::empty())
            .context("umount /tmp/again")?;
        // The kernel ends a hierarchy when its last mount goes *and* it has no child group; a
        // removed child lingers a moment (it is freed after an RCU grace period), so an unmount
        // right after rmdir may leave the hierarchy alive: mount and unmount again until it ends.
        let gone_within = |limit: Duration| {
            let deadline = Instant::now() + limit;
            while line(name).is_some() && Instant::now() < deadline {
                std::thread::yield_now();
            }
            line(name).is_none()
        };
        if !gone_within(Duration::from_secs(2)) {
            // The child was still being freed at the unmount: one more unmount, now that it is
            // gone, ends the hierarchy. (A dying hierarchy is never reused by a mount.)
            mount_v1("/tmp/again", &opts).context("mount the hierarchy again")?;
            nix::mount::umount2("/tmp/again", nix::mount::MntFlags::empty())
                .context("umount /tmp/again")?;
            gone_within(Duration::from_secs(10));
        }
        lab.step(format!(
            "rmdir child; umount: /proc/self/cgroup lists it: {}",
            if line(name).is_some() {
                "yes"
            } else {
                "no, the hierarchy is gone"
            }
        ));
        ensure!(
            line(name).is_none(),
            "the named hierarchy {name} is still alive"
        );
        Ok(0)
    }
}

fn errno_name(r: nix::Result<()>) -> String {
    match r {
        Ok(()) => "0".into(),
        Err(e) => e.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// v2 (CG-15)

/// `v2`: the unified hierarchy's rules: controllers reach a group only through its parent's
/// `cgroup.subtree_control`, and a group with processes cannot pass controllers down (EBUSY).
pub fn v2_rules(out: &mut Narrator) -> Result<()> {
    let h = cg::unified()?;
    out.step(
        "demo",
        format!(
            "v2 at {}; this process's cgroup {} offers: {}",
            h.mount.display(),
            own_rel(&h),
            if h.controllers.is_empty() {
                "(none)".into()
            } else {
                h.controllers.join(" ")
            }
        ),
    );
    let top = Group::create(&h.own, &unique("v2"), Version::V2)?;
    let available = top.read("cgroup.controllers")?;
    out.step(
        "demo",
        format!(
            "mkdir {}; cgroup.controllers -> {}",
            rel(&h, &top),
            if available.is_empty() {
                "(none: the parent's subtree_control passes none down)"
            } else {
                &available
            }
        ),
    );
    let child = waiting_child(out, "child", |_| {
        nix::unistd::pause();
        Ok(0)
    })?;
    let pid = child.pid().as_raw();
    top.attach(pid)?;
    out.step(
        "demo",
        format!("echo {pid} > {}/cgroup.procs", rel(&h, &top)),
    );
    // A domain controller: threaded-capable ones (cpu, cpuset, pids, perf_event) may be enabled
    // in a threaded subtree next to processes, so they would not show the rule.
    let domain = ["memory", "io", "hugetlb", "misc", "rdma"]
        .into_iter()
        .find(|c| available.split_whitespace().any(|a| a == *c));
    match domain {
        Some(controller) => {
            // ANCHOR: no_internal
            let refused = top.write("cgroup.subtree_control", &format!("+{controller}"));
            // ANCHOR_END: no_internal
            out.step("demo", format!("echo +{controller} > cgroup.subtree_control -> {}  (no internal processes: a group passes controllers down only while it has no processes of its own)", errno_text(&refused)));
            let leaf = top.child("leaf")?;
            leaf.attach(pid)?;
            let allowed = top.write("cgroup.subtree_control", &format!("+{controller}"));
            out.step("demo", format!("mkdir leaf; move pid {pid} there; echo +{controller} > cgroup.subtree_control -> {}", errno_text(&allowed)));
            out.say("demo", format!("leaf/cgroup.controllers -> {}", leaf.read("cgroup.controllers")?));
        }
        None => out.say("demo", "no controller to pass down from here: the rule needs one (run as a process whose cgroup delegates controllers, e.g. in `cargo xtask vm-test`)"),
    }
    end(child)?;
    Ok(())
}
