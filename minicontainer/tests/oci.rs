//! The OCI runtime command line, driven as container managers drive runc: on bundles these
//! tests build (Debian's static busybox as the root filesystem), through create, start, state,
//! kill and delete, and with each supported field of config.json observed from inside.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use labkit::tempdir::TempDir;
mod common;

use common::{bin, leftovers, run, started};
use labkit::testing::{Run, needs_root, serial, skip};
use serde_json::{Value, json};

/// A bundle: `rootfs/` with busybox and its applets, and the default `config.json` that
/// `minicontainer spec` writes, changed by `edit`.
struct Bundle {
    dir: TempDir,
    root: TempDir,
}

impl Bundle {
    /// What most tests start with: root (or a loud skip), the one-at-a-time lock (held until
    /// the bundle is gone), and a bundle.
    fn for_test(
        test: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Option<(std::sync::MutexGuard<'static, ()>, Bundle)> {
        if needs_root(test) {
            return None;
        }
        let one = serial();
        Some((one, Bundle::new(test, edit)?))
    }

    fn new(test: &str, edit: impl FnOnce(&mut Value)) -> Option<Bundle> {
        let busybox = Path::new("/bin/busybox");
        if !busybox.exists() && skip(test, "no /bin/busybox (apt-get install busybox-static)") {
            return None;
        }
        let dir = TempDir::new("bundle");
        // Readable by a mapped root (a user namespace's root is not the host's).
        fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "srv"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
        for applet in [
            "sh",
            "echo",
            "cat",
            "hostname",
            "id",
            "ls",
            "sleep",
            "mkdir",
            "touch",
            "grep",
            "chmod",
            "ulimit",
            "mount",
            "ip",
            "stat",
            "umask",
            "domainname",
            "readlink",
            "stty",
            "ionice",
            "uname",
            "tr",
        ] {
            symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
        let spec = run(bin(), &["spec", "--bundle", &dir.path().to_string_lossy()]);
        spec.expect_code(0);
        let path = dir.path().join("config.json");
        let mut config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        edit(&mut config);
        fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        Some(Bundle {
            dir,
            root: TempDir::new("oci-root"),
        })
    }

    fn path(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// `minicontainer --root ROOT ARGS`.
    fn mc(&self, args: &[&str]) -> Run {
        let root = self.root.path().to_string_lossy().into_owned();
        let mut all = vec!["--root", root.as_str()];
        all.extend_from_slice(args);
        run(bin(), &all)
    }

    /// [`Bundle::mc`] with environment variables set.
    fn mc_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let root = self.root.path().to_string_lossy().into_owned();
        let mut all = vec!["--root", root.as_str()];
        all.extend_from_slice(args);
        let mut cmd = labkit::testing::command(bin(), &all);
        cmd.envs(env.iter().copied());
        let (pid, out) = {
            let child = cmd
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn minicontainer");
            (child.id() as i32, child.wait_with_output().unwrap())
        };
        started(pid);
        Run::from(out)
    }

    /// `minicontainer --root ROOT ARGS` for a command that leaves a container behind (create,
    /// run -d): the container inherits its output, so it goes to files, not to pipes a reader
    /// would wait on until the container ends.
    fn mc_leaving(&self, args: &[&str]) -> Run {
        let root = self.root.path().to_string_lossy().into_owned();
        let (out, err) = (self.dir.path().join("out"), self.dir.path().join("err"));
        let status = std::process::Command::new(bin())
            .args(["--root", root.as_str()])
            .args(args)
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        started(status.id() as i32);
        let status = {
            let mut child = status;
            child.wait().unwrap()
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: fs::read_to_string(&out).unwrap(),
            stderr: fs::read_to_string(&err).unwrap(),
        }
    }

    fn state(&self, id: &str) -> Value {
        let r = self.mc(&["state", id]);
        r.expect_code(0);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", r.stdout))
    }
}

impl Drop for Bundle {
    /// What a failed test left in its state root (created or running containers, their
    /// processes and cgroups) is deleted by force.
    fn drop(&mut self) {
        for id in self.mc(&["list", "-q"]).stdout.lines() {
            self.mc(&["delete", "--force", id]);
        }
    }
}

/// A rootless bundle's OCI run with linux.resources, as `runc --rootless` would be run: the
/// config's user namespace maps the caller to root, and the limits go in the subtree delegated
/// to the caller (the VM's second pass, as a user; as root, for `nobody` in one made by hand);
/// where the controllers are v1's, refused by name.
#[test]
fn a_rootless_oci_run_sets_its_limits_in_a_delegated_subtree() {
    const TEST: &str = "a_rootless_oci_run_sets_its_limits_in_a_delegated_subtree";
    let as_root = nix::unistd::geteuid().is_root();
    if labkit::testing::needs_unprivileged_userns(TEST) {
        return;
    }
    let _one = serial();
    let user = if as_root {
        labkit::doctor::NOBODY
    } else {
        nix::unistd::geteuid().as_raw()
    };
    let Some(b) = Bundle::new(TEST, |c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"
        ]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": user, "size": 1}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": user, "size": 1}]);
        c["linux"]["resources"] = json!({"memory": {"limit": 33554432}, "pids": {"limit": 12}});
    }) else {
        return;
    };
    let state = TempDir::new("oci-rootless");
    let args = [
        "--root",
        &state.path().to_string_lossy(),
        "run",
        "--bundle",
        &b.path(),
        &id("rootless"),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v1 = cgroup_demo::cg::for_controller("memory", None)
        .is_ok_and(|h| h.version == cgroup_demo::cg::Version::V1);
    let r = if as_root {
        nix::unistd::chown(state.path(), Some(nix::unistd::Uid::from_raw(user)), None).unwrap();
        if v1 {
            labkit::testing::run_as_nobody(bin(), &args)
        } else {
            let d = labkit::testing::Delegated::make(&["memory", "pids"]);
            let (pid, r) = labkit::testing::run_as_nobody_in_cgroup(bin(), &args, &d.shell_procs());
            started(pid);
            r
        }
    } else {
        if !v1 && cgroup_demo::cg::delegated_subtree().is_none() {
            skip(TEST, "needs root, or a cgroup v2 subtree delegated to you");
            return;
        }
        run(bin(), &args)
    };
    if v1 {
        assert_eq!(r.code, 77, "{}", r.transcript());
        assert!(r.stderr.contains("cgroup v1 here"), "{}", r.stderr);
        // Without limits the same bundle runs: the caller writes the ID maps of a process
        // that stays dumpable until then, and root inside is the caller outside.
        let path = b.dir.path().join("config.json");
        let mut config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        config["linux"]["resources"] = json!(null);
        config["process"]["args"] = json!(["id", "-u"]);
        fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let r = match as_root {
            true => labkit::testing::run_as_nobody(bin(), &args),
            false => run(bin(), &args),
        };
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "0\n"),
            "{}",
            r.transcript()
        );
        return;
    }
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(r.stdout, "33554432\n12\n", "{}", r.transcript());
    assert!(
        r.stderr
            .contains("rootless: limits in your delegated cgroup"),
        "{}",
        r.stderr
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

fn id(what: &str) -> String {
    format!("nslab-{what}-{}", std::process::id())
}

/// The rules of the runtime specification's state schema (schema/state-schema.json, JSON
/// Schema draft 4), written out: ociVersion, id, status and bundle required, all strings;
/// status one of creating, created, running, stopped; pid an integer >= 0; annotations a map of
/// strings or null. Then the runtime chapter's rules: pid present while there is a process,
/// bundle absolute, and nothing the specification does not define.
fn assert_valid_state(state: &Value, id: &str, status: &str) {
    let object = state.as_object().expect("an object");
    for key in ["ociVersion", "id", "status", "bundle"] {
        assert!(object.contains_key(key), "{key} is required: {state}");
    }
    assert!(
        state["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1."))
    );
    assert_eq!(state["id"], id);
    assert_eq!(state["status"], status);
    assert!(
        state["bundle"].as_str().is_some_and(|b| b.starts_with('/')),
        "absolute: {state}"
    );
    assert!(
        ["creating", "created", "running", "stopped"].contains(&state["status"].as_str().unwrap()),
        "status is one of the schema's enum: {state}"
    );
    // annotations: a map of strings, or null, or absent.
    match state.get("annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => assert!(map.values().all(Value::is_string), "{state}"),
        Some(other) => panic!("annotations must be a map of strings: {other}"),
    }
    if let Some(pid) = state.get("pid") {
        assert!(pid.as_u64().is_some(), "pid is an integer >= 0: {state}");
    }
    match status {
        "created" | "running" => assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}"),
        _ => assert!(state.get("pid").is_none() || state["pid"] == 0, "{state}"),
    }
    for key in object.keys() {
        assert!(
            ["ociVersion", "id", "status", "pid", "bundle", "annotations"].contains(&key.as_str()),
            "a field the spec does not define: {key}"
        );
    }
}

