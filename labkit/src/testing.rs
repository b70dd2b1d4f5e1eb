//! Test support for the demo crates' integration tests (feature `testing`).
//!
//! - [`skip`]: tests that need root or a kernel feature skip *loudly* (a line on stderr), and
//!   fail instead when `NSLAB_NO_SKIP=1` (set by `.ci/run`), so CI always runs them for real.
//!   `NSLAB_NO_SKIP=root` (the VM's unprivileged pass) lets only [`needs_root`] skip: a test run
//!   as an ordinary user may lack root, never a feature.
//! - [`run`] / [`run_as_nobody`]: run a demo binary and capture its exit code and output.
//! - [`filters`]: insta filters that redact what must vary (PIDs, inodes, the host's name) and
//!   nothing else; [`settings`] puts snapshots where the book includes them from.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set to `1` to turn every skip into a failure (`.ci/run` does), to `root` to turn every skip
/// but "needs root" into one (`cargo xtask vm-test`'s pass as an unprivileged user).
pub const NO_SKIP_VAR: &str = "NSLAB_NO_SKIP";

/// Skip the calling test loudly (returns `true`: the test should `return`), or panic when
/// `NSLAB_NO_SKIP` is `1` or `root`.
pub fn skip(test: &str, reason: &str) -> bool {
    skip_unless_allowed(test, reason, false)
}

fn skip_unless_allowed(test: &str, reason: &str, for_root: bool) -> bool {
    match std::env::var(NO_SKIP_VAR).as_deref() {
        Ok("1") => {
            panic!("{test}: cannot run: {reason} ({NO_SKIP_VAR}=1 turns skips into failures)")
        }
        Ok("root") if !for_root => panic!(
            "{test}: cannot run: {reason} ({NO_SKIP_VAR}=root lets only tests that need root skip)"
        ),
        _ => {}
    }
    // Straight to the stderr handle: libtest captures eprintln! of passing tests, and a skip
    // must be seen.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
    true
}

/// `true` (after a loud skip) when not running as root.
pub fn needs_root(test: &str) -> bool {
    !nix::unistd::geteuid().is_root()
        && skip_unless_allowed(
            test,
            "needs root (run the tests as root to include it)",
            true,
        )
}

/// `true` (after a loud skip) when an unprivileged user cannot create a user namespace. Asks
/// `unshare --user true` (util-linux or busybox), as `nobody` when root: a new process, never a
/// fork of the multithreaded test harness.
pub fn needs_unprivileged_userns(test: &str) -> bool {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "true"]).stdin(Stdio::null());
    if nix::unistd::geteuid().is_root() {
        // std drops the supplementary groups too when root changes uid (setgroups(0, NULL)).
        cmd.uid(crate::doctor::NOBODY).gid(crate::doctor::NOBODY);
    }
    match cmd.output() {
        Ok(out) if out.status.success() => false,
        Ok(out) => skip(
            test,
            &format!(
                "unprivileged user namespaces are not allowed here ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ),
        Err(e) => skip(
            test,
            &format!("could not run unshare(1) to test for user namespaces ({e})"),
        ),
    }
}

/// What a demo run printed, and its exit code.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The text a snapshot keeps: exit code, stdout, stderr.
    pub fn transcript(&self) -> String {
        let mut s = format!(
            "exit code: {}\n----- stdout -----\n{}",
            self.code, self.stdout
        );
        if !self.stderr.is_empty() {
            s.push_str("----- stderr -----\n");
            s.push_str(&self.stderr);
        }
        s
    }

    /// Panic with the whole transcript unless the run exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code\n{}",
            self.transcript()
        );
        self
    }
}

/// A finished program's output as a [`Run`]: its exit code, or 128 + N when signal N ended
/// it (as a shell reports it).
impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + out.status.signal().unwrap_or(0)
            }),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A command for a demo binary with a plain, colourless environment.
pub fn command(bin: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    // Output must not depend on the caller's terminal width (clap reads COLUMNS) or language
    // (strerror(3) messages follow LC_MESSAGES).
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env("LC_ALL", "C")
        .env_remove("COLUMNS")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    cmd
}

