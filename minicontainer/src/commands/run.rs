//! `run`: docker-style (flags, an image or a directory as the root), or runc's `run ID` on a
//! bundle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use labkit::{Narrator, bad_input, rootless};
use minicontainer::store::Store;
use minicontainer::{Config, oci, oci::validate_id};

use super::oci::{OciArgs, create_args};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum NetArg {
    None,
    Bridge,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Use this directory as the (read-only) image; writes go to a fresh upper layer.
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub rootfs: Option<PathBuf>,
    /// Run an image: an OCI image layout directory or a docker/podman save tarball. Its
    /// layers are unpacked once into ~/.cache/nslab (digests checked); its Env, Entrypoint,
    /// Cmd, WorkingDir and User are the defaults.
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// A name for `ps`, `exec` and `stop` (default: ctr-PID, PID being minicontainer's).
    #[arg(long)]
    pub name: Option<String>,
    /// The container's hostname.
    #[arg(long, default_value = "minicontainer")]
    pub hostname: String,
    /// Memory limit (64M, 1G, or bytes).
    #[arg(long)]
    pub memory: Option<String>,
    /// The most processes the container may have.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<u32>,
    /// CPU limit, in CPUs (0.5 = half of one).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container [default: the image's, or /].
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<PathBuf>,
    /// Network: `none` (only lo) or `bridge` (eth0 on the host's nslab-br0 bridge, with the
    /// other bridge containers and the host reachable, nothing else; needs root).
    #[arg(long, value_enum, default_value_t = NetArg::None)]
    pub net: NetArg,
    /// Publish a port (with --net bridge): TCP connections to the host's 127.0.0.1:HOSTPORT
    /// go to the container's CTRPORT, for as long as it runs (never on another host address);
    /// repeatable.
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[127.0.0.1:]HOSTPORT:CTRPORT"
    )]
    pub publish: Vec<String>,
    /// Bind-mount a host path into the container (HOST:CONTAINER[:ro]); repeatable.
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volume: Vec<String>,
    /// Run as this user (UID[:GID]).
    #[arg(long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Run pid_demo::init as PID 1 (reaps orphans, forwards signals); --init=false makes the
    /// command PID 1 itself.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub init: bool,
    /// Give the command a terminal of the container's own (a pseudo-terminal in its devpts),
    /// with your terminal in raw mode meanwhile: job control and window size work inside.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Detached: run in the background (output to `logs NAME`), print the name, and return;
    /// once its command ends, the container's record and log stay until `rm NAME` (or go at
    /// once with --rm).
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// With -d: remove the container, log included, when its command ends (docker run --rm).
    /// Without -d a container is always removed when it ends: its output went to you, and
    /// there is no daemon to keep it for.
    #[arg(long)]
    pub rm: bool,
    /// Keep standard input attached (it always is: accepted for docker run's -it habit).
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Install the default seccomp filter (--seccomp=false: none, like Docker's
    /// --security-opt seccomp=unconfined).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub seccomp: bool,
    /// Print every step (numbered, naming the syscall).
    #[arg(long)]
    pub explain: bool,
    /// Afterwards, print on stderr how long each step took (from the step before it), and the
    /// total: where the time of starting a container goes.
    #[arg(long)]
    pub timings: bool,
    /// Run inside a new user namespace even as root (what a normal user gets).
    #[arg(long)]
    pub rootless: bool,
    /// Print the container as an OCI runtime spec (the config.json runc would read) and
    /// exit without running it: what the engine is given.
    #[arg(long)]
    pub print_spec: bool,
    /// runc's `run ID`: create and start the bundle's container (with -d, return once it
    /// runs; else wait for it, then delete it).
    #[command(flatten, next_help_heading = "runc's run ID")]
    pub oci: OciArgs,
    /// Docker's order: the image (a path: an OCI image layout or a docker/podman save tarball;
    /// or --image, or --rootfs DIR, or nothing for the host's /usr), then the command (with
    /// --image: the image's Cmd when left out), with or without `--` before them. Or runc's
    /// `run [--bundle DIR] ID`, with config.json in DIR (by default the current directory).
    #[arg(value_name = "IMAGE|CMD|ID", allow_hyphen_values = true)]
    pub words: Vec<String>,
    /// The command after `--`.
    #[arg(last = true, hide = true)]
    pub cmd: Vec<String>,
}