/// Assert that no hierarchy holds the cgroup directory `path(hierarchy)` any more.
fn assert_no_cgroup_dir(path: impl Fn(&cgroup_demo::cg::Hierarchy) -> PathBuf) {
    let left: Vec<_> = cgroup_demo::cg::hierarchies()
        .unwrap()
        .iter()
        .map(path)
        .filter(|p| p.exists())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn alive(pid: i64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn the_lifecycle_goes_created_running_stopped_deleted() {
    const TEST: &str = "the_lifecycle_goes_created_running_stopped_deleted";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sh", "-c", "echo started > /srv/mark; sleep 60"]);
    }) else {
        return;
    };
    let id = id("life");
    let pid_file = b.dir.path().join("pid");
    b.mc_leaving(&[
        "create",
        "--bundle",
        &b.path(),
        "--pid-file",
        &pid_file.to_string_lossy(),
        &id,
    ])
    .expect_code(0);
    let created_run = b.mc(&["state", &id]);
    let created = b.state(&id);
    assert_valid_state(&created, &id, "created");
    let pid = created["pid"].as_i64().unwrap();
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    // Set up but not started: the command has not run yet.
    assert!(!b.dir.path().join("rootfs/srv/mark").exists());
    assert!(b.mc(&["list"]).stdout.contains(&format!("{id} ")));
    // A second create with the same ID is refused, and leaves the first alone.
    let again = b.mc_leaving(&["create", "--bundle", &b.path(), &id]);
    again.expect_code(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    b.mc(&["start", &id]).expect_code(0);
    let running = b.state(&id);
    assert_valid_state(&running, &id, "running");
    assert_eq!(running["pid"], pid, "start runs the process create made");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.dir.path().join("rootfs/srv/mark").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        fs::read_to_string(b.dir.path().join("rootfs/srv/mark")).unwrap(),
        "started\n",
        "the bundle's rootfs is the root, written in place"
    );
    let again = b.mc(&["start", &id]);
    again.expect_code(2);
    assert!(again.stderr.contains("is running"), "{}", again.stderr);
    // runc's ps ID: the processes of its PID namespace, as host PIDs (json: containerd's form).
    let ps = b.mc(&["ps", "--format", "json", &id]);
    ps.expect_code(0);
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&pid), "{pid} in {pids:?}");
    let table = b.mc(&["ps", &id]);
    assert!(table.stdout.contains("sleep 60"), "{}", table.stdout);
    // Deleting a running container needs --force.
    let refused = b.mc(&["delete", &id]);
    refused.expect_code(2);
    assert!(refused.stderr.contains("is running"), "{}", refused.stderr);

    // runc's kill ID SIGNAL, the name with or without SIG.
    b.mc(&["kill", &id, "SIGKILL"]).expect_code(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_valid_state(&b.state(&id), &id, "stopped");
    // For the book: what `state` prints before start and after the end (ID, PID and the
    // bundle's path redacted).
    let shown = Run {
        code: 0,
        stdout: format!(
            "$ minicontainer state ID   # after create\n{}$ minicontainer state ID   # after kill\n{}",
            created_run.stdout,
            b.mc(&["state", &id]).stdout
        ),
        stderr: String::new(),
    };
    labkit::assert_run_snapshot!(
        "oci_state",
        shown,
        &[
            (id.as_str(), "[ID]"),
            (b.path().as_str(), "[BUNDLE]"),
            (r#""pid": \d+"#, r#""pid": [PID]"#)
        ]
    );
    let dead = b.mc(&["kill", &id, "TERM"]);
    dead.expect_code(2);
    assert!(dead.stderr.contains("not running"), "{}", dead.stderr);
    b.mc(&["delete", &id]).expect_code(0);
    let gone = b.mc(&["state", &id]);
    gone.expect_code(2);
    assert!(gone.stderr.contains("does not exist"), "{}", gone.stderr);
    assert_eq!(leftovers(), Vec::<String>::new());
    assert!(
        fs::read_dir(b.root.path()).unwrap().next().is_none(),
        "the state root is empty"
    );
}

#[test]
fn run_waits_and_returns_the_exit_status_detached_runs_until_delete_force() {
    const TEST: &str = "run_waits_and_returns_the_exit_status_detached_runs_until_delete_force";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sh", "-c", "echo in $(hostname); exit 7"]);
        c["hostname"] = json!("oci-run");
    }) else {
        return;
    };
    let id = id("run");
    let r = b.mc(&["run", "--bundle", &b.path(), &id]);
    assert_eq!(r.code, 7, "{}", r.transcript());
    assert_eq!(r.stdout, "in oci-run\n");
    assert!(b.mc(&["list", "-q"]).stdout.is_empty(), "run deletes after");

    let Some(b) = Bundle::new(TEST, |c| {
        c["process"]["args"] = json!(["sleep", "60"]);
    }) else {
        return;
    };
    b.mc_leaving(&["run", "-d", "--bundle", &b.path(), &id])
        .expect_code(0);
    assert_valid_state(&b.state(&id), &id, "running");
    let list: Value = serde_json::from_str(&b.mc(&["list", "--format", "json"]).stdout).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    b.mc(&["delete", "--force", &id]).expect_code(0);
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// Every supported field of config.json, observed from inside the container.
#[test]
fn each_config_field_is_observed_inside() {
    const TEST: &str = "each_config_field_is_observed_inside";
    if needs_root(TEST) {
        return;
    }
    let _one = serial();
    let host_dir = TempDir::new("oci-vol");
    fs::write(host_dir.path().join("from-host"), "host file\n").unwrap();
    let script = [
        "echo hostname=$(hostname)",
        "echo domainname=$(cat /proc/sys/kernel/domainname)",
        "echo env=$GREETING",
        "echo cwd=$(pwd)",
        "echo id=$(id -u):$(id -g):$(id -G)",
        "echo umask=$(umask)",
        "echo nofile=$(ulimit -n)",
        "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '",
        "echo oom=$(cat /proc/self/oom_score_adj)",
        "touch /rootfile 2>/dev/null && echo root=rw || echo root=ro",
        "echo vol=$(cat /vol/from-host); touch /vol/x 2>/dev/null && echo vol=rw || echo vol=ro",
        "grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4",
        "echo forward=$(cat /proc/sys/net/ipv4/ip_forward)",
        "echo keys=$(stat -c %F /proc/keys 2>&1 | head -1)",
        "touch /proc/sys/kernel/x 2>/dev/null; grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1",
        "echo dev=$(stat -c '%F %t:%T' /dev/nslab-null)",
        "mkdir /tmp/d 2>&1 | head -1; echo mkdir=$?",
        // Its own group at /sys/fs/cgroup (v1: a directory per hierarchy; v2: the group).
        "echo pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)",
        "echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)",
        "echo cpus=$(cat /sys/fs/cgroup/cpuset/cpuset.cpus 2>/dev/null || cat /sys/fs/cgroup/cpuset.cpus)",
    ]
    .join("; ");
    let Some(b) = Bundle::new(TEST, |c| {
        c["hostname"] = json!("fields");
        c["domainname"] = json!("lab.example");
        c["process"]["args"] = json!(["sh", "-c", script]);
        c["process"]["env"] = json!(["PATH=/bin", "GREETING=hello"]);
        c["process"]["cwd"] = json!("/srv");
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [2000], "umask": 63});
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 256, "soft": 128}]);
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
        });
        c["process"]["noNewPrivileges"] = json!(true);
        c["process"]["oomScoreAdj"] = json!(500);
        c["root"]["readonly"] = json!(true);
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/vol", "type": "bind",
            "source": host_dir.path(), "options": ["rbind", "ro"]}));
        mounts.push(
            json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "size=1m"]}),
        );
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["linux"]["devices"] = json!([{"path": "/dev/nslab-null", "type": "c", "major": 1, "minor": 3, "fileMode": 438}]);
        c["linux"]["resources"] = json!({
            "pids": {"limit": 30},
            "memory": {"limit": 67108864},
            "cpu": {"cpus": "0"}
        });
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    }) else {
        return;
    };
    let id = id("fields");
    let r = b.mc(&["run", "--bundle", &b.path(), &id]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let out = r.stdout;
    for expected in [
        "hostname=fields",
        "domainname=lab.example",
        "env=hello",
        "cwd=/srv",
        "id=1000:1000:1000 2000",
        "umask=0077",
        "nofile=128",
        "CapEff: 0000000000000020",
        "CapBnd: 0000000000000021",
        "NoNewPrivs: 1",
        "oom=500",
        "root=ro",
        "vol=host file",
        "vol=ro",
        "tmpfs rw,nosuid,relatime,size=1024k",
        "forward=1",
        "keys=character special file",
        "\nro\n",
        "dev=character special file 1:3",
        "Operation not permitted",
        "pids=30",
        "mem=67108864",
        "cpus=0\n",
    ] {
        assert!(out.contains(expected), "{expected:?} in:\n{out}");
    }
    assert!(!host_dir.path().join("x").exists());
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn a_user_namespace_maps_root_and_namespaces_join_by_path() {
    const TEST: &str = "a_user_namespace_maps_root_and_namespaces_join_by_path";
    if needs_root(TEST) {
        return;
    }
    let _one = serial();
    // A network namespace to join: that of a process this test starts.
    let holder =
        labkit::testing::Background::spawn(Path::new("/usr/bin/unshare"), &["-n", "sleep", "60"]);
    let netns = PathBuf::from(format!("/proc/{}/ns/net", holder.pid()));
    let ours = fs::read_link("/proc/self/ns/net").unwrap();
    // unshare(1) makes the namespace just after it starts: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::read_link(&netns).unwrap() == ours && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let want = fs::read_link(&netns).unwrap();
    assert_ne!(want, ours);
    let Some(b) = Bundle::new(TEST, |c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /proc/self/uid_map | tr -s ' '; readlink /proc/self/ns/net; id -u"
        ]);
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network", "path": netns}));
        ns.push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["resources"] = json!({});
    }) else {
        return;
    };
    // The mapped root must be able to read the bundle's rootfs.
    let id = id("userns");
    let r = b.mc(&["run", "--bundle", &b.path(), &id]);
    drop(holder);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains(" 0 100000 65536"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&want.to_string_lossy().into_owned()),
        "joined {want:?}:\n{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("0\n"), "root inside: {}", r.stdout);
}