/// Run a demo binary with `args`; stdin is empty.
pub fn run(bin: &Path, args: &[&str]) -> Run {
    Run::from(command(bin, args).output().expect("spawn the demo binary"))
}

/// [`run`], also returning the demo's PID: with [`made_by`], a test checks for leftovers by the
/// names this run made, never by a scan for anything `nslab-*` (another run may be going on).
pub fn run_with_pid(bin: &Path, args: &[&str]) -> (i32, Run) {
    let (pid, out) = output_with_pid(&mut command(bin, args)).expect("spawn the demo binary");
    (pid, Run::from(out))
}

/// `cmd.output()`, also returning the child's PID.
fn output_with_pid(cmd: &mut Command) -> std::io::Result<(i32, std::process::Output)> {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = i32::try_from(child.id()).expect("a PID fits in i32");
    Ok((pid, child.wait_with_output()?))
}

/// Whether `name` is one that a process in `pids` made with [`crate::unique_name`]: it contains
/// `nslab-<what>-<pid>-<n>` for one of them. Tests pass the demo's PID and the PIDs it printed
/// (its children), so a run going on at the same time cannot fail them.
pub fn made_by(name: &str, pids: &[i32]) -> bool {
    let Some(at) = name.find(&format!("{}-", crate::PREFIX)) else {
        return false;
    };
    let rest = &name[at + crate::PREFIX.len() + 1..];
    // <what>-<pid>-<n>: <what> may itself contain dashes, so try every split.
    let parts: Vec<&str> = rest.split(['-', '/', ' ', ',']).collect();
    parts.windows(2).any(|w| {
        w[0].parse::<i32>().is_ok_and(|p| pids.contains(&p))
            && w[1].chars().next().is_some_and(|c| c.is_ascii_digit())
    })
}

/// The PIDs a run is answerable for: the demo's own and those it printed (its children).
pub fn pids_of(pid: i32, run: &Run) -> Vec<i32> {
    let mut pids = printed_pids(&run.stdout);
    pids.push(pid);
    pids
}

pub use crate::tempdir::TempDir;

/// Run a demo binary as the unprivileged user `nobody` (UID/GID 65534, no supplementary groups).
/// The binary is copied into a world-readable temp dir first: the checkout may sit under a home
/// directory that `nobody` cannot enter. Needs root (to change UID).
pub fn run_as_nobody(bin: &Path, args: &[&str]) -> Run {
    run_as_nobody_with_pid(bin, args).1
}

/// [`run_as_nobody`], also returning the demo's PID (see [`run_with_pid`]).
pub fn run_as_nobody_with_pid(bin: &Path, args: &[&str]) -> (i32, Run) {
    nobody_run(bin, args, None)
}

/// [`run_as_nobody_with_pid`], the program started in the cgroup whose `cgroup.procs` is
/// `procs` (a subtree delegated to nobody): a shell as nobody waits on its standard input
/// until root has moved it there, then execs the program.
pub fn run_as_nobody_in_cgroup(bin: &Path, args: &[&str], procs: &Path) -> (i32, Run) {
    nobody_run(bin, args, Some(procs))
}

