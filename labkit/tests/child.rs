//! The child-process machinery, checked in a single-threaded program (`harness = false`):
//! fork and clone must not run inside libtest's threads.

use anyhow::Context;
use labkit::Narrator;
use labkit::child::{Msg, clone_child, clone_child_into, fork_child};
use labkit::errors::errno_of;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::kill;

type Check = fn() -> anyhow::Result<()>;

fn fork_child_relays_steps_in_order_and_returns_data() -> anyhow::Result<()> {
    let mut child = fork_child(|c| {
        c.step("one");
        c.say("answer");
        c.data(42);
        c.step("two");
        Ok(3)
    })?;
    let mut seen = Vec::new();
    while let Some(msg) = child.next_msg()? {
        seen.push(msg);
    }
    assert_eq!(
        seen,
        vec![
            Msg::Step("one".into()),
            Msg::Say("answer".into()),
            Msg::Data("42".into()),
            Msg::Step("two".into())
        ]
    );
    assert_eq!(labkit::child::exit_code(child.wait()?), 3);
    Ok(())
}

fn clone_child_gets_the_namespaces_it_asks_for() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("  (without root: CLONE_NEWUTS needs CAP_SYS_ADMIN; checking plain clone only)");
    }
    let flags = if nix::unistd::geteuid().is_root() {
        CloneFlags::CLONE_NEWUTS
    } else {
        CloneFlags::empty()
    };
    let parent = labkit::ns::inode(None, "uts")?;
    let child = clone_child(flags, |c| {
        c.data(labkit::ns::inode(None, "uts")?);
        Ok(0)
    })?;
    let done = child.finish(&mut Narrator::plain(), "child")?;
    let inode: u64 = done.data[0].parse()?;
    assert_eq!(inode != parent, flags.contains(CloneFlags::CLONE_NEWUTS));
    Ok(())
}

fn clone_child_into_starts_the_child_in_the_group() -> anyhow::Result<()> {
    let Some(v2) = labkit::cgroupfs::detect()?
        .hierarchies
        .into_iter()
        .find(|h| h.version == 2)
    else {
        return Err(anyhow::anyhow!(
            "no cgroup2 mount (every layout here has one)"
        ));
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("  (without root: no group to make; checking nothing else)");
        return Ok(());
    }
    // A group below this process's own cgroup in the v2 hierarchy.
    let own = std::fs::read_to_string("/proc/self/cgroup")?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no 0:: line in /proc/self/cgroup")?;
    let name = labkit::unique_name("into");
    let group = v2.mount_point.join(own.trim_start_matches('/')).join(&name);
    std::fs::create_dir(&group)?;
    let dir = std::fs::File::open(&group)?;
    let result = (|| -> anyhow::Result<()> {
        let child = clone_child_into(CloneFlags::empty(), std::os::fd::AsFd::as_fd(&dir), |c| {
            c.data(std::fs::read_to_string("/proc/self/cgroup")?);
            Ok(0)
        })?
        .context("clone3 or CLONE_INTO_CGROUP missing (Linux 5.7)")?;
        let done = child.finish(&mut Narrator::plain(), "child")?;
        let line = done.data[0]
            .lines()
            .find(|l| l.starts_with("0::"))
            .unwrap_or_default()
            .to_string();
        anyhow::ensure!(line.ends_with(&format!("/{name}")), "born in {line}");
        Ok(())
    })();
    std::fs::remove_dir(&group)?;
    result
}

fn a_childs_error_reaches_the_parent_with_its_errno() -> anyhow::Result<()> {
    let child = fork_child(|_| Err(Errno::EPERM).context("sethostname(\"x\")"))?;
    let err = child.finish(&mut Narrator::plain(), "child").unwrap_err();
    assert_eq!(errno_of(&err), Some(Errno::EPERM));
    assert_eq!(
        format!("{err:#}"),
        "sethostname(\"x\"): EPERM: Operation not permitted"
    );
    Ok(())
}

