//! sysv (IPC-1).

use std::fs;

use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::{Reporter, clone_child, fork_child};
use labkit::sysv;
use nix::sched::CloneFlags;

/// The key of every System V object the demo makes. A fixed key is safe: the objects are made
/// in a fresh IPC namespace, where no other program has one.
pub const KEY: sysv::Key = 0x6e73_6c62; // "nslb"

/// The `/proc/sysvipc/<file>` lines (besides the header) whose key is `key`.
fn listed(file: &str, key: sysv::Key) -> Result<usize> {
    // lab:begin ipc-sysv-listed
    let text = fs::read_to_string(format!("/proc/sysvipc/{file}"))
        .with_context(|| format!("/proc/sysvipc/{file}"))?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|k| k.parse::<i64>().ok())
                == Some(i64::from(key))
        })
        .count())
    // lab:end ipc-sysv-listed
}

/// An ID, or the errno's name (`ENOENT`).
fn errno_or<T: std::fmt::Display>(r: nix::Result<T>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => format!("{e:?}"),
    }
}

/// Look for the three objects by key, and in /proc/sysvipc, as the caller's namespace sees them.
pub(crate) fn look(r: &mut Reporter) -> Result<()> {
    r.step(format!(
        "msgget({KEY:#x}, 0) -> {}; semget -> {}; shmget -> {}",
        errno_or(sysv::msgget(KEY, 0)),
        errno_or(sysv::semget(KEY, 0, 0)),
        errno_or(sysv::shmget(KEY, 0, 0))
    ));
    r.say(format!(
        "/proc/sysvipc/msg, sem, shm list key {KEY} ({KEY:#x}): {} / {} / {} time(s)",
        listed("msg", KEY)?,
        listed("sem", KEY)?,
        listed("shm", KEY)?
    ));
    Ok(())
}

/// `sysv`: make a message queue, a semaphore set and a shared memory segment in the lab's IPC
/// namespace; a process in the same namespace finds them and reads the message, one in a new
/// IPC namespace finds nothing (ENOENT).
pub fn sysv_demo(out: &mut Narrator) -> Result<()> {
    let lab = clone_child(CloneFlags::CLONE_NEWIPC, |lab| {
        lab.speaker("lab");
        // ANCHOR: create
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
        let msq = sysv::msgget(KEY, flags).context("msgget(IPC_CREAT)")?;
        let sem = sysv::semget(KEY, 1, flags).context("semget(IPC_CREAT)")?;
        let shm = sysv::shmget(KEY, 4096, flags).context("shmget(IPC_CREAT)")?;
        sysv::msgsnd(msq, 1, b"hello from the lab").context("msgsnd()")?;
        // ANCHOR_END: create
        lab.step(format!(
            "msgget({KEY:#x}, IPC_CREAT) -> {msq}; semget -> {sem}; shmget -> {shm}"
        ));
        lab.step("msgsnd(type 1, \"hello from the lab\")");
        let removed = (|| -> Result<()> {
            let same = fork_child(|c| {
                c.speaker("same ns");
                look(c)?;
                let id = sysv::msgget(KEY, 0)?;
                let (mtype, text) = sysv::msgrcv(id, 64).context("msgrcv()")?;
                c.step(format!(
                    "msgrcv() -> type {mtype}, \"{}\"",
                    String::from_utf8_lossy(&text)
                ));
                // Put it back, for the other namespace to (not) find.
                sysv::msgsnd(id, mtype, &text).context("msgsnd()")?;
                Ok(0)
            })?;
            lab.step(format!(
                "fork() -> pid {}: a process in the same IPC namespace",
                same.pid()
            ));
            let mut same = same;
            same.forward(lab)?;
            let other = clone_child(CloneFlags::CLONE_NEWIPC, |c| {
                c.speaker("new ns");
                look(c)?;
                // ANCHOR: other_ns
                let received = sysv::msgget(KEY, 0).and_then(|id| sysv::msgrcv(id, 64));
                // ANCHOR_END: other_ns
                c.step(format!(
                    "msgget + msgrcv -> {}",
                    received.map_or_else(|e| e.to_string(), |_| "a message?!".into())
                ));
                Ok(0)
            })?;
            lab.step(format!(
                "clone(CLONE_NEWIPC | SIGCHLD) -> pid {}: a process in a new IPC namespace",
                other.pid()
            ));
            let mut other = other;
            other.forward(lab)?;
            Ok(())
        })();
        // Remove them whatever happened above.
        sysv::msg_remove(msq).context("msgctl(IPC_RMID)")?;
        sysv::sem_remove(sem).context("semctl(IPC_RMID)")?;
        sysv::shm_remove(shm).context("shmctl(IPC_RMID)")?;
        removed?;
        lab.step("msgctl, semctl, shmctl(IPC_RMID): removed");
        look(lab)?;
        Ok(0)
    })?;
    out.step(
        "host",
        format!("clone(CLONE_NEWIPC | SIGCHLD) -> lab pid {}", lab.pid()),
    );
    lab.finish(out, "lab")?;
    out.say(
        "host",
        format!(
            "/proc/sysvipc here lists key {KEY}: {} / {} / {} time(s)",
            listed("msg", KEY)?,
            listed("sem", KEY)?,
            listed("shm", KEY)?
        ),
    );
    Ok(())
}