/// What run's positional words mean.
#[derive(Debug, PartialEq, Eq)]
pub enum Reading {
    /// runc's `run ID` on the bundle.
    Oci { id: String, bundle: PathBuf },
    /// Docker's `run [IMAGE] CMD...` (`image` when it was given as a word, not --image).
    Docker {
        image: Option<PathBuf>,
        cmd: Vec<String>,
    },
}

/// What [`read_words`] asks the file system.
pub trait Probe {
    /// `bundle/config.json` exists.
    fn has_config(&self, bundle: &Path) -> bool;
    /// `word` is a path to an image: a directory with index.json or manifest.json, or a tar
    /// file.
    fn is_image(&self, word: &str) -> bool;
    /// `word` names a program on the host's /usr (the container's root without an image).
    fn is_program(&self, word: &str) -> bool;
}

/// The machine's own file system.
pub struct Host;

impl Probe for Host {
    fn has_config(&self, bundle: &Path) -> bool {
        bundle.join("config.json").is_file()
    }

    fn is_image(&self, word: &str) -> bool {
        let path = Path::new(word);
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                path.join("index.json").is_file() || path.join("manifest.json").is_file()
            }
            Ok(m) if m.is_file() => {
                // A tarball: by its name, or by the ustar magic of its first header.
                let named = [".tar", ".tar.gz", ".tgz"]
                    .iter()
                    .any(|s| word.ends_with(s));
                let mut head = [0u8; 262];
                named
                    || std::fs::File::open(path)
                        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                        .is_ok_and(|()| &head[257..262] == b"ustar")
            }
            _ => false,
        }
    }

    fn is_program(&self, word: &str) -> bool {
        if word.contains('/') {
            return Path::new(word).is_file();
        }
        // The default PATH of the container (the spec's), on the host's /usr it mounts.
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .iter()
        .any(|dir| Path::new(dir).join(word).is_file())
    }
}

/// Read run's positional words: docker's `run [IMAGE] CMD [ARG...]` (with or without `--`),
/// or runc's `run ID` where that is the only reading (`--bundle` given, or one word that is no
/// image or program with a config.json in the current directory). A word that reads both ways
/// is refused, naming both readings.
pub fn read_words(
    words: Vec<String>,
    after: Vec<String>,
    root_given: bool,
    bundle: Option<PathBuf>,
    probe: &impl Probe,
) -> Result<Reading> {
    if let Some(bundle) = bundle {
        if root_given {
            return Err(bad_input(
                "run: --bundle is runc's run ID, --rootfs and --image docker's run: choose one",
            ));
        }
        return match (&words[..], after.is_empty()) {
            ([id], true) => Ok(Reading::Oci {
                id: id.clone(),
                bundle,
            }),
            _ => Err(bad_input(
                "run --bundle DIR ID: runc's run takes one container ID and no command (the command is the bundle's config.json's)",
            )),
        };
    }
    // Words, then anything after `--` (only when no word came first: a `--` after a word is
    // the command's, as docker passes it on).
    let from_word = !words.is_empty();
    let mut cmd = words;
    cmd.extend(after);
    if root_given || !from_word {
        return Ok(Reading::Docker { image: None, cmd });
    }
    let first = cmd[0].clone();
    let here = Path::new(".");
    let as_id = cmd.len() == 1 && validate_id(&first).is_ok() && probe.has_config(here);
    let image = probe.is_image(&first);
    let docker = if image {
        Some((
            format!("docker's run IMAGE would run the image {first}"),
            format!("--image {first}"),
        ))
    } else if probe.is_program(&first) {
        Some((
            format!("docker's run CMD would run {first} on the host's /usr"),
            format!("-- {first}"),
        ))
    } else {
        None
    };
    match (as_id, docker) {
        (true, Some((docker, hint))) => Err(bad_input(format!(
            "run {first}: ambiguous: runc's run ID would start ./config.json's container as {first:?}, {docker}; say run --bundle . {first}, or run {hint}"
        ))),
        (true, None) => Ok(Reading::Oci {
            id: first,
            bundle: here.to_path_buf(),
        }),
        (false, _) if image => {
            let mut rest = cmd.split_off(1);
            // `run IMAGE -- CMD`: unlike docker (which would exec a program called "--"), a
            // `--` right after the image separates it from the command, as it does before it.
            if rest.first().is_some_and(|w| w == "--") {
                rest.remove(0);
            }
            Ok(Reading::Docker {
                image: Some(PathBuf::from(first)),
                cmd: rest,
            })
        }
        (false, _) => Ok(Reading::Docker { image: None, cmd }),
    }
}