fn a_waiting_child_goes_on_only_when_released() -> anyhow::Result<()> {
    let mut child = fork_child(|c| {
        c.ready_and_wait()?;
        c.say("released");
        Ok(0)
    })?;
    assert_eq!(child.next_msg()?, Some(Msg::Ready));
    // Unreleased, the child goes to sleep in read(2) on the pipe (state S in /proc/PID/stat)
    // and stays there: it neither exits nor reports. Watch for that state (it may still be
    // running on its way to read(2) when Ready arrives), with a generous bound.
    let state = labkit::procfs::Proc::host().wait_for_state(
        child.pid().as_raw(),
        'S',
        std::time::Duration::from_secs(10),
    )?;
    anyhow::ensure!(state == 'S', "child state {state}, expected it asleep");
    child.release()?;
    assert_eq!(child.next_msg()?, Some(Msg::Say("released".into())));
    assert_eq!(labkit::child::exit_code(child.wait()?), 0);
    Ok(())
}

fn a_dropped_child_is_killed_and_reaped() -> anyhow::Result<()> {
    let mut child = fork_child(|c| {
        c.ready_and_wait()?;
        Ok(0)
    })?;
    assert_eq!(child.next_msg()?, Some(Msg::Ready));
    let pid = child.pid();
    drop(child);
    assert_eq!(
        kill(pid, None),
        Err(Errno::ESRCH),
        "no process (not even a zombie) is left"
    );
    Ok(())
}

fn a_panicking_child_is_reported() -> anyhow::Result<()> {
    let child = fork_child(|_| -> anyhow::Result<i32> { panic!("boom") })?;
    let err = child.finish(&mut Narrator::plain(), "child").unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    Ok(())
}

fn fork_and_clone_refuse_a_second_thread() -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let forked = fork_child(|_| Ok(0)).map(|_| ());
    let cloned = clone_child(CloneFlags::empty(), |_| Ok(0)).map(|_| ());
    drop(tx);
    thread.join().expect("the thread ends");
    for (call, result) in [("fork", forked), ("clone", cloned)] {
        let err = result
            .err()
            .with_context(|| format!("{call} ran with two threads"))?;
        let text = err.to_string();
        anyhow::ensure!(
            text.starts_with(&format!("{call}() refused: this process has 2 threads")),
            "{text}"
        );
        anyhow::ensure!(text.contains("single-threaded"), "{text}");
    }
    // The joined thread leaves the thread group a moment after join returns (its exit is
    // finished after it wakes the joiner): the next check forks again.
    let one = labkit::wait::until(std::time::Duration::from_secs(10), || {
        Ok(labkit::child::thread_count()? == 1)
    })?;
    anyhow::ensure!(one, "the second thread did not end");
    Ok(())
}

fn main() {
    let checks: &[(&str, Check)] = &[
        (
            "fork_child_relays_steps_in_order_and_returns_data",
            fork_child_relays_steps_in_order_and_returns_data,
        ),
        (
            "clone_child_gets_the_namespaces_it_asks_for",
            clone_child_gets_the_namespaces_it_asks_for,
        ),
        (
            "clone_child_into_starts_the_child_in_the_group",
            clone_child_into_starts_the_child_in_the_group,
        ),
        (
            "a_childs_error_reaches_the_parent_with_its_errno",
            a_childs_error_reaches_the_parent_with_its_errno,
        ),
        (
            "a_waiting_child_goes_on_only_when_released",
            a_waiting_child_goes_on_only_when_released,
        ),
        (
            "a_dropped_child_is_killed_and_reaped",
            a_dropped_child_is_killed_and_reaped,
        ),
        (
            "a_panicking_child_is_reported",
            a_panicking_child_is_reported,
        ),
        (
            "fork_and_clone_refuse_a_second_thread",
            fork_and_clone_refuse_a_second_thread,
        ),
    ];
    // libtest's listing (`--list`), which `cargo xtask vm-test` asks for: the names, no run.
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in checks {
            println!("{name}: test");
        }
        return;
    }
    // A panic in this program is a failing check and prints; a panic in a child is the expected
    // outcome of a_panicking_child_is_reported, which the parent checks in the report it gets,
    // so the child prints nothing (a passing run shows no panic message).
    let main_pid = std::process::id();
    std::panic::set_hook(Box::new(move |info| {
        if std::process::id() == main_pid {
            eprintln!("  (panicked: {info})");
        }
    }));
    let mut failed = 0;
    for (name, check) in checks {
        match std::panic::catch_unwind(check) {
            Ok(Ok(())) => println!("test {name} ... ok"),
            Ok(Err(e)) => {
                failed += 1;
                println!("test {name} ... FAILED: {e:#}");
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED (panicked)");
            }
        }
    }
    println!("\nchild: {} passed, {failed} failed", checks.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
