//! IPC namespaces: System V message queues, semaphore sets and shared memory segments, and POSIX
//! message queues, exist per IPC namespace. A process finds them by key (or name) in its own
//! namespace only.
//!
//! Every lesson runs in a **lab**: a child in a new IPC namespace (and, for POSIX queues, a new
//! mount namespace made private first). The objects live and die there; the host's IPC
//! namespace never holds any, and the demo removes them itself as well, as a program should.
#![forbid(unsafe_code)]

use std::fs;

use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::{Reporter, clone_child, fork_child};
use labkit::sysv;
use nix::mount::{MsFlags, mount};
use nix::mqueue::{MQ_OFlag, MqAttr, mq_close, mq_open, mq_send, mq_unlink};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

/// The key of every System V object the demo makes. A fixed key is safe: the objects are made
/// in a fresh IPC namespace, where no other program has one.
pub const KEY: sysv::Key = 0x6e73_6c62; // "nslb"

/// The name of the POSIX message queue the demo makes.
pub const MQ_NAME: &str = "/nslab-demo";

/// The `/proc/sysvipc/<file>` lines (besides the header) whose key is `key`.
fn listed(file: &str, key: sysv::Key) -> Result<usize> {
    // lab:begin ipc-sysv-listed tests=sysv_objects_are_found_only
    // TODO(lab): count the objects with this key that /proc/sysvipc/FILE lists.
    // TODO(lab): The file shows the System V objects of the reader's IPC namespace: a header
    // TODO(lab): line, then one line per object, whose first column is the key (in decimal).
    // lab:hint fs::read_to_string(format!("/proc/sysvipc/{file}")), skip(1) the header, and count
    // lab:hint the lines whose first split_whitespace() word parses (as i64) to i64::from(key).
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
fn look(r: &mut Reporter) -> Result<()> {
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

/// `mqueue`: a POSIX message queue lives in the `mqueue` filesystem of its IPC namespace. A mount
/// of mqueue shows the queues of the namespace of the process that mounted it.
pub fn mqueue_demo(out: &mut Narrator) -> Result<()> {
    let lab = clone_child(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNS, |lab| {
        lab.speaker("lab");
        // ANCHOR: mount_mqueue
        // Mounts stay in this namespace: private first, then a scratch tmpfs and an mqueue on it.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("mount(\"/\", MS_REC | MS_PRIVATE)")?;
        mount(
            Some("tmpfs"),
            "/tmp",
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .context("mount(tmpfs, /tmp)")?;
        fs::create_dir("/tmp/mqueue").context("mkdir(/tmp/mqueue)")?;
        mount(
            Some("mqueue"),
            "/tmp/mqueue",
            Some("mqueue"),
            MsFlags::empty(),
            None::<&str>,
        )
        .context("mount(\"mqueue\", \"/tmp/mqueue\", \"mqueue\")")?;
        // ANCHOR_END: mount_mqueue
        lab.step("mount(NULL, \"/\", NULL, MS_REC | MS_PRIVATE, NULL); mount(\"tmpfs\", \"/tmp\", \"tmpfs\", 0, NULL)");
        lab.step(
            "mount(\"mqueue\", \"/tmp/mqueue\", \"mqueue\"): the queues of this IPC namespace",
        );
        let attr = MqAttr::new(0, 4, 64, 0);
        let mq = mq_open(
            MQ_NAME,
            MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o600),
            Some(&attr),
        )
        .with_context(|| format!("mq_open(\"{MQ_NAME}\", O_CREAT)"))?;
        let result = (|| -> Result<()> {
            mq_send(&mq, b"hello", 0).context("mq_send()")?;
            lab.step(format!(
                "mq_open(\"{MQ_NAME}\", O_CREAT), mq_send(\"hello\")"
            ));
            lab.say(format!("ls /tmp/mqueue -> {}", ls("/tmp/mqueue")?));
            lab.say(format!(
                "cat /tmp/mqueue{MQ_NAME} -> {}",
                fs::read_to_string(format!("/tmp/mqueue{MQ_NAME}"))?.trim()
            ));
            let other = clone_child(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNS, |c| {
                c.speaker("new ns");
                // lab:begin ipc-mq-new-ns tests=posix_queues_live_in_the_mqueue
                // TODO(lab): from a new IPC namespace, look for the lab's POSIX queue, two ways.
                // TODO(lab): First through the inherited mqueue mount (ls), then with mq_open(2);
                // TODO(lab): then mount mqueue again on the same directory and list it.
                // TODO(lab): The mount shows the queues of the namespace that mounted it, and
                // TODO(lab): mq_open looks in the caller's own namespace: the two answers differ.
                // lab:hint Step "ls /tmp/mqueue (the lab's mount, inherited) -> " with
                // lab:hint ls("/tmp/mqueue")?; mq_open(MQ_NAME, MQ_OFlag::O_RDONLY,
                // lab:hint Mode::empty(), None) and step "mq_open(\"/nslab-demo\", O_RDONLY) ->
                // lab:hint ENOENT..." (the error's to_string); close it if it opened;
                // lab:hint mount(Some("mqueue"), "/tmp/mqueue", Some("mqueue"), MsFlags::empty(),
                // lab:hint None::<&str>) and step "mount(...) again -> ls: (empty)".
                // The inherited mount still shows the lab's namespace: the mount decides, not the reader.
                c.step(format!(
                    "ls /tmp/mqueue (the lab's mount, inherited) -> {}",
                    ls("/tmp/mqueue")?
                ));
                let opened = mq_open(MQ_NAME, MQ_OFlag::O_RDONLY, Mode::empty(), None);
                c.step(format!(
                    "mq_open(\"{MQ_NAME}\", O_RDONLY) -> {}",
                    opened
                        .as_ref()
                        .map_or_else(|e| e.to_string(), |_| "a queue?!".into())
                ));
                if let Ok(q) = opened {
                    let _ = mq_close(q);
                }
                mount(
                    Some("mqueue"),
                    "/tmp/mqueue",
                    Some("mqueue"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .context("mount(\"mqueue\", \"/tmp/mqueue\")")?;
                c.step(format!(
                    "mount(\"mqueue\", \"/tmp/mqueue\", \"mqueue\") again -> ls: {}",
                    ls("/tmp/mqueue")?
                ));
                Ok(0)
                // lab:end ipc-mq-new-ns
            })?;
            lab.step(format!(
                "clone(CLONE_NEWIPC | CLONE_NEWNS | SIGCHLD) -> pid {}",
                other.pid()
            ));
            let mut other = other;
            other.forward(lab)?;
            Ok(())
        })();
        mq_close(mq).context("mq_close()")?;
        mq_unlink(MQ_NAME).with_context(|| format!("mq_unlink(\"{MQ_NAME}\")"))?;
        result?;
        lab.step(format!(
            "mq_unlink(\"{MQ_NAME}\") -> ls /tmp/mqueue: {}",
            ls("/tmp/mqueue")?
        ));
        Ok(0)
    })?;
    out.step(
        "host",
        format!(
            "clone(CLONE_NEWIPC | CLONE_NEWNS | SIGCHLD) -> lab pid {}",
            lab.pid()
        ),
    );
    lab.finish(out, "lab")?;
    Ok(())
}

/// The names in a directory, sorted, or "(empty)".
fn ls(dir: &str) -> Result<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("readdir({dir})"))?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(if names.is_empty() {
        "(empty)".into()
    } else {
        names.join(" ")
    })
}