pub fn run(mut out: Narrator, store: &Store, args: Args) -> Result<ExitCode> {
    let Args {
        rootfs,
        image,
        name,
        hostname,
        memory,
        pids_limit,
        cpus,
        env,
        workdir,
        net,
        publish,
        volume,
        user,
        init,
        seccomp,
        tty,
        detach,
        rm,
        interactive: _,
        explain,
        timings,
        rootless: force,
        print_spec,
        oci,
        words,
        cmd,
    } = args;
    let root_given = rootfs.is_some() || image.is_some();
    let (image, cmd) = match read_words(words, cmd, root_given, oci.bundle.clone(), &Host)? {
        Reading::Oci { id, bundle } => {
            let oci = OciArgs {
                bundle: Some(bundle),
                ..oci
            };
            return oci_run(&mut out, store, &id, &oci, detach);
        }
        Reading::Docker {
            image: Some(word),
            cmd,
        } => (Some(word), cmd),
        Reading::Docker { image: None, cmd } => (image, cmd),
    };
    if let Some(flag) = oci_only(&oci) {
        return Err(bad_input(format!(
            "run: {flag} is runc's run ID's (with --bundle DIR ID), not docker's run [IMAGE] CMD's"
        )));
    }
    if image.is_none() && cmd.is_empty() {
        return Err(bad_input(
            "run: no command: run [OPTIONS] [IMAGE | --rootfs DIR] CMD [ARG...] (or runc's run [--bundle DIR] ID)",
        ));
    }
    out.set_quiet(!explain);
    let publish = publish
        .iter()
        .map(|p| parse_publish(p))
        .collect::<Result<Vec<_>>>()?;
    if !publish.is_empty() && !matches!(net, NetArg::Bridge) {
        return Err(bad_input(
            "-p: a published port needs --net bridge (with --net none there is nothing to reach)",
        ));
    }
    let memory = memory.as_deref().map(cgroup_demo::parse_size).transpose()?;
    if cpus.is_some_and(|c| !(0.01..=1024.0).contains(&c)) {
        return Err(bad_input("--cpus: choose 0.01 to 1024"));
    }
    cow_like_validate(&hostname)?;
    let env = env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| bad_input(format!("-e {kv:?}: expected KEY=VALUE")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut options = minicontainer::spec::RunOptions {
        hostname,
        memory,
        pids: pids_limit,
        cpus,
        env,
        workdir: PathBuf::from("/"),
        user: user.as_deref().map(parse_user).transpose()?,
        volumes: volume
            .iter()
            .map(|v| v.parse())
            .collect::<Result<Vec<minicontainer::Volume>>>()?,
        seccomp,
        tty,
        cmd,
    };
    let root = minicontainer::resolve_root(&mut out, rootfs, image, workdir, &mut options)?;
    let config = Config {
        spec: minicontainer::spec::from_options(&options)?,
        root,
        net: match net {
            NetArg::None => minicontainer::Net::None,
            NetArg::Bridge => minicontainer::Net::Bridge,
        },
        name,
        init,
        log: false,
        keep: detach && !rm,
        publish,
    };
    if print_spec {
        print!("{}", minicontainer::spec::to_json(&config.spec)?);
        return Ok(ExitCode::SUCCESS);
    }
    if detach {
        return run_detached(out, store.clone(), config, force);
    }
    // Setup and cleanup must not be cut short: Ctrl-C goes to the container (it is in the
    // foreground too), and minicontainer ends once everything is removed.
    let hold = labkit::signals::hold_interrupts()?;
    if timings {
        out.start_timing();
    }
    let privilege = rootless::enter(force, &out)?;
    let code = match minicontainer::run(&mut out, store, &config, privilege) {
        // As a shell, and docker run, report a command that cannot be run.
        Err(e) if e.chain().any(|c| c.is::<minicontainer::CommandNotFound>()) => {
            eprintln!("minicontainer: {e:#}");
            127
        }
        other => other?,
    };
    if let Some(table) = out.timings() {
        eprint!("{table}");
    }
    labkit::signals::discard_pending();
    drop(hold);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `-p [127.0.0.1:]HOSTPORT:CTRPORT`: ports from 1 to 65535, on the loopback only.
fn parse_publish(text: &str) -> Result<(u16, u16)> {
    let bad = |why: &str| bad_input(format!("-p {text:?}: {why}"));
    let parts: Vec<&str> = text.split(':').collect();
    let (host, inside) = match parts[..] {
        [h, c] => (h, c),
        ["127.0.0.1", h, c] => (h, c),
        [ip, _, _] => {
            return Err(bad(&format!(
                "published ports are bound on 127.0.0.1 only, not {ip}"
            )));
        }
        _ => return Err(bad("expected [127.0.0.1:]HOSTPORT:CTRPORT")),
    };
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    match (port(host), port(inside)) {
        (Some(h), Some(c)) => Ok((h, c)),
        _ => Err(bad("ports are numbers from 1 to 65535")),
    }
}

/// The first of runc's own flags given, which docker's run has no use for.
fn oci_only(oci: &OciArgs) -> Option<&'static str> {
    [
        (oci.pid_file.is_some(), "--pid-file"),
        (oci.console_socket.is_some(), "--console-socket"),
        (oci.preserve_fds != 0, "--preserve-fds"),
        (oci.no_pivot, "--no-pivot"),
        (oci.no_new_keyring, "--no-new-keyring"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

fn parse_user(text: &str) -> Result<(u32, u32)> {
    minicontainer::parse_user(text).ok_or_else(|| {
        bad_input(format!(
            "--user {text:?}: expected UID[:GID] as numbers from 0 to {}",
            minicontainer::MAX_ID
        ))
    })
}

/// runc's `run ID`: create and start; in the foreground, wait for the process (it is this
/// process's child), then delete the container; its exit status is ours.
fn oci_run(
    out: &mut Narrator,
    store: &Store,
    id: &str,
    args: &OciArgs,
    detach: bool,
) -> Result<ExitCode> {
    out.set_quiet(true);
    // As with `run`: SIGTERM and SIGHUP go to the container (as runc forwards them), and this
    // process is never cut short between create and delete.
    let hold = labkit::signals::hold_interrupts()?;
    let record = oci::create(out, store, id, &create_args(args))?;
    if let Err(e) = oci::start(store, id) {
        let _ = oci::delete(store, id, true);
        return Err(e);
    }
    if detach {
        labkit::signals::discard_pending();
        drop(hold);
        return Ok(ExitCode::SUCCESS);
    }
    let status = loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(record.pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    let deleted = oci::delete(store, id, true);
    let status = status.context("waitpid(the container's process)")?;
    deleted?;
    labkit::signals::discard_pending();
    drop(hold);
    Ok(ExitCode::from(
        u8::try_from(labkit::child::exit_code(status)).unwrap_or(1),
    ))
}

/// `run -d`: a process of its own runs the container (in a new session, standard input from
/// /dev/null, output to the container's log) and cleans up when it ends, as `docker run -d --rm`
/// does; this one prints the name once `ps` knows it, and exits.
fn run_detached(
    mut out: Narrator,
    store: Store,
    mut config: Config,
    force: bool,
) -> Result<ExitCode> {
    if config.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
        return Err(bad_input(
            "-d with -t: a detached container has no terminal to attach (use exec later)",
        ));
    }
    let name = config
        .name
        .get_or_insert_with(|| format!("ctr-{}", std::process::id()))
        .clone();
    minicontainer::state::validate_name(&name)?;
    if store.load(&name).is_ok() {
        return Err(bad_input(format!(
            "--name {name}: already in use (see minicontainer ps)"
        )));
    }
    config.log = true;
    let for_runner = store.clone();
    let mut runner = labkit::child::fork_child(move |r| {
        // Outlive this process: no parent-death signal, a session of its own.
        nix::sys::prctl::set_pdeathsig(None).context("prctl(PR_SET_PDEATHSIG, 0)")?;
        nix::unistd::setsid().context("setsid()")?;
        let null = std::fs::File::open("/dev/null").context("open(/dev/null)")?;
        nix::unistd::dup2_stdin(&null).context("dup2(/dev/null, 0)")?;
        let _hold = labkit::signals::hold_interrupts()?;
        let privilege = rootless::enter(force, &out)?;
        // Ready once started: the waiting parent prints the name and returns.
        let code =
            minicontainer::run_then(&mut out, &for_runner, &config, privilege, || r.ready())?;
        labkit::signals::discard_pending();
        Ok(code)
    })?;
    // Its report pipe says when it has started, or why it could not (its error, or its end).
    runner.wait_ready()?;
    println!("{name}");
    runner.detach();
    Ok(ExitCode::SUCCESS)
}

fn cow_like_validate(hostname: &str) -> Result<()> {
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(bad_input(format!("--hostname {hostname:?}: 1 to 64 bytes")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file system with a config.json here (or not), one image (`img.tar`) and one program
    /// (`sh`).
    struct Fake {
        config: bool,
    }

    impl Probe for Fake {
        fn has_config(&self, _: &Path) -> bool {
            self.config
        }
        fn is_image(&self, word: &str) -> bool {
            word == "img.tar" || word == "box"
        }
        fn is_program(&self, word: &str) -> bool {
            word == "sh" || word == "/bin/true"
        }
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    fn docker(image: Option<&str>, cmd: &[&str]) -> Reading {
        Reading::Docker {
            image: image.map(PathBuf::from),
            cmd: words(cmd),
        }
    }

    #[test]
    fn the_docker_order_reads_with_and_without_dashes() {
        let read = |w: &[&str], after: &[&str], root: bool, config: bool| {
            read_words(words(w), words(after), root, None, &Fake { config }).unwrap()
        };
        for config in [false, true] {
            // --rootfs DIR /bin/true, with and without --, in a bundle's directory or not.
            assert_eq!(
                read(&["/bin/true"], &[], true, config),
                docker(None, &["/bin/true"])
            );
            assert_eq!(
                read(&[], &["/bin/true"], true, config),
                docker(None, &["/bin/true"])
            );
            assert_eq!(
                read(&["echo", "hi"], &[], true, config),
                docker(None, &["echo", "hi"])
            );
            // The host's /usr: -- CMD, or CMD ARG... (more than one word is never an ID).
            assert_eq!(read(&[], &["sh"], false, config), docker(None, &["sh"]));
            assert_eq!(
                read(&["sh", "-c", "x"], &[], false, config),
                docker(None, &["sh", "-c", "x"])
            );
            // IMAGE CMD..., and IMAGE alone (its Cmd).
            assert_eq!(
                read(&["img.tar", "echo", "hi"], &[], false, config),
                docker(Some("img.tar"), &["echo", "hi"])
            );
            assert_eq!(
                read(&["img.tar", "--", "echo"], &[], false, config),
                docker(Some("img.tar"), &["echo"])
            );
            // A `--` after a command's word is the command's, as docker passes it on.
            assert_eq!(
                read(&["sh", "--", "x"], &[], false, config),
                docker(None, &["sh", "--", "x"])
            );
        }
        assert_eq!(
            read(&["img.tar"], &[], false, false),
            docker(Some("img.tar"), &[])
        );
        assert_eq!(read(&["sh"], &[], false, false), docker(None, &["sh"]));
    }

    #[test]
    fn runcs_run_id_reads_where_it_is_the_only_reading() {
        let here = PathBuf::from(".");
        let r = read_words(
            words(&["ctr1"]),
            vec![],
            false,
            None,
            &Fake { config: true },
        );
        assert_eq!(
            r.unwrap(),
            Reading::Oci {
                id: "ctr1".into(),
                bundle: here
            }
        );
        let b = PathBuf::from("/b");
        let r = read_words(
            words(&["sh"]),
            vec![],
            false,
            Some(b.clone()),
            &Fake { config: false },
        );
        assert_eq!(
            r.unwrap(),
            Reading::Oci {
                id: "sh".into(),
                bundle: b.clone()
            },
            "--bundle makes it runc's, whatever the word"
        );
        for (w, after, root) in [
            (&["a", "b"][..], &[][..], false),
            (&["a"], &["b"], false),
            (&["a"], &[], true),
        ] {
            let r = read_words(
                words(w),
                words(after),
                root,
                Some(b.clone()),
                &Fake { config: true },
            );
            assert!(r.is_err(), "{w:?} {after:?} {root}");
        }
    }

    #[test]
    fn a_word_that_reads_both_ways_is_refused_naming_both() {
        for (word, hint) in [("sh", "run -- sh"), ("box", "run --image box")] {
            let err = read_words(words(&[word]), vec![], false, None, &Fake { config: true })
                .unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains("ambiguous"), "{text}");
            assert!(text.contains("runc's run ID"), "{text}");
            assert!(text.contains("docker's run"), "{text}");
            assert!(text.contains(&format!("run --bundle . {word}")), "{text}");
            assert!(text.contains(hint), "{text}");
            assert!(!text.contains('\n'), "one line: {text}");
        }
    }
}
