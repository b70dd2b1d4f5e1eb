//! `cargo xtask vm-test`: the test suites, as root and (where a test does) as nobody, on a pure
//! cgroup v2 machine, in a throw-away virtual machine (overlayfs, veth and the bridge loaded
//! there from the kernel package it boots).
//!
//! Most readers' machines are cgroup v2 only; the development machine may be v1 or hybrid. The
//! VM boots Debian's kernel (`linux-image-amd64`, fetched with `apt-get download`, or
//! `NSLAB_VM_KERNEL=/path/to/vmlinuz`) under QEMU with an initramfs built here: a static busybox,
//! the statically linked test binaries with the demo binaries at the paths compiled into them,
//! and the snapshot files (the checkout may live under /tmp: /tmp stays the initramfs's own, no
//! tmpfs over it). Its `/init` mounts proc, sysfs, devtmpfs and **cgroup2
//! only** at /sys/fs/cgroup, enables every controller for the root's children, makes one child
//! group that uses them (as `system.slice` does on a systemd host), runs the tests with
//! skips turned into failures, prints one result line per test binary on the serial console, and
//! powers off. Downloads are cached in `~/.cache/nslab-vm`.
//!
//! `--accept` writes the snapshots the VM made (new v2 ones) into the source tree.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The integration tests that run in the VM: (crate, its test target or all of them, the tests'
/// name filters or all). The VM loads overlayfs, veth and the bridge ([`MODULES`]), so the
/// runtime's docker-style runs, the overlay lessons and the network lessons run there too, on
/// cgroup v2, as root and (where a test does) as nobody.
const SUITES: &[(&str, Option<&str>, &[&str])] = &[
    ("cgroup-demo", None, &[]),
    (
        "minicontainer",
        Some("oci"),
        &[
            "the_lifecycle",
            "run_waits",
            "each_config_field",
            "cgroups_path",
            "a_cgroups_path_places",
            "bad_bundles",
            "exec_takes",
            "all_six_hooks",
            "the_spec_is_followed",
            "create_refuses",
            "log_json",
            "no_new_privileges",
            "pause_resume",
            "delete_force_ends",
            "resources_are",
            "preserve_fds",
            "scheduler_io",
            "no_pivot",
            "a_time_namespace",
        ],
    ),
    // With overlayfs, veth and the bridge loaded in the VM: docker-style runs on cgroup v2,
    // as root and rootless.
    (
        "minicontainer",
        Some("cli"),
        &[
            "the_exit_status_is_the_commands",
            "limits_are_enforced",
            "rootless_containers_run",
            "volumes_are_bind_mounts",
            "an_oci_image_runs",
            "rootless_limits_live",
        ],
    ),
    // All but the rootless whiteout lesson: rootless overlayfs keeps whiteouts and opaque
    // directories in user.* xattrs, which tmpfs (the VM's /tmp) has only since Linux 6.6, and
    // the VM boots Debian 12's 6.1 (rm -r of a merged directory answers EIO there).
    (
        "cow-demo",
        None,
        &[
            "a_write_copies",
            "as_root_redirect_dir",
            "bad_sizes",
            "copy_up_writes",
            "help_lists",
            "many_containers",
            "overlay_demos_run",
            "overlay_merges",
            "written_pages",
        ],
    ),
    ("net-demo", None, &[]),
    // Each but the tests that start util-linux's unshare (--kill-child, --map-root-user: the
    // VM's busybox has neither).
    (
        "uts-demo",
        None,
        &[
            "help_lists_every_subcommand",
            "show_prints_this_process_names_and_uts_inode",
            "ns_lists_every_namespace_link_of_this_kernel",
            "ns_marks_the_namespace_that_differs",
            "clone_changes_the_parents_hostname_only_without_clone_newuts",
            "clone_with_rootless_gives_the_same_isolation",
            "clone_as_an_unprivileged_user_isolates_in_its_own_user_namespace",
            "unshare_keeps_the_pid_and_changes_the_uts_namespace",
            "setns_joins_the_uts_namespace_of_a_running_process",
            "setns_with_a_type_that_does_not_match_gets_the_kernels_einval",
            "persist_keeps_a_namespace_alive_through_an_open_fd",
            "persist_pin_outlives_the_run_and_unpin_ends_it",
            "persist_pin_refuses_an_existing_file_and_leaves_it_alone",
            "unpin_rejects_a_file_that_is_not_a_pin",
            "ns_rejects_a_pid_that_does_not_exist",
            "setns_rejects_a_file_that_is_not_a_namespace",
            "clone_rejects_a_hostname_over_64_bytes_before_making_anything",
            "show_of_another_users_process_is_refused_with_a_hint",
            "show_of_a_process_in_another_uts_namespace_joins_it_to_read_the_name",
        ],
    ),
    ("ipc-demo", None, &[]),
    (
        "pid-demo",
        None,
        &[
            "help_lists_every_subcommand",
            "tree_",
            "siblings_each_have_a_pid_1",
            "isolation_hides_the_parent_namespace_but_not_the_reverse",
            "orphan_is_adopted_by_the_namespaces_init",
            "init_",
            "proc_shows_the_namespace_only_after_mounting_a_new_procfs",
            "monitor_draws_a_namespace_from_the_host",
            "monitor_rejects_a_pid_that_does_not_exist",
            "zombies_",
            "time_namespace_offsets",
            "every_pid_demo_runs_as_real_root_too",
            "pid_demos_run_as_an_unprivileged_user",
        ],
    ),
    ("mnt-demo", None, &[]),
    ("user-demo", None, &[]),
];
/// Cargo's profile settings for the VM's builds: no debug information, stripped.
const NO_DEBUG_INFO: [(&str, &str); 4] = [
    ("CARGO_PROFILE_DEV_DEBUG", "false"),
    ("CARGO_PROFILE_TEST_DEBUG", "false"),
    ("CARGO_PROFILE_DEV_STRIP", "debuginfo"),
    ("CARGO_PROFILE_TEST_STRIP", "debuginfo"),
];

