//! mqueue (IPC-2).

use std::fs;

use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::clone_child;
use nix::mount::{MsFlags, mount};
use nix::mqueue::{MQ_OFlag, MqAttr, mq_close, mq_open, mq_send, mq_unlink};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

/// The name of the POSIX message queue the demo makes.
pub const MQ_NAME: &str = "/nslab-demo";

/// `mqueue`: a POSIX message queue lives in the `mqueue` filesystem of its IPC namespace. A mount
/// of mqueue shows the queues of the namespace of the process that mounted it.
pub fn mqueue_demo(out: &mut Narrator) -> Result<()> {
    let lab = clone_child(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNS, |lab| {
        lab.speaker("lab");
        // ANCHOR: mount_mqueue
        // Mounts stay in this namespace: private first, then a scratch tmpfs and an mqueue on it.
        labkit::lab::make_root_private()?;
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
                // lab:begin ipc-mq-new-ns
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
