//! `cargo xtask bench`: how long it takes to start a container that runs `/bin/true` and wait
//! for it, with minicontainer and with its peers, on one busybox root file system.
//!
//! - `minicontainer run --rootfs <busybox> -- /bin/true` (built here with `cargo build --release`),
//!   and the same with `--init=false`;
//! - `crun run` and `runc run` on an OCI bundle whose `config.json` is their own `spec` with
//!   `args` `["/bin/true"]`, no terminal and a writable root (their default namespaces and
//!   cgroups kept);
//! - minicontainer's own OCI command line on such a bundle (its own `spec`, edited the same
//!   way): `run ID` (create, start, wait and delete in one process, as runc's `run`), and
//!   `create` then `start` through `sh`, as a container manager drives a runtime;
//! - two lower bounds: `bwrap` (namespaces and a bind-mounted root, no cgroups) and
//!   `unshare -fpimnu --mount-proc true` (namespaces only, no new root).
//!
//! Each tool runs in a worker process of its own (this program again, `bench --worker --serve`),
//! which times every spawn-and-wait with `Instant` and reports the CPU time of each run and the
//! peak RSS of the tool's processes: `getrusage(RUSAGE_CHILDREN)` of a process whose only
//! children were that tool's. The bench asks the workers for one run at a time, in turn (A B C
//! A B C ...), so that drift in the machine's load hits every tool alike; then each starts
//! `--burst N` containers at once (50 by default) and reports the wall time until the last
//! ended. It prints the load average before and after, and withholds the ratios when either
//! is above 0.3 (`--busy-ok` prints them anyway): on a busy machine they are not a result. crun refuses
//! a hybrid cgroup layout (v1 controllers plus cgroup2 at /sys/fs/cgroup/unified): the crun and
//! runc workers first move to a mount namespace of their own, make every mount private and, on
//! a hybrid host only, detach the cgroup2 mounts there. The host's mounts are never touched.
//!
//! A peer that is not installed is skipped ("not installed (apt-get install crun)"); `--install`
//! installs them. Everything lives in one temporary directory, `nslab-bench-<pid>-<n>`, removed
//! at the end with whatever container state and cgroups the runtimes left, on errors too.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

const USAGE: &str = "usage: cargo xtask bench [--runs N] [--warmup N] [--burst N] [--busy-ok] [--install] [--minicontainer PATH] [--record FILE]";
/// A machine busier than this (load average, per the whole machine) gives no ratios: other work
/// slows the tools unequally.
const QUIET_LOAD: f64 = 0.3;
/// What `--install` installs.
const PACKAGES: &[&str] = &["crun", "runc", "bubblewrap", "busybox-static"];
/// Replaced by a fresh container id in every run of a tool's command line.
const ID: &str = "{id}";

#[derive(Debug)]
struct Options {
    runs: usize,
    warmup: usize,
    /// Containers started at once, per tool, after the single runs (0: none).
    burst: usize,
    /// Print ratios even on a busy machine.
    busy_ok: bool,
    install: bool,
    minicontainer: Option<PathBuf>,
    /// Also write the report to this file (the book includes one such run).
    record: Option<PathBuf>,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        runs: 30,
        warmup: 3,
        burst: 50,
        busy_ok: false,
        install: false,
        minicontainer: None,
        record: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag {
            "--burst" => {
                let text = value()?;
                opts.burst = text
                    .parse()
                    .ok()
                    .filter(|n| *n <= 500)
                    .with_context(|| format!("--burst {text:?}: 0 to 500\n{USAGE}"))?;
            }
            "--busy-ok" => opts.busy_ok = true,
            "--runs" | "--warmup" => {
                let text = value()?;
                let n: usize = text
                    .parse()
                    .with_context(|| format!("{flag} {text:?}: expected a number\n{USAGE}"))?;
                if flag == "--runs" {
                    if n == 0 {
                        bail!("--runs must be at least 1");
                    }
                    opts.runs = n;
                } else {
                    opts.warmup = n;
                }
            }
            "--install" => opts.install = true,
            "--minicontainer" => opts.minicontainer = Some(PathBuf::from(value()?)),
            "--record" => opts.record = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!(
                    "{USAGE}\n\n\
                     Times \"start a container that runs /bin/true and wait for it\" with\n\
                     minicontainer, crun, runc, bwrap and unshare (median, min, p90, peak RSS).\n\
                     --runs N           timed runs per tool (default 30)\n\
                     --warmup N         untimed runs first (default 3)\n\
                     --burst N          then N containers at once per tool, total wall time (default 50)\n\
                     --busy-ok          print ratios even with a load average above 0.3\n\
                     --install          apt-get install -y {}\n\
                     --minicontainer P  use this binary instead of building one\n\
                     --record FILE      also write the report to FILE (with the date and machine)",
                    PACKAGES.join(" ")
                );
                std::process::exit(0);
            }
            _ => bail!("unknown argument {arg:?}\n{USAGE}"),
        }
    }
    Ok(opts)
}