fn nobody_run(bin: &Path, args: &[&str], cgroup: Option<&Path>) -> (i32, Run) {
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("bin");
    let copy = dir.path().join(bin.file_name().expect("binary name"));
    fs::copy(bin, &copy).expect("copy the demo binary");
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod the copy");
    let mut cmd = match cgroup {
        None => command(&copy, args),
        Some(_) => {
            let mut c = command(
                Path::new("/bin/sh"),
                &["-c", "read go && exec \"$0\" \"$@\""],
            );
            c.arg(&copy).args(args).stdin(Stdio::piped());
            c
        }
    };
    // setgid, then setuid, in the child before exec; as root, std also clears the supplementary
    // groups (setgroups(0, NULL)). The working directory is one `nobody` may enter.
    cmd.current_dir("/")
        .uid(crate::doctor::NOBODY)
        .gid(crate::doctor::NOBODY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // ETXTBSY: another test thread forked while the copy was open for writing, and its child
    // holds that descriptor until it execs. It goes away by itself, with no event to say so:
    // back off between tries.
    let child = crate::wait::backoff(std::time::Duration::from_secs(10), || match cmd.spawn() {
        Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => Ok(None),
        other => Ok(Some(other)),
    })
    .expect("backoff without errors")
    .unwrap_or_else(|| panic!("{}: still ETXTBSY after 10 s", copy.display()))
    .expect("spawn the demo binary as nobody");
    let pid = i32::try_from(child.id()).expect("a PID fits in i32");
    let mut child = child;
    if let Some(procs) = cgroup {
        fs::write(procs, pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} to {}: {e}", procs.display()));
        let mut gate = child.stdin.take().expect("the shell's stdin");
        std::io::Write::write_all(&mut gate, b"go\n").expect("release the shell");
    }
    // The copy goes as soon as the program has ended, before the rest of its output is read: a
    // process it left behind may hold the pipes open (a failing demo's), and a test stuck
    // reading them, then killed, would otherwise leave the copy. The pipes are drained
    // meanwhile, so a talkative program never blocks on a full one.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = child.wait().expect("wait for the demo binary");
    drop(dir);
    let output = std::process::Output {
        status,
        stdout: stdout.join().expect("the stdout reader"),
        stderr: stderr.join().expect("the stderr reader"),
    };
    (pid, Run::from(output))
}

/// The host's hostname, to redact it from snapshots.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .to_string_lossy()
        .into_owned()
}

/// Filters for insta: each redacts one kind of value that changes from run to run, leaving the
/// rest of the line as the program printed it. (Inodes and PIDs are numbered first, by
/// [`number_values`], so that equal values stay visibly equal.)
pub fn filters() -> Vec<(String, String)> {
    vec![
        // The host's own name (quoted, as the demos print names).
        (
            regex::escape(&format!("\"{}\"", host_name())),
            "\"[HOSTNAME]\"".into(),
        ),
        // Paths of temp dirs and pins (their names carry a PID and a counter).
        (
            r"/tmp/nslab-[a-z]+-\d+-\d+".into(),
            "/tmp/[NSLAB-TMP]".into(),
        ),
        (r"fd \d+".into(), "fd [FD]".into()),
        // The caller's UID in the rootless line (0 as root with --rootless, another as a user).
        (r"where uid \d+ is 0".into(), "where uid [UID] is 0".into()),
        // tmpfs shows `inode64` among its options on kernels from 5.9 that were built without
        // it as the default (Debian's 6.1 shows it; this project's machines' 6.18 does not).
        (r",inode64\b".into(), String::new()),
    ]
}

/// Where the demos print a host PID: `pid 4242`, `/proc/4242/`, `waitpid(4242)`, ...
fn pid_pattern() -> regex::Regex {
    regex::Regex::new(
        r"(\b(?:pid|PID|PPid|ppid) |/proc/|waitpid\(|kill\(|PTRACE_ATTACH, |NSpid: |netns )([1-9]\d+)\b",
    )
    .expect("pid pattern")
}