#[test]
fn a_terminal_goes_to_the_console_socket() {
    const TEST: &str = "a_terminal_goes_to_the_console_socket";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 33, "width": 101});
        c["process"]["args"] = json!(["sh", "-c", "echo tty=$(tty) size=$(stty size)"]);
    }) else {
        return;
    };
    let id = id("tty");
    // Without a console socket, create refuses (as runc does).
    let refused = b.mc_leaving(&["create", "--bundle", &b.path(), &id]);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("--console-socket"),
        "{}",
        refused.stderr
    );
    assert!(
        b.mc(&["list", "-q"]).stdout.is_empty(),
        "nothing left of the refused create"
    );

    let sock_path = b.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    b.mc_leaving(&[
        "create",
        "--bundle",
        &b.path(),
        "--console-socket",
        &sock_path.to_string_lossy(),
        &id,
    ])
    .expect_code(0);
    let (conn, _) = listener.accept().unwrap();
    let master = labkit::sys::recv_fd(conn.as_fd())
        .unwrap()
        .expect("the master side");
    b.mc(&["start", &id]).expect_code(0);
    let mut text = String::new();
    let mut file = fs::File::from(master);
    let mut buf = [0u8; 256];
    while !text.contains("size=") || !text.contains('\n') {
        match std::io::Read::read(&mut file, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(text.starts_with("tty=/dev/pts/0"), "{text:?}");
    // process.consoleSize: the terminal starts 33 rows by 101 columns.
    assert!(text.contains("size=33 101"), "{text:?}");
    b.mc(&["delete", "--force", &id]).expect_code(0);
}

#[test]
fn bad_bundles_are_refused_and_leave_nothing() {
    const TEST: &str = "bad_bundles_are_refused_and_leave_nothing";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["linux"]["intelRdt"] = json!({"closID": "nslab"});
    }) else {
        return;
    };
    let id = id("bad");
    let r = b.mc_leaving(&["create", "--bundle", &b.path(), &id]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("linux.intelRdt is not supported"),
        "{}",
        r.stderr
    );
    let r = b.mc_leaving(&["create", "--bundle", "/nonexistent-nslab", &id]);
    r.expect_code(2);
    assert!(r.stderr.contains("/nonexistent-nslab"), "{}", r.stderr);
    fs::write(b.dir.path().join("config.json"), "{ not json").unwrap();
    let r = b.mc_leaving(&["create", "--bundle", &b.path(), &id]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("not an OCI runtime config"),
        "{}",
        r.stderr
    );
    let r = b.mc_leaving(&["create", "--bundle", &b.path(), "bad/id"]);
    r.expect_code(2);
    let r = b.mc(&["start", "nslab-never-made"]);
    r.expect_code(2);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(b.mc(&["list", "-q"]).stdout.is_empty());
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn cgroups_path_device_rules_and_a_cgroup_mount() {
    const TEST: &str = "cgroups_path_device_rules_and_a_cgroup_mount";
    if needs_root(TEST) {
        return;
    }
    let _one = serial();
    // Relative: from the runtime's own cgroup in each hierarchy.
    let path = format!("nslab-cgpath-{}/ctr", std::process::id());
    let script = "cat /dev/null && echo null=ok; head -c1 /dev/urandom >/dev/null && echo urandom=ok; \
                  head -c1 /dev/nslab-loopctl 2>&1 | grep -q 'not permitted' && echo loopctl=denied; \
                  ls /sys/fs/cgroup | tr '\\n' ' '; echo; \
                  cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max";
    let Some(b) = Bundle::new(TEST, |c| {
        c["process"]["args"] = json!(["sh", "-c", script]);
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({
            "pids": {"limit": 25},
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
            ]
        });
        // Neither allowed by the rules nor one of the nodes every container gets.
        c["linux"]["devices"] = json!([
            {"path": "/dev/nslab-loopctl", "type": "c", "major": 10, "minor": 237}
        ]);
        // The cgroup mount at /sys/fs/cgroup is one of `spec`'s defaults (a second one on the
        // same place would be EBUSY on v2, as the same superblock cannot stack on itself).
        assert!(
            c["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["destination"] == "/sys/fs/cgroup" && m["type"] == "cgroup")
        );
    }) else {
        return;
    };
    // The rules go to an eBPF program on the v2 group wherever a cgroup2 hierarchy is mounted
    // (here, and the VM); NSLAB_DEVICE_POLICY=v1 takes v1's devices controller where it has
    // one (a hybrid host: here).
    for policy in ["", "v1"] {
        let id = id("cgpath");
        let r = b.mc_env(
            &["run", "--bundle", &b.path(), &id],
            &[("NSLAB_DEVICE_POLICY", policy)],
        );
        assert_eq!(r.code, 0, "{policy}: {}", r.transcript());
        assert!(r.stdout.contains("null=ok"), "{}", r.stdout);
        // The default nodes stay usable (as with runc), others are denied.
        assert!(r.stdout.contains("urandom=ok"), "{}", r.stdout);
        assert!(r.stdout.contains("loopctl=denied"), "{}", r.stdout);
        assert!(
            r.stdout.contains("pids"),
            "a directory per hierarchy: {}",
            r.stdout
        );
        assert!(
            r.stdout.trim_end().ends_with("25"),
            "its own pids group: {}",
            r.stdout
        );
        // Made under this process's own cgroup, and removed with the container.
        assert_eq!(leftovers(), Vec::<String>::new());
        assert_no_cgroup_dir(|h| h.own.join(format!("nslab-cgpath-{}", std::process::id())));
    }
}

/// What a podman test made: its storage, its containers, and the cgroup directories podman's
/// conmon made under `--cgroup-parent` (removed deepest first, only those that were not there).
struct PodmanScratch {
    podman: PathBuf,
    args: Vec<String>,
    made: Vec<PathBuf>,
    /// Directories podman makes on first use (`/run/containers`), when they were not there
    /// before.
    new_dirs: Vec<PathBuf>,
}

