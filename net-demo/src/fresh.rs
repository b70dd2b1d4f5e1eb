//! fresh (NET-1).

use std::net::TcpListener;
use std::os::fd::AsRawFd;

use crate::rtnl::Rtnl;
use crate::{addr_lines, in_lab, link_lines, round_trip, route_lines, serve_one};
use anyhow::{Context, Result};
use labkit::Narrator;
use nix::mount::{MsFlags, mount};

fn names_in(dir: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("readdir({dir})"))?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// `fresh`: a new network namespace has only `lo`, down; no routes; its own /proc/net and, once
/// sysfs is mounted again, its own /sys/class/net; and its own ports.
pub fn fresh(out: &mut Narrator) -> Result<()> {
    // The host's side: a TCP socket bound to a port (bound only, never listening: nothing can
    // reach it), to show the same port is free in the new namespace.
    let host = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("socket(AF_INET, SOCK_STREAM)")?;
    nix::sys::socket::bind(
        host.as_raw_fd(),
        &nix::sys::socket::SockaddrIn::new(127, 0, 0, 1, 0),
    )
    .context("bind(127.0.0.1:0)")?;
    let bound: nix::sys::socket::SockaddrIn =
        nix::sys::socket::getsockname(host.as_raw_fd()).context("getsockname()")?;
    let port = bound.port();
    out.step("host", format!("socket(AF_INET, SOCK_STREAM), bind(127.0.0.1:0) -> port {port}, held while the lab runs"));
    in_lab(out, |lab| {
        let rtnl = Rtnl::open()?;
        lab.step("RTM_GETLINK  (ip link)");
        link_lines(lab, &rtnl)?;
        lab.step("RTM_GETROUTE (ip route)");
        if route_lines(lab, &rtnl)? == 0 {
            lab.say("(no routes)");
        }
        let dev = std::fs::read_to_string("/proc/net/dev").context("/proc/net/dev")?;
        let devices: Vec<&str> = dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        lab.step(format!("read /proc/net/dev -> {}", devices.join(" ")));
        let before = names_in("/sys/class/net")?;
        lab.step(format!(
            "ls /sys/class/net -> {} entries: still the sysfs mounted for the host's namespace",
            before.len()
        ));
        // ANCHOR: sysfs
        // sysfs shows the network devices of the namespace it was mounted in.
        mount(
            Some("sysfs"),
            "/sys",
            Some("sysfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .context("mount(\"sysfs\", \"/sys\")")?;
        // ANCHOR_END: sysfs
        lab.step(format!(
            "mount(\"sysfs\", \"/sys\", \"sysfs\") -> ls /sys/class/net: {}",
            names_in("/sys/class/net")?.join(" ")
        ));
        // ANCHOR: port
        let first = TcpListener::bind(("0.0.0.0", port));
        let second = TcpListener::bind(("0.0.0.0", port));
        // ANCHOR_END: port
        lab.step(format!(
            "bind(0.0.0.0:{port}) -> {}: the host's port is free here",
            if first.is_ok() { "0" } else { "error" }
        ));
        lab.step(format!(
            "bind(0.0.0.0:{port}) again -> {}: ports do count within a namespace",
            second.map_or_else(|e| labkit_errno(&e), |_| "0".into())
        ));
        drop(first);
        rtnl.set_up("lo")?;
        lab.step("RTM_SETLINK lo up  (ip link set lo up)");
        link_lines(lab, &rtnl)?;
        addr_lines(lab, &rtnl)?;
        let listener = TcpListener::bind("127.0.0.1:0").context("bind(127.0.0.1:0)")?;
        let to = listener.local_addr()?;
        let client = std::thread::scope(|s| {
            let server = s.spawn(|| serve_one(&listener));
            let answer = round_trip(to);
            let _ = server.join();
            answer
        })?;
        lab.step(format!(
            "TCP 127.0.0.1 -> 127.0.0.1: sent \"ping\", got \"{client}\""
        ));
        Ok(0)
    })?;
    drop(host);
    Ok(())
}

/// The errno name of an I/O error (`EADDRINUSE`).
fn labkit_errno(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(
        || e.to_string(),
        |n| nix::errno::Errno::from_raw(n).to_string(),
    )
}
