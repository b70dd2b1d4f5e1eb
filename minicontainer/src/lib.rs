//! A minimal container runtime: every mechanism of the book, combined, by calling the demos'
//! own libraries (the code the chapters show).
//!
//! - [`spec`]: `run`'s flags become an OCI runtime spec, and a spec a [`spec::Plan`] (what the
//!   engine does, every field it cannot honour refused by name);
//! - [`engine`]: the one path from a spec to a running container, in six steps, a file each
//!   (namespaces, cgroups, root filesystem, devices, identity, spawn), from `create` to `start`;
//! - [`store`]: every container's record, trusted only when it is the caller's;
//! - [`run`]: docker-style `run` (create, start, wait, delete) and `gc`; [`state`]: `ps`,
//!   `exec`, `stop`, `kill`, `logs`; [`oci`]: runc's command line;
//! - [`image`], [`net`] (the bridge), [`console`] (`-t`), [`seccomp`], [`pid1`] (the init),
//!   [`doctor`].
#![forbid(unsafe_code)]

pub mod console;
pub mod copy;
pub mod doctor;
pub mod engine;
pub mod image;
pub mod net;
pub mod oci;
pub mod pid1;
pub mod resources;
pub mod run;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod store;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use labkit::{Narrator, bad_input};

pub use engine::devices::{DEFAULT_DEVICE_RULES, DEVICES};
pub use engine::identity::{DEFAULT_CAPS, apply_identity};
pub use engine::{CommandNotFound, Created};
pub use run::{gc, rm, run, run_then};

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone)]
pub enum Root {
    /// The embedded default: an empty skeleton with the host's `/usr` (and `/bin`, `/lib`, ...)
    /// mounted read-only, so common programs run without any download.
    Host,
    /// A directory, used as the single read-only lower layer.
    Dir(PathBuf),
    /// An image's unpacked layers ([`image::open`]), top-most first.
    Layers(Vec<PathBuf>),
    /// An OCI bundle's root filesystem, used as it is (no overlay: writes land in it), as runc
    /// does.
    Bundle(PathBuf),
}

/// Where unpacked image layers are kept: `$XDG_CACHE_HOME/nslab`, or `~/.cache/nslab`.
pub fn image_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"))
        .join("nslab")
}

/// The container's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Net {
    /// Its own network namespace with only `lo`.
    #[default]
    None,
    /// Also an `eth0`, a veth pair to the host's `nslab-br0` bridge.
    Bridge,
}

/// A host path bind-mounted into the container (`-v HOST:CONTAINER[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Absolute, resolved on the host.
    pub host: PathBuf,
    /// Absolute, inside the container.
    pub inside: PathBuf,
    pub read_only: bool,
}

impl std::str::FromStr for Volume {
    type Err = anyhow::Error;

    /// `HOST:CONTAINER[:ro|:rw]`; HOST must exist, CONTAINER must be absolute without `..`.
    fn from_str(text: &str) -> Result<Volume> {
        let bad = |why: &str| bad_input(format!("-v {text:?}: {why}"));
        let parts: Vec<&str> = text.split(':').collect();
        let (host, inside, read_only) = match parts[..] {
            [h, c] => (h, c, false),
            [h, c, "ro"] => (h, c, true),
            [h, c, "rw"] => (h, c, false),
            [_, _, _] => return Err(bad("the mode is ro or rw")),
            _ => return Err(bad("expected HOST:CONTAINER[:ro]")),
        };
        let host = fs::canonicalize(host).map_err(|e| bad(&format!("{host}: {e}")))?;
        let inside = PathBuf::from(inside);
        if !inside.is_absolute()
            || inside
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(bad("CONTAINER must be an absolute path without .."));
        }
        if inside == Path::new("/") {
            return Err(bad("CONTAINER cannot be / (use --rootfs)"));
        }
        // The runtime mounts these itself, and fills /dev: a host directory there would get
        // the container's device nodes and links written into it.
        if let Some(own) = ["/dev", "/proc", "/sys"]
            .iter()
            .find(|own| inside.starts_with(own))
        {
            return Err(bad(&format!(
                "CONTAINER cannot be {own} or below it (the runtime mounts its own {own})"
            )));
        }
        Ok(Volume {
            host,
            inside,
            read_only,
        })
    }
}

