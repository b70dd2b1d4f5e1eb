//! End to end: the claims of the earlier chapters hold inside a container, escape attempts get
//! the kernel's refusal, limits are enforced, the exit status comes through, and nothing is left
//! behind: on exit, on error, on Ctrl-C, and after SIGKILL once `gc` ran.

mod common;

use std::path::Path;

use common::{bin, leftovers, run, run_as_nobody, started};
use labkit::testing::{Background, Run, needs_root, needs_unprivileged_userns, serial, skip};

/// `minicontainer run ARGS -- sh -c SCRIPT`, as the current user (root in CI).
fn container(args: &[&str], script: &str) -> Run {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--", "sh", "-c", script]);
    let r = run(bin(), &all);
    assert_eq!(
        leftovers(),
        Vec::<String>::new(),
        "left behind after:\n{}",
        r.transcript()
    );
    r
}

#[test]
fn inside_a_container_every_chapter_holds() {
    if needs_root("inside_a_container_every_chapter_holds") {
        return;
    }
    let _one = serial();
    let script = "hostname; echo pid=$$; ls /proc | grep -c '^[0-9]'; grep -c . /proc/net/dev; \
                  cat /proc/self/cgroup | cut -d: -f3 | sort -u; grep -E 'CapBnd|NoNewPrivs' /proc/self/status; \
                  if test -e /proc/kcore; then wc -c < /proc/kcore; else echo 0; fi; ls /";
    let r = container(&["--hostname", "nslab-box"], script);
    r.expect_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "nslab-box", "UTS: its own hostname");
    assert_eq!(
        lines[1], "pid=2",
        "PID: the shell is PID 2 under the init (PID 1)"
    );
    let procs: u32 = lines[2].parse().unwrap();
    assert!(procs <= 4, "PID: only its own processes in /proc ({procs})");
    assert_eq!(
        lines[3], "3",
        "network: /proc/net/dev has two header lines and lo only"
    );
    assert_eq!(
        lines[4], "/",
        "cgroup namespace: its own cgroups are its root"
    );
    assert!(
        lines[5].starts_with("CapBnd:\t") && lines[5] != "CapBnd:\t000001ffffffffff",
        "capabilities reduced: {}",
        lines[5]
    );
    assert_eq!(lines[6], "NoNewPrivs:\t1");
    assert_eq!(lines[7], "0", "/proc/kcore is masked");
    assert!(
        r.stdout.contains("usr") && !r.stdout.contains(".oldroot"),
        "its own root, the host's gone"
    );
}

#[test]
fn escape_attempts_get_the_kernels_refusal() {
    if needs_root("escape_attempts_get_the_kernels_refusal") {
        return;
    }
    let _one = serial();
    let me = std::process::id();
    let script = format!(
        "mount -t tmpfs x /tmp 2>&1 | grep -qi 'permission denied' && echo mount-refused || echo mount-ok; \
         mknod /tmp/null c 1 3 2>/dev/null && echo mknod-ok || echo mknod-refused; \
         (echo x > /proc/sys/kernel/hostname) 2>/dev/null && echo sysctl-ok || echo sysctl-refused; \
         kill -0 {me} 2>/dev/null && echo host-visible || echo host-invisible; \
         test -e /proc/{me} && echo host-proc || echo no-host-proc; \
         grep -c . /proc/net/route"
    );
    let r = container(&[], &script);
    r.expect_code(0);
    for expected in [
        "mount-refused",
        "mknod-refused",
        "sysctl-refused",
        "host-invisible",
        "no-host-proc",
    ] {
        assert!(r.stdout.contains(expected), "{expected}:\n{}", r.stdout);
    }
    assert_eq!(
        r.stdout.lines().last(),
        Some("1"),
        "no route but the header: nothing to reach"
    );
}

#[test]
fn the_exit_status_is_the_commands() {
    let _one = serial();
    let r = container(&["--rootless"], "exit 7");
    if r.code == 77 && needs_unprivileged_userns("the_exit_status_is_the_commands") {
        return;
    }
    r.expect_code(7);
    container(&["--rootless"], "kill -TERM $$").expect_code(143);
    container(&["--rootless", "--init=false"], "exit 3").expect_code(3);
}

#[test]
fn limits_are_enforced() {
    if needs_root("limits_are_enforced") {
        return;
    }
    let _one = serial();
    let r = container(
        &["--memory", "32M"],
        "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null; echo dd=$?",
    );
    r.expect_code(0);
    assert!(
        r.stdout.contains("dd=137"),
        "OOM-killed (128 + SIGKILL): {}",
        r.transcript()
    );
    let r = container(
        &["--pids-limit", "8"],
        "n=0; for i in $(seq 20); do (sleep 2 &) 2>/dev/null && n=$((n+1)); done; echo started=$n",
    );
    let started: u32 = r
        .stdout
        .split("started=")
        .nth(1)
        .map_or(99, |s| s.trim().parse().unwrap_or(99));
    assert!(
        started < 20,
        "the fork bomb was contained: {}",
        r.transcript()
    );
    // The container sees its own group at /sys/fs/cgroup, read-only: v1 a directory per
    // hierarchy, v2 the group itself (its cgroup namespace makes it the root).
    let r = container(
        &["--pids-limit", "9"],
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
         echo 1 > /sys/fs/cgroup/pids.max 2>/dev/null || echo read-only",
    );
    r.expect_code(0);
    assert_eq!(r.stdout, "9\nread-only\n", "{}", r.transcript());
}

