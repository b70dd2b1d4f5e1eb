//! Docker-style `run`: the same path as the OCI commands, on a bundle its flags make in the
//! store. Its steps: take the name in the store (with this process as its runner), write the
//! spec there and make a scratch directory for the layers, then `create`, `start`, wait for the
//! container, and delete it (its cgroups, veth, scratch directory and record), on success, on
//! error and on Ctrl-C alike. `gc` removes what a killed run could not.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::rootless::Privilege;
use nix::mount::{MntFlags, umount2};

use crate::engine::{self, Request, rootfs};
use crate::store::{self, Store};
use crate::{Config, Net, Root, console, net, spec, state};

/// Run a container; returns the exit code of its command (128 + N if killed by signal N).
pub fn run(
    out: &mut Narrator,
    store: &Store,
    config: &Config,
    privilege: Privilege,
) -> Result<i32> {
    run_then(out, store, config, privilege, || {})
}

/// [`run`], calling `started` once the container has started and its record says so (`run -d`
/// returns then).
pub fn run_then(
    out: &mut Narrator,
    store: &Store,
    config: &Config,
    privilege: Privilege,
    started: impl FnOnce(),
) -> Result<i32> {
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| format!("ctr-{}", std::process::id()));
    state::validate_name(&name)?;
    // The name first (atomically: two runs never share one), then a scratch directory for the
    // layers, recorded before it is made so that `gc` finds it whatever happens next.
    let claim = store.claim(&name)?;
    let path = std::env::temp_dir().join(labkit::unique_name("ctr"));
    store.write_file(&name, "scratch", path.as_os_str().as_encoded_bytes())?;
    let work = rootfs::Scratch::create(path)?;
    let config = &with_etc_files(config, &name, work.path())?;
    let bundle = spec::to_json(&config.spec)?;
    store.write_file(&name, "config.json", bundle.as_bytes())?;
    if config.log {
        let log = store::create_private(&claim.path().join("log"))?;
        nix::unistd::dup2_stdout(&log).context("dup2(log, 1)")?;
        nix::unistd::dup2_stderr(&log).context("dup2(log, 2)")?;
    }
    let fifo = claim.path().join("exec.fifo");
    make_fifo(&fifo)?;
    let terminal = config.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let (host_end, container_end) = match console::pair(terminal)? {
        Some((h, c)) => (Some(h), Some(c)),
        None => (None, None),
    };
    let veth = claim.path().join("veth");
    // Forked while this process has one thread (see net::Forwarder); dropped after the
    // container, whatever happens.
    let mut forwarder = match config.publish.is_empty() {
        true => None,
        false => Some(net::Forwarder::start(config.publish.clone())?),
    };
    let ctr = engine::create(
        out,
        Request {
            id: &name,
            bundle: work.path(),
            config,
            privilege,
            fifo: &fifo,
            console: container_end,
            work: work.path(),
            veth_record: Some(&veth),
            outlive: false,
            preserve_fds: 0,
            no_pivot: false,
            no_new_keyring: false,
        },
    )?;
    let process = ctr.process()?;
    // `-p`: bound now (a port in use fails the run), forwarded until the container ends.
    if let (Some(forwarder), Some((address, _))) = (&mut forwarder, ctr.address()) {
        let ip: std::net::Ipv4Addr = address
            .split('/')
            .next()
            .unwrap_or_default()
            .parse()
            .context("the container's address")?;
        forwarder.to(ip)?;
        out.step(
            "host",
            format!(
                "-p: a forwarder process accepts on 127.0.0.1 and connects to {ip}: {}",
                config
                    .publish
                    .iter()
                    .map(|(h, c)| format!("{h} -> {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if let Some((address, _)) = ctr.address() {
        // Its address is known now, before its program runs: into the same file (the inode
        // already bind-mounted), not a new one.
        let ip = address.split('/').next().unwrap_or_default();
        let hosts = work.path().join(ETC_DIR).join("hosts");
        if hosts.exists() {
            fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&hosts)
                .and_then(|mut f| {
                    std::io::Write::write_all(
                        &mut f,
                        etc_hosts(ip, &hostname_of(config), &name).as_bytes(),
                    )
                })
                .with_context(|| format!("write {}", hosts.display()))?;
        }
    }
    let record = store::Record {
        id: name.clone(),
        pid: process.pid,
        starttime: process.starttime,
        bundle: work.path().to_path_buf(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cgroups: ctr.cgroups(),
        annotations: Default::default(),
        procs: ctr.procs(),
        runner: Some(store::Proc::me()?),
        command: config.args().join(" "),
        address: ctr.address(),
        ports: config.publish.clone(),
    };
    store.write_file(&name, "state.json", &serde_json::to_vec_pretty(&record)?)?;
    // The terminal first: the container sent its master side while it set up.
    let console = match host_end {
        Some(host_end) => console::Console::attach(out, &host_end)?,
        None => None,
    };
    engine::start(&fifo, process)?;
    started();
    let code = ctr.wait(out, work.path());
    drop(console); // the terminal restored, the container's last output copied
    drop(work);
    if let (true, Ok(code)) = (config.keep, &code) {
        // `run -d`: the record, config and log stay for `logs` and `inspect` until `rm`; its
        // exit code marks it as ended on purpose (gc leaves it).
        store.write_file(&name, EXITED, code.to_string().as_bytes())?;
        claim.keep();
        return Ok(*code);
    }
    drop(claim);
    code
}

/// The directory in a run's scratch directory that holds its /etc files.
const ETC_DIR: &str = "etc-files";

fn hostname_of(config: &Config) -> String {
    config.spec.hostname().clone().unwrap_or_default()
}

/// /etc/hosts: localhost, and the container's hostname and name on its address.
fn etc_hosts(ip: &str, hostname: &str, name: &str) -> String {
    let names = if hostname == name {
        hostname.to_string()
    } else {
        format!("{hostname} {name}")
    };
    format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{names}\n")
}

/// The host's resolver configuration, as Docker copies it: where the host's points at
/// systemd-resolved's stub on its own loopback (unreachable from the container's), the
/// upstream servers it uses instead.
fn host_resolv_conf() -> Option<String> {
    let text = fs::read_to_string("/etc/resolv.conf").ok()?;
    if text.contains("nameserver 127.0.0.53") {
        if let Ok(upstream) = fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return Some(upstream);
        }
    }
    Some(text)
}

/// Whether the root's `/etc/FILE` (and `/etc`) is no symlink in any layer: a bind mount on it
/// is made only then (mount targets are never followed through links; an image whose
/// /etc/resolv.conf is a link keeps its own).
fn plain_in_root(root: &Root, file: &str) -> bool {
    let plain = |dir: &Path| {
        [dir.join("etc"), dir.join("etc").join(file)]
            .iter()
            .all(|p| !fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()))
    };
    match root {
        Root::Host => true,
        Root::Dir(dir) => plain(dir),
        Root::Layers(layers) => layers.iter().all(|l| plain(l)),
        Root::Bundle(_) => false,
    }
}

/// The run's config with Docker's /etc files: `/etc/hostname`, `/etc/hosts` (its hostname and
/// name on 127.0.1.1 with `--net none`, as Debian names a host without an address; on its
/// bridge address, written once known) and, with a network, the host's `/etc/resolv.conf`,
/// each a file in `work` bind-mounted read-only (a `-v` on the same path wins).
fn with_etc_files(config: &Config, name: &str, work: &Path) -> Result<Config> {
    use std::os::unix::fs::DirBuilderExt;
    let mut config = config.clone();
    let dir = work.join(ETC_DIR);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("mkdir {}", dir.display()))?;
    let hostname = hostname_of(&config);
    let mut files = vec![
        ("hostname", format!("{hostname}\n")),
        ("hosts", etc_hosts("127.0.1.1", &hostname, name)),
    ];
    if config.net != Net::None {
        files.extend(host_resolv_conf().map(|text| ("resolv.conf", text)));
    }
    let mut mounts = config.spec.mounts().clone().unwrap_or_default();
    for (file, text) in files {
        let destination = Path::new("/etc").join(file);
        if mounts.iter().any(|m| m.destination() == &destination)
            || !plain_in_root(&config.root, file)
        {
            continue;
        }
        let source = dir.join(file);
        fs::write(&source, text).with_context(|| format!("write {}", source.display()))?;
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination(destination)
                .typ("bind")
                .source(source)
                .options(["rbind", "rprivate", "ro"].map(String::from).to_vec())
                .build()?,
        );
    }
    config.spec.set_mounts(Some(mounts));
    Ok(config)
}

