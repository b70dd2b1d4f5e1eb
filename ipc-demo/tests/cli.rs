//! Runs the real `ipc-demo` binary, snapshots its output and asserts what the kernel did, and
//! that the host's IPC namespace holds nothing of the demo's before or after.

use std::path::Path;

use labkit::assert_run_snapshot;
use labkit::testing::{
    Run, assert_no_process_left, needs_root, needs_unprivileged_userns, run, run_as_nobody,
};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ipc-demo"))
}

/// What the host's IPC namespace shows of the demo's key and queue name.
fn host_ipc() -> (String, bool) {
    let key = ipc_demo::KEY.to_string();
    let mut lines = String::new();
    for file in ["msg", "sem", "shm"] {
        let text = std::fs::read_to_string(format!("/proc/sysvipc/{file}")).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| l.split_whitespace().next() == Some(&key))
                .map(|l| format!("{file}: {l}\n")),
        );
    }
    let queue = Path::new("/dev/mqueue")
        .join(ipc_demo::MQ_NAME.trim_start_matches('/'))
        .exists();
    (lines, queue)
}

fn demo(test: &str, args: &[&str]) -> Option<Run> {
    assert_eq!(
        host_ipc(),
        (String::new(), false),
        "the host's IPC namespace must start clean"
    );
    let mut all = vec!["--rootless"];
    all.extend_from_slice(args);
    let r = run(bin(), &all);
    if r.code == 77 && needs_unprivileged_userns(test) {
        return None;
    }
    r.expect_code(0);
    assert_eq!(
        host_ipc(),
        (String::new(), false),
        "nothing left in the host's IPC namespace"
    );
    assert_no_process_left(&r, "ipc-demo");
    Some(r)
}

#[test]
fn help_lists_every_subcommand() {
    let r = run(bin(), &["--help"]);
    r.expect_code(0);
    assert!(r.stdout.contains("sysv") && r.stdout.contains("mqueue"));
    assert_run_snapshot!("help", r);
}

#[test]
fn sysv_objects_are_found_only_in_their_own_ipc_namespace() {
    let Some(r) = demo(
        "sysv_objects_are_found_only_in_their_own_ipc_namespace",
        &["sysv"],
    ) else {
        return;
    };
    let same = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("[same ns]"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        same.contains("msgget(0x6e736c62, 0) -> 0; semget -> 0; shmget -> 0"),
        "{same}"
    );
    assert!(
        same.contains(": 1 / 1 / 1 time(s)"),
        "listed in /proc/sysvipc: {same}"
    );
    assert!(
        r.stdout
            .contains("msgrcv() -> type 1, \"hello from the lab\"")
    );
    let other = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("[new ns]"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        other.contains("-> ENOENT; semget -> ENOENT; shmget -> ENOENT"),
        "{other}"
    );
    assert!(other.contains(": 0 / 0 / 0 time(s)"), "{other}");
    assert!(
        other.contains("msgget + msgrcv -> ENOENT"),
        "the message cannot be received there: {other}"
    );
    assert!(r.stdout.contains("IPC_RMID): removed"));
    assert_run_snapshot!("sysv", r);
}

#[test]
fn posix_queues_live_in_the_mqueue_of_their_ipc_namespace() {
    let Some(r) = demo(
        "posix_queues_live_in_the_mqueue_of_their_ipc_namespace",
        &["mqueue"],
    ) else {
        return;
    };
    assert!(r.stdout.contains("ls /tmp/mqueue -> nslab-demo"));
    assert!(
        r.stdout
            .contains("(the lab's mount, inherited) -> nslab-demo"),
        "a mount shows its mounter's namespace"
    );
    // Expected and actual side by side: the line the demo printed.
    let said = |what: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(what))
            .map_or("(no line)".to_string(), |l| l.trim().to_string())
    };
    assert!(
        r.stdout
            .contains("mq_open(\"/nslab-demo\", O_RDONLY) -> ENOENT"),
        "from the new namespace mq_open must find nothing: expected \"-> ENOENT\", got {:?}",
        said("O_RDONLY) ->")
    );
    assert!(
        r.stdout.contains("again -> ls: (empty)"),
        "a new mqueue mount shows the new namespace: expected \"again -> ls: (empty)\", got {:?}",
        said("again -> ls:")
    );
    assert!(
        r.stdout
            .contains("mq_unlink(\"/nslab-demo\") -> ls /tmp/mqueue: (empty)")
    );
    assert_run_snapshot!("mqueue", r);
}

#[test]
fn both_demos_run_as_root_and_as_nobody() {
    if needs_root("both_demos_run_as_root_and_as_nobody")
        || needs_unprivileged_userns("both_demos_run_as_root_and_as_nobody")
    {
        return;
    }
    for sub in ["sysv", "mqueue"] {
        for r in [run(bin(), &[sub]), run_as_nobody(bin(), &[sub])] {
            r.expect_code(0);
            assert!(r.stdout.contains("ENOENT"));
            assert_eq!(host_ipc(), (String::new(), false));
        }
    }
}