/// The host PIDs a demo printed (multi-digit ones, in the places [`number_values`] redacts).
pub fn printed_pids(text: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = pid_pattern()
        .captures_iter(text)
        .filter_map(|c| c[2].parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Panic if a process the demo printed still exists with the demo's command name: every process
/// a demo starts must end with it.
#[track_caller]
pub fn assert_no_process_left(run: &Run, comm: &str) {
    let proc = crate::procfs::Proc::host();
    let left: Vec<i32> = printed_pids(&run.stdout)
        .into_iter()
        .filter(|p| proc.comm(*p).is_ok_and(|c| c == comm))
        .collect();
    assert!(
        left.is_empty(),
        "processes left behind: {left:?}\n{}",
        run.transcript()
    );
}

/// Replace namespace inodes and host PIDs by numbered placeholders, numbered in order of first
/// appearance: `uts:[4026532177]` becomes `uts:[INODE-1]`, and the same inode later in the text is
/// `[INODE-1]` again, so a reader still sees which namespaces are the same. PIDs are matched
/// where the demos print them (`pid 4242`, `/proc/4242/`, `waitpid(4242)`, `kill(4242`); a
/// one-digit PID is a namespace's own and is kept.
pub fn number_values(text: &str) -> String {
    let inodes = regex::Regex::new(r"\[?\b(40265\d{5})\b\]?").expect("inode pattern");
    let number = |re: &regex::Regex,
                  text: &str,
                  group: usize,
                  render: &dyn Fn(&regex::Captures, usize) -> String| {
        let mut seen: Vec<String> = Vec::new();
        re.replace_all(text, |caps: &regex::Captures| {
            let value = caps[group].to_string();
            let n = match seen.iter().position(|v| *v == value) {
                Some(i) => i + 1,
                None => {
                    seen.push(value);
                    seen.len()
                }
            };
            render(caps, n)
        })
        .into_owned()
    };
    let text = number(&inodes, text, 1, &|_, n| format!("[INODE-{n}]"));
    // Mount peer groups (mountinfo's shared:N and master:N share one numbering).
    let groups = regex::Regex::new(r"\b(shared|master):(\d+)\b").expect("peer group pattern");
    let text = number(&groups, &text, 2, &|caps, n| {
        format!("{}:[GROUP-{n}]", &caps[1])
    });
    number_pids(&text)
}

/// Number the host PIDs (and thread IDs) wherever the demos print them: after `pid `,
/// `/proc/`, `waitpid(`, ... ([`pid_pattern`]), in `echo PID > file`, and in lists after
/// `cgroup.procs`, `tasks`, `threads:`. One numbering for all, by first appearance.
fn number_pids(text: &str) -> String {
    // `echo PID > .../cgroup.procs` (tasks, cgroup.threads): not `echo 16 > pids.max`.
    let echo =
        regex::Regex::new(r"\becho ([1-9]\d+) > \S*(?:cgroup\.procs|tasks|cgroup\.threads)\b")
            .expect("echo pattern");
    let list =
        regex::Regex::new(r"(?:cgroup\.procs:? |tasks |threads: )((?:[1-9]\d+(?:, | |$|;|\n))+)")
            .expect("list pattern");
    let number = regex::Regex::new(r"[1-9]\d+").expect("number");
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for caps in pid_pattern()
        .captures_iter(text)
        .chain(echo.captures_iter(text))
    {
        let m = caps.get(caps.len() - 1).expect("group");
        spans.push((m.start(), m.end()));
    }
    for caps in list.captures_iter(text) {
        let m = caps.get(1).expect("group");
        for n in number.find_iter(m.as_str()) {
            spans.push((m.start() + n.start(), m.start() + n.end()));
        }
    }
    spans.sort_unstable();
    spans.dedup();
    let mut seen: Vec<&str> = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at {
            continue;
        }
        let value = &text[start..end];
        let n = match seen.iter().position(|v| *v == value) {
            Some(i) => i + 1,
            None => {
                seen.push(value);
                seen.len()
            }
        };
        out.push_str(&text[at..start]);
        out.push_str(&format!("[PID-{n}]"));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// insta settings for a demo's `tests/cli.rs`: snapshots in `tests/snapshots/NAME.snap` with a
/// three-line header (`---`, `source: ...`, `---`), so the book can include them from line 4.
pub fn settings(extra: &[(&str, &str)]) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_snapshot_path("snapshots");
    for (re, with) in filters() {
        settings.add_filter(&re, with);
    }
    for (re, with) in extra {
        settings.add_filter(re, *with);
    }
    settings
}

/// Snapshot a run's transcript under `name`, with the standard filters (and extra ones).
#[macro_export]
macro_rules! assert_run_snapshot {
    ($name:expr, $run:expr) => {
        $crate::assert_run_snapshot!($name, $run, &[])
    };
    ($name:expr, $run:expr, $extra:expr) => {{
        let transcript = $crate::testing::number_values(&$run.transcript());
        if $crate::testing::transcripts_compared($name) {
            $crate::testing::settings($extra).bind(|| {
                ::insta::assert_snapshot!($name, transcript);
            });
        }
    }};
}

/// Whether this run compares transcripts with the snapshots: they are recorded by root's runs
/// (CI's), so a run as another user, whose transcripts differ where a user ID or a rootless
/// mount's options show, checks its assertions and says on stderr that it left `name` alone.
pub fn transcripts_compared(name: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "transcript {name} not compared: the snapshots are root's runs"
    );
    false
}

/// A demo (or any program) running in the background with piped stdin and stdout, killed and
/// reaped on drop. Used as the "other process" whose namespaces a test looks at or joins.
#[derive(Debug)]
pub struct Background {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    /// Every line read so far.
    pub lines: Vec<String>,
}

impl Background {
    /// Start `program args` and read its stdout until a line contains `marker` (so the test
    /// knows the process got that far: synchronisation by output, never by sleeping).
    pub fn start(program: &Path, args: &[&str], marker: &str) -> Background {
        let mut bg = Background::spawn(program, args);
        bg.read_until(marker);
        bg
    }

    /// Start `program args` with nothing to wait for: spawn(2) returns once the program has
    /// been executed, so its `/proc/PID/comm` is already the program's (a shell's `echo ready;
    /// exec cat` would say `ready` while it is still `sh`).
    pub fn spawn(program: &Path, args: &[&str]) -> Background {
        let mut cmd = command(program, args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn background process");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        Background {
            child,
            stdout,
            lines: Vec::new(),
        }
    }

    /// Read stdout lines until one contains `marker`; panics at end of output.
    pub fn read_until(&mut self, marker: &str) -> String {
        use std::io::BufRead;
        loop {
            let mut line = String::new();
            let n = self
                .stdout
                .read_line(&mut line)
                .expect("read background stdout");
            assert!(
                n > 0,
                "background process ended before printing {marker:?}; it printed:\n{}",
                self.lines.join("")
            );
            self.lines.push(line.clone());
            if line.contains(marker) {
                return line;
            }
        }
    }

    /// The process's PID.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// Read the rest of its output into `lines`, wait for it to end, and return its exit code
    /// (128 + N when killed by signal N).
    pub fn wait(&mut self) -> i32 {
        use std::io::BufRead;
        use std::os::unix::process::ExitStatusExt;
        let mut line = String::new();
        while self.stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            self.lines.push(std::mem::take(&mut line));
        }
        let status = self.child.wait().expect("wait for background process");
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `f` on a thread of its own that first moves into new namespaces of `flags`
/// (`CLONE_NEWNS`, `CLONE_NEWNET`: unshare(2) of these changes only the calling thread's, even in
/// a multithreaded process, and the processes it starts inherit them), with `/` made private in
/// a new mount namespace so that no mount made on the machine meanwhile reaches it. The demos'
/// "host" is then namespaces this test made: a check sees only what its own demo did, and a
/// demo that broke its promise would still not touch the machine. `look` reads the state on
/// that thread (through `/proc/thread-self`) before and after `f`. Without the privilege (an
/// ordinary user), everything runs on the thread in the test's own namespaces, where a demo
/// cannot change anything anyway; the third value says whether the namespaces were made.
pub fn in_test_namespaces<T: Send, L: Send>(
    flags: nix::sched::CloneFlags,
    f: impl FnOnce() -> T + Send,
    look: impl Fn() -> L + Send,
) -> ((L, T, L), bool) {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let own = nix::sched::unshare(flags).is_ok()
                    && (!flags.contains(nix::sched::CloneFlags::CLONE_NEWNS)
                        || crate::lab::make_root_private().is_ok());
                let before = look();
                let result = f();
                ((before, result, look()), own)
            })
            .join()
            .expect("the test's namespace thread")
    })
}

