//! minicontainer under the container managers that drive runc: containerd (through its runc
//! shim, with `ctr`) and Docker (dockerd through that containerd). Each test starts its own
//! daemons with every state directory under its temporary directory (no systemd, nothing under
//! /var/lib), imports an image it builds from busybox-static (nothing is pulled), and runs every
//! step with runc too, so that a broken client set-up is told apart from a runtime defect: a
//! step must give the same answer with both.
//!
//! What the daemons make outside the temporary directory, because their paths are fixed in
//! them, is removed at the end when the test made it and it is empty: containerd 1.6's shim
//! sockets and FIFOs (`/run/containerd/s`, `/run/containerd/fifo`), dockerd's
//! `/run/docker/plugins`. Their cgroups are made below this test's own (`--cgroup` relative for
//! ctr, a relative `cgroup-parent` for dockerd).

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::bin;
use labkit::tempdir::TempDir;
use labkit::testing::{Run, needs_root, serial, skip};
use sha2::Digest;

/// The image every step runs: busybox-static and a few applets, as a `docker save` archive
/// (which `ctr image import` and `docker load` both read).
const IMAGE: &str = "localhost/nslab-busybox:latest";

fn image_archive(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "hostname", "sleep", "tty", "id", "ls"] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
    let parts = dir.join("archive");
    fs::create_dir_all(&parts).unwrap();
    tar(&[
        "-C",
        &rootfs.to_string_lossy(),
        "-cf",
        &parts.join("layer.tar").to_string_lossy(),
        ".",
    ]);
    let sha = |p: &Path| format!("{:x}", sha2::Sha256::digest(fs::read(p).unwrap()));
    let layer = sha(&parts.join("layer.tar"));
    let config = serde_json::json!({
        "architecture": if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" },
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer}")]}
    });
    let config_path = parts.join("config.json");
    fs::write(&config_path, config.to_string()).unwrap();
    let config_name = format!("{}.json", sha(&config_path));
    fs::rename(&config_path, parts.join(&config_name)).unwrap();
    let manifest = serde_json::json!([
        {"Config": config_name, "RepoTags": [IMAGE], "Layers": ["layer.tar"]}
    ]);
    fs::write(parts.join("manifest.json"), manifest.to_string()).unwrap();
    let archive = dir.join("image.tar");
    tar(&[
        "-C",
        &parts.to_string_lossy(),
        "-cf",
        &archive.to_string_lossy(),
        "manifest.json",
        &config_name,
        "layer.tar",
    ]);
    archive
}

fn tar(args: &[&str]) {
    let status = Command::new("tar").args(args).status().unwrap();
    assert!(status.success(), "tar {args:?}");
}

/// A command's result, its output kept.
fn cmd(program: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    Run::from(out)
}

/// The two runtimes each step runs with: runc, and minicontainer (a copy in the test's
/// directory).
struct Runtime {
    name: &'static str,
    path: PathBuf,
}

/// The daemons a test started, and everything they made; all of it removed on drop, even when
/// the test failed: their shims and containers killed (by the PIDs they have, found by this
/// test's own socket path), their mounts under the test's directory detached, the daemons
/// ended, the directories above removed when this test made them.
struct Daemons {
    dir: TempDir,
    containerd: Option<Child>,
    dockerd: Option<Child>,
    /// The cgroup below this test's own (in every hierarchy) that its containers go under.
    cgroup: String,
    /// Fixed paths of the daemons that did not exist before (removed deepest first, if empty).
    made: Vec<PathBuf>,
}