/// `cargo xtask bench [...]`.
pub fn bench(root: &Path, args: &[String]) -> Result<()> {
    if args.first().is_some_and(|a| a == "--worker") {
        return worker(&args[1..]);
    }
    let opts = parse_options(args)?;
    let mounts = mounts()?;
    let layout = CgroupLayout::of(&mounts);
    let load = load_average();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut report = String::new();
    let mut emit = |text: String| {
        print!("{text}");
        report.push_str(&text);
    };
    emit(format!(
        "nslab bench: kernel {kernel}, cgroups {}, {} CPUs, {} runs per tool (+{} warm-up)\n",
        layout.describe(),
        std::thread::available_parallelism().map_or(1, usize::from),
        opts.runs,
        opts.warmup
    ));

    if opts.install {
        install()?;
    }
    let minicontainer = match &opts.minicontainer {
        Some(path) => Ok(path.clone()),
        None => build_minicontainer(root),
    };
    let busybox = busybox()?;
    remove_stale_scratch();
    let mut scratch = Scratch::new()?;
    let rootfs = scratch.dir.join("rootfs");
    make_rootfs(&busybox, &rootfs)?;

    let tools = tools(&mut scratch, &rootfs, minicontainer)?;
    let exe = std::env::current_exe().context("the path of this program")?;
    // One worker per tool, all started first; then the runs interleaved (A B C A B C ...), so
    // that whatever else the machine does in the meantime hits every tool alike.
    let cpu_before = machine_busy();
    let own_before = own_cpu().unwrap_or_default();
    let started = Instant::now();
    let mut workers: Vec<Option<Worker>> = tools
        .iter()
        .enumerate()
        .map(|(index, tool)| match &tool.unavailable {
            Some(_) => None,
            None => Some(Worker::start(&exe, &scratch, index, tool)),
        })
        .collect();
    let mut next_id = 0;
    for round in 0..opts.warmup + opts.runs {
        if round == opts.warmup {
            eprintln!("xtask: {} timed rounds, the tools in turn", opts.runs);
        }
        for w in workers.iter_mut().flatten() {
            w.run(next_id, round >= opts.warmup);
            next_id += 1;
        }
    }
    if opts.burst > 0 {
        for w in workers.iter_mut().flatten() {
            eprintln!("xtask: {} at once: {}", opts.burst, w.label);
            w.burst(next_id, opts.burst);
            next_id += opts.burst;
        }
    }
    let results: Vec<Outcome> = tools
        .iter()
        .zip(workers)
        .map(|(tool, w)| match (&tool.unavailable, w) {
            (Some(Unavailable::Skip(why)), _) => Outcome::Skipped(why.clone()),
            (Some(Unavailable::Fail(why)), _) => Outcome::Failed(why.clone()),
            (None, Some(w)) => w.finish(),
            (None, None) => Outcome::Failed("no worker".into()),
        })
        .collect();
    let load_after = load_average();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    // The bench's own runs raise the load average; what matters is everything else: the CPU
    // time the whole machine spent meanwhile less the bench's own (this process and its
    // waited-for children), in CPUs kept busy on average.
    let others = match (cpu_before, machine_busy()) {
        (Some(before), Some(after)) => {
            let own = own_cpu().unwrap_or_default().saturating_sub(own_before);
            let wall = started.elapsed().as_secs_f64();
            Some(((after - before) - own.as_secs_f64()).max(0.0) / wall.max(1e-3))
        }
        _ => None,
    };
    let busy = load.is_some_and(|l| l > QUIET_LOAD) || others.is_some_and(|o| o > QUIET_LOAD);
    emit(table(
        &tools,
        &results,
        &layout,
        !busy || opts.busy_ok,
        opts.burst,
    ));
    let shown = |l: Option<f64>| l.map_or("?".into(), |l| format!("{l:.2}"));
    emit(format!(
        "load average {} before, {} after (the bench's own runs included), on {cpus} CPUs; other work meanwhile kept {} CPUs busy on average\n",
        shown(load),
        shown(load_after),
        shown(others)
    ));
    if busy && !opts.busy_ok {
        emit(format!(
            "ratios withheld: a load average before, or other work meanwhile, above {QUIET_LOAD} \
             means the tools were not measured alone and were slowed unequally; --busy-ok prints \
             them anyway\n"
        ));
    }
    // Where minicontainer's start-up goes: its own --timings, averaged over runs of the first
    // row's command.
    if let Some(mc) = tools.first().filter(|t| t.unavailable.is_none()) {
        match breakdown(&mc.command, opts.runs.clamp(5, 50)) {
            Ok(text) => emit(text),
            Err(e) => emit(format!("no --timings breakdown: {e:#}\n")),
        }
    }
    if let Some(file) = &opts.record {
        // Scratch paths vary from run to run; the rest is the run's own output.
        let mut text = report.replace(&scratch.dir.to_string_lossy().into_owned(), "SCRATCH");
        if let Ok(out) = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
        {
            text.insert_str(
                0,
                &format!(
                    "recorded {} by `cargo xtask bench --record`\n",
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
            );
        }
        std::fs::write(file, text).with_context(|| format!("write {}", file.display()))?;
        eprintln!("xtask: report written to {}", file.display());
    }
    let failed: Vec<&str> = tools
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Outcome::Failed(_)))
        .map(|(t, _)| t.label.as_str())
        .collect();
    drop(scratch);
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

/// One step of `--timings`: its number, who took it, its milliseconds, and what it was.
#[derive(Debug, PartialEq)]
struct Step {
    step: u32,
    who: String,
    ms: f64,
    what: String,
}

/// The rows of a `--timings` table (`step who ms share what`, then a `total` row).
fn timing_rows(text: &str) -> Vec<Step> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let step = words.next()?.parse().ok()?;
            let who = words.next()?.to_string();
            let ms = words.next()?.parse().ok()?;
            words.next().filter(|share| share.ends_with('%'))?;
            let what = words.collect::<Vec<_>>().join(" ");
            Some(Step {
                step,
                who,
                ms,
                what,
            })
        })
        .collect()
}