/// The links of the calling thread's network namespace (`/proc/thread-self/net/dev`).
pub fn thread_links() -> Vec<String> {
    fs::read_to_string("/proc/thread-self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim().to_string()))
        .collect()
}

/// The mount table of the calling thread's mount namespace (`/proc/thread-self/mountinfo`).
pub fn thread_mounts() -> String {
    fs::read_to_string("/proc/thread-self/mountinfo").expect("/proc/thread-self/mountinfo")
}

/// One test at a time within a test binary, for tests that check the whole host for leftovers
/// or measure CPU time (a 2-core machine has no room for two at once).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The cgroups below `parents` (this process's own cgroup in each hierarchy: where the demos it
/// runs make theirs) that processes in `pids` made ([`made_by`]), and named v1 hierarchies of
/// theirs in /proc/self/cgroup. Only this run's names: another run's groups, beside them under
/// the same parent, are none of this test's business.
pub fn cgroup_leftovers_of(parents: &[PathBuf], pids: &[i32]) -> Vec<String> {
    fn walk(dir: &Path, depth: usize, pids: &[i32], found: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if made_by(&name, pids) && made_during_this_run(&e.path()) {
                found.push(e.path().display().to_string());
            } else if depth > 0 && name.starts_with(crate::PREFIX) {
                walk(&e.path(), depth - 1, pids, found);
            }
        }
    }
    let mut found = Vec::new();
    for parent in parents {
        walk(parent, 6, pids, &mut found);
    }
    found.sort();
    found.dedup();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    found.extend(own.lines().filter(|l| made_by(l, pids)).map(String::from));
    found
}