impl Daemons {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn start(what: &str) -> Daemons {
        let made = [
            "/run/containerd",
            "/run/containerd/s",
            "/run/containerd/fifo",
            "/run/docker",
            "/run/docker/plugins",
        ]
        .iter()
        .map(PathBuf::from)
        .filter(|p| !p.exists())
        .collect();
        let dir = TempDir::new(what);
        let mut d = Daemons {
            cgroup: format!("nslab-{what}-{}", std::process::id()),
            dir,
            containerd: None,
            dockerd: None,
            made,
        };
        let t = d.dir.path().to_path_buf();
        // The configuration the book shows (the CRI plugin's runtime handler is what a
        // Kubernetes node selects with a RuntimeClass whose handler is "nslab").
        let config = include_str!("clients/containerd.toml")
            .replace("@DIR@", &t.to_string_lossy())
            .replace(
                "@MINICONTAINER@",
                &t.join("minicontainer").to_string_lossy(),
            );
        fs::write(t.join("containerd.toml"), config).unwrap();
        fs::copy(bin(), t.join("minicontainer")).unwrap();
        let log = fs::File::create(t.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(t.join("containerd.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        d.containerd = Some(child);
        d.await_socket(&d.socket(), "containerd");
        d
    }

    /// Wait until the daemon answers on its socket (no event tells it: back off).
    fn await_socket(&self, sock: &Path, what: &str) {
        let up = labkit::wait::until(Duration::from_secs(30), || {
            Ok(std::os::unix::net::UnixStream::connect(sock).is_ok())
        })
        .unwrap();
        let log =
            fs::read_to_string(self.dir.path().join(format!("{what}.log"))).unwrap_or_default();
        assert!(
            up,
            "{what} did not answer on {} in 30 s:\n{log}",
            sock.display()
        );
    }

    fn ctr(&self, args: &[&str]) -> Run {
        let sock = self.socket().to_string_lossy().into_owned();
        let mut all = vec!["-a", sock.as_str()];
        all.extend_from_slice(args);
        cmd("ctr", &all, &[])
    }

    fn start_dockerd(&mut self) {
        let t = self.dir.path().to_path_buf();
        let config = include_str!("clients/daemon.json")
            .replace(
                "@MINICONTAINER@",
                &t.join("minicontainer").to_string_lossy(),
            )
            .replace("@CGROUP@", &self.cgroup);
        fs::write(t.join("daemon.json"), config).unwrap();
        let log = fs::File::create(t.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(t.join("daemon.json"))
            .arg("--data-root")
            .arg(t.join("docker/data"))
            .arg("--exec-root")
            .arg(t.join("docker/exec"))
            .arg("--pidfile")
            .arg(t.join("docker/pid"))
            .arg("-H")
            .arg(format!("unix://{}", t.join("docker.sock").display()))
            .arg("--containerd")
            .arg(self.socket())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        self.dockerd = Some(child);
        self.await_socket(&t.join("docker.sock"), "dockerd");
    }

    fn docker(&self, args: &[&str]) -> Run {
        let t = self.dir.path();
        let host = format!("unix://{}", t.join("docker.sock").display());
        let config = t.join("docker-cli").to_string_lossy().into_owned();
        cmd(
            "/usr/bin/docker",
            args,
            &[("DOCKER_HOST", &host), ("DOCKER_CONFIG", &config)],
        )
    }

    fn runtimes(&self) -> [Runtime; 2] {
        [
            Runtime {
                name: "runc",
                path: PathBuf::from("runc"),
            },
            Runtime {
                name: "nslab",
                path: self.dir.path().join("minicontainer"),
            },
        ]
    }

    /// The processes whose command line names this test's containerd socket: its shims.
    fn shims(&self) -> Vec<i32> {
        let sock = self.socket().to_string_lossy().into_owned();
        fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("containerd-shim") && c.contains(&sock)
                })
            })
            .collect()
    }
}

/// What the book shows of a client's steps with minicontainer: each command as a reader would
/// type it (the test's temporary paths as $VARIABLES), then its real output and exit status.
#[derive(Default)]
struct Transcript(Option<String>);

impl Transcript {
    fn for_runtime(rt: &Runtime) -> Transcript {
        Transcript((rt.name == "nslab").then(String::new))
    }

    fn show(&mut self, cmd: &str, r: &Run) {
        if let Some(text) = &mut self.0 {
            text.push_str(&format!("$ {cmd}\n{}", r.stdout));
            if r.code != 0 {
                text.push_str(&format!("(exit status {})\n", r.code));
            }
        }
    }