impl Drop for PodmanScratch {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.podman)
            .args(&self.args)
            .args(["rm", "--all", "--force"])
            .output();
        for dir in self.made.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
        for dir in &self.new_dirs {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A cgroup path that lies under this process's own cgroup in every hierarchy: the deepest own
/// path, when the others are its prefixes (as on a hybrid host where only one controller puts
/// this process below the root).
fn cgroup_parent_under_own(name: &str) -> Option<PathBuf> {
    let hierarchies = cgroup_demo::cg::hierarchies().ok()?;
    let relative: Vec<PathBuf> = hierarchies
        .iter()
        .map(|h| h.own.strip_prefix(&h.mount).map(Path::to_path_buf))
        .collect::<Result<_, _>>()
        .ok()?;
    let deepest = relative
        .iter()
        .max_by_key(|p| p.components().count())?
        .clone();
    relative
        .iter()
        .all(|p| deepest.starts_with(p))
        .then(|| Path::new("/").join(deepest).join(name))
}

#[test]
fn podman_uses_minicontainer_as_its_runtime() {
    const TEST: &str = "podman_uses_minicontainer_as_its_runtime";
    if needs_root(TEST) {
        return;
    }
    let podman = Path::new("/usr/bin/podman");
    if !podman.exists() && skip(TEST, "no podman (apt-get install podman)") {
        return;
    }
    let _one = serial();
    let Some(b) = Bundle::new(TEST, |_| {}) else {
        return;
    };
    let name = format!("nslab-podman-{}", std::process::id());
    let Some(parent) = cgroup_parent_under_own(&name) else {
        skip(
            TEST,
            "no cgroup path lies under this process's cgroup in every hierarchy",
        );
        return;
    };
    // conmon makes PARENT/conmon and PARENT/libpod-ID in every hierarchy: note what is new.
    let mut made = Vec::new();
    for h in cgroup_demo::cg::hierarchies().unwrap() {
        let mut dir = h.mount.clone();
        for part in parent.components().skip(1) {
            dir.push(part);
            if !dir.exists() {
                made.push(dir.clone());
            }
        }
        made.push(dir.join("conmon"));
    }
    made.sort_by_key(|d| d.components().count());
    let storage = b.dir.path().join("storage");
    // podman asks for limits of 1048576 unless told otherwise, which needs CAP_SYS_RESOURCE
    // where the hard limit is lower (as in some sandboxes): ask for modest ones.
    let (nofile, nproc) = ("nofile=4096:4096", "nproc=4096:4096");
    let args: Vec<String> = [
        "--root",
        &storage.join("root").to_string_lossy(),
        "--runroot",
        &storage.join("run").to_string_lossy(),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
        "--tmpdir",
        &storage.join("tmp").to_string_lossy(),
    ]
    .map(String::from)
    .to_vec();
    let scratch = PodmanScratch {
        podman: podman.to_path_buf(),
        args: args.clone(),
        made,
        // (Not the default store /run/nslab, which other runs may use at the same time:
        // minicontainer removes it itself once it is empty.)
        new_dirs: ["/run/containers"]
            .iter()
            .map(PathBuf::from)
            .filter(|d| !d.exists())
            .collect(),
    };
    let podman_run = |extra: &[&str]| -> Run {
        let mut all: Vec<String> = args.clone();
        all.extend(extra.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run(podman, &all)
    };
    // An image from the bundle's rootfs, imported as a tarball.
    let tarball = b.dir.path().join("rootfs.tar");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(b.dir.path().join("rootfs"))
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let image = format!("localhost/{name}");
    podman_run(&["import", &tarball.to_string_lossy(), &image]).expect_code(0);
    let runtime = bin().to_string_lossy().into_owned();
    let parent_arg = format!("--cgroup-parent={}", parent.display());
    let base = [
        "run",
        "--runtime",
        runtime.as_str(),
        "--network",
        "none",
        "--ulimit",
        nofile,
        "--ulimit",
        nproc,
        parent_arg.as_str(),
    ];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        base.iter().chain(extra).copied().collect()
    }
    let r = podman_run(&with(
        &base,
        &[
            "--rm",
            "--hostname",
            "pod-box",
            &image,
            "sh",
            "-c",
            "echo hello from $(hostname); cat /proc/1/cmdline",
        ],
    ));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.starts_with("hello from pod-box\n"), "{}", r.stdout);
    // -t: conmon hands minicontainer a console socket; the process gets the container's pty.
    let r = podman_run(&with(&base, &["--rm", "-t", &image, "sh", "-c", "tty"]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains("/dev/pts/0"), "{}", r.stdout);
    // -d, then podman reads the state, stops and removes it through minicontainer.
    let r = podman_run(&with(&base, &["-d", &image, "sleep", "60"]));
    assert_eq!(r.code, 0, "{}", r.transcript());
    let ctr = r.stdout.trim().to_string();
    let ps = podman_run(&["ps", "--format", "{{.ID}} {{.Status}}"]);
    assert!(
        ps.stdout.contains(&ctr[..12]) && ps.stdout.contains("Up"),
        "{}",
        ps.stdout
    );
    // exec: conmon calls `exec --process FILE --detach --pid-file F ID` and reaps the process.
    let ex = podman_run(&[
        "exec",
        "-e",
        "NSLAB_E=x",
        &ctr,
        "sh",
        "-c",
        "echo in $NSLAB_E; exit 4",
    ]);
    assert_eq!(ex.code, 4, "{}", ex.transcript());
    assert_eq!(ex.stdout, "in x\n", "{}", ex.transcript());
    let ex = podman_run(&["exec", "-t", &ctr, "sh", "-c", "tty"]);
    assert_eq!(ex.code, 0, "{}", ex.transcript());
    assert!(ex.stdout.contains("/dev/pts/"), "{}", ex.transcript());
    podman_run(&["stop", "--time", "2", &ctr]).expect_code(0);
    podman_run(&["rm", &ctr]).expect_code(0);
    // Its own exit status comes through as well.
    let r = podman_run(&with(&base, &["--rm", &image, "sh", "-c", "exit 3"]));
    assert_eq!(r.code, 3, "{}", r.transcript());
    drop(scratch);
    assert_no_cgroup_dir(|h| h.mount.join(parent.strip_prefix("/").unwrap()));
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// The processes whose environment holds `mark` (a process that has not exec'd yet, as a
/// created container's, still has its creator's).
fn processes_marked(mark: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_create_that_fails_after_setup_leaves_no_process_cgroup_or_state() {
    const TEST: &str = "a_create_that_fails_after_setup_leaves_no_process_cgroup_or_state";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["linux"]["resources"] = json!({"pids": {"limit": 25}});
        c["linux"]["cgroupsPath"] = json!(format!("nslab-halfmade-{}/ctr", std::process::id()));
    }) else {
        return;
    };
    let id = id("halfmade");
    let mark = format!("NSLAB_HALFMADE={}", std::process::id());
    let (key, value) = mark.split_once('=').unwrap();
    // The container is set up, then its PID file cannot be written.
    let err = b.dir.path().join("err");
    let status = std::process::Command::new(bin())
        .env(key, value)
        .arg("--root")
        .arg(b.root.path())
        .args(["create", "--bundle", &b.path(), "--pid-file"])
        .arg(b.dir.path().join("no-such-dir/pid"))
        .arg(&id)
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    let stderr = fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("PID file"), "{stderr}");
    assert_eq!(processes_marked(&mark), Vec::<String>::new());
    assert_no_cgroup_dir(|h| h.own.join(format!("nslab-halfmade-{}", std::process::id())));
    assert!(!b.root.path().join(&id).exists());
    assert!(b.mc(&["list", "-q"]).stdout.is_empty());
}

#[test]
fn sigterm_to_run_goes_to_the_container_and_run_still_deletes_it() {
    const TEST: &str = "sigterm_to_run_goes_to_the_container_and_run_still_deletes_it";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        // PID 1 of its namespace: a signal reaches it only where it has a handler.
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; sleep 20 & wait"
        ]);
    }) else {
        return;
    };
    let id = id("term");
    let root = b.root.path().to_string_lossy().into_owned();
    let mut run = labkit::testing::Background::start(
        bin(),
        &["--root", &root, "run", "--bundle", &b.path(), &id],
        "ready",
    );
    started(run.pid());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let code = run.wait();
    let left = b.mc(&["list", "-q"]).stdout;
    if !left.is_empty() {
        b.mc(&["delete", "--force", &id]);
    }
    assert_eq!(code, 7, "the container's exit status: {:?}", run.lines);
    assert!(run.lines.concat().contains("got TERM"), "{:?}", run.lines);
    assert!(left.is_empty(), "deleted: {left}");
}

#[test]
fn a_dev_symlink_in_the_rootfs_is_refused_not_followed_to_the_host() {
    const TEST: &str = "a_dev_symlink_in_the_rootfs_is_refused_not_followed_to_the_host";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        // No tmpfs on /dev: the rootfs's own dev is used.
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
        c["linux"]["devices"] = json!([
            {"path": "/dev/nslab-node", "type": "c", "major": 1, "minor": 3}
        ]);
    }) else {
        return;
    };
    // A host directory the image points its /dev at, by an absolute symlink.
    let host = b.dir.path().join("host-dir");
    fs::create_dir(&host).unwrap();
    let dev = b.dir.path().join("rootfs/dev");
    fs::remove_dir(&dev).unwrap();
    symlink(&host, &dev).unwrap();
    let r = b.mc(&["run", "--bundle", &b.path(), &id("devlink")]);
    assert_ne!(r.code, 0, "{}", r.transcript());
    assert!(r.stderr.contains("is a symlink"), "{}", r.transcript());
    let made: Vec<_> = fs::read_dir(&host).unwrap().flatten().collect();
    assert!(made.is_empty(), "made on the host: {made:?}");
}

#[test]
fn a_create_that_fails_inside_the_container_leaves_no_cgroup_or_state() {
    const TEST: &str = "a_create_that_fails_inside_the_container_leaves_no_cgroup_or_state";
    if needs_root(TEST) {
        return;
    }
    let _one = serial();
    let group = format!("nslab-failin-{}", std::process::id());
    let Some(b) = Bundle::new(TEST, |c| {
        c["linux"]["resources"] = json!({"pids": {"limit": 25}, "memory": {"limit": 64 << 20}});
        c["linux"]["cgroupsPath"] = json!(format!("{group}/a/b"));
        // Fails in the container's setup, once its cgroups are made and it is in them.
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/srv/data", "type": "bind", "source": "/nonexistent-nslab",
            "options": ["rbind"]
        }));
    }) else {
        return;
    };
    let id = id("failin");
    let r = b.mc_leaving(&["create", "--bundle", &b.path(), &id]);
    assert_ne!(r.code, 0, "{}", r.transcript());
    assert!(r.stderr.contains("/nonexistent-nslab"), "{}", r.stderr);
    assert_no_cgroup_dir(|h| h.own.join(&group));
    assert!(!b.root.path().join(&id).exists());
}