/// When this process started, less two seconds (`btime` in /proc/stat counts whole seconds).
/// A file or group older than that is no leftover of this run, whatever PID its name carries:
/// PIDs come round again (`pid_max` may be 32768), so a name left by a run long gone, or by
/// another program, can carry the number one of this run's processes has now.
fn this_run_began() -> Option<std::time::SystemTime> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Field 22, starttime, in clock ticks after boot; the fields after `comm` start at 3.
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()?;
    let btime: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // /proc counts in USER_HZ, which is 100 on every architecture Linux exports it for.
    let started = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(btime)
        + std::time::Duration::from_millis(ticks * 10);
    started.checked_sub(std::time::Duration::from_secs(2))
}

/// Whether `path` may have been made during this run (it is not older than the run).
fn made_during_this_run(path: &Path) -> bool {
    match (
        this_run_began(),
        fs::symlink_metadata(path).and_then(|m| m.modified()),
    ) {
        (Some(began), Ok(changed)) => changed >= began,
        _ => true, // cannot tell: count it
    }
}

/// Entries of the temp directory that processes in `pids` made ([`made_by`]) during this run,
/// and mounts whose lines in /proc/self/mountinfo mention such a name: this run's leftovers
/// only.
pub fn temp_leftovers_of(pids: &[i32]) -> Vec<String> {
    let tmp = std::env::temp_dir();
    let mut found: Vec<String> = fs::read_dir(&tmp)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| made_by(n, pids) && made_during_this_run(&tmp.join(n)))
                .collect()
        })
        .unwrap_or_default();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    found.extend(
        mounts
            .lines()
            .filter(|l| made_by(l, pids))
            .map(String::from),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_older_than_this_run_is_not_its_leftover() {
        let pid = std::process::id() as i32;
        let dir = std::env::temp_dir().join(format!("nslab-old-{pid}-0"));
        fs::create_dir_all(&dir).unwrap();
        let name = format!("nslab-old-{pid}-0");
        assert!(temp_leftovers_of(&[pid]).contains(&name));
        // The same name, made (as far as its time says) an hour before this run began: a
        // process long gone that had this PID.
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::open(&dir)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let found = temp_leftovers_of(&[pid]);
        fs::remove_dir(&dir).unwrap();
        assert!(!found.contains(&name), "{found:?}");
    }

    #[test]
    fn made_by_knows_its_own_names_only() {
        assert!(made_by("nslab-cg-4242-0", &[4242]));
        assert!(made_by(
            "/sys/fs/cgroup/memory/nslab-cpu-w-4242-3/leaf",
            &[4242]
        ));
        assert!(made_by("12:name=nslab-rules-77-1:/", &[1, 77]));
        assert!(!made_by("nslab-cg-4243-0", &[4242]));
        assert!(!made_by("nslab-br0", &[0]));
        assert!(!made_by("cg-4242-0", &[4242]));
    }

    #[test]
    fn equal_values_get_equal_numbers() {
        let text = "uts:[4026531838] -> uts:[4026532177]\nback in 4026531838\npid 4242, /proc/4242/ns, waitpid(77), pid 1\nshared:7 master:3 shared:3";
        assert_eq!(
            number_values(text),
            "uts:[INODE-1] -> uts:[INODE-2]\nback in [INODE-1]\npid [PID-1], /proc/[PID-1]/ns, waitpid([PID-2]), pid 1\nshared:[GROUP-1] master:[GROUP-2] shared:[GROUP-2]"
        );
        assert_eq!(
            number_values(
                "echo 4242 > a/cgroup.procs\nb/cgroup.procs: 4242 4243; tasks 4244\nthreads: 4242, 4245"
            ),
            "echo [PID-1] > a/cgroup.procs\nb/cgroup.procs: [PID-1] [PID-2]; tasks [PID-3]\nthreads: [PID-1], [PID-4]"
        );
    }
}