/// `minicontainer run ... --timings` `runs` times: each step's mean time, and the mean of the
/// totals, as a table. Runs whose steps differ from the first's in number are left out.
fn breakdown(command: &[String], runs: usize) -> Result<String> {
    let mut args = command[1..].to_vec();
    let at = args.iter().position(|a| a == "run").context("no run")? + 1;
    args.insert(at, "--timings".into());
    let mut all: Vec<Vec<Step>> = Vec::new();
    for _ in 0..runs {
        let out = Command::new(&command[0])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("spawn {}", command[0]))?;
        ensure!(
            out.status.success(),
            "{} --timings: {}",
            command[0],
            String::from_utf8_lossy(&out.stderr).trim()
        );
        all.push(timing_rows(&String::from_utf8_lossy(&out.stderr)));
    }
    let first = all.first().context("no run")?;
    ensure!(!first.is_empty(), "--timings printed no table");
    let same: Vec<&Vec<Step>> = all.iter().filter(|r| r.len() == first.len()).collect();
    let n = same.len() as f64;
    let mut text = format!(
        "\nwhere `{}` spends its start-up (--timings, mean of {} runs; a container's step is timed when its report reaches the host):\n",
        args.join(" ").replace(&command[0], "minicontainer"),
        same.len()
    );
    let mut total = 0.0;
    for (i, s) in first.iter().enumerate() {
        let ms = same.iter().map(|r| r[i].ms).sum::<f64>() / n;
        total += ms;
        // Numbers in the text (PIDs, paths' unique parts) vary from run to run.
        let what: String = s.what.chars().take(70).collect();
        let _ = writeln!(text, "  {:>2}  {:<12} {ms:>6.2} ms  {what}", s.step, s.who);
    }
    let _ = writeln!(text, "      {:<12} {total:>6.2} ms  in all", "total");
    Ok(text)
}

/// Seconds of CPU time the whole machine has spent busy since boot (`/proc/stat`'s `cpu` line:
/// all but idle and iowait), in USER_HZ ticks of 1/100 s.
fn machine_busy() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy as f64 / 100.0)
}

/// The CPU time of this process and of its children it has waited for (the workers, whose own
/// waited-for children are the tools).
fn own_cpu() -> Option<Duration> {
    use nix::sys::resource::{UsageWho, getrusage};
    let d = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    let mut total = Duration::ZERO;
    for who in [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN] {
        let u = getrusage(who).ok()?;
        total += d(u.user_time()) + d(u.system_time());
    }
    Some(total)
}

/// The one-minute load average.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split(' ').next()?.parse::<f64>().ok())
}