/// What to run, and how: the container as an OCI runtime spec ([`spec`]), and what the spec has
/// no field for (where the image's layers are, the network, the name).
#[derive(Debug, Clone)]
pub struct Config {
    /// The container, in the words of the OCI runtime specification (`config.json`).
    pub spec: oci_spec::runtime::Spec,
    /// The layers under the spec's `root` (made into an overlay).
    pub root: Root,
    pub net: Net,
    /// Its name for `ps`, `exec` and `stop` (default: `ctr-PID`, PID being minicontainer's).
    pub name: Option<String>,
    /// Run `pid_demo::init` as PID 1 (which runs the spec's process).
    pub init: bool,
    /// Send this process's output, and so the container's, to `log` in its work directory
    /// (`run -d`; `logs NAME` reads it).
    pub log: bool,
    /// Keep the record (state, config, log, exit code) once the command has ended, until `rm`
    /// (`run -d` without `--rm`, as `docker run -d` keeps a container).
    pub keep: bool,
    /// `-p HOSTPORT:CTRPORT` (`--net bridge`): TCP on the host's 127.0.0.1:HOSTPORT forwarded to
    /// the container's address, port CTRPORT, for its life.
    pub publish: Vec<(u16, u16)>,
}

impl Config {
    /// The command (`process.args`).
    pub fn args(&self) -> Vec<String> {
        self.spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default()
    }
}

/// `UID[:GID]` as numbers (GID = UID when left out), each at most [`MAX_ID`].
pub fn parse_user(text: &str) -> Option<(u32, u32)> {
    let (u, g) = text.split_once(':').unwrap_or((text, text));
    let id = |t: &str| t.parse::<u32>().ok().filter(|id| *id <= MAX_ID);
    Some((id(u)?, id(g)?))
}

/// The largest user or group ID: 2^32 - 1 is `(uid_t) -1`, which setresuid(2) reads as "leave
/// this ID as it is" (the container would keep running as root).
pub const MAX_ID: u32 = u32::MAX - 1;

/// Where the root comes from (`--rootfs`, `--image`, or the host's /usr), with an image's
/// defaults applied to `options` by Docker's rules: the image's Env first (`-e` overrides it),
/// arguments replace its Cmd but not its Entrypoint, its WorkingDir and User unless given.
pub fn resolve_root(
    out: &mut Narrator,
    rootfs: Option<PathBuf>,
    image: Option<PathBuf>,
    workdir: Option<PathBuf>,
    options: &mut spec::RunOptions,
) -> Result<Root> {
    let mut workdir = workdir;
    let root = match (rootfs, image) {
        (Some(dir), _) => Root::Dir(dir),
        (None, Some(path)) => {
            let cache = image_cache();
            let img = image::open(&path, &cache, true)?;
            out.step(
                "host",
                format!(
                    "image {}: {} layer(s) in {}",
                    path.display(),
                    img.layers.len(),
                    cache.display()
                ),
            );
            let mut env: Vec<(String, String)> = img
                .env
                .iter()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            env.append(&mut options.env);
            options.env = env;
            let args = if options.cmd.is_empty() {
                img.cmd.clone()
            } else {
                std::mem::take(&mut options.cmd)
            };
            options.cmd = img.entrypoint.iter().cloned().chain(args).collect();
            if options.cmd.is_empty() {
                return Err(bad_input(format!(
                    "--image {}: it has no Entrypoint or Cmd; give a command after --",
                    path.display()
                )));
            }
            workdir = workdir.or_else(|| img.workdir.as_ref().map(PathBuf::from));
            if options.user.is_none() {
                if let Some(u) = &img.user {
                    options.user = Some(parse_user(u).ok_or_else(|| {
                        bad_input(format!(
                            "--image {}: its User {u:?} is not numeric; give --user UID[:GID]",
                            path.display()
                        ))
                    })?);
                }
            }
            Root::Layers(img.layers)
        }
        (None, None) => Root::Host,
    };
    options.workdir = workdir.unwrap_or_else(|| PathBuf::from("/"));
    Ok(root)
}

/// Paths of /proc hidden behind /dev/null or an empty tmpfs, as common runtimes do.
pub const MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/acpi",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths of /proc made read-only.
pub const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