#[test]
fn a_pids_limit_of_minus_one_means_no_limit() {
    const TEST: &str = "a_pids_limit_of_minus_one_means_no_limit";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"
        ]);
        c["linux"]["resources"] = json!({"pids": {"limit": -1}});
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "ro"]
        }));
    }) else {
        return;
    };
    let r = b.mc(&["run", "--bundle", &b.path(), &id("pidsmax")]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert_eq!(r.stdout.trim(), "max", "{}", r.transcript());
}

#[test]
fn gc_leaves_a_created_containers_cgroups_alone() {
    const TEST: &str = "gc_leaves_a_created_containers_cgroups_alone";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["linux"]["resources"] = json!({"pids": {"limit": 25}});
    }) else {
        return;
    };
    let id = id("gc");
    b.mc_leaving(&["create", "--bundle", &b.path(), &id])
        .expect_code(0);
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    // Its group's name carries the PID of the create that made it, which has ended.
    run(bin(), &["gc"]).expect_code(0);
    assert!(alive(pid), "gc killed the container");
    assert_valid_state(&b.state(&id), &id, "created");
    b.mc(&["delete", "--force", &id]).expect_code(0);
    assert!(!alive(pid));
}

#[test]
fn delete_removes_what_a_create_cut_short_left() {
    // A create killed before it wrote state.json leaves its directory (and the ID taken).
    let root = TempDir::new("oci-root");
    let mc = |args: &[&str]| {
        let mut all = vec!["--root", root.path().to_str().unwrap()];
        all.extend_from_slice(args);
        run(bin(), &all)
    };
    let id = id("cutshort");
    fs::create_dir(root.path().join(&id)).unwrap();
    mc(&["delete", "--force", &id]).expect_code(0);
    assert!(!root.path().join(&id).exists());
    fs::create_dir(root.path().join(&id)).unwrap();
    let r = mc(&["delete", &id]);
    r.expect_code(2);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(!root.path().join(&id).exists());
}

#[test]
fn a_cgroups_path_places_the_container_even_without_limits() {
    const TEST: &str = "a_cgroups_path_places_the_container_even_without_limits";
    if needs_root(TEST) {
        return;
    }
    let _one = serial();
    let name = format!("nslab-placed-{}", std::process::id());
    // Absolute: from the root of each hierarchy (the spec's and runc's reading), here a path
    // that lies under this test's own cgroup in every hierarchy; relative: from the runtime's
    // own cgroup. Either way the container has a group in every hierarchy, as with runc.
    let Some(absolute) = cgroup_parent_under_own(&name) else {
        skip(
            TEST,
            "no cgroup path lies under this process's cgroup in every hierarchy",
        );
        return;
    };
    let relative = format!("{name}-rel/ctr");
    for path in [absolute.join("ctr").display().to_string(), relative] {
        let Some(b) = Bundle::new(TEST, |c| {
            c["process"]["args"] = json!(["sleep", "60"]);
            c["linux"]["cgroupsPath"] = json!(path);
            c["linux"]["resources"] = json!({});
        }) else {
            return;
        };
        let id = id("placed");
        b.mc_leaving(&["run", "-d", "--bundle", &b.path(), &id])
            .expect_code(0);
        let pid = b.state(&id)["pid"].as_i64().unwrap();
        let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let mine = fs::read_to_string("/proc/self/cgroup").unwrap();
        b.mc(&["delete", "--force", &id]).expect_code(0);
        for line in cgroups.lines() {
            let (prefix, at) = line.rsplit_once(':').unwrap();
            let own = mine
                .lines()
                .find_map(|l| l.rsplit_once(':').filter(|(p, _)| *p == prefix))
                .map(|(_, own)| own.trim_end_matches('/').to_string())
                .unwrap_or_default();
            let want = if path.starts_with('/') {
                path.clone()
            } else {
                format!("{own}/{path}")
            };
            // A hierarchy of no controller (name=systemd) may not be writable: not joined.
            if prefix.ends_with(":name=systemd") && at == own {
                continue;
            }
            assert_eq!(at, want, "{prefix}: {cgroups}");
        }
        assert_no_cgroup_dir(|h| h.own.join(&name));
        assert_no_cgroup_dir(|h| h.own.join(format!("{name}-rel")));
        assert_eq!(leftovers(), Vec::<String>::new());
    }
}

#[test]
fn create_refuses_what_would_reach_the_host_or_run_nothing() {
    const TEST: &str = "create_refuses_what_would_reach_the_host_or_run_nothing";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["/bin/nslab-no-such-program"]);
    }) else {
        return;
    };
    let config = b.dir.path().join("config.json");
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
        f(&mut c);
        fs::write(&config, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    };
    // A missing executable fails create, naming it (as runc does), and leaves nothing.
    let id = id("noexe");
    let r = b.mc_leaving(&["create", "--bundle", &b.path(), &id]);
    assert_ne!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stderr.contains("nslab-no-such-program") && r.stderr.contains("not found"),
        "{}",
        r.stderr
    );
    assert!(b.mc(&["list", "-q"]).stdout.is_empty());
    // (uid_t) -1 would leave the process root.
    edit(&|c| {
        c["process"]["args"] = json!(["sleep", "30"]);
        c["process"]["user"]["uid"] = json!(4294967295u32);
    });
    let r = b.mc_leaving(&["create", "--bundle", &b.path(), &id]);
    r.expect_code(2);
    assert!(r.stderr.contains("4294967295"), "{}", r.stderr);
    // A sysctl through a /proc the root filesystem made a symlink (to a directory of the host's
    // that looks like /proc/sys): refused, the host file untouched.
    let fake = TempDir::new("fakeproc");
    let knob = fake.path().join("sys/net/ipv4");
    fs::create_dir_all(&knob).unwrap();
    fs::write(knob.join("ip_forward"), "host's\n").unwrap();
    let proc = b.dir.path().join("rootfs/proc");
    fs::remove_dir(&proc).unwrap();
    symlink(fake.path(), &proc).unwrap();
    edit(&|c| {
        c["process"]["user"]["uid"] = json!(0);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/proc");
    });
    let r = b.mc_leaving(&["create", "--bundle", &b.path(), &id]);
    // Found in the container's setup (errors cross its pipe as text: exit 1, not 2).
    assert_eq!(r.code, 1, "{}", r.transcript());
    assert!(r.stderr.contains("own /proc"), "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(knob.join("ip_forward")).unwrap(),
        "host's\n"
    );
    fs::remove_file(&proc).unwrap();
    fs::create_dir(&proc).unwrap();
    // The PID file: a symlink planted at its name is replaced, never written through.
    edit(&|c| {
        c["linux"]["sysctl"] = json!(null);
        c["mounts"].as_array_mut().unwrap().insert(
            0,
            json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        );
    });
    let victim = b.dir.path().join("victim");
    fs::write(&victim, "root's file\n").unwrap();
    let pid_file = b.dir.path().join("pid");
    symlink(&victim, &pid_file).unwrap();
    let pid_arg = pid_file.display().to_string();
    let r = b.mc_leaving(&["create", "--bundle", &b.path(), "--pid-file", &pid_arg, &id]);
    r.expect_code(0);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root's file\n");
    let meta = fs::symlink_metadata(&pid_file).unwrap();
    assert!(meta.is_file(), "a file of its own now");
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    b.mc(&["delete", "--force", &id]).expect_code(0);
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn the_spec_is_followed_where_it_is_silent_and_where_it_is_exact() {
    const TEST: &str = "the_spec_is_followed_where_it_is_silent_and_where_it_is_exact";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sh", "-c", "hostname; stat -c %a /dev/nslab-zero"]);
        c["process"]["user"]["umask"] = json!(0o077);
        c.as_object_mut().unwrap().remove("hostname");
        c["linux"]["devices"] = json!([
            {"path": "/dev/nslab-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o660}
        ]);
        c["linux"]["resources"] = json!({"devices": [
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
        ]});
    }) else {
        return;
    };
    let r = b.mc(&["run", "--bundle", &b.path(), &id("exact")]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let host = nix::unistd::gethostname().unwrap();
    // No hostname in the spec: the name the new UTS namespace was given (the host's), not "".
    assert_eq!(
        r.stdout,
        format!("{}\n660\n", host.to_string_lossy()),
        "the device's mode as given, not masked by the umask"
    );
    // An ociVersion that is no version 1.x.y is refused.
    let config = b.dir.path().join("config.json");
    let mut c: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    c["ociVersion"] = json!("invalid");
    fs::write(&config, serde_json::to_vec(&c).unwrap()).unwrap();
    let r = b.mc(&["run", "--bundle", &b.path(), &id("exact")]);
    r.expect_code(2);
    assert!(r.stderr.contains("ociVersion"), "{}", r.stderr);
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn log_json_is_written_as_runc_writes_it() {
    let dir = TempDir::new("log");
    let log = dir.path().join("log.json");
    let log_arg = log.display().to_string();
    let r = run(
        bin(),
        &[
            "--log",
            &log_arg,
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/nonexistent-nslab",
            "x",
        ],
    );
    r.expect_code(2);
    let text = fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"].as_str().unwrap().contains("/nonexistent-nslab"),
        "{line}"
    );
    // RFC 3339, which Docker and containerd parse ("2026-12-03T11:52:07Z").
    let time = line["time"].as_str().unwrap();
    let shape = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
    assert!(shape.is_match(time), "{time}");
}

