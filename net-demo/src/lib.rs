//! Network namespaces: each has its own devices, addresses, routes, firewall and sockets. A veth
//! pair is a cable between two of them; a bridge joins many. Everything is configured over
//! route netlink ([`rtnl`]), each step printed with the `ip` command that would do the same.
//!
//! Every lesson runs in a **lab**: a throw-away network namespace that plays the host, so no
//! device is ever made in the real host's namespace, and every packet travels between
//! namespaces the demo made, to addresses it assigned (the documentation ranges TEST-NET-2 and
//! TEST-NET-3, which no real network uses). When the lab ends, its namespaces and every device
//! in them end too.
#![forbid(unsafe_code)]

pub mod rtnl;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use labkit::Narrator;
use labkit::child::{Reporter, fork_child};
use labkit::ns::NsFile;
use nix::sched::{CloneFlags, setns};
use rtnl::{Rtnl, describe_links};
/// The TCP port every demo server listens on (inside the demo's own namespaces).
pub const PORT: u16 = 7000;

fn ip(net: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], host)
}

/// Run `body` in a lab: a child in a new network namespace (and a new, private mount
/// namespace, for a sysfs of its own: [`labkit::lab::in_lab`]).
pub fn in_lab<F>(out: &mut Narrator, body: F) -> Result<()>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    labkit::lab::in_lab(
        out,
        CloneFlags::CLONE_NEWNET,
        ": a network namespace that plays the host",
        body,
    )?;
    Ok(())
}

/// Run `body` with a netlink socket inside the network namespace of `pid`, from a helper
/// process that joins it (as `ip -n NAME` or `nsenter --net` would).
fn configure_in<F>(up: &mut Reporter, pid: i32, body: F) -> Result<()>
where
    F: FnOnce(&mut Reporter, &Rtnl) -> Result<()>,
{
    let mut helper = fork_child(|h| {
        h.speaker("lab");
        // lab:begin net-configure-in
        let target = NsFile::open(Path::new(&format!("/proc/{pid}/ns/net")))?;
        setns(&target.file, CloneFlags::CLONE_NEWNET).context("setns(CLONE_NEWNET)")?;
        let rtnl = Rtnl::open()?;
        body(h, &rtnl)?;
        Ok(0)
        // lab:end net-configure-in
    })?;
    helper.forward(up)?;
    helper.wait()?;
    Ok(())
}

/// One TCP round trip: connect, send "ping", read the answer.
pub fn round_trip(to: SocketAddr) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .with_context(|| format!("connect({to})"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream
        .write_all(b"ping")
        .with_context(|| format!("write({to})"))?;
    let mut answer = [0u8; 16];
    let n = stream
        .read(&mut answer)
        .with_context(|| format!("read({to})"))?;
    Ok(String::from_utf8_lossy(&answer[..n]).into_owned())
}

/// Accept one connection (waiting at most 10 s), answer "pong"; returns the peer's address.
fn serve_one(listener: &TcpListener) -> Result<SocketAddr> {
    let mut fds = [nix::poll::PollFd::new(
        listener.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16))
        .context("poll(listener)")?;
    if ready == 0 {
        bail!("no connection came within 10 s");
    }
    let (mut stream, peer) = listener.accept().context("accept()")?;
    let mut buf = [0u8; 16];
    let _ = stream.read(&mut buf)?;
    stream.write_all(b"pong")?;
    Ok(peer)
}

fn link_lines(r: &mut Reporter, rtnl: &Rtnl) -> Result<()> {
    for line in describe_links(&rtnl.links()?) {
        r.say(line);
    }
    Ok(())
}

fn addr_lines(r: &mut Reporter, rtnl: &Rtnl) -> Result<()> {
    let links = rtnl.links()?;
    // IPv6 link-local addresses (fe80::/10) are made from random MAC addresses, and appear a
    // moment after a link comes up: left out, so every run shows the same.
    for a in rtnl.addrs()?.into_iter().filter(
        |a| !matches!(a.ip, std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80),
    ) {
        let name = links
            .iter()
            .find(|l| l.index == a.index)
            .map_or("?", |l| l.name.as_str());
        r.say(format!(
            "{name}: inet{} {}/{}",
            if a.ip.is_ipv6() { "6" } else { "" },
            a.ip,
            a.prefix
        ));
    }
    Ok(())
}

fn route_lines(r: &mut Reporter, rtnl: &Rtnl) -> Result<usize> {
    let links = rtnl.links()?;
    let routes = rtnl.routes()?;
    for route in &routes {
        let dev = route
            .device
            .and_then(|i| links.iter().find(|l| l.index == i))
            .map_or(String::new(), |l| format!(" dev {}", l.name));
        let dst = route
            .destination
            .map_or("default".to_string(), |(ip, p)| format!("{ip}/{p}"));
        let via = route.gateway.map_or(String::new(), |g| format!(" via {g}"));
        r.say(format!("{dst}{via}{dev}"));
    }
    Ok(routes.len())
}

mod fresh;
pub use fresh::fresh;
mod veth;
pub use veth::{VETH_NET, veth};
mod bridge;
pub use bridge::{BRIDGE_NET, bridge, diagram};
mod ip;
pub use ip::ip_show;