/// A cgroup v2 subtree delegated to `nobody`, as systemd's `user@UID.service` is to its user:
/// `nslab-deleg-PID-N` below this process's own v2 cgroup, the directory and its
/// `cgroup.procs`, `cgroup.subtree_control` and `cgroup.threads` chowned to nobody, the wanted
/// controllers enabled in this process's group for it, and a leaf `shell/` (nobody's too) for
/// the process that runs there ([`run_as_nobody_in_cgroup`] with `self.shell_procs()`).
/// Dropping it removes both groups (the runs in it have ended). Needs root.
#[derive(Debug)]
pub struct Delegated {
    pub top: PathBuf,
}

impl Delegated {
    pub fn make(controllers: &[&str]) -> Delegated {
        let layout = crate::cgroupfs::detect().expect("read the cgroup layout");
        let mount = layout
            .hierarchies
            .iter()
            .find(|h| h.version == 2)
            .map(|h| h.mount_point.clone())
            .expect("a cgroup2 mount");
        let own = crate::cgroupfs::parse_proc_cgroup(
            &fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup"),
        )
        .into_iter()
        .find(|m| m.id == 0 && m.controllers.is_empty())
        .map(|m| mount.join(m.path.trim_start_matches('/')))
        .expect("this process's cgroup v2");
        let top = own.join(crate::unique_name("deleg"));
        fs::create_dir(&top).unwrap_or_else(|e| panic!("mkdir {}: {e}", top.display()));
        let delegated = Delegated { top };
        let control = own.join("cgroup.subtree_control");
        for c in controllers {
            fs::write(&control, format!("+{c}"))
                .unwrap_or_else(|e| panic!("+{c} in {}: {e}", control.display()));
        }
        fs::create_dir(delegated.top.join("shell")).expect("mkdir shell");
        let nobody = Some(nix::unistd::Uid::from_raw(crate::doctor::NOBODY));
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
            "shell",
            "shell/cgroup.procs",
        ] {
            nix::unistd::chown(&delegated.top.join(f), nobody, None)
                .unwrap_or_else(|e| panic!("chown {}: {e}", delegated.top.join(f).display()));
        }
        delegated
    }

    /// Where a process goes to run in the subtree: its leaf `shell/`.
    pub fn shell_procs(&self) -> PathBuf {
        self.top.join("shell/cgroup.procs")
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Leaf first; a group the run left is reported by the test's own leftover check.
        let _ = fs::remove_dir(self.top.join("shell"));
        let _ = fs::remove_dir(&self.top);
    }
}