#[test]
fn exec_takes_runcs_flags_and_process_file() {
    const TEST: &str = "exec_takes_runcs_flags_and_process_file";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["process"]["env"] = json!(["PATH=/bin", "KEEP=kept"]);
    }) else {
        return;
    };
    let id = id("exec");
    b.mc_leaving(&["run", "-d", "--bundle", &b.path(), &id])
        .expect_code(0);
    // runc's order: the command right after the ID, no `--`.
    let r = b.mc(&[
        "exec",
        "--cwd",
        "/srv",
        "-e",
        "ADDED=1",
        "--user",
        "1000:1000",
        "--cap",
        "CAP_NET_ADMIN",
        &id,
        "sh",
        "-c",
        "pwd; echo $KEEP $ADDED; id -u; grep CapEff /proc/self/status; exit 6",
    ]);
    assert_eq!(r.code, 6, "{}", r.transcript());
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[..3], ["/srv", "kept 1", "1000"], "{}", r.stdout);
    // CAP_NET_ADMIN is bit 12.
    let eff = u64::from_str_radix(lines[3].split_whitespace().last().unwrap(), 16).unwrap();
    assert_ne!(eff & (1 << 12), 0, "{}", lines[3]);
    // --process FILE with --detach and --pid-file, as containerd and conmon call it.
    let process = b.dir.path().join("process.json");
    fs::write(
        &process,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo detached > /tmp/nslab-exec-mark; sleep 30"],
            "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}
        }))
        .unwrap(),
    )
    .unwrap();
    let pid_file = b.dir.path().join("exec.pid");
    let (p, f) = (
        process.display().to_string(),
        pid_file.display().to_string(),
    );
    b.mc_leaving(&["exec", "--process", &p, "--detach", "--pid-file", &f, &id])
        .expect_code(0);
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "it runs, detached"
    );
    let r = b.mc(&["exec", &id, "cat", "/tmp/nslab-exec-mark"]);
    assert_eq!(r.stdout, "detached\n", "{}", r.transcript());
    // A command that is not there fails the exec, naming it.
    let r = b.mc(&["exec", &id, "nslab-no-such"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("nslab-no-such"), "{}", r.stderr);
    b.mc(&["delete", "--force", &id]).expect_code(0);
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn all_six_hooks_run_where_and_when_the_spec_says() {
    const TEST: &str = "all_six_hooks_run_where_and_when_the_spec_says";
    let log = TempDir::new("hooks");
    let log_dir = log.path().display().to_string();
    // Each hook appends its kind, the status it was told, and whose mount namespace it runs in
    // (the host's, or the container's: another inode).
    let host_mnt = fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .display()
        .to_string();
    let hook = |kind: &str, timeout: Option<i64>| {
        let script = format!(
            "read s; m=$(readlink /proc/self/ns/mnt); [ \"$m\" = {host_mnt} ] && w=host || w=container; \
             echo {kind} $(echo \"$s\" | grep -o '\"status\":\"[a-z]*\"') $w >> {log_dir}/log"
        );
        let mut h = json!({"path": "/bin/sh", "args": ["sh", "-c", script]});
        if let Some(t) = timeout {
            h["timeout"] = json!(t);
        }
        h
    };
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sleep", "30"]);
        c["hostname"] = json!("hooked");
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": log_dir, "type": "bind", "source": log_dir, "options": ["rbind"]
        }));
        c["hooks"] = json!({
            "prestart": [hook("prestart", Some(10))],
            "createRuntime": [hook("createRuntime", None)],
            "createContainer": [hook("createContainer", None)],
            "startContainer": [hook("startContainer", None)],
            "poststart": [hook("poststart", None)],
            "poststop": [hook("poststop", None)],
        });
    }) else {
        return;
    };
    let id = id("hooks");
    b.mc_leaving(&["create", "--bundle", &b.path(), &id])
        .expect_code(0);
    b.mc(&["start", &id]).expect_code(0);
    b.mc(&["delete", "--force", &id]).expect_code(0);
    let text = fs::read_to_string(log.path().join("log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "prestart \"status\":\"creating\" host",
            "createRuntime \"status\":\"creating\" host",
            "createContainer \"status\":\"creating\" container",
            "startContainer \"status\":\"creating\" container",
            "poststart \"status\":\"running\" host",
            "poststop \"status\":\"stopped\" host",
        ],
        "{text}"
    );
    // A failing createRuntime hook fails create, and leaves nothing.
    let config = b.dir.path().join("config.json");
    let mut c: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    c["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    fs::write(&config, serde_json::to_vec(&c).unwrap()).unwrap();
    let r = b.mc_leaving(&["create", "--bundle", &b.path(), &id]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("createRuntime hook 0 (/bin/false) failed"),
        "{}",
        r.stderr
    );
    assert!(b.mc(&["list", "-q"]).stdout.is_empty());
    // A failing startContainer hook (in the container, after the release) fails start, which
    // waits for the program's exec (or, as here, the process's account of why there is none).
    c["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]});
    fs::write(&config, serde_json::to_vec(&c).unwrap()).unwrap();
    b.mc_leaving(&["create", "--bundle", &b.path(), &id])
        .expect_code(0);
    let r = b.mc(&["start", &id]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("startContainer hook 0 (/bin/sh) failed"),
        "{}",
        r.stderr
    );
    b.mc(&["delete", "--force", &id]).expect_code(0);
    assert!(b.mc(&["list", "-q"]).stdout.is_empty());
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn features_says_what_the_engine_accepts() {
    let r = run(bin(), &["features"]);
    r.expect_code(0);
    let f: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(f["ociVersionMax"], minicontainer::spec::OCI_VERSION);
    assert!(f["ociVersionMin"].is_string());
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&f["hooks"]).len(), 6);
    // Every mount option it names is one the engine decodes itself (not handed on as data).
    for option in names(&f["mountOptions"]) {
        let (_, _, _, data) = minicontainer::spec::decode_options(std::slice::from_ref(&option));
        assert!(data.is_empty(), "{option} is passed on as data");
    }
    // Every namespace it names is one a config may ask for.
    let spec_of = |typ: &str| -> oci_spec::runtime::LinuxNamespaceType {
        serde_json::from_value(json!(typ)).unwrap()
    };
    for ns in names(&f["linux"]["namespaces"]) {
        let _ = spec_of(&ns);
    }
    // All eight, the time namespace too (made by unshare for the next child).
    assert_eq!(names(&f["linux"]["namespaces"]).len(), 8);
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(names(&f["linux"]["capabilities"]).contains(&"CAP_SYS_ADMIN".to_string()));
}

#[test]
fn no_new_privileges_is_exactly_as_given_with_a_seccomp_filter() {
    const TEST: &str = "no_new_privileges_is_exactly_as_given_with_a_seccomp_filter";
    for nnp in [false, true] {
        let Some((_one, b)) = Bundle::for_test(TEST, |c| {
            c["process"]["args"] =
                json!(["grep", "-E", "^(NoNewPrivs|Seccomp):", "/proc/self/status"]);
            c["process"]["noNewPrivileges"] = json!(nnp);
            assert!(
                c["linux"]["seccomp"].is_object(),
                "spec's default has a profile"
            );
        }) else {
            return;
        };
        let r = b.mc(&["run", "--bundle", &b.path(), &id("nnp")]);
        assert_eq!(r.code, 0, "{}", r.transcript());
        // The filter is on either way (mode 2); no_new_privs only where the config asks.
        assert!(r.stdout.contains("Seccomp:\t2"), "{}", r.stdout);
        assert!(
            r.stdout
                .contains(&format!("NoNewPrivs:\t{}", u8::from(nnp))),
            "noNewPrivileges {nnp}: {}",
            r.stdout
        );
    }
}

/// The first leaf of a process in a hierarchy where `file` exists: its path on the host.
fn group_with(pid: i64, file: &str) -> Option<PathBuf> {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroup_demo::cg::hierarchies().ok()?.iter().find_map(|h| {
        cgroups.lines().find_map(|l| {
            let path = l.splitn(3, ':').nth(2)?;
            let dir = h.mount.join(path.trim_start_matches('/'));
            dir.join(file).exists().then_some(dir)
        })
    })
}