/// How long the VM may take, boot to power-off.
const TIMEOUT: Duration = Duration::from_secs(600);

fn cache_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("no HOME for the download cache")?;
    let dir = base.join("nslab-vm");
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    Ok(dir)
}

fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: could not run it"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Download a Debian package into `dir` and unpack it into `dir/root`.
fn fetch_deb(dir: &Path, package: &str) -> Result<PathBuf> {
    let hint =
        format!("needs Debian's {package} (apt-get download {package}; run apt-get update first)");
    output(
        Command::new("apt-get")
            .arg("download")
            .arg(package)
            .current_dir(dir),
        &format!("apt-get download {package}"),
    )
    .context(hint.clone())?;
    let deb = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .with_context(|| format!("{package}: no .deb after apt-get download"))?;
    let root = dir.join("root");
    output(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        &format!("dpkg -x {}", deb.display()),
    )?;
    Ok(root)
}

/// The modules the suite needs (overlayfs, veth, the bridge), with what they depend on: taken
/// from the kernel package the VM boots and loaded inside it, never on the host.
const MODULES: &[&str] = &["overlay", "veth", "bridge"];

/// The kernel and its modules for the suite.
struct Kernel {
    vmlinuz: PathBuf,
    /// The `.ko` files, in the order they load (each after what it depends on).
    modules: Vec<PathBuf>,
}

/// The kernel: `NSLAB_VM_KERNEL` (then no module), or Debian's current `linux-image-*-amd64`,
/// cached with its modules from the same package (`kernel/vmlinuz`, `kernel/modules/`, and
/// `kernel/modules/order`), so the two always match.
fn kernel(cache: &Path) -> Result<Kernel> {
    if let Some(k) = std::env::var_os("NSLAB_VM_KERNEL") {
        return Ok(Kernel {
            vmlinuz: PathBuf::from(k),
            modules: Vec::new(),
        });
    }
    let dir = cache.join("kernel");
    let order = dir.join("modules/order");
    if !order.exists() {
        fetch_kernel(cache, &dir)?;
    }
    let modules = std::fs::read_to_string(&order)?
        .lines()
        .map(|m| dir.join("modules").join(m))
        .collect();
    Ok(Kernel {
        vmlinuz: dir.join("vmlinuz"),
        modules,
    })
}