/// The file of a kept record that holds its command's exit code (`run -d` without `--rm`).
pub const EXITED: &str = "exited";

/// The exit code of a container whose record was kept after it ended.
pub fn exited(store: &Store, id: &str) -> Option<i32> {
    String::from_utf8(store.read_file(id, EXITED).ok()?)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `rm [-f] NAME`: remove a container that has ended: a kept record (`run -d`), what a killed
/// run left (as `gc` does), or an OCI container (as `delete`). A running one is refused, or
/// with `force` killed first (SIGKILL to its PID 1, then its `minicontainer run` is waited for
/// while it cleans up).
pub fn rm(out: &mut Narrator, store: &Store, id: &str, force: bool) -> Result<()> {
    let record = store.load(id)?;
    let Some(runner) = record.runner else {
        return crate::oci::delete(store, id, force);
    };
    if store.status(&record) != oci_spec::runtime::ContainerState::Stopped || runner.alive() {
        if !force {
            return Err(labkit::bad_input(format!(
                "container {id} is running: stop it first, or rm -f"
            )));
        }
        let runner_fd = state::pidfd(runner).ok();
        if let Ok(init) = state::pidfd(record.process()) {
            init.send(nix::sys::signal::Signal::SIGKILL)?;
            out.step(
                "rm",
                format!("pidfd_send_signal(PID 1 = {}, SIGKILL)", record.pid),
            );
        }
        if let Some(fd) = runner_fd {
            if !fd.wait_exit(std::time::Duration::from_secs(10))? {
                anyhow::bail!("container {id}: its minicontainer run did not end within 10 s");
            }
        }
    }
    let mut veths = Vec::new();
    if exited(store, id).is_none() {
        // Its run was killed: what it left, as gc removes it.
        remove_left(out, store, id, &mut veths)?;
    }
    let dir = store.dir(id);
    if dir.exists() {
        rootfs::remove_tree(&dir)?;
        out.step("rm", format!("rm -r {}", dir.display()));
    }
    store.tidy();
    for link in net::gc(store, &veths)? {
        out.step("rm", format!("ip link del {link}"));
    }
    Ok(())
}

/// What a killed run of `id` left besides its record: its scratch directory (unmounted first),
/// its cgroups; its veth is added to `veths` (for [`net::gc`]).
fn remove_left(out: &mut Narrator, store: &Store, id: &str, veths: &mut Vec<String>) -> Result<()> {
    if let Ok(veth) = store.read_file(id, "veth") {
        veths.push(String::from_utf8_lossy(&veth).into_owned());
    }
    let scratch = store
        .read_file(id, "scratch")
        .ok()
        .map(|b| PathBuf::from(String::from_utf8_lossy(&b).into_owned()))
        .filter(|p| store::is_own_dir(p));
    if let Some(scratch) = scratch {
        // Its mounts may outlive it while its mount namespace is still held: lazily.
        let _ = umount2(&scratch.join("rootfs"), MntFlags::MNT_DETACH);
        rootfs::remove_tree(&scratch)?;
        out.step("gc", format!("rm -r {}", scratch.display()));
    }
    if let Ok(record) = store.load(id) {
        crate::oci::remove_cgroups(&record.cgroups, &record.procs)?;
    }
    Ok(())
}

/// The exec FIFO, writable by the container's process whatever its user (it opens it through
/// a descriptor; the directory it is in stays the caller's alone).
pub(crate) fn make_fifo(fifo: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    nix::unistd::mkfifo(fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .with_context(|| format!("mkfifo {}", fifo.display()))?;
    std::fs::set_permissions(fifo, std::fs::Permissions::from_mode(0o622))
        .with_context(|| format!("chmod {}", fifo.display()))
}

/// `gc`: remove what a killed `minicontainer run` left, from the caller's own store only: each
/// record whose runner is gone (unless it was kept on purpose: `run -d`'s, until `rm`) (its scratch directory, unmounted first; its cgroups; its veth;
/// the record), temporary claims of runs killed before they took their name, and the groups a
/// killed run made before it recorded them ([`engine::cgroups::gc`]). OCI containers are
/// `delete`'s.
pub fn gc(out: &mut Narrator, store: &Store) -> Result<usize> {
    let mut removed = 0;
    let mut dead_veths = Vec::new();
    for id in store.ids()? {
        // A kept record (`run -d`, until `rm`) is no leftover.
        if store.runner(&id).is_none_or(|r| r.alive()) || exited(store, &id).is_some() {
            continue;
        }
        remove_left(out, store, &id, &mut dead_veths)?;
        rootfs::remove_tree(&store.dir(&id))?;
        out.step("gc", format!("rm -r {}", store.dir(&id).display()));
        removed += 1;
    }
    for claim in store.stale_claims() {
        rootfs::remove_tree(&claim)?;
        out.step("gc", format!("rm -r {}", claim.display()));
        removed += 1;
    }
    removed += engine::cgroups::gc(out)?;
    if removed > 0 {
        store.tidy();
    }
    for link in net::gc(store, &dead_veths)? {
        out.step("gc", format!("ip link del {link}"));
        removed += 1;
    }
    if removed == 0 {
        out.step("gc", "nothing left behind");
    }
    Ok(removed)
}