#[test]
fn pause_resume_update_events_and_kill_all_reach_every_process() {
    const TEST: &str = "pause_resume_update_events_and_kill_all_reach_every_process";
    let group = format!("nslab-pause-{}", std::process::id());
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["linux"]["cgroupsPath"] = json!(format!("{group}/ctr"));
        c["linux"]["resources"] = json!({"pids": {"limit": 40}});
    }) else {
        return;
    };
    let id = id("pause");
    b.mc_leaving(&["run", "-d", "--bundle", &b.path(), &id])
        .expect_code(0);
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    // A second process, so that kill --all has more than the first to reach.
    b.mc_leaving(&["exec", "--detach", &id, "sleep", "61"])
        .expect_code(0);
    let state = |pid: i64| {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or_default()
            .to_string()
    };
    b.mc(&["pause", &id]).expect_code(0);
    assert_eq!(b.state(&id)["status"], "paused");
    let frozen = group_with(pid, "freezer.state")
        .map(|g| fs::read_to_string(g.join("freezer.state")).unwrap())
        .or_else(|| {
            group_with(pid, "cgroup.freeze")
                .map(|g| fs::read_to_string(g.join("cgroup.events")).unwrap())
        })
        .unwrap();
    assert!(
        frozen.contains("FROZEN") || frozen.contains("frozen 1"),
        "{frozen}"
    );
    assert!(list_has(&b, &id, "paused"), "list says paused");
    let r = b.mc(&["pause", &id]);
    assert_eq!(r.code, 2, "pausing a paused one: {}", r.transcript());
    assert!(
        r.stderr.contains("only a running container"),
        "{}",
        r.stderr
    );
    b.mc(&["resume", &id]).expect_code(0);
    assert_eq!(b.state(&id)["status"], "running");
    assert!(!state(pid).contains("stopped"), "{}", state(pid));
    // update: from a file of linux.resources, and by flag.
    let resources = b.dir.path().join("resources.json");
    fs::write(&resources, r#"{"pids": {"limit": 12}}"#).unwrap();
    b.mc(&["update", "--resources", &resources.to_string_lossy(), &id])
        .expect_code(0);
    let pids = group_with(pid, "pids.max").unwrap();
    assert_eq!(
        fs::read_to_string(pids.join("pids.max")).unwrap().trim(),
        "12"
    );
    b.mc(&["update", "--pids-limit", "13", &id]).expect_code(0);
    assert_eq!(
        fs::read_to_string(pids.join("pids.max")).unwrap().trim(),
        "13"
    );
    let r = b.mc(&["update", "--resources", "/nonexistent", &id]);
    assert_eq!(r.code, 2, "{}", r.transcript());
    // events --stats: one line of runc's JSON with the container's usage.
    let r = b.mc(&["events", "--stats", &id]);
    r.expect_code(0);
    let event: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["data"]["pids"]["current"], 2, "{event}");
    assert_eq!(event["data"]["pids"]["limit"], 13, "{event}");
    assert!(
        event["data"]["memory"]["usage"]["usage"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{event}"
    );
    // kill --all: every process of the container, not only its first.
    let procs = fs::read_to_string(pids.join("cgroup.procs")).unwrap();
    let procs: Vec<i64> = procs.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(procs.len(), 2, "{procs:?}");
    b.mc(&["kill", "--all", &id, "KILL"]).expect_code(0);
    for p in procs {
        let gone =
            labkit::wait::until(std::time::Duration::from_secs(10), || Ok(!alive(p))).unwrap();
        assert!(gone, "{p} outlived kill --all");
    }
    b.mc(&["delete", &id]).expect_code(0);
    assert_no_cgroup_dir(|h| h.own.join(&group));
    assert_eq!(leftovers(), Vec::<String>::new());
}

fn list_has(b: &Bundle, id: &str, status: &str) -> bool {
    b.mc(&["list"])
        .stdout
        .lines()
        .any(|l| l.starts_with(id) && l.split_whitespace().nth(2) == Some(status))
}