/// Download Debian's kernel package and keep its vmlinuz and the [`MODULES`] (with their
/// dependencies, from its `modules.dep`) in `dir`.
fn fetch_kernel(cache: &Path, dir: &Path) -> Result<()> {
    // linux-image-amd64 is a metapackage: download the image it depends on.
    let depends = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]), "apt-cache depends linux-image-amd64")
        .context("needs Debian's linux-image-amd64 package lists (apt-get update), or NSLAB_VM_KERNEL=/path/to/vmlinuz")?;
    let image = depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .context("linux-image-amd64 depends on no linux-image-*")?
        .trim()
        .to_string();
    let work = cache.join("kernel-download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let root = fetch_deb(&work, &image)?;
    let vmlinuz = std::fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("no boot/vmlinuz-* in the kernel package")?;
    let version = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .context("vmlinuz-VERSION")?
        .to_string();
    let lib = root.join("lib/modules").join(&version);
    // The package has no modules.dep (depmod writes it at install): each module's own
    // `depends=` in its .modinfo section says the same.
    let deps = modules_dep(&lib)?;
    let order = load_order(&deps, MODULES)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("modules"))?;
    std::fs::copy(&vmlinuz, dir.join("vmlinuz"))?;
    let mut names = Vec::new();
    for rel in &order {
        let name = Path::new(rel)
            .file_name()
            .context("module file name")?
            .to_string_lossy()
            .into_owned();
        std::fs::copy(lib.join(rel), dir.join("modules").join(&name))
            .with_context(|| format!("copy {rel}"))?;
        names.push(name);
    }
    std::fs::write(dir.join("modules/order"), names.join("\n") + "\n")?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// `modules.dep`'s lines (`kernel/x/a.ko: kernel/y/b.ko ...`) for every module under `lib`,
/// from the `depends=` string of each module's .modinfo section.
fn modules_dep(lib: &Path) -> Result<String> {
    let mut files = Vec::new();
    let mut dirs = vec![lib.join("kernel")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let p = e?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "ko") {
                files.push(p);
            }
        }
    }
    let name_of = |p: &Path| {
        p.file_stem()
            .map(|n| n.to_string_lossy().replace('-', "_"))
            .unwrap_or_default()
    };
    let rel = |p: &Path| p.strip_prefix(lib).unwrap_or(p).display().to_string();
    let mut out = String::new();
    for f in &files {
        let bytes = std::fs::read(f)?;
        let depends = bytes
            .windows(9)
            .position(|w| w == b"\0depends=")
            .map(|at| {
                let rest = &bytes[at + 9..];
                let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
                String::from_utf8_lossy(&rest[..end]).into_owned()
            })
            .unwrap_or_default();
        let deps: Vec<String> = depends
            .split(',')
            .filter(|d| !d.is_empty())
            .filter_map(|d| {
                let d = d.replace('-', "_");
                files.iter().find(|g| name_of(g) == d).map(|g| rel(g))
            })
            .collect();
        let _ = writeln!(out, "{}: {}", rel(f), deps.join(" "));
    }
    Ok(out)
}

/// The files of `wanted` modules and everything they depend on, each after its dependencies,
/// from `modules.dep` (`kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko ...`).
fn load_order(deps: &str, wanted: &[&str]) -> Result<Vec<String>> {
    let table: Vec<(&str, Vec<&str>)> = deps
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, d)| (m.trim(), d.split_whitespace().collect()))
        .collect();
    fn visit<'a>(
        m: &'a str,
        table: &[(&'a str, Vec<&'a str>)],
        out: &mut Vec<String>,
    ) -> Result<()> {
        if out.iter().any(|o| o == m) {
            return Ok(());
        }
        let (_, deps) = table
            .iter()
            .find(|(name, _)| *name == m)
            .with_context(|| format!("{m} is not in modules.dep"))?;
        for d in deps {
            visit(d, table, out)?;
        }
        out.push(m.to_string());
        Ok(())
    }
    let mut out = Vec::new();
    for w in wanted {
        let file = table
            .iter()
            .map(|(m, _)| *m)
            .find(|m| {
                Path::new(m)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n == format!("{w}.ko") || n.starts_with(&format!("{w}.ko.")))
            })
            .with_context(|| format!("no {w}.ko in the kernel package"))?;
        visit(file, &table, &mut out)?;
    }
    Ok(out)
}