    /// Snapshot it for the book (the run's own names and numbers filtered).
    fn snapshot(self, name: &str, filters: &[(&str, &str)]) {
        let Some(text) = self.0 else { return };
        let shown = Run {
            code: 0,
            stdout: text,
            stderr: String::new(),
        };
        labkit::assert_run_snapshot!(name, shown, filters);
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn end(child: &mut Child, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, signal);
    let _ = child.wait();
}

impl Drop for Daemons {
    fn drop(&mut self) {
        use nix::sys::signal::Signal;
        if let Some(mut dockerd) = self.dockerd.take() {
            end(&mut dockerd, Signal::SIGTERM);
        }
        // What is left of the containers: their groups, below this test's own.
        for h in cgroup_demo::cg::hierarchies().unwrap_or_default() {
            let parent = h.own.join(&self.cgroup);
            if parent.exists() {
                let _ = cgroup_demo::cg::Group::adopt(parent, h.version).remove();
            }
        }
        for pid in self.shims() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        if let Some(mut containerd) = self.containerd.take() {
            end(&mut containerd, Signal::SIGTERM);
        }
        // The daemons' mounts (snapshots, overlay2 layers, shm) under the test's directory.
        let under = self.dir.path().to_string_lossy().into_owned();
        let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(labkit::cgroupfs::unescape)
            .filter(|m| m.starts_with(&under))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for dir in self.made.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Skip (loudly) unless root with the client's programs installed.
fn ready(test: &str, programs: &[&str]) -> bool {
    if needs_root(test) {
        return false;
    }
    for p in programs {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(p).exists()))
            || Path::new(p).exists();
        if !found
            && skip(
                test,
                &format!("no {p} (apt-get install containerd docker.io runc)"),
            )
        {
            return false;
        }
    }
    if !Path::new("/bin/busybox").exists()
        && skip(test, "no /bin/busybox (apt-get install busybox-static)")
    {
        return false;
    }
    true
}

/// Retry a step that waits on the daemon's view of a process's end (nothing to wait on from
/// here: back off), until it succeeds or 20 s pass.
fn eventually(what: &str, mut step: impl FnMut() -> Run) -> Run {
    let mut last = None;
    labkit::wait::until(Duration::from_secs(20), || {
        let r = step();
        let ok = r.code == 0;
        last = Some(r);
        Ok(ok)
    })
    .unwrap();
    let r = last.unwrap();
    assert_eq!(r.code, 0, "{what}: {}", r.transcript());
    r
}

#[test]
fn containerd_runs_minicontainer_as_it_runs_runc() {
    const TEST: &str = "containerd_runs_minicontainer_as_it_runs_runc";
    if !ready(
        TEST,
        &["containerd", "ctr", "containerd-shim-runc-v2", "runc"],
    ) {
        return;
    }
    let _one = serial();
    let d = Daemons::start("ctd");
    let t = d.dir.path().to_path_buf();
    let archive = image_archive(&t);
    d.ctr(&["image", "import", &archive.to_string_lossy()])
        .expect_code(0);
    // The runtime handler a RuntimeClass names is in the configuration containerd loaded.
    let dump = d.ctr(&["plugins", "ls"]);
    assert!(
        dump.stdout
            .lines()
            .any(|l| l.contains("io.containerd.grpc.v1")
                && l.contains(" cri ")
                && l.trim_end().ends_with("ok")),
        "{}",
        dump.stdout
    );
    let loaded = cmd(
        "containerd",
        &[
            "--config",
            &t.join("containerd.toml").to_string_lossy(),
            "config",
            "dump",
        ],
        &[],
    );
    assert!(
        loaded
            .stdout
            .contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nslab]")
            && loaded.stdout.contains(&format!(
                "BinaryName = \"{}\"",
                t.join("minicontainer").display()
            )),
        "{}",
        loaded.transcript()
    );
    let mut hostnames = Vec::new();
    let mut shown = Transcript::default();
    for rt in d.runtimes() {
        let mut book = Transcript::for_runtime(&rt);
        let name = format!("nslab-ctr-{}-{}", std::process::id(), rt.name);
        let binary = rt.path.to_string_lossy().into_owned();
        let root = t
            .join(format!("{}-root", rt.name))
            .to_string_lossy()
            .into_owned();
        let fifos = t.join("fifo").to_string_lossy().into_owned();
        let cgroup = format!("{}/{name}", d.cgroup);
        let base = [
            "--runc-binary",
            binary.as_str(),
            "--runc-root",
            root.as_str(),
            "--fifo-dir",
            fifos.as_str(),
            "--cgroup",
            cgroup.as_str(),
        ];
        let with = |extra: &[&str], tail: &[&str]| -> Vec<String> {
            let mut v = vec!["run".to_string()];
            v.extend(extra.iter().map(|s| s.to_string()));
            v.extend(base.iter().map(|s| s.to_string()));
            v.extend(tail.iter().map(|s| s.to_string()));
            v
        };
        // run --rm: the output, and the exit status through the shim.
        let args = with(
            &["--rm"],
            &[IMAGE, &name, "sh", "-c", "echo hi; hostname; exit 3"],
        );
        let r = d.ctr(&strs(&args));
        book.show(
            "ctr run --rm --runc-binary $MINICONTAINER --runc-root $ROOT --cgroup $CGROUP \\\n    localhost/nslab-busybox:latest $NAME sh -c 'echo hi; hostname; exit 3'",
            &r,
        );
        assert_eq!(r.code, 3, "{}: {}", rt.name, r.transcript());
        assert!(
            r.stdout.starts_with("hi\n"),
            "{}: {}",
            rt.name,
            r.transcript()
        );
        hostnames.push(r.stdout.lines().nth(1).unwrap_or_default().to_string());
        // run -d, then exec, pause and resume, metrics, kill, delete.
        let args = with(&["-d", "--null-io"], &[IMAGE, &name, "sleep", "60"]);
        let r = d.ctr(&strs(&args));
        book.show(
            "ctr run -d --null-io --runc-binary $MINICONTAINER --runc-root $ROOT --cgroup $CGROUP \\\n    localhost/nslab-busybox:latest $NAME sleep 60",
            &r,
        );
        r.expect_code(0);
        let r = d.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            &name,
            "sh",
            "-c",
            "echo in; exit 5",
        ]);
        book.show(
            "ctr task exec --exec-id e1 $NAME sh -c 'echo in; exit 5'",
            &r,
        );
        assert_eq!(r.code, 5, "{}: {}", rt.name, r.transcript());
        assert_eq!(r.stdout, "in\n", "{}", rt.name);
        d.ctr(&["task", "pause", &name]).expect_code(0);
        let ls = d.ctr(&["task", "ls"]);
        book.show("ctr task pause $NAME && ctr task ls", &ls);
        assert!(
            ls.stdout
                .lines()
                .any(|l| l.starts_with(&name) && l.ends_with("PAUSED")),
            "{}: {}",
            rt.name,
            ls.stdout
        );
        d.ctr(&["task", "resume", &name]).expect_code(0);
        let ls = d.ctr(&["task", "ls"]);
        book.show("ctr task resume $NAME && ctr task ls", &ls);
        assert!(
            ls.stdout
                .lines()
                .any(|l| l.starts_with(&name) && l.ends_with("RUNNING")),
            "{}: {}",
            rt.name,
            ls.stdout
        );
        let metrics = d.ctr(&["task", "metrics", &name]);
        metrics.expect_code(0);
        // Only the lines whose values do not change from run to run.
        let steady = Run {
            code: 0,
            stdout: metrics
                .stdout
                .lines()
                .filter(|l| l.starts_with("METRIC") || l.starts_with("pids."))
                .map(|l| format!("{}\n", l.trim_end()))
                .collect(),
            stderr: String::new(),
        };
        book.show("ctr task metrics $NAME | grep -E 'METRIC|pids'", &steady);
        assert!(
            metrics.stdout.contains("pids.current"),
            "{}: {}",
            rt.name,
            metrics.stdout
        );
        d.ctr(&["task", "kill", "--signal", "SIGKILL", &name])
            .expect_code(0);
        let r = eventually("task delete", || d.ctr(&["task", "delete", &name]));
        book.show(
            "ctr task kill --signal SIGKILL $NAME && ctr task delete $NAME",
            &r,
        );
        d.ctr(&["container", "rm", &name]).expect_code(0);
        // The container's group is gone with it (its parent is this test's to remove).
        for h in cgroup_demo::cg::hierarchies().unwrap() {
            let leaf = h.own.join(&cgroup);
            assert!(!leaf.exists(), "{}: {} is left", rt.name, leaf.display());
        }
        if book.0.is_some() {
            shown = book;
        }
    }
    assert_eq!(hostnames[0], hostnames[1], "the same hostname with both");
    let name = format!("nslab-ctr-{}-nslab", std::process::id());
    shown.snapshot(
        "containerd_client",
        &[
            (&hostnames[1], "[HOSTNAME]"),
            (&name, "[NAME]"),
            (r"(?m)^\[NAME\] +\d+ +", "[NAME]  [PID]  "),
            // Column widths follow the name's length: two spaces between columns.
            (r"(?m)([^ ]) {2,}([^ ])", "$1  $2"),
            (r"(?m) +$", ""),
        ],
    );
    assert!(d.shims().is_empty(), "every shim ended with its task");
}

