//! The runtime as a shared machine needs it: another local user and the container's own
//! processes are the attackers. Each test is one way in that an earlier version left open.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use common::{bin, leftovers, run, run_as_nobody, started};
use labkit::testing::{Background, Run, TempDir, command, needs_root, serial};

const NOBODY: u32 = 65534;

/// `sh -c SCRIPT` as root, with `$MC` the binary: for what needs the shell's own descriptors.
fn shell(script: &str) -> Run {
    // The shell execs minicontainer: same PID, remembered by `run`.
    let script = script.replace("\"$MC\"", &format!("'{}'", bin().display()));
    run(Path::new("/bin/sh"), &["-c", &script])
}

/// A running container called `name` (`sleep 30` under the init), started and remembered.
fn sleeper(name: &str) -> Background {
    let ctr = Background::start(
        bin(),
        &[
            "run",
            "--name",
            name,
            "--",
            "sh",
            "-c",
            "echo up; exec sleep 30",
        ],
        "up",
    );
    started(ctr.pid());
    ctr
}

fn assert_clean() {
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn a_forged_record_of_another_user_is_never_acted_on() {
    if needs_root("a_forged_record_of_another_user_is_never_acted_on") {
        return;
    }
    let _one = serial();
    // A process of root's that the forgery points at, and a file of root's it names as its log.
    let victim = Background::spawn(Path::new("/bin/sleep"), &["30"]);
    let dir = TempDir::new("forge");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "root's secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // As nobody: the directories the old runtime trusted (a work dir in /tmp named after a live
    // PID), and a store of nobody's own where root might be pointed with --root.
    let name = format!("nslab-forged{}", std::process::id());
    let forged = std::env::temp_dir().join(format!("nslab-ctr-{}-0", victim.pid()));
    let store = dir.path().join("store");
    let script = format!(
        "set -e; for d in {forged} {store} {store}/{name}; do mkdir -p $d; done; chmod 700 {store}; \
         cd {forged}; echo {name} > name; echo {pid} > pid; ln -s {secret} log; \
         cd {store}/{name}; printf '{{\"runner\":{{\"pid\":{pid},\"starttime\":0}}}}' > runner; ln -s {secret} log",
        forged = forged.display(),
        store = store.display(),
        pid = victim.pid(),
        secret = secret.display(),
    );
    let planted = Command::new("/bin/sh")
        .args(["-c", &script])
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(planted.success());
    let root = store.display().to_string();
    for args in [
        vec!["ps"],
        vec!["logs", &name],
        vec!["kill", &name],
        vec!["exec", &name, "--", "true"],
        vec!["stop", &name],
        vec!["gc"],
    ] {
        let r = run(bin(), &args);
        assert!(
            !r.stdout.contains(&name),
            "{args:?} lists it:\n{}",
            r.stdout
        );
        assert!(!r.stdout.contains("secret"), "{args:?}: {}", r.stdout);
        // The store nobody made is not root's to trust.
        let mut with_root = vec!["--root", root.as_str()];
        with_root.extend(&args);
        let r = run(bin(), &with_root);
        assert_eq!(r.code, 77, "{with_root:?}: {}", r.transcript());
        assert!(r.stderr.contains("not yours to trust"), "{}", r.stderr);
    }
    assert!(
        forged.join("log").exists(),
        "gc left nobody's directory alone"
    );
    assert!(
        Path::new(&format!("/proc/{}", victim.pid())).exists(),
        "the victim still runs"
    );
    std::fs::remove_dir_all(&forged).unwrap();
}

#[test]
fn another_users_containers_are_not_visible_nor_reachable() {
    if needs_root("another_users_containers_are_not_visible_nor_reachable") {
        return;
    }
    let _one = serial();
    let name = format!("nslab-mine{}", std::process::id());
    let mut ctr = sleeper(&name);
    assert!(run(bin(), &["ps"]).stdout.contains(&name));
    let ps = run_as_nobody(bin(), &["ps"]);
    assert!(!ps.stdout.contains(&name), "{}", ps.stdout);
    let ex = run_as_nobody(bin(), &["exec", &name, "--", "true"]);
    assert_eq!(ex.code, 77, "{}", ex.transcript());
    assert!(ex.stderr.contains("not yours to reach"), "{}", ex.stderr);
    // Root's store and what is in it are root's alone.
    let meta = std::fs::metadata("/run/nslab").unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let config = std::fs::metadata(format!("/run/nslab/{name}/config.json")).unwrap();
    assert_eq!(config.permissions().mode() & 0o777, 0o600);
    run(bin(), &["kill", &name]).expect_code(0);
    ctr.wait();
    assert_clean();
}

#[test]
fn the_callers_descriptors_and_environment_stay_outside() {
    if needs_root("the_callers_descriptors_and_environment_stay_outside") {
        return;
    }
    let _one = serial();
    // A descriptor open to the host's / (as `exec 7</` leaves one) and a secret in the caller's
    // environment; inside, PID 1 is the exec'd init with the spec's environment only.
    let r = shell(
        "exec 7</ 9</; NSLAB_SECRET=caller exec \"$MC\" run -- sh -c \
         'ls /proc/self/fd | tr \"\\n\" \" \"; echo; tr \"\\0\" \" \" </proc/1/cmdline; echo; \
          tr \"\\0\" \"\\n\" </proc/1/environ | grep -c NSLAB_SECRET; readlink /proc/1/exe; \
          ls /proc/1/fd | tr \"\\n\" \" \"; echo; echo x >> /proc/1/exe || echo exe=refused; \
          cat /proc/7/fd/7/etc/hostname 2>&1 | grep -c hostname'",
    );
    assert_eq!(r.code, 0, "{}", r.transcript());
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "0 1 2 3 ", "only ls's own directory above 2");
    assert!(
        lines[1].starts_with("nslab-init -- sh -c ls"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "0", "the caller's environment is not PID 1's");
    assert_eq!(
        lines[3], "/memfd:nslab-init (deleted)",
        "not the host's binary"
    );
    assert_eq!(lines[4], "0 1 2 ", "no pipe to the host runtime");
    assert!(r.stdout.contains("exe=refused"), "{}", r.stdout);
    // exec: the same for the process it starts.
    let name = format!("nslab-fd{}", std::process::id());
    let mut ctr = sleeper(&name);
    let r = shell(&format!(
        "exec 7</; NSLAB_SECRET=caller exec \"$MC\" exec {name} -- sh -c \
         'ls /proc/self/fd | tr \"\\n\" \" \"; echo; env | grep -c NSLAB_SECRET'"
    ));
    assert_eq!(r.stdout, "0 1 2 3 \n0\n", "{}", r.transcript());
    run(bin(), &["kill", &name]).expect_code(0);
    ctr.wait();
    assert_clean();
}

#[test]
fn the_container_cannot_type_into_the_callers_terminal() {
    if needs_root("the_container_cannot_type_into_the_callers_terminal") {
        return;
    }
    let _one = serial();
    // script(1) gives minicontainer a terminal; the container, without -t, gets a session of its
    // own (no controlling terminal) and TIOCSTI is refused (by the kernel and by seccomp).
    let inner = format!(
        "{} run -- perl -e 'my $c = \"x\"; ioctl(STDIN, 0x5412, $c) or print qq(TIOCSTI: $!\\n); \
         open(my $s, \"<\", \"/proc/self/stat\"); my @f = split / /, <$s>; print qq(tty_nr=$f[6]\\n)'",
        bin().display()
    );
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .output()
        .expect("script(1), from util-linux");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TIOCSTI: Operation not permitted"), "{text}");
    assert!(text.contains("tty_nr=0"), "no controlling terminal: {text}");
    assert_clean();
}

#[test]
fn the_default_filter_refuses_x32_and_io_uring() {
    if needs_root("the_default_filter_refuses_x32_and_io_uring") {
        return;
    }
    let _one = serial();
    let script = "print syscall(0x40000027) == -1 ? qq(x32: $!\\n) : qq(x32 allowed\\n); \
                  syscall(425, 1, 0) == -1 and print qq(io_uring_setup: $!\\n)";
    let r = run(bin(), &["run", "--", "perl", "-e", script]);
    assert_eq!(
        r.stdout,
        "x32: Function not implemented\nio_uring_setup: Operation not permitted\n",
        "{}",
        r.transcript()
    );
    // Without the filter the kernel itself answers io_uring_setup (a bad pointer).
    let r = run(
        bin(),
        &["run", "--seccomp=false", "--", "perl", "-e", script],
    );
    assert!(
        r.stdout.contains("io_uring_setup: Bad address"),
        "{}",
        r.stdout
    );
    assert_clean();
}

#[test]
fn device_nodes_shipped_in_a_root_filesystem_open_nothing() {
    if needs_root("device_nodes_shipped_in_a_root_filesystem_open_nothing") {
        return;
    }
    let _one = serial();
    let dir = TempDir::new("devroot");
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("busybox")).expect("busybox-static");
    // /dev/zero's numbers, as an image could ship them.
    nix::sys::stat::mknod(
        &rootfs.join("zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    )
    .unwrap();
    let rootfs_arg = rootfs.display().to_string();
    let r = run(
        bin(),
        &[
            "run",
            "--rootfs",
            &rootfs_arg,
            "--",
            "/busybox",
            "sh",
            "-c",
            "/busybox head -c1 /zero; echo shipped=$?; /busybox head -c1 /dev/zero | /busybox wc -c",
        ],
    );
    assert!(
        r.stderr.contains("/zero: Permission denied"),
        "{}",
        r.transcript()
    );
    assert!(r.stdout.contains("shipped=1"), "{}", r.stdout);
    assert!(
        r.stdout.ends_with("1\n"),
        "the runtime's /dev/zero works: {}",
        r.stdout
    );
    assert_clean();
}

#[test]
fn bad_ids_volumes_and_names_are_refused() {
    if needs_root("bad_ids_volumes_and_names_are_refused") {
        return;
    }
    let _one = serial();
    // (uid_t) -1 would leave the container running as root.
    let r = run(bin(), &["run", "--user", "4294967295", "--", "id", "-u"]);
    r.expect_code(2);
    assert!(r.stderr.contains("--user"), "{}", r.stderr);
    // A host directory onto /dev would get the container's device nodes and links.
    let host = TempDir::new("vol");
    let vol = format!("{}:/dev", host.path().display());
    let r = run(bin(), &["run", "-v", &vol, "--", "true"]);
    r.expect_code(2);
    assert!(r.stderr.contains("/dev"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0);
    for inside in ["/proc", "/sys/fs/cgroup"] {
        let vol = format!("{}:{inside}", host.path().display());
        run(bin(), &["run", "-v", &vol, "--", "true"]).expect_code(2);
    }
    // Six runs with one name at once: one gets it.
    let name = format!("nslab-dup{}", std::process::id());
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let child = command(bin(), &["run", "--name", &name, "--", "sleep", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            started(child.id() as i32);
            child
        })
        .collect();
    let codes: Vec<i32> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 2).count(), 5, "{codes:?}");
    assert_clean();
}

#[test]
fn gc_under_another_tmpdir_leaves_a_running_container_alone() {
    if needs_root("gc_under_another_tmpdir_leaves_a_running_container_alone") {
        return;
    }
    let _one = serial();
    let name = format!("nslab-gc{}", std::process::id());
    let mut ctr = sleeper(&name);
    let scratch = std::fs::read_to_string(format!("/run/nslab/{name}/scratch")).unwrap();
    let other = TempDir::new("tmpdir");
    let out = command(bin(), &["gc"])
        .env("TMPDIR", other.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        Path::new(&scratch).join("rootfs").is_dir(),
        "its layers are still there"
    );
    assert!(run(bin(), &["ps"]).stdout.contains(&name), "still running");
    run(bin(), &["kill", &name]).expect_code(0);
    ctr.wait();
    assert_clean();
}