fn install() -> Result<()> {
    eprintln!("xtask: apt-get install -y {}", PACKAGES.join(" "));
    let status = Command::new("apt-get")
        .args(["install", "-y"])
        .args(PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("spawn apt-get")?;
    if !status.success() {
        bail!("apt-get install failed ({status}); run apt-get update first?");
    }
    Ok(())
}

/// `cargo build --release -p minicontainer`, and the binary it built.
fn build_minicontainer(root: &Path) -> Result<PathBuf> {
    eprintln!("xtask: cargo build --release -p minicontainer");
    let out = Command::new("cargo")
        .args([
            "build",
            "--release",
            "-p",
            "minicontainer",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("spawn cargo")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error") || l.trim_start().starts_with("-->"))
            .collect();
        eprintln!("{}", stderr.trim_end());
        bail!(
            "cargo build --release -p minicontainer failed: {}",
            errors.join(" ")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|l| json_string(l, "\"executable\":\""))
        .map(PathBuf::from)
        .find(|p| p.file_name().is_some_and(|n| n == "minicontainer"))
        .context("cargo built no minicontainer executable")
}

/// The string value after `key` in a JSON line (cargo's messages; no escapes in our paths).
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}

/// `program` on the PATH, or in an sbin directory (runc is /usr/sbin/runc; a user's PATH may
/// not have it).
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// A statically linked busybox: Debian's busybox-static if installed, else the one `cargo xtask
/// vm-test` keeps in ~/.cache/nslab-vm, else fetched there the same way (apt-get download).
fn busybox() -> Result<PathBuf> {
    let installed = PathBuf::from("/bin/busybox");
    if is_static_elf(&installed) {
        return Ok(installed);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("no static /bin/busybox and no HOME for ~/.cache/nslab-vm")?;
    let cache = base.join("nslab-vm");
    let cached = cache.join("busybox");
    if is_static_elf(&cached) {
        return Ok(cached);
    }
    eprintln!(
        "xtask: no static busybox installed: fetching Debian's busybox-static into {}",
        cache.display()
    );
    let work = cache.join("busybox-download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("mkdir {}", work.display()))?;
    let fetched = (|| -> Result<()> {
        check(
            Command::new("apt-get")
                .args(["download", "busybox-static"])
                .current_dir(&work),
            "apt-get download busybox-static",
        )?;
        let deb = std::fs::read_dir(&work)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("busybox-static_"))
            })
            .context("no .deb after apt-get download")?;
        check(
            Command::new("dpkg")
                .arg("-x")
                .arg(&deb)
                .arg(work.join("root")),
            "dpkg -x",
        )?;
        std::fs::copy(work.join("root/bin/busybox"), &cached)?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    fetched.context(
        "needs a static busybox: apt-get install busybox-static (or cargo xtask bench --install)",
    )?;
    Ok(cached)
}

fn check(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("spawn {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A 64-bit little-endian ELF executable without a program interpreter (PT_INTERP).
fn is_static_elf(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    let bytes = |at: usize, n: usize| data.get(at..at.checked_add(n)?);
    let num = |at: usize, n: usize| -> Option<usize> {
        let mut v = 0usize;
        for (i, b) in bytes(at, n)?.iter().enumerate() {
            v |= usize::from(*b) << (8 * i);
        }
        Some(v)
    };
    let parse = || -> Option<bool> {
        if bytes(0, 6)? != b"\x7fELF\x02\x01" {
            return Some(false);
        }
        let (phoff, phentsize, phnum) = (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?);
        for i in 0..phnum {
            if num(phoff.checked_add(i.checked_mul(phentsize)?)?, 4)? == 3 {
                return Some(false);
            }
        }
        Some(true)
    };
    parse().unwrap_or(false)
}

/// bin/busybox with one relative symlink per applet, and empty proc, sys, dev, tmp, etc.
fn make_rootfs(busybox: &Path, rootfs: &Path) -> Result<()> {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin)?;
    for dir in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir(rootfs.join(dir))?;
    }
    let inside = bin.join("busybox");
    std::fs::copy(busybox, &inside)
        .with_context(|| format!("copy {} into the rootfs", busybox.display()))?;
    let out = Command::new(&inside)
        .arg("--list")
        .output()
        .with_context(|| format!("run {} --list", inside.display()))?;
    let applets = String::from_utf8_lossy(&out.stdout);
    for applet in applets.lines().map(str::trim) {
        if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .with_context(|| format!("symlink bin/{applet}"))?;
        }
    }
    for needed in ["true", "sh"] {
        if !bin.join(needed).exists() {
            bail!("{} has no {needed} applet", busybox.display());
        }
    }
    Ok(())
}

/// The bench's temporary directory, removed on drop with what the runtimes left behind.
#[derive(Debug)]
struct Scratch {
    dir: PathBuf,
    /// Container ids start with this: `nslab-bench-<pid>-`.
    prefix: String,
    /// (runtime, its --root state directory).
    states: Vec<(PathBuf, PathBuf)>,
}

impl Scratch {
    fn new() -> Result<Self> {
        let prefix = format!("nslab-bench-{}-", std::process::id());
        for n in 0.. {
            let dir = std::env::temp_dir().join(format!("{prefix}{n}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    return Ok(Scratch {
                        dir,
                        prefix,
                        states: Vec::new(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("mkdir {}", dir.display())),
            }
        }
        unreachable!("some nslab-bench-<pid>-<n> is free")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Containers a killed worker left: delete them where they were made (a worker in a
        // private mount namespace), then any cgroups named after them.
        for (runtime, state) in &self.states {
            let leftovers = std::fs::read_dir(state).map(|d| d.count()).unwrap_or(0);
            if leftovers == 0 {
                continue;
            }
            eprintln!(
                "xtask: {leftovers} leftover container(s) in {}: deleting",
                state.display()
            );
            let _ = std::env::current_exe().and_then(|exe| {
                Command::new(exe)
                    .args(["bench", "--worker", "--runs", "0", "--warmup", "0"])
                    .arg("--private-mnt")
                    .arg("--cleanup")
                    .arg(runtime)
                    .arg(state)
                    .args(["--id-prefix", &self.prefix])
                    .stdout(Stdio::null())
                    .status()
            });
        }
        remove_leftover_cgroups(&self.prefix);
        // Never recurse into a mount: a bind mount leaked under the directory would have its
        // source deleted. Detach such mounts (none expected), and keep the directory if any
        // remains.
        let under = |mounts: &[Mount]| -> Vec<PathBuf> {
            mounts
                .iter()
                .filter(|m| m.point.starts_with(&self.dir))
                .map(|m| m.point.clone())
                .collect()
        };
        let mut leaked = under(&mounts().unwrap_or_default());
        leaked.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for point in &leaked {
            eprintln!(
                "xtask: a mount leaked onto the host at {}: detaching it",
                point.display()
            );
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
        if !under(&mounts().unwrap_or_default()).is_empty() {
            eprintln!(
                "xtask: mounts remain under {}: not removing it",
                self.dir.display()
            );
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("xtask: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// The directories of benches that were killed (their pid is gone), with what they left.
fn remove_stale_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, n)) = name
            .strip_prefix("nslab-bench-")
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        if pid.parse::<u32>().is_err()
            || n.parse::<u32>().is_err()
            || Path::new("/proc").join(pid).exists()
            || !entry.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let dir = entry.path();
        eprintln!(
            "xtask: removing {} (left by a bench that was killed)",
            dir.display()
        );
        let states = ["crun", "runc"]
            .into_iter()
            .filter_map(|rt| Some((which(rt)?, dir.join(format!("state-{rt}")))))
            .filter(|(_, state)| state.is_dir())
            .collect();
        drop(Scratch {
            dir,
            prefix: format!("nslab-bench-{pid}-"),
            states,
        });
    }
}

/// Remove the (empty) cgroups named `<prefix>*` that a runtime left, at the top of every
/// hierarchy and under this process's own cgroups (where runtimes make them by default).
fn remove_leftover_cgroups(prefix: &str) {
    let own: Vec<String> = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(|p| p.trim_start_matches('/').to_string())
        .collect();
    for m in mounts()
        .unwrap_or_default()
        .iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
    {
        let mut dirs = vec![m.point.clone()];
        dirs.extend(own.iter().map(|p| m.point.join(p)));
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(prefix)
                    && std::fs::remove_dir(entry.path()).is_ok()
                {
                    eprintln!("xtask: removed leftover cgroup {}", entry.path().display());
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Mount {
    point: PathBuf,
    fstype: String,
}

/// This process's mounts, from /proc/self/mountinfo.
fn mounts() -> Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").context("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (fields, after) = line.split_once(" - ")?;
            Some(Mount {
                point: PathBuf::from(unescape(fields.split(' ').nth(4)?)),
                fstype: after.split(' ').next()?.to_string(),
            })
        })
        .collect())
}

// mountinfo escapes space, tab, newline and backslash as \ooo: labkit's decoder undoes them.
use labkit::cgroupfs::unescape;

#[derive(Debug)]
enum CgroupLayout {
    V1,
    /// v1 controllers, and cgroup2 mounted at these points.
    Hybrid(Vec<PathBuf>),
    V2,
    None,
}

impl CgroupLayout {
    fn of(mounts: &[Mount]) -> Self {
        let v1 = mounts.iter().any(|m| m.fstype == "cgroup");
        let v2: Vec<PathBuf> = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup2")
            .map(|m| m.point.clone())
            .collect();
        match (v1, v2.is_empty()) {
            (true, true) => CgroupLayout::V1,
            (true, false) => CgroupLayout::Hybrid(v2),
            (false, false) => CgroupLayout::V2,
            (false, true) => CgroupLayout::None,
        }
    }

    fn describe(&self) -> String {
        match self {
            CgroupLayout::V1 => "v1 (legacy)".into(),
            CgroupLayout::Hybrid(v2) => format!(
                "hybrid (v1 controllers, cgroup2 at {})",
                v2.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            CgroupLayout::V2 => "v2 (unified)".into(),
            CgroupLayout::None => "none mounted".into(),
        }
    }
}

#[derive(Debug)]
struct Tool {
    label: String,
    /// The command line; `{id}` becomes a fresh container id in every run.
    command: Vec<String>,
    /// Why it does not run.
    unavailable: Option<Unavailable>,
    /// crun and runc: (runtime, --root state directory). Runs in a private mount namespace
    /// without the cgroup2 mounts of a hybrid host; leftover containers are deleted.
    runtime: Option<(PathBuf, PathBuf)>,
    lower_bound: bool,
}

#[derive(Debug, Clone)]
enum Unavailable {
    /// Not installed: reported, not a failure.
    Skip(String),
    /// Installed or ours, and broken: not built, no bundle.
    Fail(String),
}

fn tools(
    scratch: &mut Scratch,
    rootfs: &Path,
    minicontainer: Result<PathBuf>,
) -> Result<Vec<Tool>> {
    let rootfs_arg = rootfs.to_string_lossy().into_owned();
    let mut tools = Vec::new();
    for init in [true, false] {
        let (command, unavailable) = match &minicontainer {
            Ok(mc) => {
                let mut c = vec![mc.to_string_lossy().into_owned(), "run".into()];
                if !init {
                    c.push("--init=false".into());
                }
                c.extend(["--rootfs".into(), rootfs_arg.clone(), "--".into()]);
                c.push("/bin/true".into());
                (c, None)
            }
            Err(e) => (
                Vec::new(),
                Some(Unavailable::Fail(format!("not built: {e:#}"))),
            ),
        };
        tools.push(Tool {
            label: if init {
                "minicontainer".into()
            } else {
                "minicontainer --init=false".into()
            },
            command,
            unavailable,
            runtime: None,
            lower_bound: false,
        });
    }
    // minicontainer's OCI command line on the same kind of bundle as crun and runc (its own
    // `spec`, edited the same way): `run ID` (create, start, wait, delete in one process, as
    // runc's run) and `create` then `start` (two processes, through sh, as a container
    // manager drives a runtime).
    if let Ok(mc) = &minicontainer {
        let bundle = scratch.dir.join("bundle-minicontainer");
        let state = scratch.dir.join("state-minicontainer");
        std::fs::create_dir(&bundle)?;
        std::fs::create_dir(&state)?;
        scratch.states.push((mc.clone(), state.clone()));
        let unavailable = oci_bundle(mc, &bundle, rootfs)
            .err()
            .map(|e| Unavailable::Fail(format!("no bundle: {e:#}")));
        let (mc_arg, state_arg, bundle_arg) = (
            mc.to_string_lossy().into_owned(),
            state.to_string_lossy().into_owned(),
            bundle.to_string_lossy().into_owned(),
        );
        tools.push(Tool {
            label: "minicontainer run ID (OCI)".into(),
            command: vec![
                mc_arg.clone(),
                "--root".into(),
                state_arg.clone(),
                "run".into(),
                "--bundle".into(),
                bundle_arg.clone(),
                ID.into(),
            ],
            unavailable: unavailable.clone(),
            runtime: Some((mc.clone(), state.clone())),
            lower_bound: false,
        });
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        tools.push(Tool {
            label: "minicontainer create+start".into(),
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!(
                    "{mc} --root {st} create --bundle {b} {ID} && {mc} --root {st} start {ID}",
                    mc = quote(&mc_arg),
                    st = quote(&state_arg),
                    b = quote(&bundle_arg),
                ),
            ],
            unavailable,
            runtime: Some((mc.clone(), state)),
            lower_bound: false,
        });
    }
    for name in ["crun", "runc"] {
        let Some(program) = which(name) else {
            tools.push(not_installed(name, name));
            continue;
        };
        let bundle = scratch.dir.join(format!("bundle-{name}"));
        let state = scratch.dir.join(format!("state-{name}"));
        std::fs::create_dir(&bundle)?;
        std::fs::create_dir(&state)?;
        // Registered before anything can make containers in it: Scratch's drop cleans it.
        scratch.states.push((program.clone(), state.clone()));
        let unavailable = oci_bundle(&program, &bundle, rootfs)
            .err()
            .map(|e| Unavailable::Fail(format!("no bundle: {e:#}")));
        tools.push(Tool {
            label: name.into(),
            command: vec![
                program.to_string_lossy().into_owned(),
                "--root".into(),
                state.to_string_lossy().into_owned(),
                "run".into(),
                "--bundle".into(),
                bundle.to_string_lossy().into_owned(),
                ID.into(),
            ],
            unavailable,
            runtime: Some((program, state)),
            lower_bound: false,
        });
    }
    match which("bwrap") {
        Some(bwrap) => tools.push(Tool {
            label: "bwrap --unshare-all".into(),
            command: [
                bwrap.to_string_lossy().as_ref(),
                "--unshare-all",
                "--bind",
                &rootfs_arg,
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "/bin/true",
            ]
            .map(String::from)
            .to_vec(),
            unavailable: None,
            runtime: None,
            lower_bound: true,
        }),
        None => tools.push(not_installed("bwrap --unshare-all", "bubblewrap")),
    }
    match which("unshare") {
        Some(unshare) => tools.push(Tool {
            label: "unshare -fpimnu --mount-proc".into(),
            command: vec![
                unshare.to_string_lossy().into_owned(),
                "-fpimnu".into(),
                "--mount-proc".into(),
                "true".into(),
            ],
            unavailable: None,
            runtime: None,
            lower_bound: true,
        }),
        None => tools.push(not_installed("unshare -fpimnu --mount-proc", "util-linux")),
    }
    Ok(tools)
}

fn not_installed(label: &str, package: &str) -> Tool {
    Tool {
        label: label.into(),
        command: Vec::new(),
        unavailable: Some(Unavailable::Skip(format!(
            "not installed (apt-get install {package})"
        ))),
        runtime: None,
        lower_bound: label.starts_with("bwrap") || label.starts_with("unshare"),
    }
}

/// `<runtime> spec` in `bundle`, edited: args ["/bin/true"], no terminal, the root is `rootfs`
/// (absolute) and writable. Namespaces, mounts and cgroups stay the runtime's defaults.
fn oci_bundle(runtime: &Path, bundle: &Path, rootfs: &Path) -> Result<()> {
    check(
        Command::new(runtime).arg("spec").current_dir(bundle),
        &format!("{} spec", runtime.display()),
    )?;
    let path = bundle.join("config.json");
    let mut json = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    // Edit the text (no JSON library in xtask): each edit must find exactly what it expects.
    let replace_once = |json: &mut String, from: &str, to: &str| -> Result<()> {
        if json.matches(from).count() != 1 {
            bail!("config.json: expected one {from:?}");
        }
        *json = json.replacen(from, to, 1);
        Ok(())
    };
    replace_once(&mut json, "\"terminal\": true", "\"terminal\": false")?;
    let args = json
        .find("\"args\": [")
        .context("config.json: no \"args\"")?
        + 9;
    let end = json[args..]
        .find(']')
        .context("config.json: \"args\" not closed")?
        + args;
    json.replace_range(args..end, "\"/bin/true\"");
    let root = json
        .find("\"root\": {")
        .context("config.json: no \"root\"")?;
    let root_end = json[root..]
        .find('}')
        .context("config.json: \"root\" not closed")?
        + root;
    let escaped = rootfs
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let section = json[root..root_end]
        .replacen("\"rootfs\"", &format!("\"{escaped}\""), 1)
        .replacen("\"readonly\": true", "\"readonly\": false", 1);
    if !section.contains(&escaped) {
        bail!("config.json: no \"path\": \"rootfs\" in \"root\"");
    }
    json.replace_range(root..root_end, &section);
    std::fs::write(&path, json).with_context(|| path.display().to_string())?;
    Ok(())
}

#[derive(Debug)]
enum Outcome {
    Skipped(String),
    Failed(String),
    Done {
        times: Vec<Duration>,
        /// User plus system CPU time of each timed run (the tool's processes).
        cpu: Vec<Duration>,
        /// `--burst N`: the wall time of N started at once, until the last ended.
        burst: Option<Duration>,
        max_rss_kib: u64,
    },
}

/// A tool's worker process (`bench --worker --serve`), driven one line at a time: `run ID`
/// answers `t NS CPU_NS`, `burst N FIRST_ID` answers `b NS`, `end` answers `ok MAX_RSS_KIB`.
struct Worker {
    label: String,
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::BufReader<std::process::ChildStdout>,
    err_path: PathBuf,
    times: Vec<Duration>,
    cpu: Vec<Duration>,
    burst: Option<Duration>,
    failed: Option<String>,
}

impl Worker {
    fn start(exe: &Path, scratch: &Scratch, index: usize, tool: &Tool) -> Worker {
        let err_path = scratch.dir.join(format!("worker-{index}.err"));
        let mut cmd = Command::new(exe);
        cmd.args(["bench", "--worker", "--serve"])
            .args(["--id-prefix", &scratch.prefix])
            .args(["--parent", &std::process::id().to_string()])
            .arg("--stderr")
            .arg(scratch.dir.join(format!("tool-{index}.err")));
        if let Some((runtime, state)) = &tool.runtime {
            cmd.arg("--private-mnt")
                .arg("--cleanup")
                .arg(runtime)
                .arg(state);
        }
        cmd.arg("--")
            .args(&tool.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let spawned = File::create(&err_path)
            .map_err(anyhow::Error::from)
            .and_then(|err| Ok(cmd.stderr(err).spawn()?));
        let mut child = spawned.unwrap_or_else(|e| panic!("spawn the bench worker: {e}"));
        let input = child.stdin.take().expect("piped stdin");
        let output = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        Worker {
            label: tool.label.clone(),
            child,
            input,
            output,
            err_path,
            times: Vec::new(),
            cpu: Vec::new(),
            burst: None,
            failed: None,
        }
    }

    /// Send one request and read its answer; a worker that failed is asked nothing more.
    fn ask(&mut self, request: &str) -> Option<Vec<u64>> {
        use std::io::{BufRead, Write};
        if self.failed.is_some() {
            return None;
        }
        let mut line = String::new();
        let answered = writeln!(self.input, "{request}")
            .and_then(|()| self.input.flush())
            .and_then(|()| self.output.read_line(&mut line));
        let numbers: Option<Vec<u64>> = line
            .split_whitespace()
            .skip(1)
            .map(|w| w.parse().ok())
            .collect();
        match (answered, numbers) {
            (Ok(n), Some(v)) if n > 0 => Some(v),
            _ => {
                let _ = self.child.wait();
                let why = std::fs::read_to_string(&self.err_path).unwrap_or_default();
                let why = why.trim();
                let why = why.strip_prefix("xtask bench: ").unwrap_or(why);
                self.failed = Some(if why.is_empty() {
                    "the worker ended without an answer".into()
                } else {
                    why.to_string()
                });
                None
            }
        }
    }

    fn run(&mut self, id: usize, timed: bool) {
        if let Some(v) = self.ask(&format!("run {id}")) {
            if timed && v.len() == 2 {
                self.times.push(Duration::from_nanos(v[0]));
                self.cpu.push(Duration::from_nanos(v[1]));
            }
        }
    }

    fn burst(&mut self, first_id: usize, n: usize) {
        if let Some(v) = self.ask(&format!("burst {n} {first_id}")) {
            self.burst = v.first().map(|ns| Duration::from_nanos(*ns));
        }
    }

    fn finish(mut self) -> Outcome {
        let rss = self.ask("end").and_then(|v| v.first().copied());
        let _ = self.child.wait();
        match (self.failed, rss) {
            (Some(why), _) => Outcome::Failed(why),
            (None, None) => Outcome::Failed("the worker reported nothing".into()),
            (None, Some(max_rss_kib)) => Outcome::Done {
                times: self.times,
                cpu: self.cpu,
                burst: self.burst,
                max_rss_kib,
            },
        }
    }
}

/// The worker: `bench --worker --serve --id-prefix P --parent PID --stderr FILE
/// [--private-mnt] [--cleanup RUNTIME STATE] -- COMMAND...`, answering one request a line on
/// its standard input (see [`Worker`]).
fn worker(args: &[String]) -> Result<()> {
    let mut serve = false;
    let mut prefix = String::from("nslab-bench-");
    let mut stderr = None;
    let mut private = false;
    let mut cleanup = None;
    let mut parent = None;
    let mut it = args.iter();
    let mut command = Vec::new();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().context("worker: missing value");
        match arg.as_str() {
            "--serve" => serve = true,
            "--id-prefix" => prefix = value()?,
            "--stderr" => stderr = Some(PathBuf::from(value()?)),
            "--private-mnt" => private = true,
            "--parent" => parent = Some(value()?.parse::<i32>()?),
            "--cleanup" => cleanup = Some((PathBuf::from(value()?), PathBuf::from(value()?))),
            "--" => {
                command = it.cloned().collect();
                break;
            }
            _ => bail!("worker: unknown argument {arg:?}"),
        }
    }
    // A bench killed mid-way takes its worker along (Ctrl-C does anyway): the next bench removes
    // a dead bench's directory, which must not be in use then.
    if let Some(parent) = parent {
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
        if nix::unistd::getppid().as_raw() != parent {
            bail!("worker: the bench is gone");
        }
    }
    if private {
        private_mounts()?;
    }
    let _cleanup = cleanup.map(|(runtime, state)| RuntimeCleanup {
        runtime,
        state,
        prefix: prefix.clone(),
    });
    let Some((program, rest)) = command.split_first() else {
        bail!("worker: no command");
    };
    if !serve {
        bail!("worker: --serve expected");
    }
    let cmd_for = |id: usize, err: Option<&Path>| -> Result<Command> {
        let id = format!("{prefix}{id}");
        let mut cmd = Command::new(program);
        cmd.args(rest.iter().map(|a| a.replace(ID, &id)))
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match err {
            Some(path) => cmd.stderr(File::create(path)?),
            None => cmd.stderr(Stdio::null()),
        };
        Ok(cmd)
    };
    let failure = |what: String, status: std::process::ExitStatus| -> anyhow::Error {
        let text = stderr
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let text = text.trim();
        let sep = if text.is_empty() { "" } else { ": " };
        anyhow::anyhow!("{what} of {program}: {status}{sep}{text}")
    };
    // The CPU time of this process's waited-for children, which are only the tool's.
    let children_cpu = || -> Result<Duration> {
        let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
        let d = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
        };
        Ok(d(u.user_time()) + d(u.system_time()))
    };
    let stdin = std::io::stdin();
    for line in std::io::BufRead::lines(stdin.lock()) {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["run", id] => {
                let mut cmd = cmd_for(id.parse()?, stderr.as_deref())?;
                let cpu_before = children_cpu()?;
                let start = Instant::now();
                let status = cmd
                    .spawn()
                    .with_context(|| format!("spawn {program}"))?
                    .wait()?;
                let elapsed = start.elapsed();
                if !status.success() {
                    return Err(failure(format!("run {id}"), status));
                }
                let cpu = children_cpu()? - cpu_before;
                println!("t {} {}", elapsed.as_nanos(), cpu.as_nanos());
            }
            ["burst", n, first] => {
                let (n, first): (usize, usize) = (n.parse()?, first.parse()?);
                let start = Instant::now();
                let children = (0..n)
                    .map(|i| Ok(cmd_for(first + i, None)?.spawn()?))
                    .collect::<Result<Vec<_>>>()?;
                let mut statuses = Vec::new();
                for mut c in children {
                    statuses.push(c.wait()?);
                }
                let elapsed = start.elapsed();
                if let Some(bad) = statuses.iter().find(|s| !s.success()) {
                    return Err(failure(format!("{n} at once"), *bad));
                }
                println!("b {}", elapsed.as_nanos());
            }
            ["end"] => {
                let usage =
                    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
                println!("ok {}", usage.max_rss());
                return Ok(());
            }
            _ => bail!("worker: unknown request {line:?}"),
        }
    }
    Ok(())
}

/// A mount namespace of this process's own, every mount private (nothing propagates back to the
/// host), and on a hybrid host the cgroup2 mounts detached: crun refuses hybrid layouts.
fn private_mounts() -> Result<()> {
    use nix::mount::{MntFlags, umount2};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("unshare(CLONE_NEWNS) (needs root)")?;
    labkit::lab::make_root_private()?;
    if let CgroupLayout::Hybrid(v2) = CgroupLayout::of(&mounts()?) {
        for point in v2 {
            umount2(&point, MntFlags::MNT_DETACH)
                .with_context(|| format!("detach {} (private)", point.display()))?;
        }
    }
    Ok(())
}

/// Deletes every container left in a runtime's state directory, and their cgroups.
#[derive(Debug)]
struct RuntimeCleanup {
    runtime: PathBuf,
    state: PathBuf,
    prefix: String,
}

impl Drop for RuntimeCleanup {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.state) else {
            return;
        };
        for entry in entries.flatten() {
            let _ = Command::new(&self.runtime)
                .arg("--root")
                .arg(&self.state)
                .args(["delete", "--force"])
                .arg(entry.file_name())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        remove_leftover_cgroups(&self.prefix);
    }
}

struct Stats {
    median: f64,
    min: f64,
    p90: f64,
}

/// Milliseconds: the median (mean of the middle two for an even count), min, and p90
/// (nearest rank).
fn stats(times: &[Duration]) -> Option<Stats> {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    let p90 = ms[(n * 9).div_ceil(10).max(1) - 1];
    Some(Stats {
        median,
        min: ms[0],
        p90,
    })
}

fn table(
    tools: &[Tool],
    results: &[Outcome],
    layout: &CgroupLayout,
    ratios: bool,
    burst: usize,
) -> String {
    let median_of = |label: &str| {
        tools
            .iter()
            .zip(results)
            .find(|(t, _)| t.label == label)
            .and_then(|(_, r)| match r {
                Outcome::Done { times, .. } => stats(times).map(|s| s.median),
                _ => None,
            })
            .filter(|_| ratios)
    };
    let crun = median_of("crun");
    let mc = median_of("minicontainer");
    let ratio = |base: Option<f64>, m: f64| match base {
        Some(b) if b > 0.0 => format!("{:.2}x", m / b),
        _ => "-".into(),
    };
    let width = tools
        .iter()
        .map(|t| t.label.len())
        .max()
        .unwrap_or(4)
        .max(4)
        + 2;
    let mut out = String::new();
    let burst_of = |label: &str| {
        tools
            .iter()
            .zip(results)
            .find(|(t, _)| t.label == label)
            .and_then(|(_, r)| match r {
                Outcome::Done { burst, .. } => burst.map(|b| b.as_secs_f64() * 1e3),
                _ => None,
            })
            .filter(|_| ratios)
    };
    let crun_burst = burst_of("crun");
    let burst_head = format!("{burst} at once");
    let _ = writeln!(
        out,
        "{:<width$}{:>9}{:>9}{:>9}{:>9}{:>10}{:>9}{:>10}{:>13}{:>7}",
        "tool (ms)",
        "median",
        "min",
        "p90",
        "/crun",
        "/minictr",
        "CPU",
        "peak RSS",
        burst_head,
        "/crun"
    );
    let mut failures = String::new();
    for (tool, result) in tools.iter().zip(results) {
        let label = if tool.lower_bound {
            format!("{} *", tool.label)
        } else {
            tool.label.clone()
        };
        let _ = match result {
            Outcome::Skipped(why) => writeln!(out, "{label:<width$}{why}"),
            Outcome::Failed(why) => {
                let _ = writeln!(failures, "{}: {why}", tool.label);
                writeln!(
                    out,
                    "{label:<width$}FAILED: {}",
                    why.lines().next().unwrap_or_default()
                )
            }
            Outcome::Done {
                times,
                cpu,
                burst: b,
                max_rss_kib,
            } => match stats(times) {
                Some(s) => {
                    let cpu = stats(cpu).map_or("-".into(), |c| format!("{:.2}", c.median));
                    let b_ms = b.map(|b| b.as_secs_f64() * 1e3);
                    writeln!(
                        out,
                        "{label:<width$}{:>9.2}{:>9.2}{:>9.2}{:>9}{:>10}{:>9}{:>10}{:>13}{:>7}",
                        s.median,
                        s.min,
                        s.p90,
                        ratio(crun, s.median),
                        ratio(mc, s.median),
                        cpu,
                        format!("{:.1} MiB", *max_rss_kib as f64 / 1024.0),
                        b_ms.map_or("-".into(), |b| format!("{b:.0}")),
                        b_ms.map_or("-".into(), |b| ratio(crun_burst, b)),
                    )
                }
                None => writeln!(out, "{label:<width$}no runs"),
            },
        };
    }
    out.push_str(
        "wall time from spawn to wait, /bin/true in the same busybox rootfs, the tools taking \
         turns run by run; * lower bound (no cgroups; unshare: no new root)\n\
         CPU: user + system ms of one run's processes (median); N at once: ms from the first \
         spawn to the last exit\n\
         /crun, /minictr: median over crun's, minicontainer's; peak RSS: the largest process of \
         the tool's tree\n\
         crun, runc: their own `spec` (args /bin/true, no terminal, writable root), run in a \
         private mount namespace",
    );
    if let CgroupLayout::Hybrid(v2) = layout {
        let points: Vec<String> = v2.iter().map(|p| p.display().to_string()).collect();
        let _ = write!(out, " without {} (crun refuses hybrid)", points.join(", "));
    }
    out.push('\n');
    if !failures.is_empty() {
        out.push_str("\nfailures:\n");
        out.push_str(&failures);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_rows_are_read_from_the_table() {
        let table = "step  who        ms    share  what\n\
                     1     host       0.40  7%     mkdir /tmp/nslab-ctr-1-2 (image)\n\
                     2     container  1.25  22%    mount(\"overlay\", rootfs)\n\
                           total      5.60\n";
        assert_eq!(
            timing_rows(table),
            [
                Step {
                    step: 1,
                    who: "host".into(),
                    ms: 0.40,
                    what: "mkdir /tmp/nslab-ctr-1-2 (image)".into()
                },
                Step {
                    step: 2,
                    who: "container".into(),
                    ms: 1.25,
                    what: "mount(\"overlay\", rootfs)".into()
                }
            ]
        );
    }
}