#[test]
fn docker_runs_minicontainer_as_it_runs_runc() {
    const TEST: &str = "docker_runs_minicontainer_as_it_runs_runc";
    if !ready(TEST, &["containerd", "dockerd", "/usr/bin/docker", "runc"]) {
        return;
    }
    let _one = serial();
    let mut d = Daemons::start("dkr");
    d.start_dockerd();
    let t = d.dir.path().to_path_buf();
    let archive = image_archive(&t);
    d.docker(&["load", "-i", &archive.to_string_lossy()])
        .expect_code(0);
    let mut shown = Transcript::default();
    for rt in d.runtimes() {
        let mut book = Transcript::for_runtime(&rt);
        let name = format!("nslab-dkr-{}-{}", std::process::id(), rt.name);
        let runtime = ["--runtime", rt.name];
        let run = |extra: &[&str]| {
            let mut v = vec!["run"];
            v.extend_from_slice(&runtime);
            v.extend_from_slice(extra);
            d.docker(&v)
        };
        // run --rm: Docker's prestart hooks, hostname, mounts and seccomp profile; the status.
        let r = run(&[
            "--rm",
            "--hostname",
            "nslab-box",
            IMAGE,
            "sh",
            "-c",
            "echo hi $(hostname); exit 3",
        ]);
        book.show(
            "docker run --runtime nslab --rm --hostname nslab-box localhost/nslab-busybox \\\n    sh -c 'echo hi $(hostname); exit 3'",
            &r,
        );
        assert_eq!(r.code, 3, "{}: {}", rt.name, r.transcript());
        assert_eq!(
            r.stdout,
            "hi nslab-box\n",
            "{}: {}",
            rt.name,
            r.transcript()
        );
        // run -t: the terminal through containerd's console socket.
        let r = run(&["--rm", "-t", IMAGE, "tty"]);
        book.show(
            "docker run --runtime nslab --rm -t localhost/nslab-busybox tty",
            &r,
        );
        assert_eq!(r.code, 0, "{}: {}", rt.name, r.transcript());
        assert!(
            r.stdout.contains("/dev/pts/0"),
            "{}: {}",
            rt.name,
            r.transcript()
        );
        // run -d, exec, pause and unpause, update, stop, rm.
        let r = run(&["-d", "--name", &name, IMAGE, "sleep", "60"]);
        book.show(
            "docker run --runtime nslab -d --name $NAME localhost/nslab-busybox sleep 60",
            &r,
        );
        r.expect_code(0);
        let r = d.docker(&["exec", &name, "sh", "-c", "echo in; exit 4"]);
        book.show("docker exec $NAME sh -c 'echo in; exit 4'", &r);
        assert_eq!(r.code, 4, "{}: {}", rt.name, r.transcript());
        assert_eq!(r.stdout, "in\n", "{}", rt.name);
        let status = || {
            d.docker(&["inspect", "-f", "{{.State.Status}}", &name])
                .stdout
                .trim()
                .to_string()
        };
        d.docker(&["pause", &name]).expect_code(0);
        let paused = status();
        book.show(
            "docker pause $NAME && docker inspect -f '{{.State.Status}}' $NAME",
            &Run {
                code: 0,
                stdout: format!("{paused}\n"),
                stderr: String::new(),
            },
        );
        assert_eq!(paused, "paused", "{}", rt.name);
        d.docker(&["unpause", &name]).expect_code(0);
        assert_eq!(status(), "running", "{}", rt.name);
        d.docker(&[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "128m",
            "--pids-limit",
            "50",
            &name,
        ])
        .expect_code(0);
        let stats = d.docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &name]);
        book.show(
            "docker update --memory 64m --memory-swap 128m --pids-limit 50 $NAME\n$ docker stats --no-stream --format '{{.MemUsage}}' $NAME",
            &stats,
        );
        assert!(
            stats.stdout.trim().ends_with("/ 64MiB"),
            "{}: {}",
            rt.name,
            stats.transcript()
        );
        d.docker(&["stop", "-t", "1", &name]).expect_code(0);
        assert_eq!(status(), "exited", "{}", rt.name);
        d.docker(&["rm", &name]).expect_code(0);
        if book.0.is_some() {
            shown = book;
        }
    }
    shown.snapshot(
        "docker_client",
        &[
            (r"(?m)^[0-9a-f]{64}$", "[CONTAINER-ID]"),
            (r"(?m)^[0-9.]+[KMG]?i?B / 64MiB$", "[USAGE] / 64MiB"),
        ],
    );
}