/// A static busybox (Debian's busybox-static), cached.
fn busybox(cache: &Path) -> Result<PathBuf> {
    let cached = cache.join("busybox");
    if cached.exists() {
        return Ok(cached);
    }
    let work = cache.join("busybox-download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let root = fetch_deb(&work, "busybox-static")?;
    std::fs::copy(root.join("bin/busybox"), &cached)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(cached)
}

/// What the VM needs from a build: test executables and the binaries they run.
struct Built {
    tests: Vec<Test>,
    binaries: Vec<PathBuf>,
}

/// One integration test executable, and the filters its run takes.
struct Test {
    krate: String,
    name: String,
    exe: PathBuf,
    filters: Vec<String>,
}

/// Build the test binaries statically (glibc with crt-static), in their own target directory.
fn build(root: &Path) -> Result<Built> {
    let target_dir = root.join("target/vm");
    let mut built = Built {
        tests: Vec::new(),
        binaries: Vec::new(),
    };
    for (krate, target, filters) in SUITES {
        let mut cmd = Command::new("cargo");
        cmd.args([
            "test",
            "--no-run",
            "--message-format=json",
            "--target",
            "x86_64-unknown-linux-gnu",
            "-p",
            krate,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // No debug information in the VM's binaries: the initramfs (every test binary and
        // demo) must fit in the guest's memory twice while it moves to a tmpfs root.
        .envs(NO_DEBUG_INFO)
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(root)
        .stderr(Stdio::inherit());
        if let Some(t) = target {
            cmd.args(["--test", t]);
        }
        eprintln!("xtask: building static test binaries for {krate}");
        let json = output(&mut cmd, "cargo test --no-run (static)")?;
        for line in json
            .lines()
            .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        {
            let Some(exe) = field(line, "\"executable\":\"") else {
                continue;
            };
            let kinds = field(line, "\"kind\":[\"").unwrap_or_default();
            let name = field(line, "\"name\":\"").unwrap_or_default();
            // The profile's "test" flag says whether this is a test harness build (the target
            // object has a "test" field too, with another meaning).
            let profile = line
                .split("\"profile\":{")
                .nth(1)
                .and_then(|p| p.split('}').next())
                .unwrap_or_default();
            let test_build = profile.contains("\"test\":true");
            if test_build && kinds == "test" {
                built.tests.push(Test {
                    krate: krate.to_string(),
                    name,
                    exe: PathBuf::from(exe),
                    filters: filters.iter().map(|f| f.to_string()).collect(),
                });
            } else if kinds == "bin"
                && !test_build
                && !built.binaries.contains(&PathBuf::from(&exe))
            {
                built.binaries.push(PathBuf::from(exe));
            }
        }
    }
    if built.tests.is_empty() {
        bail!("cargo built no integration test binary");
    }
    check_filters(
        &built.tests,
        std::env::var("NSLAB_VM_FILTER").ok().as_deref(),
    )?;
    Ok(built)
}

/// The test names of a libtest executable (`--list --format terse`: `name: test` lines), run on
/// the host: listing runs no test.
fn list_tests(exe: &Path) -> Result<Vec<String>> {
    let out = Command::new(exe)
        .args(["--list", "--format", "terse"])
        .output()
        .with_context(|| format!("{} --list", exe.display()))?;
    ensure!(
        out.status.success(),
        "{} --list: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(names_in_listing(&String::from_utf8_lossy(&out.stdout)))
}

fn names_in_listing(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(String::from)
        .collect()
}

/// The filters that select no test: each of a suite's own filters must match a test of its
/// executable (libtest matches by substring), and `NSLAB_VM_FILTER`, when set, one test of some
/// suite. A renamed test then fails vm-test before the VM boots, instead of silently running
/// nothing.
fn unmatched_filters(
    suites: &[(String, Vec<String>, Vec<String>)],
    extra: Option<&str>,
) -> Vec<String> {
    let mut unmatched = Vec::new();
    for (name, filters, tests) in suites {
        for f in filters {
            if !tests.iter().any(|t| t.contains(f.as_str())) {
                unmatched.push(format!("{name}: {f}"));
            }
        }
    }
    if let Some(f) = extra {
        if !suites
            .iter()
            .any(|(_, _, tests)| tests.iter().any(|t| t.contains(f)))
        {
            unmatched.push(format!("NSLAB_VM_FILTER: {f}"));
        }
    }
    unmatched
}

fn check_filters(tests: &[Test], extra: Option<&str>) -> Result<()> {
    let mut suites = Vec::new();
    for t in tests {
        suites.push((
            format!("{}::{}", t.krate, t.name),
            t.filters.clone(),
            list_tests(&t.exe)?,
        ));
    }
    let unmatched = unmatched_filters(&suites, extra);
    ensure!(
        unmatched.is_empty(),
        "vm-test filters that match no test (renamed?): {}",
        unmatched.join(", ")
    );
    Ok(())
}

/// The string value after `key` in a JSON line (good enough for cargo's messages).
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}

/// A cpio archive in the "newc" format the kernel unpacks as initramfs.
#[derive(Default)]
struct Cpio {
    data: Vec<u8>,
    ino: u32,
    dirs: std::collections::BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, body: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let mut header = String::from("070701");
        for v in [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            body.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ] {
            let _ = write!(header, "{v:08x}");
        }
        self.data.extend_from_slice(header.as_bytes());
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    fn pad(&mut self) {
        while self.data.len() % 4 != 0 {
            self.data.push(0);
        }
    }

    /// A directory and its parents.
    fn dir(&mut self, path: &str) {
        let mut so_far = String::new();
        for part in path.trim_matches('/').split('/').filter(|p| !p.is_empty()) {
            so_far.push('/');
            so_far.push_str(part);
            if self.dirs.insert(so_far.clone()) {
                let name = so_far.clone();
                self.entry(&name, 0o040755, &[]);
            }
        }
    }

    fn file(&mut self, path: &str, mode: u32, body: &[u8]) {
        if let Some(parent) = Path::new(path).parent() {
            self.dir(&parent.to_string_lossy());
        }
        self.entry(path, 0o100000 | mode, body);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.data
    }
}

/// The VM's /init: first the files move from the initramfs to a tmpfs, which becomes the root
/// (switch_root): pivot_root(2), which the container tests make, refuses to move away from the
/// initramfs. Then cgroup2 only, every controller enabled, the tests, the results, power off.
fn init_script(root: &Path, tests: &[(String, String, Vec<String>)], accept: bool) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         if [ ! -e /.nslab-tmpfs-root ]; then\n\
         /bin/busybox mkdir -p /newroot\n\
         /bin/busybox mount -t tmpfs -o mode=755 tmpfs /newroot\n\
         for f in /*; do case \"$f\" in /newroot|/bin|/init) ;; *) /bin/busybox mv \"$f\" /newroot/;; esac; done\n\
         /bin/busybox cp -a /bin /init /newroot/\n\
         /bin/busybox touch /newroot/.nslab-tmpfs-root\n\
         exec /bin/busybox switch_root /newroot /init\n\
         fi\n\
         /bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin /usr/bin /usr/sbin\n\
         /bin/busybox --install -s /bin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         chmod 1777 /tmp\n\
         hostname nslab-vm\n\
         mount -t cgroup2 cgroup2 /sys/fs/cgroup\n\
         for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo +$c > /sys/fs/cgroup/cgroup.subtree_control; done\n\
         mkdir /sys/fs/cgroup/vm-system\n\
         for m in $(cat /lib/modules/order 2>/dev/null); do insmod /lib/modules/$m || echo \"NSLAB-VM-INSMOD-FAILED $m\"; done\n\
         echo \"NSLAB-VM-MODULES $(cut -d' ' -f1 /proc/modules | tr '\\n' ' ')\"\n\
         echo \"NSLAB-VM-KERNEL $(uname -r)\"\n\
         echo \"NSLAB-VM-CGROUP $(grep cgroup /proc/mounts | tr '\\n' ' ')\"\n\
         echo \"NSLAB-VM-CONTROLLERS $(cat /sys/fs/cgroup/cgroup.subtree_control)\"\n\
         export PATH=/bin NSLAB_NO_SKIP=1 NO_COLOR=1 RUST_BACKTRACE=0\n",
    );
    let _ = writeln!(s, "export INSTA_WORKSPACE_ROOT={}", root.display());
    let _ = writeln!(
        s,
        "export INSTA_UPDATE={}",
        if accept { "always" } else { "no" }
    );
    for (name, path, filters) in tests {
        let _ = writeln!(s, "echo NSLAB-VM-START {name}");
        // NSLAB_VM_FILTER: run only the tests whose names contain it (for debugging, and for
        // `cargo xtask lab check --vm`); otherwise the suite's own filters, if any.
        let filter = match std::env::var("NSLAB_VM_FILTER") {
            Ok(f) => format!(" {f} --nocapture"),
            Err(_) if !filters.is_empty() => format!(" {}", filters.join(" ")),
            Err(_) => String::new(),
        };
        let _ = writeln!(
            s,
            "cd {} && {path} --test-threads=1{filter} 2>&1; echo \"NSLAB-VM-RESULT {name} $?\"",
            root.display()
        );
    }
    if accept {
        let _ = writeln!(
            s,
            "for f in $(find {} -name '*.snap' -newer /init); do echo \"NSLAB-VM-SNAP-BEGIN $f\"; cat $f; echo NSLAB-VM-SNAP-END; done",
            root.display()
        );
    }
    s.push_str("echo NSLAB-VM-DONE\npoweroff -f\n");
    s
}

/// A small /etc, as a host has one (the demos read some of it), for vm-test and the sandbox:
/// users, groups, the root-only shadow files, the hostname the init sets.
fn add_etc(cpio: &mut Cpio) {
    cpio.file(
        "/etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    );
    cpio.file("/etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n");
    cpio.file("/etc/shadow", 0o600, b"root:*:1::::::\nnobody:*:1::::::\n");
    cpio.file("/etc/gshadow", 0o600, b"root:*::\nnogroup:*::\n");
    cpio.file("/etc/hostname", 0o644, b"nslab-vm\n");
    cpio.dir("/root");
}

/// The kernel's modules into the initramfs, at `/lib/modules/NAME.ko`, with their load order.
fn add_modules(cpio: &mut Cpio, kernel: &Kernel) -> Result<()> {
    let mut order = String::new();
    for m in &kernel.modules {
        let name = m
            .file_name()
            .context("module name")?
            .to_string_lossy()
            .into_owned();
        cpio.file(&format!("/lib/modules/{name}"), 0o644, &std::fs::read(m)?);
        order.push_str(&name);
        order.push('\n');
    }
    if !kernel.modules.is_empty() {
        cpio.file("/lib/modules/order", 0o644, order.as_bytes());
    }
    Ok(())
}

fn initramfs(
    root: &Path,
    built: &Built,
    busybox: &Path,
    kernel: &Kernel,
    accept: bool,
    out: &Path,
) -> Result<()> {
    let mut cpio = Cpio::default();
    cpio.file("/bin/busybox", 0o755, &std::fs::read(busybox)?);
    add_modules(&mut cpio, kernel)?;
    add_etc(&mut cpio);
    let mut tests = Vec::new();
    for (i, t) in built.tests.iter().enumerate() {
        let inside = format!("/tests/{i}-{}", t.name);
        cpio.file(
            &inside,
            0o755,
            &std::fs::read(&t.exe).with_context(|| t.exe.display().to_string())?,
        );
        tests.push((
            format!("{}::{}", t.krate, t.name),
            inside,
            t.filters.clone(),
        ));
    }
    // The demo binaries, where the tests look for them (CARGO_BIN_EXE_* is an absolute path).
    for bin in &built.binaries {
        cpio.file(&bin.to_string_lossy(), 0o755, &std::fs::read(bin)?);
    }
    // The snapshot files, where insta looks for them.
    for (c, _, _) in SUITES {
        let dir = root.join(c).join("tests/snapshots");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "snap") {
                    cpio.file(&p.to_string_lossy(), 0o644, &std::fs::read(&p)?);
                }
            }
        }
        cpio.dir(&root.join(c).join("tests").to_string_lossy());
    }
    cpio.file("/init", 0o755, init_script(root, &tests, accept).as_bytes());
    std::fs::write(out, cpio.finish()).with_context(|| format!("write {}", out.display()))?;
    Ok(())
}

/// The one QEMU command line of vm-test and the sandbox: Debian's kernel and our initramfs, 1 GiB
/// and 2 CPUs, the serial console on stdio, no reboot (the guest's poweroff ends QEMU).
fn qemu(kernel: &Path, initrd: &Path) -> Result<Command> {
    let qemu = which("qemu-system-x86_64")
        .context("qemu-system-x86_64 not found: install Debian's qemu-system-x86 package")?;
    // KVM only when asked (NSLAB_VM_KVM=1): on some hosts /dev/kvm exists and stock kernels
    // still do not boot under it. TCG (software emulation) works everywhere.
    let accel = if std::env::var("NSLAB_VM_KVM").is_ok_and(|v| v == "1") {
        "kvm"
    } else {
        "tcg"
    };
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-accel",
        accel,
        "-m",
        "1024",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-monitor",
        "none",
    ])
    .arg("-kernel")
    .arg(kernel)
    .arg("-initrd")
    .arg(initrd)
    .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=3"]);
    Ok(cmd)
}

/// Boot the VM, stream its console, and return what it printed.
fn boot(kernel: &Path, initrd: &Path) -> Result<String> {
    let mut child = qemu(kernel, initrd)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawn qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut console = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                println!("vm| {line}");
                let _ = std::io::stdout().flush();
                console.push_str(&line);
                console.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the VM did not finish within {} s: killed",
                TIMEOUT.as_secs()
            );
        }
    }
    let _ = child.wait();
    Ok(console)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// `cargo xtask vm-test [--accept]`.
pub fn vm_test(root: &Path, accept: bool) -> Result<()> {
    let cache = cache_dir()?;
    let kernel = kernel(&cache)?;
    let busybox = busybox(&cache)?;
    let built = build(root)?;
    let initrd = root.join("target/vm/initramfs.cpio");
    initramfs(root, &built, &busybox, &kernel, accept, &initrd)?;
    let kernel_modules = kernel.modules.len();
    let kernel = kernel.vmlinuz;
    eprintln!(
        "xtask: booting {} ({kernel_modules} modules) with {} ({} test binaries)",
        kernel.display(),
        initrd.display(),
        built.tests.len()
    );
    // A guest that hangs under software emulation (seen once, never reproduced) is not a test
    // failure: boot once more before giving up. Failed tests are never retried.
    let console = match boot(&kernel, &initrd) {
        Err(e) if e.to_string().contains("did not finish") => {
            eprintln!("xtask: {e:#}; booting once more");
            boot(&kernel, &initrd)?
        }
        other => other?,
    };
    let _ = std::fs::remove_file(&initrd);

    if accept {
        let mut current: Option<(PathBuf, String)> = None;
        for line in console.lines() {
            if let Some(path) = line.strip_prefix("NSLAB-VM-SNAP-BEGIN ") {
                current = Some((PathBuf::from(path), String::new()));
            } else if line == "NSLAB-VM-SNAP-END" {
                if let Some((path, text)) = current.take() {
                    let path = path.with_extension("snap");
                    if path.starts_with(root) {
                        std::fs::write(&path, text)
                            .with_context(|| format!("write {}", path.display()))?;
                        eprintln!("xtask: accepted {}", path.display());
                    }
                }
            } else if let Some((_, text)) = current.as_mut() {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    let results: Vec<(&str, i32)> = console
        .lines()
        .filter_map(|l| l.strip_prefix("NSLAB-VM-RESULT "))
        .filter_map(|r| {
            r.rsplit_once(' ')
                .map(|(n, c)| (n, c.trim().parse().unwrap_or(-1)))
        })
        .collect();
    if !console.contains("NSLAB-VM-DONE") {
        bail!("the VM stopped before it finished the tests");
    }
    if results.len() != built.tests.len() {
        bail!(
            "{} of {} test binaries reported a result",
            results.len(),
            built.tests.len()
        );
    }
    // The filters were checked against the host's listing; a run of nothing is still a failure.
    if console.lines().any(|l| l.trim() == "running 0 tests") {
        bail!("a test binary ran no test in the VM (its filters selected none)");
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, c)| *c != 0)
        .map(|(n, _)| *n)
        .collect();
    if !failed.is_empty() {
        bail!("tests failed in the cgroup v2 VM: {}", failed.join(", "));
    }
    eprintln!(
        "xtask: vm-test passed: {} test binaries on cgroup v2",
        results.len()
    );
    Ok(())
}

/// Build every demo binary statically (for the sandbox).
fn build_bins(root: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "build",
        "--bins",
        "--workspace",
        "--exclude",
        "xtask",
        "--message-format=json",
        "--target",
        "x86_64-unknown-linux-gnu",
    ])
    .env("RUSTFLAGS", "-C target-feature=+crt-static")
    // No debug information in the VM's binaries: the initramfs (every test binary and
    // demo) must fit in the guest's memory twice while it moves to a tmpfs root.
    .envs(NO_DEBUG_INFO)
    .env("CARGO_TARGET_DIR", root.join("target/vm"))
    .current_dir(root)
    .stderr(Stdio::inherit());
    eprintln!("xtask: building every demo statically");
    let json = output(&mut cmd, "cargo build --bins (static)")?;
    Ok(json
        .lines()
        .filter(|l| {
            l.contains("\"reason\":\"compiler-artifact\"") && l.contains("\"kind\":[\"bin\"]")
        })
        .filter_map(|l| field(l, "\"executable\":\""))
        .map(PathBuf::from)
        .collect())
}

/// `cargo xtask vm`: a throw-away cgroup v2 machine with every demo on the PATH and a root shell
/// on this terminal. Nothing in it touches the host; `exit` powers it off.
pub fn sandbox(root: &Path) -> Result<()> {
    let cache = cache_dir()?;
    let kernel = kernel(&cache)?;
    let busybox = busybox(&cache)?;
    let bins = build_bins(root)?;
    let mut cpio = Cpio::default();
    cpio.file("/bin/busybox", 0o755, &std::fs::read(&busybox)?);
    add_modules(&mut cpio, &kernel)?;
    for bin in &bins {
        let name = bin
            .file_name()
            .context("binary name")?
            .to_string_lossy()
            .into_owned();
        cpio.file(
            &format!("/usr/local/bin/{name}"),
            0o755,
            &std::fs::read(bin)?,
        );
    }
    add_etc(&mut cpio);
    let init = "#!/bin/busybox sh\n\
        /bin/busybox mkdir -p /proc /sys /dev /tmp /run /bin /sbin /usr/bin /usr/sbin\n\
        /bin/busybox --install -s /bin\n\
        mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev\n\
        mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /run\n\
        mount -t cgroup2 cgroup2 /sys/fs/cgroup\n\
        for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo +$c > /sys/fs/cgroup/cgroup.subtree_control; done\n\
        mkdir /sys/fs/cgroup/vm-system\n\
        for m in $(cat /lib/modules/order 2>/dev/null); do insmod /lib/modules/$m; done\n\
        hostname nslab-vm; ip link set lo up 2>/dev/null\n\
        export PATH=/usr/local/bin:/bin HOME=/root PS1='nslab-vm# '\n\
        cd /root\n\
        echo; echo 'nslab sandbox: cgroup v2, every demo on the PATH (nslab-doctor first); exit powers off.'\n\
        echo 'overlayfs, veth and bridges are loaded from the kernel package (no other module is).'\n\
        setsid cttyhack sh -l\n\
        poweroff -f\n";
    cpio.file("/init", 0o755, init.as_bytes());
    let initrd = root.join("target/vm/sandbox.cpio");
    std::fs::write(&initrd, cpio.finish())?;
    let status = qemu(&kernel.vmlinuz, &initrd)?
        .status()
        .context("spawn qemu-system-x86_64")?;
    let _ = std::fs::remove_file(&initrd);
    if !status.success() {
        bail!("qemu ended with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_load_after_what_they_depend_on() {
        let deps = "kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n\
                    kernel/net/802/stp.ko: kernel/net/llc/llc.ko\n\
                    kernel/net/llc/llc.ko:\n\
                    kernel/fs/overlayfs/overlay.ko:\n";
        assert_eq!(
            load_order(deps, &["overlay", "bridge"]).unwrap(),
            [
                "kernel/fs/overlayfs/overlay.ko",
                "kernel/net/llc/llc.ko",
                "kernel/net/802/stp.ko",
                "kernel/net/bridge/bridge.ko"
            ]
        );
        assert!(load_order(deps, &["veth"]).is_err());
    }

    #[test]
    fn a_filter_that_matches_no_test_is_reported() {
        let listing =
            "cgroup_shows_its_layout: test\nthe_lifecycle_runs: test\nbench x: benchmark\n";
        let tests = names_in_listing(listing);
        assert_eq!(tests, ["cgroup_shows_its_layout", "the_lifecycle_runs"]);
        let suites = vec![(
            "minicontainer::oci".to_string(),
            vec!["the_lifecycle".to_string(), "renamed_away".to_string()],
            tests,
        )];
        assert_eq!(
            unmatched_filters(&suites, None),
            ["minicontainer::oci: renamed_away"]
        );
        assert_eq!(
            unmatched_filters(&suites, Some("nothing_like_it")),
            [
                "minicontainer::oci: renamed_away",
                "NSLAB_VM_FILTER: nothing_like_it"
            ]
        );
        assert!(unmatched_filters(&suites[..0], Some("x")).len() == 1);
    }
}
