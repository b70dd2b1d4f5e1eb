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

/// One crate's tests in the VM: every test target it has (unit tests too) but `without`, and
/// every test but those named in `skips` (libtest's `--skip`, by substring). The VM loads
/// overlayfs, veth and the bridge ([`MODULES`]) and has util-linux, iproute2, script(1) and perl
/// from the host ([`HOST_PROGRAMS`]), so nearly everything runs there, on cgroup v2, as root,
/// then again as an unprivileged user in a delegated subtree.
struct Suite {
    krate: &'static str,
    without: &'static [&'static str],
    skips: &'static [&'static str],
}

const SUITES: &[Suite] = &[
    Suite {
        krate: "labkit",
        without: &[],
        skips: &[],
    },
    Suite {
        krate: "nslab-init",
        without: &[],
        skips: &[],
    },
    Suite {
        krate: "uts-demo",
        without: &[],
        skips: &[],
    },
    Suite {
        krate: "ipc-demo",
        without: &[],
        skips: &[],
    },
    Suite {
        krate: "pid-demo",
        without: &[],
        skips: &[],
    },
    Suite {
        krate: "mnt-demo",
        without: &[],
        skips: &[],
    },
    Suite {
        krate: "user-demo",
        without: &[],
        skips: &[],
    },
    Suite {
        krate: "net-demo",
        without: &[],
        skips: &[],
    },
    Suite {
        krate: "cgroup-demo",
        without: &[],
        skips: &[],
    },
    // The rootless whiteout lesson stays on the host: rootless overlayfs keeps whiteouts and
    // opaque directories in user.* xattrs, which tmpfs (the VM's /tmp) has only since Linux
    // 6.6, and the VM boots Debian 12's 6.1 (rm -r of a merged directory answers EIO there;
    // the book's overlay chapter says so).
    Suite {
        krate: "cow-demo",
        without: &[],
        skips: &["deleting_leaves_whiteouts_and_recreating_makes_opaque_dirs"],
    },
    // Not in the VM: the client tests (containerd and dockerd with their images) and podman's
    // (podman, conmon and their libraries): the container managers are the host's packages.
    Suite {
        krate: "minicontainer",
        without: &["clients"],
        skips: &["podman_uses_minicontainer_as_its_runtime"],
    },
];

/// Programs the tests start, copied from the host into the VM's /usr/bin with the shared
/// libraries `ldd` names (Debian 12's, as on the VM's kernel's own distribution): util-linux's
/// unshare, nsenter and setpriv, iproute2's ip, script(1), and perl (the trust tests make raw
/// system calls with it, inside containers whose /usr is the VM's), procps's ps (busybox's has
/// no `-o`/`-p`), bash (the bridge test's client uses its /dev/tcp), iproute2's ss (which
/// ports listen) and glibc's getent (a container resolves its own hostname).
const HOST_PROGRAMS: &[&str] = &[
    "unshare", "nsenter", "setpriv", "ip", "ss", "script", "perl", "ps", "bash", "getent",
];

/// Directories copied whole from the host: perl's base library (the bridge tests' servers use
/// IO::Socket::INET).
const HOST_DIRS: &[&str] = &["/usr/lib/x86_64-linux-gnu/perl-base"];

/// The unprivileged user of the second pass, whose cgroup subtree root delegates to it as
/// systemd does for `user@UID.service`.
const STUDENT_UID: u32 = 1000;

/// Cargo's profile settings for the VM's builds: no debug information, stripped.
const NO_DEBUG_INFO: [(&str, &str); 4] = [
    ("CARGO_PROFILE_DEV_DEBUG", "false"),
    ("CARGO_PROFILE_TEST_DEBUG", "false"),
    ("CARGO_PROFILE_DEV_STRIP", "debuginfo"),
    ("CARGO_PROFILE_TEST_STRIP", "debuginfo"),
];

/// How long the VM may take, boot to power-off.
const TIMEOUT: Duration = Duration::from_secs(1200);

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

/// One test executable, and the tests its run skips.
struct Test {
    /// `crate::target` for integration tests, `crate::lib` or `crate::bin NAME` for unit tests.
    label: String,
    exe: PathBuf,
    skips: Vec<String>,
}