#[test]
fn rootless_containers_run_as_an_unprivileged_user() {
    if needs_root("rootless_containers_run_as_an_unprivileged_user")
        || needs_unprivileged_userns("rootless_containers_run_as_an_unprivileged_user")
    {
        return;
    }
    let _one = serial();
    let r = run_as_nobody(
        bin(),
        &[
            "run",
            "--hostname",
            "rootless-box",
            "--",
            "sh",
            "-c",
            "hostname; id -u; cat /proc/self/uid_map",
        ],
    );
    r.expect_code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "rootless-box");
    assert_eq!(lines[1], "0", "root inside");
    assert!(
        lines[2].split_whitespace().collect::<Vec<_>>() == ["0", "65534", "1"],
        "nobody outside: {}",
        lines[2]
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn explain_names_every_step() {
    if needs_root("explain_names_every_step") {
        return;
    }
    let _one = serial();
    let r = container(&["--explain", "--memory", "64M"], "true");
    r.expect_code(0);
    for step in [
        "clone(CLONE_NEWCGROUP | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS",
        "MS_REC | MS_PRIVATE",
        "mount(\"overlay\"",
        "pivot_root",
        "sethostname",
        "lo up",
        "capabilities",
        "PID 1 is pid_demo::init",
        "removing the cgroups",
    ] {
        assert!(r.stdout.contains(step), "{step} missing:\n{}", r.stdout);
    }
}

#[test]
fn ctrl_c_stops_the_container_and_removes_everything() {
    if needs_root("ctrl_c_stops_the_container_and_removes_everything") {
        return;
    }
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let _one = serial();
    let mut cmd = labkit::testing::command(
        bin(),
        &[
            "run",
            "--memory",
            "64M",
            "--",
            "sh",
            "-c",
            // exec: the forwarded SIGINT reaches the sleeping program itself (a shell would
            // wait for its foreground child to end first, as it does outside a container).
            "echo ready; exec sleep 30",
        ],
    );
    cmd.stdout(std::process::Stdio::piped()).process_group(0);
    let mut child = cmd.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    // Ctrl-C: the terminal signals the whole foreground process group.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "the container's status (128 + SIGINT): {status:?}"
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn after_sigkill_gc_removes_what_was_left() {
    if needs_root("after_sigkill_gc_removes_what_was_left") {
        return;
    }
    use std::io::BufRead;
    let _one = serial();
    let mut cmd = labkit::testing::command(
        bin(),
        &[
            "run",
            "--memory",
            "64M",
            "--pids-limit",
            "16",
            "--",
            "sh",
            "-c",
            "echo ready; sleep 30",
        ],
    );
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    child.kill().unwrap(); // SIGKILL: no cleanup can run; the container dies with it (PDEATHSIG)
    child.wait().unwrap();
    // The container's processes are gone (they died with it)...
    let gc = run(bin(), &["gc"]);
    gc.expect_code(0);
    // ...and gc removed the rest: its temp directory and its cgroups.
    assert_eq!(leftovers(), Vec::<String>::new(), "{}", gc.transcript());
    assert!(
        gc.stdout.contains("rm -r ") || gc.stdout.contains("rmdir "),
        "{}",
        gc.stdout
    );
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let _one = serial();
    for (args, needle) in [
        (
            vec!["run", "--rootfs", "/nonexistent", "--", "true"],
            "not a directory",
        ),
        (
            vec!["run", "--memory", "lots", "--", "true"],
            "is not a size",
        ),
        (
            vec!["run", "--user", "x", "--", "true"],
            "expected UID[:GID]",
        ),
        (
            vec!["run", "-e", "NOEQUALS", "--", "true"],
            "expected KEY=VALUE",
        ),
        (
            vec!["run", "-v", "/nonexistent:/data", "--", "true"],
            "/nonexistent: No such file or directory",
        ),
        (
            vec!["run", "-v", "/tmp:data", "--", "true"],
            "CONTAINER must be an absolute path",
        ),
        (
            vec!["run", "-v", "/tmp:/data:rx", "--", "true"],
            "the mode is ro or rw",
        ),
        (
            vec!["run", "--net", "wifi", "--", "true"],
            "invalid value 'wifi'",
        ),
        (vec!["kill", "-s", "NOPE", "x"], "not a signal"),
        (vec!["list", "--format", "yaml"], "table or json"),
        (
            vec!["kill", "-s", "TERM", "nslab-no-such-container"],
            "no running container is called",
        ),
    ] {
        let r = run(bin(), &args);
        r.expect_code(2);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(leftovers(), Vec::<String>::new());
    }
    let r = run(bin(), &["run", "--rootless", "--", "/no/such/program"]);
    assert_eq!(r.code, 127, "as a shell reports a command it cannot run");
    assert!(
        r.stderr.contains("execvp(\"/no/such/program\")"),
        "{}",
        r.stderr
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// A network namespace this test makes to play the host for `--net bridge`: the bridge and the
/// veths' host ends are made there, not in the machine's own namespace, so the test changes
/// nothing of the host and another run's bridge is none of its business.
struct TestNet {
    holder: Background,
}

impl TestNet {
    fn new() -> TestNet {
        let holder = Background::spawn(Path::new("/usr/bin/unshare"), &["-n", "sleep", "600"]);
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        let theirs = format!("/proc/{}/ns/net", holder.pid());
        // unshare(1) makes the namespace, then execs sleep: wait until it has.
        let made = labkit::wait::until(std::time::Duration::from_secs(10), || {
            Ok(std::fs::read_link(&theirs).is_ok_and(|l| l != ours))
        })
        .unwrap();
        assert!(made, "unshare -n made no network namespace");
        TestNet { holder }
    }

    /// `nsenter --net=NS -- PROGRAM ARGS...` (nsenter execs it: the same PID).
    fn args<'a>(&self, program: &'a str, args: &[&'a str]) -> Vec<String> {
        let mut all = vec![
            format!("--net=/proc/{}/ns/net", self.holder.pid()),
            "--".to_string(),
            program.to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    fn run(&self, program: &str, args: &[&str]) -> Run {
        let all = self.args(program, args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run(Path::new("/usr/bin/nsenter"), &all)
    }

    /// The links named nslab-br0 or nslab-v* in it.
    fn bridge_links(&self) -> Vec<String> {
        let r = self.run("ip", &["-o", "link", "show"]);
        r.expect_code(0);
        r.stdout
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n == "nslab-br0" || n.starts_with("nslab-v"))
            .collect()
    }
}

#[test]
fn bridge_containers_reach_each_other_and_the_host_and_nothing_else() {
    if needs_root("bridge_containers_reach_each_other_and_the_host_and_nothing_else") {
        return;
    }
    let _one = serial();
    let net = TestNet::new();
    let mc = bin().display().to_string();
    // Container A answers two TCP connections on port 7070 with its hostname, then ends.
    let server = "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 7070, \
                  Listen => 5, ReuseAddr => 1) or die \"listen: $!\"; $| = 1; print \"listen\", \"ing\\n\"; \
                  for (1..2) { $c = $s->accept; print $c \"pong from \", `hostname`; close $c }'";
    let a_args = net.args(
        &mc,
        &[
            "run",
            "--net",
            "bridge",
            "--explain",
            "--hostname",
            "nslab-a",
            "--",
            "sh",
            "-c",
            server,
        ],
    );
    let a_args: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let mut a = Background::start(Path::new("/usr/bin/nsenter"), &a_args, "listening");
    started(a.pid());
    let explained = a.lines.concat();
    // "[container] N. RTM_SETLINK lo up; RTM_NEWADDR 10.89.X.Y/24 dev eth0; ..."
    let address = explained
        .split("RTM_NEWADDR ")
        .find_map(|rest| rest.split_once("/24 dev eth0"))
        .map(|(ip, _)| ip.to_string())
        .unwrap_or_else(|| panic!("no eth0 address in:\n{explained}"));
    assert!(address.starts_with("10.89."), "{address}");
    assert!(net.bridge_links().contains(&"nslab-br0".to_string()));

    // The host (the test's namespace that plays it) reaches A on the bridge.
    let from_host = net.run(
        "bash",
        &["-c", &format!("exec 3<>/dev/tcp/{address}/7070 && cat <&3")],
    );
    assert_eq!(
        from_host.stdout,
        "pong from nslab-a\n",
        "{}",
        from_host.transcript()
    );

    // Container B reaches A; an address outside the bridge's subnet fails at once: there is
    // no route to it, so no packet leaves B (192.0.2.1 is TEST-NET-1, never routed anyway).
    let script = format!(
        "exec 3<>/dev/tcp/{address}/7070 && cat <&3; \
         (exec 4<>/dev/tcp/192.0.2.1/80) 2>&1 | grep -o 'Network is unreachable' | sort -u"
    );
    let b = net.run(
        &mc,
        &[
            "run",
            "--net",
            "bridge",
            "--hostname",
            "nslab-b",
            "--",
            "bash",
            "-c",
            &script,
        ],
    );
    b.expect_code(0);
    assert_eq!(
        b.stdout,
        "pong from nslab-a\nNetwork is unreachable\n",
        "{}",
        b.transcript()
    );

    assert_eq!(a.wait(), 0, "A served both and ended");
    assert_eq!(
        net.bridge_links(),
        Vec::<String>::new(),
        "the last one out removed the bridge"
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn inspect_shows_config_state_pid_cgroups_address_and_mounts() {
    if needs_root("inspect_shows_config_state_pid_cgroups_address_and_mounts") {
        return;
    }
    let _one = serial();
    let net = TestNet::new();
    let mc = bin().display().to_string();
    let name = format!("nslab-i{}", std::process::id());
    let _rm = RmOnDrop(name.clone());
    let data = labkit::tempdir::TempDir::create("inspect").unwrap();
    let volume = format!("{}:/data:ro", data.path().display());
    let r = net.run(
        &mc,
        &[
            "run", "-d", "--name", &name, "--net", "bridge", "--memory", "64M", "-v", &volume,
            "--", "sleep", "60",
        ],
    );
    r.expect_code(0);
    let inspect = |name: &str| -> serde_json::Value {
        let r = run(bin(), &["inspect", name]);
        r.expect_code(0);
        let all: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(
            all.as_array().map(Vec::len),
            Some(1),
            "an array, as docker's"
        );
        all[0].clone()
    };
    let running = inspect(&name);
    let runner = running["Runner"].as_i64().expect("Runner") as i32;
    started(runner);
    assert_eq!(running["Id"], name.as_str());
    assert_eq!(running["State"]["Status"], "running");
    assert_eq!(running["State"]["Running"], true);
    assert_eq!(running["State"]["ExitCode"], serde_json::Value::Null);
    let pid = running["State"]["Pid"].as_i64().unwrap();
    let ps = run(bin(), &["ps"]).stdout;
    let pid = pid.to_string();
    assert!(
        ps.lines().any(|l| l
            .split_whitespace()
            .take(2)
            .eq([name.as_str(), pid.as_str()])),
        "the PID ps shows:\n{ps}"
    );
    assert_eq!(running["Path"], "sleep");
    assert_eq!(running["Args"], serde_json::json!(["60"]));
    assert_eq!(
        running["Config"]["process"]["args"],
        serde_json::json!(["sleep", "60"])
    );
    let cgroups = running["Cgroups"].as_array().unwrap();
    assert!(!cgroups.is_empty(), "its memory group: {running:#}");
    for group in cgroups {
        let path = group["Path"].as_str().unwrap();
        assert!(Path::new(path).is_dir(), "{path} exists while it runs");
    }
    let ip = running["NetworkSettings"]["IPAddress"].as_str().unwrap();
    assert!(ip.starts_with("10.89."), "{running:#}");
    assert_eq!(running["NetworkSettings"]["IPPrefixLen"], 24);
    assert!(
        running["NetworkSettings"]["Gateway"]
            .as_str()
            .unwrap()
            .starts_with("10.89.")
    );
    let mounts = running["Mounts"].as_array().unwrap();
    let data_mount = mounts
        .iter()
        .find(|m| m["Destination"] == "/data")
        .unwrap_or_else(|| panic!("/data in {mounts:?}"));
    assert_eq!(
        data_mount["Source"],
        data.path().display().to_string().as_str()
    );
    assert_eq!(data_mount["RW"], false);
    assert!(
        running["LogPath"]
            .as_str()
            .is_some_and(|p| p.ends_with(&format!("{name}/log")))
    );

    run(bin(), &["stop", "-t", "5", &name]).expect_code(0);
    assert!(labkit::wait::process_exit(runner, std::time::Duration::from_secs(10)).unwrap());
    let ended = inspect(&name);
    assert_eq!(ended["State"]["Status"], "exited");
    assert_eq!(ended["State"]["Running"], false);
    assert_eq!(ended["State"]["Pid"], 0);
    assert_eq!(ended["State"]["ExitCode"], 143, "sleep ended by SIGTERM");
    for group in cgroups {
        let path = group["Path"].as_str().unwrap();
        assert!(!Path::new(path).exists(), "{path} removed when it ended");
    }
    run(bin(), &["rm", &name]).expect_code(0);
    let gone = run(bin(), &["inspect", &name]);
    gone.expect_code(2);
    assert!(gone.stderr.contains("does not exist"), "{}", gone.stderr);
    assert_eq!(net.bridge_links(), Vec::<String>::new());
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn etc_hostname_hosts_and_resolv_conf_are_the_containers_read_only() {
    if needs_root("etc_hostname_hosts_and_resolv_conf_are_the_containers_read_only") {
        return;
    }
    let _one = serial();
    let name = format!("nslab-e{}", std::process::id());
    // A line each, as the book shows it.
    let script = "
  cat /etc/hostname; grep -v localhost /etc/hosts
  test -e /etc/resolv.conf && echo resolv.conf || echo no-resolv.conf
  (echo x > /etc/hosts) 2>/dev/null && echo writable || echo read-only
  getent hosts $(hostname) | tr -s ' ' ' '";
    let r = container(&["--name", &name, "--hostname", "nslab-h"], script);
    assert_eq!(
        (r.code, r.stdout.clone()),
        (
            0,
            format!(
                "nslab-h\n127.0.1.1\tnslab-h {name}\nno-resolv.conf\nread-only\n127.0.1.1 nslab-h {name}\n"
            )
        ),
        "--net none: its hostname and name on 127.0.1.1, no resolv.conf, all read-only, and its own \
         hostname resolves:\n{}",
        r.transcript()
    );

    labkit::assert_run_snapshot!(
        "friendly_etc",
        Run {
            stdout: format!(
                "$ minicontainer run --name web --hostname nslab-h -- sh -c \"{script}\"\n{}",
                r.stdout
            ),
            ..r
        },
        &[(name.as_str(), "web")]
    );

    // --net bridge: its address in /etc/hosts, the host's resolver configuration.
    let net = TestNet::new();
    let mc = bin().display().to_string();
    let b = net.run(
        &mc,
        &[
            "run",
            "--net",
            "bridge",
            "--name",
            &name,
            "--hostname",
            "nslab-h",
            "--",
            "sh",
            "-c",
            "ip -4 -o addr show eth0 | tr -s ' ' | cut -d' ' -f4 | cut -d/ -f1; grep nslab-h /etc/hosts; \
             cat /etc/resolv.conf",
        ],
    );
    b.expect_code(0);
    let lines: Vec<&str> = b.stdout.lines().collect();
    let ip = lines[0];
    assert!(ip.starts_with("10.89."), "{}", b.transcript());
    assert_eq!(
        lines[1],
        format!("{ip}\tnslab-h {name}"),
        "{}",
        b.transcript()
    );
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap();
    let expected = match host.contains("nameserver 127.0.0.53") {
        true => std::fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or(host),
        false => host,
    };
    assert_eq!(
        lines[2..].join("\n").trim_end(),
        expected.trim_end(),
        "a copy of the host's"
    );
    assert_eq!(net.bridge_links(), Vec::<String>::new());
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn publish_forwards_the_hosts_loopback_port_to_a_bridge_container() {
    if needs_root("publish_forwards_the_hosts_loopback_port_to_a_bridge_container") {
        return;
    }
    let _one = serial();
    let net = TestNet::new();
    net.run("ip", &["link", "set", "lo", "up"]).expect_code(0);
    let mc = bin().display().to_string();
    let name = format!("nslab-f{}", std::process::id());
    // It answers two connections on port 7070 with its hostname, then ends.
    let server = "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 7070, \
                  Listen => 5, ReuseAddr => 1) or die \"listen: $!\"; $| = 1; print \"listen\", \"ing\\n\"; \
                  for (1..2) { $c = $s->accept; print $c \"pong from \", `hostname`; close $c }'";
    let args = net.args(
        &mc,
        &[
            "run",
            "--net",
            "bridge",
            "--name",
            &name,
            "--hostname",
            "nslab-p",
            "-p",
            "18080:7070",
            "-p",
            "127.0.0.1:18081:7070",
            "--",
            "sh",
            "-c",
            server,
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ctr = Background::start(Path::new("/usr/bin/nsenter"), &args, "listening");
    started(ctr.pid());
    // Bound on the (test's) host loopback only.
    let listening = net.run("ss", &["-Htln"]);
    for port in ["18080", "18081"] {
        let bound: Vec<&str> = listening
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter(|a| a.ends_with(&format!(":{port}")))
            .collect();
        assert_eq!(bound, [format!("127.0.0.1:{port}")], "{}", listening.stdout);
    }
    let inspect = run(bin(), &["inspect", &name]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(
        inspect[0]["NetworkSettings"]["Ports"]["7070/tcp"],
        serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "18080"},
                           {"HostIp": "127.0.0.1", "HostPort": "18081"}]),
        "as docker inspect shows them"
    );
    for port in ["18080", "18081"] {
        let reply = net.run(
            "bash",
            &[
                "-c",
                &format!("exec 3<>/dev/tcp/127.0.0.1/{port} && cat <&3"),
            ],
        );
        assert_eq!(
            reply.stdout,
            "pong from nslab-p\n",
            "{}",
            reply.transcript()
        );
    }
    assert_eq!(ctr.wait(), 0, "it served both and ended");
    // The forwarder went with it: nothing listens any more.
    let after = net.run("ss", &["-Htln"]);
    assert!(!after.stdout.contains(":18080"), "{}", after.stdout);
    assert_eq!(net.bridge_links(), Vec::<String>::new());
    // A port in use fails the run, which leaves nothing behind.
    let taken = net.args(
        "perl",
        &[
            "-MIO::Socket::INET",
            "-e",
            "$s = IO::Socket::INET->new(LocalAddr => '127.0.0.1:18082', Listen => 1) or die; \
             $| = 1; print \"bound\\n\"; sleep 600",
        ],
    );
    let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
    let _holder = Background::start(Path::new("/usr/bin/nsenter"), &taken, "bound");
    let r = net.run(
        &mc,
        &["run", "--net", "bridge", "-p", "18082:80", "--", "true"],
    );
    r.expect_code(1);
    assert!(
        r.stderr.contains("-p 18082:80: bind(127.0.0.1:18082)"),
        "{}",
        r.stderr
    );
    assert_eq!(net.bridge_links(), Vec::<String>::new());
    assert_eq!(leftovers(), Vec::<String>::new());
    for (args, needle) in [
        (
            vec!["run", "-p", "8080:80", "--", "true"],
            "needs --net bridge",
        ),
        (
            vec![
                "run",
                "--net",
                "bridge",
                "-p",
                "0.0.0.0:8080:80",
                "--",
                "true",
            ],
            "127.0.0.1 only",
        ),
        (
            vec!["run", "--net", "bridge", "-p", "80", "--", "true"],
            "expected [127.0.0.1:]HOSTPORT:CTRPORT",
        ),
        (
            vec!["run", "--net", "bridge", "-p", "0:80", "--", "true"],
            "from 1 to 65535",
        ),
    ] {
        let r = run(bin(), &args);
        r.expect_code(2);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn volumes_are_bind_mounts_read_only_when_asked() {
    if needs_root("volumes_are_bind_mounts_read_only_when_asked") {
        return;
    }
    let _one = serial();
    let host = labkit::tempdir::TempDir::create("vol").unwrap();
    std::fs::write(host.path().join("in"), "from the host\n").unwrap();
    let rw = format!("{}:/data", host.path().display());
    let ro = format!("{}:/srv/ro:ro", host.path().display());
    let r = container(
        &["-v", &rw, "-v", &ro],
        "cat /data/in; echo written > /data/out; \
         (echo x > /srv/ro/nope) 2>&1 | grep -o 'Read-only file system'",
    );
    r.expect_code(0);
    assert_eq!(r.stdout, "from the host\nRead-only file system\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "written\n",
        "a write through the volume lands on the host"
    );
    assert!(!host.path().join("nope").exists());

    // A symlink in the image is never followed to place a volume (it would resolve on the host
    // before pivot_root).
    let image = labkit::tempdir::TempDir::create("vol").unwrap();
    std::os::unix::fs::symlink("/etc", image.path().join("data")).unwrap();
    let rootfs = image.path().display().to_string();
    let r = run(
        bin(),
        &["run", "--rootfs", &rootfs, "-v", &rw, "--", "/bin/true"],
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("/data is a symlink in the image"),
        "{}",
        r.stderr
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn sigterm_to_minicontainer_reaches_the_container() {
    if needs_root("sigterm_to_minicontainer_reaches_the_container") {
        return;
    }
    let _one = serial();
    // The shell (PID 2, under the init) ends with 42 on SIGTERM; it says so once its trap is set.
    let script = "trap 'echo got-term; exit 42' TERM; echo trap-set; while :; do sleep 0.05; done";
    let mut ctr = Background::start(bin(), &["run", "--", "sh", "-c", script], "trap-set");
    started(ctr.pid());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ctr.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let code = ctr.wait();
    assert!(ctr.lines.concat().contains("got-term"), "{:?}", ctr.lines);
    assert_eq!(code, 42, "the container's exit status, after its trap ran");
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn timings_show_where_the_time_goes() {
    let _one = serial();
    let r = run(bin(), &["run", "--rootless", "--timings", "--", "true"]);
    if r.code == 77 && needs_unprivileged_userns("timings_show_where_the_time_goes") {
        return;
    }
    r.expect_code(0);
    let rows: Vec<&str> = r.stderr.lines().collect();
    assert!(
        rows[0].starts_with("step") && rows[0].contains("ms"),
        "{}",
        r.stderr
    );
    assert!(
        rows.iter().any(|l| l.contains("pivot_root")) && rows.iter().any(|l| l.contains("clone(")),
        "every step has a row:\n{}",
        r.stderr
    );
    let total: f64 = rows
        .last()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("a total in milliseconds:\n{}", r.stderr));
    assert!(total > 0.0);
}

#[test]
fn ps_exec_and_stop_work_on_a_named_container() {
    if needs_root("ps_exec_and_stop_work_on_a_named_container") {
        return;
    }
    let _one = serial();
    let name = format!("nslab-t{}", std::process::id());
    let mut ctr = Background::start(
        bin(),
        &[
            "run",
            "--name",
            &name,
            "--hostname",
            "named",
            "--pids-limit",
            "20",
            "--",
            "sh",
            "-c",
            "echo up; while :; do sleep 0.05; done",
        ],
        "up",
    );
    started(ctr.pid());
    let ps = run(bin(), &["ps"]);
    ps.expect_code(0);
    let row = ps
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in ps:\n{}", ps.stdout));
    assert!(
        row.contains(&ctr.pid().to_string()),
        "the RUNNER column: {row}"
    );

    // exec joins its namespaces and cgroups: its hostname, its PID numbering, its pids group.
    let ex = run(
        bin(),
        &[
            "exec",
            &name,
            "--",
            "sh",
            "-c",
            "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; grep -E ':pids:|^0::' /proc/self/cgroup | head -n 1; \
             grep -c . /sys/fs/cgroup/pids/pids.max 2>/dev/null; grep NoNewPrivs /proc/self/status; exit 5",
        ],
    );
    assert_eq!(
        ex.code,
        5,
        "exec returns its command's status:\n{}",
        ex.transcript()
    );
    let lines: Vec<&str> = ex.stdout.lines().collect();
    assert_eq!(lines[0], "named");
    assert_eq!(
        lines[1], "nslab-init -- sh -c echo up; while :; do sleep 0.05; done ",
        "PID 1 is the container's init, exec'd with the command (not the host's command line)"
    );
    assert!(
        lines[2].ends_with(":/"),
        "in the container's pids group, its cgroup root: {}",
        lines[2]
    );
    assert!(ex.stdout.contains("NoNewPrivs:\t1"));

    // The name is taken while it runs.
    let again = run(bin(), &["run", "--name", &name, "--", "true"]);
    again.expect_code(2);
    assert!(again.stderr.contains("already in use"), "{}", again.stderr);

    let stop = run(bin(), &["stop", "-t", "5", &name]);
    stop.expect_code(0);
    assert!(stop.stdout.contains("stopped (SIGTERM)"), "{}", stop.stdout);
    assert_eq!(ctr.wait(), 143, "sh ended by the forwarded SIGTERM");
    assert!(!run(bin(), &["ps"]).stdout.contains(&name));
    let gone = run(bin(), &["exec", &name, "--", "true"]);
    gone.expect_code(2);
    assert!(
        gone.stderr.contains("no running container is called"),
        "{}",
        gone.stderr
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// `minicontainer ARGS` with `input` on its standard input.
fn run_with_input(args: &[&str], input: &[u8]) -> Run {
    use std::io::Write;
    let mut child = labkit::testing::command(bin(), args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    started(child.id() as i32);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    Run::from(child.wait_with_output().unwrap())
}

/// `rm -f NAME` when dropped: a container the test started goes even when the test fails
/// half-way (a detached one would otherwise run on, and an ended one keep its record).
struct RmOnDrop(String);

impl Drop for RmOnDrop {
    fn drop(&mut self) {
        let _ = labkit::testing::command(bin(), &["rm", "-f", &self.0]).output();
    }
}

/// A named container that runs until stopped, for the commands that work on one by name.
struct Named {
    name: String,
    ctr: Background,
    _rm: RmOnDrop,
}

impl Named {
    fn start(tag: &str, args: &[&str]) -> Named {
        let name = format!("nslab-{tag}{}", std::process::id());
        let mut all = vec!["run", "--name", name.as_str()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--", "sh", "-c", "echo up; while :; do sleep 0.05; done"]);
        let ctr = Background::start(bin(), &all, "up");
        started(ctr.pid());
        Named {
            _rm: RmOnDrop(name.clone()),
            name,
            ctr,
        }
    }

    fn stop(mut self) {
        run(bin(), &["stop", "-t", "5", &self.name]).expect_code(0);
        assert_eq!(self.ctr.wait(), 143, "sh ended by the forwarded SIGTERM");
    }
}

#[test]
fn exec_takes_dockers_flags_i_t_e_w_u() {
    if needs_root("exec_takes_dockers_flags_i_t_e_w_u") {
        return;
    }
    let _one = serial();
    let ctr = Named::start("x", &["-e", "KEPT=yes", "-e", "OVER=old"]);
    let name = ctr.name.as_str();
    // -e adds to (or replaces in) the container's environment; -w and -u as docker's.
    let r = run(
        bin(),
        &[
            "exec",
            "-e",
            "OVER=new",
            "-e",
            "ADDED=1",
            "-w",
            "/tmp",
            "-u",
            "1000:1001",
            name,
            "sh",
            "-c",
            "echo $KEPT $OVER $ADDED; pwd; id -u; id -g",
        ],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "yes new 1\n/tmp\n1000\n1001\n"),
        "{}",
        r.transcript()
    );
    let r = run(
        bin(),
        &[
            "exec",
            "--workdir",
            "/proc",
            "-u",
            "7",
            name,
            "sh",
            "-c",
            "pwd; id -g",
        ],
    );
    assert_eq!(
        r.stdout,
        "/proc\n7\n",
        "-u UID alone: GID = UID\n{}",
        r.transcript()
    );
    // -i: standard input reaches the command.
    let r = run_with_input(&["exec", "-i", name, "cat"], b"typed\n");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "typed\n"),
        "{}",
        r.transcript()
    );
    // -t: a terminal of the container's devpts, copied to this (non-terminal) output.
    let r = run_with_input(
        &[
            "exec",
            "-it",
            name,
            "sh",
            "-c",
            "tty; test -t 0 && echo stdin-is-a-terminal",
        ],
        b"",
    );
    r.expect_code(0);
    let lines: Vec<&str> = r.stdout.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("/dev/pts/")),
        "{}",
        r.transcript()
    );
    assert_eq!(
        lines.get(1),
        Some(&"stdin-is-a-terminal"),
        "{}",
        r.transcript()
    );
    // Without -t, no terminal (even with -i).
    let r = run_with_input(&["exec", "-i", name, "sh", "-c", "tty || true"], b"");
    assert_eq!(r.stdout, "not a tty\n", "{}", r.transcript());
    for (args, needle) in [
        (
            vec!["exec", "-e", "NOEQUALS", name, "true"],
            "expected KEY=VALUE",
        ),
        (vec!["exec", "-u", "x", name, "true"], "expected UID[:GID]"),
        (vec!["exec", "-d", "-t", name, "true"], "-d with -t"),
    ] {
        let r = run(bin(), &args);
        r.expect_code(2);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
    ctr.stop();
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn cp_copies_a_file_both_ways_inside_the_root_and_never_through_a_symlink() {
    if needs_root("cp_copies_a_file_both_ways_inside_the_root_and_never_through_a_symlink") {
        return;
    }
    let _one = serial();
    use std::os::unix::fs::PermissionsExt;
    let host = labkit::tempdir::TempDir::create("cp").unwrap();
    let hostdir = host.path().display().to_string();
    let ctr = Named::start("c", &["--hostname", "nslab-cp"]);
    let name = ctr.name.clone();
    let name = name.as_str();
    let sh = |script: &str| {
        let r = run(bin(), &["exec", name, "sh", "-c", script]);
        r.expect_code(0);
        r.stdout
    };
    let to = |path: &str| format!("{name}:{path}");

    // Into the container: a file's bytes and permission bits; into a directory by its name.
    let file = host.path().join("tool");
    std::fs::write(&file, "#!/bin/sh\necho copied in\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let file = file.display().to_string();
    run(bin(), &["cp", &file, &to("/tmp/in")]).expect_code(0);
    run(bin(), &["cp", &file, &to("/tmp")]).expect_code(0);
    assert_eq!(
        sh("/tmp/in; /tmp/tool; stat -c %a /tmp/in"),
        "copied in\ncopied in\n755\n",
        "the same bytes, mode 755 (no set-user-ID)"
    );

    // Out of it: to a file, and into a directory by its name.
    sh("echo from the container > /tmp/out; chmod 6755 /tmp/out");
    let out = format!("{hostdir}/out.txt");
    run(bin(), &["cp", &to("/tmp/out"), &out]).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "from the container\n"
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o755,
        "no set-user-ID or set-group-ID bit reaches the host"
    );
    run(bin(), &["cp", &to("/etc/hostname"), &hostdir]).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(host.path().join("hostname")).unwrap(),
        "nslab-cp\n"
    );

    // Symlinks: at the end of the path, neither read nor written through; on the way, resolved
    // inside the root (a host path, absolute or by .., is not reached); no magic link.
    std::fs::write(host.path().join("secret"), "host only\n").unwrap();
    sh(&format!(
        "echo orig > /tmp/target; ln -s /tmp/target /tmp/link; ln -s {hostdir} /tmp/abs; \
         ln -s ../../../../../../..{hostdir} /tmp/up"
    ));
    for (args, needle) in [
        (
            vec!["cp".to_string(), to("/tmp/link"), out.clone()],
            "a symlink",
        ),
        (
            vec!["cp".into(), file.clone(), to("/tmp/link")],
            "a symlink",
        ),
        (
            vec!["cp".into(), to("/tmp/abs/secret"), out.clone()],
            "no such file",
        ),
        (
            vec!["cp".into(), to("/tmp/up/secret"), out.clone()],
            "no such file",
        ),
        (
            vec!["cp".into(), file.clone(), to("/tmp/abs/planted")],
            "no such file",
        ),
        (
            vec!["cp".into(), to("/proc/1/root/etc/hostname"), out.clone()],
            "a symlink",
        ),
        (vec!["cp".into(), to("/tmp"), out.clone()], "exists already"),
        (
            vec!["cp".into(), file.clone(), out.clone()],
            "one side must be a container's",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(bin(), &args);
        r.expect_code(2);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    }
    assert_eq!(
        sh("cat /tmp/target"),
        "orig\n",
        "not written through the link"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "from the container\n",
        "nothing copied from a refused path"
    );
    assert!(
        !host.path().join("planted").exists(),
        "nothing written on the host"
    );
    // The host's destination is not followed either.
    let planted = host.path().join("planted-link");
    std::os::unix::fs::symlink(host.path().join("secret"), &planted).unwrap();
    let r = run(
        bin(),
        &["cp", &to("/tmp/out"), &planted.display().to_string()],
    );
    r.expect_code(2);
    assert_eq!(
        std::fs::read_to_string(host.path().join("secret")).unwrap(),
        "host only\n"
    );
    // Directories, both ways: a new directory each time, links inside copied as links.
    sh(
        "mkdir -p /tmp/tree/sub; echo a > /tmp/tree/a; echo b > /tmp/tree/sub/b; \
        ln -s sub/b /tmp/tree/rel; chmod 750 /tmp/tree/sub",
    );
    run(bin(), &["cp", &to("/tmp/tree"), &hostdir]).expect_code(0);
    let tree = host.path().join("tree");
    assert_eq!(std::fs::read_to_string(tree.join("a")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(tree.join("sub/b")).unwrap(), "b\n");
    assert_eq!(
        std::fs::read_link(tree.join("rel")).unwrap(),
        Path::new("sub/b")
    );
    let mode = std::fs::metadata(tree.join("sub"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o750);
    let again = run(bin(), &["cp", &to("/tmp/tree"), &hostdir]);
    again.expect_code(2);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    let up = host.path().join("upload");
    std::fs::create_dir_all(up.join("d")).unwrap();
    std::fs::write(up.join("x"), "x\n").unwrap();
    std::fs::write(up.join("d/y"), "y\n").unwrap();
    std::os::unix::fs::symlink("d/y", up.join("link")).unwrap();
    run(bin(), &["cp", &up.display().to_string(), &to("/tmp/")]).expect_code(0);
    assert_eq!(
        sh("cat /tmp/upload/x /tmp/upload/d/y /tmp/upload/link; readlink /tmp/upload/link"),
        "x\ny\ny\nd/y\n"
    );
    // A link in a directory that leads out of it, or a FIFO: refused, the half-made copy gone.
    sh(
        "mkdir /tmp/t2; echo z > /tmp/t2/a; ln -s /etc/hostname /tmp/t2/out; \
        mkdir /tmp/t3; mkfifo /tmp/t3/fifo",
    );
    let t2 = host.path().join("t2").display().to_string();
    for (from, needle) in [
        ("/tmp/t2", "leads out of the copied directory"),
        ("/tmp/t3", "a device, FIFO or socket"),
    ] {
        let r = run(bin(), &["cp", &to(from), &t2]);
        r.expect_code(2);
        assert!(r.stderr.contains(needle), "{from}: {}", r.stderr);
        assert!(
            !Path::new(&t2).exists(),
            "{from}: the half-made copy is removed"
        );
    }
    let out2 = host.path().join("out2");
    std::fs::create_dir(&out2).unwrap();
    std::os::unix::fs::symlink("../../secret", out2.join("escape")).unwrap();
    let r = run(
        bin(),
        &["cp", &out2.display().to_string(), &to("/tmp/out2")],
    );
    r.expect_code(2);
    assert!(r.stderr.contains("leads out"), "{}", r.stderr);
    assert_eq!(sh("test -e /tmp/out2 && echo there || echo gone"), "gone\n");

    ctr.stop();
    let r = run(bin(), &["cp", &file, &to("/tmp/x")]);
    r.expect_code(2);
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// Write `bytes` as a blob of an OCI layout; returns its descriptor fields (digest, size).
fn blob(layout: &Path, bytes: &[u8]) -> (String, usize) {
    use sha2::Digest;
    let hex = format!("{:x}", sha2::Sha256::digest(bytes));
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

/// An OCI image layout with one layer: Debian's static busybox as /bin/busybox, /bin/sh and a
/// few applets, and a config with Env, Cmd and WorkingDir.
fn busybox_image(layout: &Path, busybox: &Path) {
    let mut layer = tar::Builder::new(Vec::new());
    let mut dir = |path: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        layer.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    for d in ["bin", "srv", "etc"] {
        dir(d);
    }
    layer
        .append_file("bin/busybox", &mut std::fs::File::open(busybox).unwrap())
        .unwrap();
    for applet in ["sh", "echo", "cat", "pwd", "hostname", "ls", "id"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        layer
            .append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let (layer_digest, layer_size) = blob(layout, &layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Env": ["PATH=/bin", "GREETING=hello"],
            "Cmd": ["sh", "-c", "echo $GREETING from $(hostname) in $(pwd)"],
            "WorkingDir": "/srv"
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    });
    let (config_digest, config_size) = blob(layout, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) = blob(layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size}]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}

#[test]
fn an_oci_image_runs_with_its_config() {
    if needs_root("an_oci_image_runs_with_its_config") {
        return;
    }
    let Some(busybox) = common::busybox("an_oci_image_runs_with_its_config") else {
        return;
    };
    let _one = serial();
    let work = labkit::tempdir::TempDir::create("img").unwrap();
    let layout = work.path().join("image");
    busybox_image(&layout, busybox);
    let cache = work.path().join("cache");
    let image = layout.display().to_string();
    let in_cache = |cache: &Path, args: &[&str]| {
        let out = labkit::testing::command(bin(), args)
            .env("XDG_CACHE_HOME", cache)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The image's Cmd, Env and WorkingDir; its layer unpacked into the cache.
    let (code, stdout, stderr) = in_cache(&cache, &["run", "--image", &image, "--hostname", "bb"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "hello from bb in /srv\n");
    let cached: Vec<_> = std::fs::read_dir(cache.join("nslab/layers/sha256"))
        .unwrap()
        .collect();
    assert_eq!(cached.len(), 1, "one layer, unpacked once");
    // Arguments replace the Cmd; -e overrides the image's Env; -w its WorkingDir.
    let (code, stdout, stderr) = in_cache(
        &cache,
        &[
            "run",
            "--image",
            &image,
            "-e",
            "GREETING=hi",
            "-w",
            "/",
            "--",
            "sh",
            "-c",
            "echo $GREETING; pwd; ls /bin/busybox; test -e /usr/bin || echo no-host-usr",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "hi\n/\n/bin/busybox\nno-host-usr\n");
    assert_eq!(leftovers(), Vec::<String>::new());

    // A corrupt layer is refused before anything is made.
    let corrupt = work.path().join("corrupt");
    busybox_image(&corrupt, busybox);
    let config_blob = std::fs::read_dir(corrupt.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&config_blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&config_blob, bytes).unwrap();
    let (code, _, stderr) = in_cache(
        &work.path().join("cache2"),
        &["run", "--image", &corrupt.display().to_string()],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is corrupt: expected sha256:"), "{stderr}");
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn run_takes_dockers_order_with_or_without_dashes_and_refuses_an_ambiguous_word() {
    const TEST: &str =
        "run_takes_dockers_order_with_or_without_dashes_and_refuses_an_ambiguous_word";
    if needs_root(TEST) {
        return;
    }
    let Some(busybox) = common::busybox(TEST) else {
        return;
    };
    let _one = serial();
    let work = labkit::tempdir::TempDir::create("order").unwrap();
    let layout = work.path().join("image");
    busybox_image(&layout, busybox);
    let image = layout.display().to_string();
    // A directory root: busybox as /bin/echo.
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/echo")).unwrap();
    let rootfs = rootfs.display().to_string();
    let cache = work.path().join("cache");
    // Each run in `dir`, with the test's image cache.
    let in_dir = |dir: &Path, args: &[&str]| -> Run {
        let child = labkit::testing::command(bin(), args)
            .env("XDG_CACHE_HOME", &cache)
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        started(child.id() as i32);
        Run::from(child.wait_with_output().unwrap())
    };
    let plain = work.path();
    for args in [
        vec!["run", "--rootfs", &rootfs, "/bin/echo", "hi", "-n"],
        vec!["run", "--rootfs", &rootfs, "--", "/bin/echo", "hi", "-n"],
        vec!["run", "--image", &image, "echo", "hi", "-n"],
        vec!["run", "--image", &image, "--", "echo", "hi", "-n"],
        vec!["run", &image, "echo", "hi", "-n"],
        vec!["run", "--hostname", "h", &image, "--", "echo", "hi", "-n"],
        vec!["run", "echo", "hi", "-n"],
        vec!["run", "--", "echo", "hi", "-n"],
    ] {
        let r = in_dir(plain, &args);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "hi -n\n"),
            "{args:?}: the words after the root are the command, flags included:\n{}",
            r.transcript()
        );
    }
    // IMAGE alone: its Cmd.
    let r = in_dir(plain, &["run", "--hostname", "bb", &image]);
    assert_eq!(r.stdout, "hello from bb in /srv\n", "{}", r.transcript());
    assert_eq!(leftovers(), Vec::<String>::new());

    // In a bundle's directory, a word that is a program (or an image) and could be an ID too.
    let bundle = work.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), "{}").unwrap();
    for word in ["sh", image.as_str()] {
        let r = in_dir(&bundle, &["run", word]);
        if word == "sh" {
            r.expect_code(2);
            let line = r.stderr.trim_end();
            assert!(!line.contains('\n'), "one line: {line}");
            for reading in [
                "ambiguous",
                "runc's run ID",
                "docker's run CMD",
                "run --bundle . sh",
                "run -- sh",
            ] {
                assert!(line.contains(reading), "{reading}: {line}");
            }
        } else {
            // An image path has a '/': never an ID, so docker's reading without a doubt.
            assert_eq!(
                r.stdout,
                "hello from minicontainer in /srv\n",
                "{}",
                r.transcript()
            );
        }
    }
    // `--` says it is a command; --rootfs says it is docker's.
    let r = in_dir(&bundle, &["run", "--", "echo", "x"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x\n"),
        "{}",
        r.transcript()
    );
    // runc's flags with docker's order are refused by name.
    let r = in_dir(
        plain,
        &["run", "--pid-file", "/nonexistent/p", "--", "true"],
    );
    r.expect_code(2);
    assert!(
        r.stderr.contains("--pid-file is runc's run ID's"),
        "{}",
        r.stderr
    );
    let r = in_dir(plain, &["run"]);
    r.expect_code(2);
    assert!(r.stderr.contains("run: no command"), "{}", r.stderr);
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn each_command_shows_its_own_flags_and_the_oci_global_flags_once() {
    let top = run(bin(), &["--help"]);
    top.expect_code(0);
    assert_eq!(
        top.stdout.matches("--log-format").count(),
        1,
        "{}",
        top.stdout
    );
    assert!(top.stdout.contains("OCI global options"), "{}", top.stdout);
    for sub in [
        "run", "exec", "ps", "logs", "stop", "kill", "create", "delete", "state",
    ] {
        let r = run(bin(), &[sub, "--help"]);
        r.expect_code(0);
        for flag in [
            "--root ",
            "--log ",
            "--log-format",
            "--systemd-cgroup",
            "--debug",
        ] {
            assert!(
                !r.stdout.contains(flag),
                "{sub} --help shows {flag}:\n{}",
                r.stdout
            );
        }
    }
    // Clients pass them before the command, as to runc: still accepted there.
    let r = run(
        bin(),
        &[
            "--root",
            "/nonexistent-nslab",
            "--log-format",
            "json",
            "--debug",
            "list",
            "-q",
        ],
    );
    r.expect_code(0);
}

/// An OCI layout with one layer holding one file, `/note`, with `text` in it.
fn note_image(layout: &Path, text: &str) {
    let mut layer = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    layer.append_data(&mut h, "note", text.as_bytes()).unwrap();
    let layer = layer.into_inner().unwrap();
    let (layer_digest, layer_size) = blob(layout, &layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/note"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}
    });
    let (config_digest, config_size) = blob(layout, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) = blob(layout, manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size}]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}

#[test]
fn images_lists_the_cache_and_prune_drops_layers_no_image_uses() {
    const TEST: &str = "images_lists_the_cache_and_prune_drops_layers_no_image_uses";
    if needs_root(TEST) {
        return;
    }
    let Some(busybox) = common::busybox(TEST) else {
        return;
    };
    let _one = serial();
    let work = labkit::tempdir::TempDir::create("prune").unwrap();
    let cache = work.path().join("cache");
    let with_cache = |args: &[&str]| {
        let mut cmd = labkit::testing::command(bin(), args);
        cmd.env("XDG_CACHE_HOME", &cache);
        cmd
    };
    let mc = |args: &[&str]| -> Run {
        let child = with_cache(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        started(child.id() as i32);
        Run::from(child.wait_with_output().unwrap())
    };
    let bb = work.path().join("busybox");
    busybox_image(&bb, busybox);
    let note = work.path().join("note");
    std::fs::create_dir(&note).unwrap();
    note_image(&note, "a note\n");
    let (bb, note) = (bb.display().to_string(), note.display().to_string());
    mc(&["run", "--image", &bb]).expect_code(0);
    // --print-spec opens the image (its layer unpacked) and runs nothing.
    mc(&["run", "--print-spec", "--image", &note]).expect_code(0);
    // A layer no image names (left by hand, or by an image forgotten before).
    let orphan = cache.join("nslab/layers/sha256").join("0".repeat(64));
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("f"), vec![0u8; 1500]).unwrap();

    let images = mc(&["images"]);
    images.expect_code(0);
    let rows: Vec<&str> = images.stdout.lines().collect();
    assert!(rows[0].starts_with("IMAGE ID"), "{}", images.stdout);
    let row_of = |source: &str| {
        rows.iter()
            .find(|r| r.ends_with(source))
            .unwrap_or_else(|| panic!("{source} in:\n{}", images.stdout))
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let bb_row = row_of(&bb);
    assert_eq!(bb_row[1], "1", "one layer");
    assert_eq!(bb_row[3], "MB", "busybox's layer is megabytes: {bb_row:?}");
    let note_row = row_of(&note);
    assert_eq!(&note_row[2..4], ["7", "B"], "its one file, 7 bytes");
    assert!(
        rows.last().unwrap().starts_with("3 layer(s), ")
            && rows
                .last()
                .unwrap()
                .ends_with("; 1 used by no image (minicontainer image prune)"),
        "{}",
        images.stdout
    );

    // busybox runs (its source gone meanwhile); the note image's source goes too.
    let name = format!("nslab-p{}", std::process::id());
    let _rm = RmOnDrop(name.clone());
    let mut ctr = with_cache(&[
        "run",
        "--name",
        &name,
        "--image",
        &bb,
        "--",
        "sh",
        "-c",
        "echo up; while :; do sleep 0.05; done",
    ])
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    started(ctr.id() as i32);
    let mut up = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(ctr.stdout.as_mut().unwrap()),
        &mut up,
    )
    .unwrap();
    assert_eq!(up, "up\n");
    std::fs::remove_dir_all(&bb).unwrap();
    std::fs::remove_dir_all(&note).unwrap();
    assert!(mc(&["images"]).stdout.contains(&format!("{note} (gone)")));

    let pruned = mc(&["image", "prune"]);
    pruned.expect_code(0);
    let id = &note_row[0];
    assert!(
        pruned
            .stdout
            .contains(&format!("forgot image {id} ({note} is gone)")),
        "{}",
        pruned.stdout
    );
    assert!(
        pruned
            .stdout
            .contains("removed layer 000000000000 (1.5 kB)"),
        "{}",
        pruned.stdout
    );
    assert!(
        pruned
            .stdout
            .ends_with("2 layer(s) removed, 1.5 kB freed\n"),
        "{}",
        pruned.stdout
    );
    assert!(
        !pruned.stdout.contains(&bb_row[0]),
        "busybox's layer is in use: kept\n{}",
        pruned.stdout
    );
    assert!(!orphan.exists());

    run(bin(), &["stop", "-t", "5", &name]).expect_code(0);
    assert_eq!(ctr.wait().unwrap().code(), Some(143));
    let pruned = mc(&["image", "prune"]);
    assert!(
        pruned
            .stdout
            .contains(&format!("forgot image {}", bb_row[0])),
        "{}",
        pruned.stdout
    );
    assert!(
        pruned.stdout.contains("1 layer(s) removed"),
        "{}",
        pruned.stdout
    );
    let images = mc(&["images"]);
    assert_eq!(
        images.stdout.lines().count(),
        2,
        "no image left: {}",
        images.stdout
    );
    assert!(
        images.stdout.contains("\n0 layer(s), 0 B in "),
        "{}",
        images.stdout
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn seccomp_refuses_new_namespaces_and_kernel_calls() {
    let _one = serial();
    let script = "unshare -U true 2>&1 | grep -o 'Operation not permitted'; \
                  dmesg 2>&1 >/dev/null | grep -o 'Operation not permitted'; \
                  grep -E '^Seccomp:' /proc/self/status";
    let r = container(&["--rootless"], script);
    if r.code == 77 && needs_unprivileged_userns("seccomp_refuses_new_namespaces_and_kernel_calls")
    {
        return;
    }
    r.expect_code(0);
    assert_eq!(
        r.stdout, "Operation not permitted\nOperation not permitted\nSeccomp:\t2\n",
        "unshare(2) and syslog(2) refused; mode 2 = a filter"
    );
    // Without the filter, the same container may make a user namespace (it needs no capability).
    let r = container(
        &["--rootless", "--seccomp=false"],
        "unshare -U true && echo made; grep -E '^Seccomp:' /proc/self/status",
    );
    r.expect_code(0);
    assert_eq!(r.stdout, "made\nSeccomp:\t0\n");
}

#[test]
fn tty_gives_the_command_a_terminal_of_the_containers_own() {
    let _one = serial();
    // Without a terminal on our side: the command still gets one, made in the container's devpts,
    // as the leader of a new session and in the terminal's foreground process group.
    let r = container(&["--rootless", "-t"], "tty; ps -o stat= -p $$; exit 3");
    if r.code == 77
        && needs_unprivileged_userns("tty_gives_the_command_a_terminal_of_the_containers_own")
    {
        return;
    }
    r.expect_code(3);
    let lines: Vec<&str> = r.stdout.lines().map(str::trim_end).collect();
    assert_eq!(
        lines[0], "/dev/pts/0",
        "a terminal of its own devpts:\n{}",
        r.stdout
    );
    assert!(
        lines[1].contains('s') && lines[1].contains('+'),
        "session leader (s) in the foreground group (+): {}",
        lines[1]
    );
    // Without -t, the command has no terminal at all here.
    let r = container(&["--rootless"], "tty");
    assert_eq!(r.stdout.trim_end(), "not a tty");

    // With a terminal (script(1) makes one, 33 rows by 101 columns): its window size is copied
    // in, and what is typed reaches the command.
    let script = format!(
        "stty cols 101 rows 33; {} run --rootless -t -- sh -c 'stty size; read a; echo got-$a'",
        bin().display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &script, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("script(1), from util-linux");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("33 101"), "the window size:\n{text}");
    assert!(text.contains("got-hello"), "typed input:\n{text}");
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn sigkill_at_every_setup_step_then_gc_leaves_nothing() {
    if needs_root("sigkill_at_every_setup_step_then_gc_leaves_nothing") {
        return;
    }
    let _one = serial();
    let net = TestNet::new();
    let mc = bin().display().to_string();
    let mut step = 1;
    loop {
        // The test-only hook: minicontainer stops for good right after step N.
        let args = net.args(
            &mc,
            &[
                "run",
                "--explain",
                "--memory",
                "64M",
                "--pids-limit",
                "50",
                "--net",
                "bridge",
                "--",
                "true",
            ],
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = labkit::testing::command(Path::new("/usr/bin/nsenter"), &args)
            .env("NSLAB_PAUSE_AT_STEP", step.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        started(child.id() as i32);
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let paused = loop {
            line.clear();
            if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() == 0 {
                break false; // it ended normally: there is no step N
            }
            if line.contains(&format!("paused after step {step} ")) {
                break true;
            }
        };
        if paused {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let gc = net.run(&mc, &["gc"]);
        gc.expect_code(0);
        assert_eq!(
            leftovers(),
            Vec::<String>::new(),
            "after SIGKILL at step {step} and gc:\n{}",
            gc.stdout
        );
        assert_eq!(net.bridge_links(), Vec::<String>::new(), "step {step}");
        if !paused {
            assert!(step > 15, "a run has more steps than {step}");
            break;
        }
        step += 1;
    }
}

#[test]
fn a_detached_container_runs_in_the_background_with_its_log() {
    if needs_root("a_detached_container_runs_in_the_background_with_its_log") {
        return;
    }
    let _one = serial();
    let name = format!("nslab-d{}", std::process::id());
    let _rm = RmOnDrop(name.clone());
    let r = run(
        bin(),
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "echo hello from $(hostname); sleep 60",
        ],
    );
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        format!("{name}\n"),
        "run -d prints the name and returns"
    );
    let ps = run(bin(), &["ps"]).stdout;
    let row = ps.lines().find(|l| l.starts_with(&name)).expect("in ps");
    // The background runner makes the container's objects: remember its PID (RUNNER).
    started(row.split_whitespace().nth(2).unwrap().parse().unwrap());
    // Its output goes to its log: `logs -f` shows it as it comes.
    let mut follow = Background::start(bin(), &["logs", "-f", &name], "hello");
    assert_eq!(follow.lines, ["hello from minicontainer\n"]);
    run(bin(), &["stop", "-t", "5", &name]).expect_code(0);
    assert_eq!(follow.wait(), 0, "logs -f ends with the container");
    // The run in the background cleans up after itself once the container has ended, all but
    // the record and log, which stay until rm.
    assert_eq!(leftovers(), Vec::<String>::new());
    let log = run(bin(), &["logs", &name]);
    assert_eq!(
        log.stdout,
        "hello from minicontainer\n",
        "{}",
        log.transcript()
    );
    run(bin(), &["rm", &name]).expect_code(0);
    let r = run(bin(), &["run", "-d", "-t", "--", "true"]);
    r.expect_code(2);
    assert!(r.stderr.contains("-d with -t"), "{}", r.stderr);
}

#[test]
fn logs_stay_after_exit_until_rm_and_follow_with_f_and_tail() {
    if needs_root("logs_stay_after_exit_until_rm_and_follow_with_f_and_tail") {
        return;
    }
    let _one = serial();
    let name = format!("nslab-l{}", std::process::id());
    let _rm = RmOnDrop(name.clone());
    // It writes three lines, then waits until `stop`'s SIGTERM, writes one more, and ends.
    let script = "trap 'echo four; exit' TERM; echo one; echo two; echo three; sleep 600 & wait";
    let r = run(
        bin(),
        &["run", "-d", "--name", &name, "--", "sh", "-c", script],
    );
    r.expect_code(0);
    // Once it has written three lines (and waits), a second follower with --tail 2.
    let all = Background::start(bin(), &["logs", "-f", &name], "three");
    assert_eq!(all.lines, ["one\n", "two\n", "three\n"]);
    let mut follow = Background::start(bin(), &["logs", "-f", "--tail", "2", &name], "three");
    assert_eq!(follow.lines, ["two\n", "three\n"], "--tail 2 first");
    drop(all);
    // Meanwhile, in another terminal.
    run(bin(), &["stop", &name]).expect_code(0);
    assert_eq!(
        follow.wait(),
        0,
        "logs -f ends when the container has ended"
    );
    assert_eq!(
        follow.lines,
        ["two\n", "three\n", "four\n"],
        "then what follows"
    );

    // Ended: gone from ps (not from ps -a), its log still there, its name still taken, until rm.
    assert!(!run(bin(), &["ps"]).stdout.contains(&name));
    let all = run(bin(), &["ps", "-a"]);
    let row = all
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in ps -a:\n{}", all.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cells[1], &cells[3..5]),
        ("-", &["exited", "(143)"][..]),
        "no PID, the exit code (the wait in its trap ended by SIGTERM): {row}"
    );
    let log = run(bin(), &["logs", &name]);
    assert_eq!(
        (log.code, log.stdout.as_str()),
        (0, "one\ntwo\nthree\nfour\n")
    );
    let tail = run(bin(), &["logs", "-n", "1", &name]);
    assert_eq!(tail.stdout, "four\n");
    let again = run(bin(), &["run", "--name", &name, "--", "true"]);
    again.expect_code(2);
    assert!(
        again
            .stderr
            .contains(&format!("it has ended: minicontainer rm {name}")),
        "{}",
        again.stderr
    );
    assert_eq!(leftovers(), Vec::<String>::new());
    let gc = run(bin(), &["gc"]);
    gc.expect_code(0);
    assert!(
        run(bin(), &["logs", &name]).code == 0,
        "gc leaves a kept record"
    );
    let rm = run(bin(), &["rm", &name]);
    assert_eq!(
        (rm.code, rm.stdout.as_str()),
        (0, format!("{name}\n").as_str()),
        "{}",
        rm.transcript()
    );
    let gone = run(bin(), &["logs", &name]);
    gone.expect_code(2);
    assert!(gone.stderr.contains("does not exist"), "{}", gone.stderr);
    // For the book: the session, as typed (the name shown as web).
    let shown = Run {
        code: 0,
        stdout: format!(
            "$ minicontainer run -d --name web -- sh -c \"{script}\"\n{}\
             $ minicontainer logs -f --tail 2 web    # until it ends; meanwhile: minicontainer stop web\n{}\
             $ minicontainer logs web                # it has ended: its log stays until rm\n{}\
             $ minicontainer logs -n 1 web\n{}\
             $ minicontainer run --name web -- true\n{}\
             $ minicontainer rm web\n{}",
            r.stdout,
            follow.lines.concat(),
            log.stdout,
            tail.stdout,
            again.stderr,
            rm.stdout,
        ),
        stderr: String::new(),
    };
    labkit::assert_run_snapshot!("friendly_logs", shown, &[(name.as_str(), "web")]);

    // A running container: rm refuses it, rm -f kills it first.
    let r = run(bin(), &["run", "-d", "--name", &name, "--", "sleep", "60"]);
    r.expect_code(0);
    let refused = run(bin(), &["rm", &name]);
    refused.expect_code(2);
    assert!(
        refused
            .stderr
            .contains("is running: stop it first, or rm -f"),
        "{}",
        refused.stderr
    );
    let rm = run(bin(), &["rm", "-f", &name, "nslab-no-such-ctr"]);
    rm.expect_code(2);
    assert_eq!(
        rm.stdout,
        format!("{name}\n"),
        "the one that exists goes: {}",
        rm.transcript()
    );
    assert!(
        rm.stderr.contains("nslab-no-such-ctr does not exist"),
        "{}",
        rm.stderr
    );
    assert!(run(bin(), &["logs", &name]).code == 2, "removed");
    assert_eq!(leftovers(), Vec::<String>::new());

    // --rm: nothing kept once it ends.
    let r = run(
        bin(),
        &[
            "run", "-d", "--rm", "--name", &name, "--", "sh", "-c", "echo bye",
        ],
    );
    r.expect_code(0);
    let mut follow = Background::spawn(bin(), &["logs", "-f", &name]);
    let code = follow.wait();
    assert!(
        code == 2 || follow.lines == ["bye\n"],
        "followed until it ended, or it had gone already: {code} {:?}",
        follow.lines
    );
    // Either way its run has ended, and had removed the record before it did.
    let gone = run(bin(), &["logs", &name]);
    assert_eq!(
        gone.code,
        2,
        "--rm removes the record and log: {}",
        gone.transcript()
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn print_spec_shows_the_oci_config_the_engine_is_given() {
    // No privilege needed: nothing is run.
    let r = run(
        bin(),
        &[
            "run",
            "--print-spec",
            "--hostname",
            "spec-box",
            "--memory",
            "64M",
            "--pids-limit",
            "10",
            "--cpus",
            "0.5",
            "--user",
            "1000:1000",
            "-e",
            "GREETING=hi",
            "-v",
            "/etc:/data:ro",
            "--",
            "sh",
            "-c",
            "true",
        ],
    );
    r.expect_code(0);
    let spec: oci_spec::runtime::Spec = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("{e}: not an OCI runtime spec:\n{}", r.stdout));
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["ociVersion"], "1.2.0");
    assert_eq!(json["hostname"], "spec-box");
    assert_eq!(
        json["process"]["args"],
        serde_json::json!(["sh", "-c", "true"])
    );
    assert_eq!(json["process"]["user"]["uid"], 1000);
    assert_eq!(json["process"]["noNewPrivileges"], true);
    assert!(
        json["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&"GREETING=hi".into())
    );
    // A user other than root holds no capabilities; the bounding set is the default 13.
    assert_eq!(
        json["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .len(),
        13
    );
    assert_eq!(
        json["process"]["capabilities"]["effective"],
        serde_json::json!([])
    );
    let resources = &json["linux"]["resources"];
    assert_eq!(resources["memory"]["limit"], 64 << 20);
    assert_eq!(resources["pids"]["limit"], 10);
    assert_eq!(resources["cpu"]["quota"], 50_000);
    assert_eq!(resources["cpu"]["period"], 100_000);
    let namespaces: Vec<&str> = json["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        namespaces,
        ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    );
    let volume = json["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/data")
        .expect("the volume is a bind mount of the spec");
    assert_eq!(volume["source"], "/etc");
    assert!(volume["options"].as_array().unwrap().contains(&"ro".into()));
    assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
    // And the engine accepts it as it is.
    minicontainer::spec::Plan::new(&spec).expect("the engine's own spec is supported");
}

#[test]
fn doctor_tells_which_features_work_here_and_why() {
    if needs_root("doctor_tells_which_features_work_here_and_why") {
        return;
    }
    let r = run(bin(), &["doctor"]);
    r.expect_code(0);
    for row in [
        "cgroups",
        "minicontainer run, on this machine",
        "--memory",
        "--net bridge",
        "seccomp",
    ] {
        assert!(r.stdout.contains(row), "{row}:\n{}", r.stdout);
    }
    let bridge = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("--net bridge"))
            .map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        bridge(&r.stdout),
        "yes",
        "root may make bridges:\n{}",
        r.stdout
    );
    // The same machine, seen by an unprivileged user: the bridge needs root, and says so.
    let nobody = run_as_nobody(bin(), &["doctor"]);
    nobody.expect_code(0);
    assert_eq!(bridge(&nobody.stdout), "no", "{}", nobody.stdout);
    assert!(nobody.stdout.contains("needs root"), "{}", nobody.stdout);
}

#[test]
fn list_ps_and_state_end_with_141_when_the_reader_is_gone() {
    let root = labkit::tempdir::TempDir::new("oci-root");
    let root = root.path().to_string_lossy().into_owned();
    for args in [vec!["--root", root.as_str(), "list"], vec!["ps"]] {
        // A pipe whose reader is already gone: the first write gets EPIPE. Close-on-exec, so
        // that no program another test starts meanwhile inherits the reader and keeps it open.
        let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        drop(reader);
        let out = std::process::Command::new(bin())
            .args(&args)
            .stdout(std::process::Stdio::from(writer))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// The caller is not root: with a delegated cgroup v2 subtree (its own cgroup's parent is the
/// caller's to write, as systemd's user@UID.service is), `run --memory` and `--pids-limit` set
/// their limits there and the kernel enforces them; without one, the test skips saying why.
fn limits_in_the_callers_delegated_subtree(test: &str) {
    // The same finding as cgroup-demo's: the parent of the caller's own v2 cgroup, when that
    // directory, its cgroup.procs and its cgroup.subtree_control are the caller's.
    let Some(subtree) = cgroup_demo::cg::delegated_subtree() else {
        skip(
            test,
            "needs root, or a cgroup v2 subtree delegated to you (the parent of your cgroup is not yours to write)",
        );
        return;
    };
    let pids = limits_hold_in(&subtree, &|args| labkit::testing::run_with_pid(bin(), args));
    // Nothing of either run is left in the subtree.
    let left: Vec<String> = std::fs::read_dir(&subtree)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| labkit::testing::made_by(n, &pids))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "left in {}", subtree.display());
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// `run --memory 32M` and `run --pids-limit 9`, started by `runner` in a process whose cgroup's
/// parent is the delegated `subtree`: each says where its limits live, the OOM killer ends the
/// greedy `dd`, and the pids limit reads back inside. Returns the runs' PIDs.
fn limits_hold_in(subtree: &Path, runner: &dyn Fn(&[&str]) -> (i32, Run)) -> Vec<i32> {
    let mut pids = Vec::new();
    for (limit, script, expected) in [
        (
            ["--memory", "32M"],
            "dd if=/dev/zero of=/dev/null bs=200M count=1 2>/dev/null; echo dd=$?",
            "dd=137\n",
        ),
        (["--pids-limit", "9"], "cat /sys/fs/cgroup/pids.max", "9\n"),
    ] {
        let mut args = vec!["run"];
        args.extend(limit);
        args.extend(["--", "sh", "-c", script]);
        let (pid, r) = runner(&args);
        started(pid);
        pids.push(pid);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, expected),
            "{}",
            r.transcript()
        );
        assert!(
            r.stderr.contains(&format!(
                "rootless: limits in your delegated cgroup {}",
                subtree.display()
            )),
            "{}",
            r.stderr
        );
    }
    pids
}

#[test]
fn rootless_limits_live_in_a_delegated_cgroup_or_are_refused_saying_why() {
    const TEST: &str = "rootless_limits_live_in_a_delegated_cgroup_or_are_refused_saying_why";
    if !nix::unistd::geteuid().is_root() {
        // A user's own run (vm-test's pass as uid 1000, a student's `cargo test` in a systemd
        // session): the limits go in the subtree delegated to the caller, if it has one.
        return limits_in_the_callers_delegated_subtree(TEST);
    }
    if needs_unprivileged_userns(TEST) {
        return;
    }
    let _one = serial();
    let memory = cgroup_demo::cg::for_controller("memory", None).unwrap();
    let r = run_as_nobody(bin(), &["run", "--memory", "64M", "--", "true"]);
    assert_eq!(r.code, 77, "{}", r.transcript());
    if memory.version == cgroup_demo::cg::Version::V1 {
        // v1 hierarchies cannot be delegated: root's, and said so.
        assert!(
            r.stderr.contains("cgroup v1 here") && r.stderr.contains("root's"),
            "{}",
            r.stderr
        );
        return;
    }
    // v2, nobody's process in root's cgroup: which file is not writable, and how to delegate.
    assert!(
        r.stderr
            .contains("delegate a cgroup v2 subtree to yourself"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("systemd-run --user --scope -p Delegate=yes"),
        "{}",
        r.stderr
    );
    // Delegated: the limits are set below the subtree and enforced.
    let d = labkit::testing::Delegated::make(&["memory", "pids"]);
    limits_hold_in(&d.top, &|args| {
        labkit::testing::run_as_nobody_in_cgroup(bin(), args, &d.shell_procs())
    });
    // Nothing of it is left in the subtree: only the shell's group.
    let left: Vec<_> = std::fs::read_dir(&d.top)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["shell"], "left in the delegated subtree");
    assert_eq!(leftovers(), Vec::<String>::new());
}