#[test]
fn delete_force_ends_a_paused_container() {
    const TEST: &str = "delete_force_ends_a_paused_container";
    let group = format!("nslab-pausedel-{}", std::process::id());
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["linux"]["cgroupsPath"] = json!(format!("{group}/ctr"));
    }) else {
        return;
    };
    let id = id("pausedel");
    b.mc_leaving(&["run", "-d", "--bundle", &b.path(), &id])
        .expect_code(0);
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    b.mc(&["pause", &id]).expect_code(0);
    let r = b.mc(&["delete", &id]);
    assert_eq!(r.code, 2, "not without --force: {}", r.transcript());
    b.mc(&["delete", "--force", &id]).expect_code(0);
    assert!(!alive(pid));
    assert_no_cgroup_dir(|h| h.own.join(&group));
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn resources_are_written_where_the_kernel_has_them_or_refused_by_name() {
    const TEST: &str = "resources_are_written_where_the_kernel_has_them_or_refused_by_name";
    let group = format!("nslab-res-{}", std::process::id());
    let memory_v1 = cgroup_demo::cg::for_controller("memory", None)
        .is_ok_and(|h| h.version == cgroup_demo::cg::Version::V1);
    // Docker's zeros (cpu.shares 0, blockIO.weight 0) ask for nothing, as with runc.
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["linux"]["cgroupsPath"] = json!(format!("{group}/ctr"));
        let mut memory = json!({"limit": 67108864, "reservation": 33554432});
        if memory_v1 {
            memory["swappiness"] = json!(7);
        }
        c["linux"]["resources"] = json!({
            "memory": memory,
            "cpu": {"shares": 0, "quota": 20000, "period": 100000},
            "blockIO": {"weight": 0},
            "pids": {"limit": 33},
        });
    }) else {
        return;
    };
    let id = id("res");
    b.mc_leaving(&["run", "-d", "--bundle", &b.path(), &id])
        .expect_code(0);
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let read = |file: &str| {
        let g = group_with(pid, file).unwrap_or_else(|| panic!("no group with {file}"));
        fs::read_to_string(g.join(file)).unwrap().trim().to_string()
    };
    if memory_v1 {
        assert_eq!(read("memory.limit_in_bytes"), "67108864");
        assert_eq!(read("memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(read("memory.swappiness"), "7");
    } else {
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(read("memory.low"), "33554432");
    }
    match group_with(pid, "cpu.cfs_quota_us") {
        Some(_) => {
            assert_eq!(read("cpu.cfs_quota_us"), "20000");
            assert_eq!(read("cpu.shares"), "1024", "shares 0 left alone");
        }
        None => {
            assert_eq!(read("cpu.max"), "20000 100000");
            assert_eq!(read("cpu.weight"), "100", "shares 0 left alone");
        }
    }
    assert_eq!(read("pids.max"), "33");
    b.mc(&["delete", "--force", &id]).expect_code(0);
    // What a version cannot do is refused by its name at create, and nothing is left.
    let refused = if memory_v1 {
        ("cpu", json!({"cpu": {"idle": 1}}), "cpu.idle")
    } else {
        ("memory", json!({"memory": {"swappiness": 5}}), "swappiness")
    };
    let mut config: Value =
        serde_json::from_slice(&fs::read(b.dir.path().join("config.json")).unwrap()).unwrap();
    config["linux"]["resources"] = refused.1;
    fs::write(
        b.dir.path().join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let r = b.mc(&["create", "--bundle", &b.path(), &id]);
    assert_eq!(r.code, 2, "{}: {}", refused.0, r.transcript());
    assert!(r.stderr.contains(refused.2), "{}", r.stderr);
    assert!(r.stderr.contains("refused"), "{}", r.stderr);
    assert_no_cgroup_dir(|h| h.own.join(&group));
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// `minicontainer ARGS` in a mount namespace of its own whose mounts are shared (with nothing
/// of the host's: unshare makes them private first), as a host with shared mounts would be,
/// with a tmpfs of that namespace's at `b`'s `src` for the container to bind.
fn in_shared_host(b: &Bundle, args: &[&str]) -> Run {
    let root = b.root.path().to_string_lossy().into_owned();
    let src = b.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let child = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs nslab-src {} && mount --make-rshared / && exec \"$0\" \"$@\"",
            src.display()
        ))
        .arg(bin())
        .args(["--root", root.as_str()])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    started(child.id() as i32);
    let out = child.wait_with_output().unwrap();
    Run::from(out)
}

#[test]
fn the_root_propagation_is_what_the_config_says() {
    const TEST: &str = "the_root_propagation_is_what_the_config_says";
    // mountinfo's optional fields, the kernel's own account: of /srv, a bind of a mount the
    // host shares (a slave receives the host's mounts there, a shared one also sends its own),
    // or of / itself.
    for (propagation, at, tag) in [
        ("rprivate", "/srv", None),
        ("rslave", "/srv", Some("master:")),
        ("rshared", "/srv", Some("shared:")),
        ("runbindable", "/", Some("unbindable")),
    ] {
        let Some((_one, b)) = Bundle::for_test(TEST, |c| {
            c["process"]["args"] = json!(["cat", "/proc/self/mountinfo"]);
            c["linux"]["rootfsPropagation"] = json!(propagation);
        }) else {
            return;
        };
        if at == "/srv" {
            let src = b.dir.path().join("src").display().to_string();
            let config = b.dir.path().join("config.json");
            let mut c: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
            c["mounts"].as_array_mut().unwrap().push(
                json!({"destination": "/srv", "type": "bind", "source": src, "options": ["rbind"]}),
            );
            fs::write(&config, serde_json::to_vec(&c).unwrap()).unwrap();
        }
        let r = in_shared_host(&b, &["run", "--bundle", &b.path(), &id("prop")]);
        assert_eq!(r.code, 0, "{propagation}: {}", r.transcript());
        let line = r
            .stdout
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(at))
            .unwrap_or_else(|| panic!("no {at} in {}", r.stdout));
        let optional: Vec<&str> = line.split(' ').skip(6).take_while(|f| *f != "-").collect();
        match tag {
            Some(tag) => assert!(
                optional.iter().any(|f| f.starts_with(tag)),
                "{propagation}: {line}"
            ),
            None => assert!(optional.is_empty(), "{propagation}: {line}"),
        }
    }
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn mount_and_pid_namespaces_join_by_path_or_stay_the_runtimes() {
    const TEST: &str = "mount_and_pid_namespaces_join_by_path_or_stay_the_runtimes";
    let Some((_one, a)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sleep", "60"]);
    }) else {
        return;
    };
    let first = id("joined");
    a.mc_leaving(&["run", "-d", "--bundle", &a.path(), &first])
        .expect_code(0);
    let pid = a.state(&first)["pid"].as_i64().unwrap();
    // A second container that enters the first one's mount and PID namespaces: its files and
    // its processes, with no mount of its own.
    let no_mounts = |c: &mut Value| {
        c["mounts"] = json!([]);
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!([]);
        c["linux"].as_object_mut().unwrap().remove("sysctl");
    };
    let b = Bundle::new(TEST, |c| {
        c["process"]["args"] = json!(["sh", "-c", "ls /; cat /proc/1/cmdline; echo; echo $$"]);
        no_mounts(c);
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            match ns["type"].as_str() {
                Some("mount") => ns["path"] = json!(format!("/proc/{pid}/ns/mnt")),
                Some("pid") => ns["path"] = json!(format!("/proc/{pid}/ns/pid")),
                _ => {}
            }
        }
    })
    .unwrap();
    let r = b.mc(&["run", "--bundle", &b.path(), &id("joiner")]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines.contains(&"srv") && !lines.contains(&"usr"),
        "the first one's root: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("sleep\u{0}60"),
        "its PID 1 is the first one's: {}",
        r.stdout
    );
    assert_ne!(lines.last(), Some(&"1"), "not PID 1 there: {}", r.stdout);
    a.mc(&["delete", "--force", &first]).expect_code(0);
    // No mount namespace at all: the runtime's own tree, and no mount asked for.
    let c = Bundle::new(TEST, |c| {
        c["process"]["args"] = json!(["ls", "/"]);
        no_mounts(c);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
    })
    .unwrap();
    let r = c.mc(&["run", "--bundle", &c.path(), &id("nomnt")]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.lines().any(|l| l == "usr"), "{}", r.stdout);
    // A mount asked for without a namespace to make it in is refused by name.
    let d = Bundle::new(TEST, |c| {
        c["process"]["args"] = json!(["true"]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
    })
    .unwrap();
    let r = d.mc(&["run", "--bundle", &d.path(), &id("nomnt")]);
    assert_eq!(r.code, 2, "{}", r.transcript());
    assert!(
        r.stderr.contains("needs a mount namespace of its own"),
        "{}",
        r.stderr
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn preserve_fds_passes_on_exactly_the_descriptors_asked_for() {
    const TEST: &str = "preserve_fds_passes_on_exactly_the_descriptors_asked_for";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        // fd 3 is the caller's (a file it opened for the container); 7 must not arrive.
        c["process"]["args"] = json!(["sh", "-c", "cat <&3; ls /proc/self/fd | tr '\\n' ' '"]);
    }) else {
        return;
    };
    let passed = b.dir.path().join("passed");
    fs::write(&passed, "through fd 3\n").unwrap();
    let root = b.root.path().to_string_lossy().into_owned();
    let with_fds = |extra: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec 3<'{}' 7</dev/null; exec \"$0\" --root '{root}' {extra}",
                passed.display()
            ))
            .arg(bin())
            .output()
            .unwrap();
        Run::from(out)
    };
    let r = with_fds(&format!(
        "run --preserve-fds 1 --bundle '{}' {}",
        b.path(),
        id("fds")
    ));
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.starts_with("through fd 3\n"), "{}", r.stdout);
    let fds: Vec<&str> = r
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert!(fds.contains(&"3") && !fds.contains(&"7"), "{fds:?}");
    // Without it, nothing of the caller's above 2.
    let r = with_fds(&format!("run --bundle '{}' {}", b.path(), id("fds")));
    assert!(
        !r.stdout.contains("through fd 3") && r.stderr.contains("Bad file descriptor"),
        "cat <&3 has no fd 3: {}",
        r.transcript()
    );
    // A descriptor that is not open is bad input, caught before anything is made.
    let r = with_fds(&format!(
        "run --preserve-fds 5 --bundle '{}' {}",
        b.path(),
        id("fds")
    ));
    assert_eq!(r.code, 2, "{}", r.transcript());
    assert!(r.stderr.contains("--preserve-fds 5"), "{}", r.stderr);
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn no_pivot_moves_the_root_instead_of_pivoting() {
    const TEST: &str = "no_pivot_moves_the_root_instead_of_pivoting";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sh", "-c", "ls /; cat /proc/self/mountinfo"]);
    }) else {
        return;
    };
    let r = b.mc(&[
        "run",
        "--no-pivot",
        "--no-new-keyring",
        "--bundle",
        &b.path(),
        &id("nopivot"),
    ]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.lines().any(|l| l == "srv"), "{}", r.stdout);
    // The root is the bundle's rootfs, moved (the same mount as pivot_root gives it).
    let root = r
        .stdout
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        root.split(' ').nth(3).unwrap().ends_with("/rootfs"),
        "{root}"
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn scheduler_io_priority_and_personality_are_the_configs() {
    const TEST: &str = "scheduler_io_priority_and_personality_are_the_configs";
    // /proc/self/stat: field 19 is the nice value, 41 the policy (3 = SCHED_BATCH); ionice
    // reads the I/O class back; uname -m answers in the execution domain (LINUX32: i686).
    let script = "set -- $(cat /proc/self/stat); shift 18; echo nice=$1; shift 22; echo policy=$1; \
                  ionice -p $$; uname -m";
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["sh", "-c", script]);
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
    }) else {
        return;
    };
    let r = b.mc(&["run", "--bundle", &b.path(), &id("sched")]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.contains("nice=7\n"), "{}", r.stdout);
    assert!(r.stdout.contains("policy=3\n"), "{}", r.stdout);
    assert!(r.stdout.contains("idle"), "{}", r.stdout);
    assert!(r.stdout.trim_end().ends_with("i686"), "{}", r.stdout);
    // Out of range: refused by name before anything is made.
    let config = b.dir.path().join("config.json");
    let mut c: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 9});
    fs::write(&config, serde_json::to_vec(&c).unwrap()).unwrap();
    let r = b.mc(&["run", "--bundle", &b.path(), &id("sched")]);
    assert_eq!(r.code, 2, "{}", r.transcript());
    assert!(
        r.stderr.contains("process.ioPriority.priority 9"),
        "{}",
        r.stderr
    );
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn a_time_namespace_gets_the_configs_clock_offsets() {
    const TEST: &str = "a_time_namespace_gets_the_configs_clock_offsets";
    let days = 3 * 86_400;
    let Some((_one, b)) = Bundle::for_test(TEST, |c| {
        c["process"]["args"] = json!(["cat", "/proc/uptime"]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": days, "nanosecs": 0}});
    }) else {
        return;
    };
    let host: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let r = b.mc(&["run", "--bundle", &b.path(), &id("time")]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    // CLOCK_BOOTTIME, which /proc/uptime shows, is three days further on inside.
    let inside: f64 = r.stdout.split(' ').next().unwrap().parse().unwrap();
    let ahead = inside - host;
    assert!(
        (f64::from(days) - 1.0..f64::from(days) + 60.0).contains(&ahead),
        "inside {inside}, host {host}"
    );
    // Offsets without a namespace of its own to put them in: refused by name.
    let config = b.dir.path().join("config.json");
    let mut c: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "time");
    fs::write(&config, serde_json::to_vec(&c).unwrap()).unwrap();
    let r = b.mc(&["run", "--bundle", &b.path(), &id("time")]);
    assert_eq!(r.code, 2, "{}", r.transcript());
    assert!(r.stderr.contains("linux.timeOffsets"), "{}", r.stderr);
    assert_eq!(leftovers(), Vec::<String>::new());
}