/// Build the test binaries statically (glibc with crt-static), in their own target directory.
fn build(root: &Path) -> Result<Built> {
    let target_dir = root.join("target/vm");
    let mut built = Built {
        tests: Vec::new(),
        binaries: Vec::new(),
    };
    // One cargo for every crate: it builds what they share once, on every core.
    let mut cmd = Command::new("cargo");
    cmd.args([
        "test",
        "--no-run",
        "--message-format=json",
        "--target",
        "x86_64-unknown-linux-gnu",
    ])
    .env("RUSTFLAGS", "-C target-feature=+crt-static")
    // No debug information in the VM's binaries: the initramfs (every test binary and
    // demo) must fit in the guest's memory twice while it moves to a tmpfs root.
    .envs(NO_DEBUG_INFO)
    .env("CARGO_TARGET_DIR", &target_dir)
    .current_dir(root)
    .stderr(Stdio::inherit());
    for suite in SUITES {
        cmd.args(["-p", suite.krate]);
    }
    eprintln!("xtask: building static test binaries");
    let json = output(&mut cmd, "cargo test --no-run (static)")?;
    for line in json
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
    {
        let Some(exe) = field(line, "\"executable\":\"") else {
            continue;
        };
        let package = field(line, "\"package_id\":\"").unwrap_or_default();
        let Some(suite) = SUITES
            .iter()
            .find(|s| package.contains(&format!("/{}#", s.krate)))
        else {
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
        if test_build && !(kinds == "test" && suite.without.contains(&name.as_str())) {
            let label = match kinds.as_str() {
                "test" => format!("{}::{name}", suite.krate),
                "lib" => format!("{}::lib", suite.krate),
                other => format!("{}::{other} {name}", suite.krate),
            };
            built.tests.push(Test {
                label,
                exe: PathBuf::from(exe),
                skips: suite.skips.iter().map(|f| f.to_string()).collect(),
            });
        } else if kinds == "bin" && !test_build && !built.binaries.contains(&PathBuf::from(&exe)) {
            built.binaries.push(PathBuf::from(exe));
        }
    }
    if built.tests.is_empty() {
        bail!("cargo built no test binary");
    }
    built.tests.sort_by(|a, b| a.label.cmp(&b.label));
    check_filters(
        &mut built.tests,
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

/// The skips and the filter that name no test: each of a suite's skips must name a test of one
/// of its executables (libtest matches by substring), and `NSLAB_VM_FILTER`, when set, one test
/// of some suite. A renamed test then fails vm-test before the VM boots, instead of silently
/// running where it cannot, or running nothing.
fn unmatched_filters(
    suites: &[(String, Vec<String>, Vec<String>)],
    extra: Option<&str>,
) -> Vec<String> {
    let mut unmatched = Vec::new();
    let krate = |label: &str| label.split("::").next().unwrap_or_default().to_string();
    for (label, skips, _) in suites {
        for f in skips {
            let named = suites
                .iter()
                .filter(|(l, _, _)| krate(l) == krate(label))
                .any(|(_, _, tests)| tests.iter().any(|t| t.contains(f.as_str())));
            let entry = format!("{}: {f}", krate(label));
            if !named && !unmatched.contains(&entry) {
                unmatched.push(entry);
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

/// Checks the skips (and `NSLAB_VM_FILTER`, whose words each must name a test), and with a
/// filter keeps only the executables that have a test it names: an executable that would run
/// no test is a failure in the VM.
fn check_filters(tests: &mut Vec<Test>, extra: Option<&str>) -> Result<()> {
    let mut suites = Vec::new();
    for t in tests.iter() {
        suites.push((t.label.clone(), t.skips.clone(), list_tests(&t.exe)?));
    }
    let words: Vec<&str> = extra
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    let mut unmatched = unmatched_filters(&suites, None);
    for w in &words {
        unmatched.extend(
            unmatched_filters(&suites, Some(w))
                .into_iter()
                .filter(|u| u.starts_with("NSLAB_VM_FILTER")),
        );
    }
    ensure!(
        unmatched.is_empty(),
        "vm-test skips or filter that name no test (renamed?): {}",
        unmatched.join(", ")
    );
    // An executable with no test (a binary's or library's empty unit-test harness), or none the
    // filter names, is left out.
    let mut listed = suites.into_iter().map(|(_, _, names)| names);
    tests.retain(|_| {
        let names = listed.next().unwrap_or_default();
        !names.is_empty()
            && (words.is_empty() || names.iter().any(|n| words.iter().any(|w| n.contains(w))))
    });
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
         mkdir -p /dev/pts && mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts\n\
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
         export PATH=/usr/bin:/bin NSLAB_NO_SKIP=1 NO_COLOR=1 RUST_BACKTRACE=0\n",
    );
    let _ = writeln!(s, "export INSTA_WORKSPACE_ROOT={}", root.display());
    let _ = writeln!(
        s,
        "export INSTA_UPDATE={}",
        if accept { "always" } else { "no" }
    );
    // NSLAB_VM_FILTER: run only the tests whose names contain one of its words (for debugging,
    // and for `cargo xtask lab check --vm`); otherwise all but the suite's skips.
    let selection = |skips: &[String]| match std::env::var("NSLAB_VM_FILTER") {
        Ok(f) => format!(" {f} --nocapture"),
        Err(_) => skips.iter().map(|k| format!(" --skip {k}")).collect(),
    };
    // First pass: as root, every skip a failure (NSLAB_NO_SKIP=1, exported above).
    for (label, path, skips) in tests {
        let _ = writeln!(s, "echo NSLAB-VM-START {label}");
        let _ = writeln!(
            s,
            "cd {} && {path} --test-threads=1{} 2>&1; echo \"NSLAB-VM-RESULT {label} $?\"",
            root.display(),
            selection(skips)
        );
    }
    // Second pass: as an unprivileged user whose cgroup subtree root has delegated to it, as
    // systemd does for user@UID.service (Delegate=yes): the directory and its cgroup.procs,
    // cgroup.subtree_control and cgroup.threads are the user's; the controllers are enabled
    // down to it; the tests run in a leaf of it (a group with processes gets no children with
    // controllers: the "no internal processes" rule). Only "needs root" may skip there.
    let uid = STUDENT_UID;
    let service = format!("/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service");
    let _ = writeln!(
        s,
        "mkdir -p {service}/nslab-tests /home/student /run/user/{uid}
         for g in /sys/fs/cgroup/user.slice /sys/fs/cgroup/user.slice/user-{uid}.slice; do
         for c in $(cat $g/cgroup.controllers); do echo +$c > $g/cgroup.subtree_control; done; done
         chown {uid}:{uid} {service} {service}/cgroup.procs {service}/cgroup.subtree_control {service}/cgroup.threads /home/student /run/user/{uid}
         chown -R {uid}:{uid} {service}/nslab-tests
         chmod 700 /run/user/{uid}
         echo \"NSLAB-VM-DELEGATED $(ls -ld {service} | cut -c1-30) $(cat /sys/fs/cgroup/user.slice/user-{uid}.slice/cgroup.subtree_control)\""
    );
    for (label, path, skips) in tests {
        let _ = writeln!(s, "echo \"NSLAB-VM-START {label} (uid {uid})\"");
        let _ = writeln!(
            s,
            "cd {} && sh -c 'echo $$ > {service}/nslab-tests/cgroup.procs && exec /usr/bin/setpriv --reuid={uid} --regid={uid} --clear-groups \"$@\"' - \
             env HOME=/home/student XDG_RUNTIME_DIR=/run/user/{uid} USER=student LOGNAME=student NSLAB_NO_SKIP=root INSTA_UPDATE=no \
             {path} --test-threads=1{} 2>&1; echo \"NSLAB-VM-RESULT {label} (uid {uid}) $?\"",
            root.display(),
            selection(skips)
        );
    }
    if accept {
        let _ = writeln!(
            s,
            "for f in $(find {} -name '*.snap' -newer /init); do echo \"NSLAB-VM-SNAP-BEGIN $f\"; cat $f; echo NSLAB-VM-SNAP-END; done",
            root.display()
        );
    }
    // What the kernel killed for memory, if anything (a test's OOM kill, or the VM's own).
    s.push_str("dmesg | grep -E 'oom-kill|Killed process|Out of memory' | sed 's/^/NSLAB-VM-KERNEL-OOM /' | tail -n 40\n");
    s.push_str("echo NSLAB-VM-DONE\npoweroff -f\n");
    s
}

/// A small /etc, as a host has one (the demos read some of it), for vm-test and the sandbox:
/// users, groups, the root-only shadow files, the hostname the init sets.
fn add_etc(cpio: &mut Cpio) {
    cpio.file(
        "/etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nstudent:x:1000:1000:student:/home/student:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    );
    cpio.file(
        "/etc/group",
        0o644,
        b"root:x:0:\nstudent:x:1000:\nnogroup:x:65534:\n",
    );
    cpio.file("/etc/shadow", 0o600, b"root:*:1::::::\nnobody:*:1::::::\n");
    cpio.file("/etc/gshadow", 0o600, b"root:*::\nnogroup:*::\n");
    cpio.file("/etc/hostname", 0o644, b"nslab-vm\n");
    // As a host has one (a bridge container gets a copy); the VM has no network, and
    // 192.0.2.53 is TEST-NET-1, never routed.
    cpio.file(
        "/etc/resolv.conf",
        0o644,
        b"# nslab VM: no network here\nnameserver 192.0.2.53\n",
    );
    cpio.dir("/root");
}

/// [`HOST_PROGRAMS`] at /usr/bin, with the shared libraries and the loader `ldd` names at their
/// own paths (/lib/x86_64-linux-gnu, /lib64: the containers bind these from the VM as from any
/// host).
fn add_host_programs(cpio: &mut Cpio) -> Result<()> {
    let mut libs = std::collections::BTreeSet::new();
    for name in HOST_PROGRAMS {
        let path = which(name).with_context(|| {
            format!("{name} not found: the VM takes it from the host (util-linux, iproute2, bsdutils, perl)")
        })?;
        let path = std::fs::canonicalize(&path)?;
        cpio.file(&format!("/usr/bin/{name}"), 0o755, &std::fs::read(&path)?);
        libs.extend(ldd_libs(&path)?);
    }
    for lib in libs {
        cpio.file(
            &lib,
            0o755,
            &std::fs::read(&lib).with_context(|| lib.clone())?,
        );
    }
    // The host's /bin/sh (dash on Debian): busybox's sh runs its own applets before the PATH's
    // programs (ps, ip, unshare), so the tests' shells would not reach the host's.
    let sh = std::fs::canonicalize("/bin/sh")?;
    cpio.file("/bin/sh", 0o755, &std::fs::read(&sh)?);
    for lib in ldd_libs(&sh)? {
        cpio.file(
            &lib,
            0o755,
            &std::fs::read(&lib).with_context(|| lib.clone())?,
        );
    }
    for dir in HOST_DIRS {
        add_tree(cpio, Path::new(dir))
            .with_context(|| format!("{dir}: the VM takes it from the host (perl-base)"))?;
    }
    Ok(())
}

/// The shared libraries (and the loader) a host program needs, as `ldd` names them.
fn ldd_libs(program: &Path) -> Result<Vec<String>> {
    let ldd = output(Command::new("ldd").arg(program), "ldd")?;
    Ok(ldd
        .lines()
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        .filter_map(|line| {
            line.split("=>")
                .last()
                .and_then(|r| r.split_whitespace().next())
                .filter(|l| l.starts_with('/'))
                .map(String::from)
        })
        .collect())
}

/// A host directory's files, at the same paths (symbolic links followed).
fn add_tree(cpio: &mut Cpio, dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.is_dir() {
            add_tree(cpio, &path)?;
        } else {
            cpio.file(&path.to_string_lossy(), 0o644, &std::fs::read(&path)?);
        }
    }
    Ok(())
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
    add_host_programs(&mut cpio)?;
    let mut tests = Vec::new();
    for (i, t) in built.tests.iter().enumerate() {
        let inside = format!(
            "/tests/{i}-{}",
            t.label.replace("::", "-").replace(' ', "-")
        );
        cpio.file(
            &inside,
            0o755,
            &std::fs::read(&t.exe).with_context(|| t.exe.display().to_string())?,
        );
        tests.push((t.label.clone(), inside, t.skips.clone()));
    }
    // The demo binaries, where the tests look for them (CARGO_BIN_EXE_* is an absolute path).
    for bin in &built.binaries {
        cpio.file(&bin.to_string_lossy(), 0o755, &std::fs::read(bin)?);
    }
    // The snapshot files, where insta looks for them.
    for suite in SUITES {
        let c = suite.krate;
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
    let booted = Instant::now();
    let console = match boot(&kernel, &initrd) {
        Err(e) if e.to_string().contains("did not finish") => {
            eprintln!("xtask: {e:#}; booting once more");
            boot(&kernel, &initrd)?
        }
        other => other?,
    };
    let took = booted.elapsed();
    let _ = std::fs::remove_file(&initrd);
    let kernel_release = console
        .lines()
        .find_map(|l| l.strip_prefix("NSLAB-VM-KERNEL "))
        .unwrap_or("?")
        .to_string();

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
    if results.len() != 2 * built.tests.len() {
        bail!(
            "{} of {} test binary runs (each as root, then as uid {STUDENT_UID}) reported a result",
            results.len(),
            2 * built.tests.len()
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
    let (as_root, as_user) = tally(&console);
    eprintln!(
        "xtask: vm-test passed on cgroup v2 ({kernel_release}) in {} s: {} test binaries; as root {} tests passed, {} skipped; as uid {STUDENT_UID} (a delegated subtree) {} passed, {} skipped because they need root",
        took.as_secs(),
        built.tests.len(),
        as_root.passed - as_root.skipped,
        as_root.skipped,
        as_user.passed - as_user.skipped,
        as_user.skipped,
    );
    Ok(())
}

/// Tests passed (libtest counts a skipped test as passed) and skipped, in one pass.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    passed: usize,
    skipped: usize,
}

/// The tallies of the pass as root and the pass as the unprivileged user, from the console:
/// libtest's "test result: ok. N passed" lines (and labkit's child test's "child: N passed"),
/// and the loud "SKIPPED" lines of labkit::testing::skip.
fn tally(console: &str) -> (Tally, Tally) {
    let (mut root, mut user) = (Tally::default(), Tally::default());
    let mut current = &mut root;
    for line in console.lines() {
        if let Some(start) = line.strip_prefix("NSLAB-VM-START ") {
            current = if start.ends_with(&format!("(uid {STUDENT_UID})")) {
                &mut user
            } else {
                &mut root
            };
        } else if let Some(rest) = line
            .strip_prefix("test result: ok. ")
            .or_else(|| line.strip_prefix("child: "))
        {
            if let Some(n) = rest
                .split(" passed")
                .next()
                .and_then(|n| n.trim().parse::<usize>().ok())
            {
                current.passed += n;
            }
        } else {
            // libtest's "test NAME ... " and the skip's own line may share a console line.
            current.skipped += line.matches("SKIPPED ").count();
        }
    }
    (root, user)
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
    fn each_pass_is_tallied_apart() {
        let console = "NSLAB-VM-START uts-demo::cli\n\
            test result: ok. 20 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
            NSLAB-VM-START labkit::child\nchild: 8 passed, 0 failed\n\
            NSLAB-VM-START uts-demo::cli (uid 1000)\nSKIPPED a: needs root\ntest b ... SKIPPED b: needs root\n\
            test result: ok. 20 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(
            tally(console),
            (
                Tally {
                    passed: 28,
                    skipped: 0
                },
                Tally {
                    passed: 20,
                    skipped: 2
                }
            )
        );
    }

    #[test]
    fn a_skip_that_names_no_test_of_its_crate_is_reported() {
        let listing =
            "cgroup_shows_its_layout: test\nthe_lifecycle_runs: test\nbench x: benchmark\n";
        let tests = names_in_listing(listing);
        assert_eq!(tests, ["cgroup_shows_its_layout", "the_lifecycle_runs"]);
        let skips = vec!["the_lifecycle".to_string(), "renamed_away".to_string()];
        let suites = vec![
            ("minicontainer::oci".to_string(), skips.clone(), tests),
            // A skip may name a test of another executable of the same crate.
            (
                "minicontainer::cli".to_string(),
                skips,
                vec!["renamed_away_not".to_string()],
            ),
            (
                "cow-demo::cli".to_string(),
                vec![],
                vec!["the_lifecycle".to_string()],
            ),
        ];
        assert_eq!(unmatched_filters(&suites, None), Vec::<String>::new());
        let suites = &suites[..1];
        assert_eq!(
            unmatched_filters(suites, None),
            ["minicontainer: renamed_away"]
        );
        assert_eq!(
            unmatched_filters(suites, Some("nothing_like_it")),
            [
                "minicontainer: renamed_away",
                "NSLAB_VM_FILTER: nothing_like_it"
            ]
        );
        assert!(unmatched_filters(&suites[..0], Some("x")).len() == 1);
    }
}
