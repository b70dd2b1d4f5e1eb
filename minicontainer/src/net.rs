//! `--net bridge`: a veth pair from the container to the host's `nslab-br0` bridge.
//!
//! The bridge is shared by every running container (so they can reach each other and the host
//! on its address, the gateway) and removed by whichever container leaves it without ports.
//! Its subnet is a /24 of 10.89.0.0/16 that overlaps none of the host's routes. The container
//! gets no default route and nothing is NATed: containers reach each other and the host's
//! address on the bridge, and nothing else.
//!
//! Every change to the bridge and its ports happens under `flock(/sys/class/net)`, so
//! containers started in parallel never race (one removing the bridge another just joined).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use net_demo::rtnl::{Link, Route, Rtnl};
use nix::fcntl::{Flock, FlockArg};

/// The host's bridge every `--net bridge` container is plugged into.
pub const BRIDGE: &str = "nslab-br0";
/// Host-side veth names: `nslab-v<N>`, where N is the last byte of the container's address.
const VETH_PREFIX: &str = "nslab-v";
const PREFIX_LEN: u8 = 24;

/// A container's place on the bridge, undone (veth deleted, bridge too when it is the last
/// one) when dropped.
#[derive(Debug)]
pub struct Lease {
    /// The host end of the veth pair (the other end is the container's `eth0`).
    pub veth: String,
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
}

/// Serialise bridge changes among all minicontainers on this host.
fn lock() -> Result<Flock<File>> {
    let dir = File::open("/sys/class/net").context("open(/sys/class/net)")?;
    Flock::lock(dir, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("flock(/sys/class/net, LOCK_EX)")
}

/// Whether a/len_a and b/len_b share addresses.
fn overlaps(a: Ipv4Addr, len_a: u8, b: Ipv4Addr, len_b: u8) -> bool {
    let len = len_a.min(len_b);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(a) & mask == u32::from(b) & mask
}

/// The first 10.89.N.0/24 that no route of the host covers or falls into (the default route
/// aside): the containers' subnet must not hide anything the host can reach.
pub fn choose_subnet(routes: &[Route]) -> Option<Ipv4Addr> {
    (0..=255u8)
        .map(|n| Ipv4Addr::new(10, 89, n, 0))
        .find(|net| {
            !routes.iter().any(|r| {
            matches!(r.destination, Some((d, len)) if len > 0 && overlaps(*net, PREFIX_LEN, d, len))
        })
        })
}

fn bridge_gateway(rtnl: &Rtnl, bridge: &Link) -> Result<Option<Ipv4Addr>> {
    Ok(rtnl.addrs()?.iter().find_map(|a| match a.ip {
        std::net::IpAddr::V4(ip) if a.index == bridge.index => Some(ip),
        _ => None,
    }))
}

/// Plug the network namespace of `pid` into the bridge: make the bridge if it is not there,
/// a veth pair `nslab-vN` / `eth0`, the host end on the bridge, the other end moved into the
/// container. `steps` receives each step for `--explain`. The container configures its `eth0`
/// itself with the lease's address.
/// The host end's name is written to `record` while the lock is held, so that `gc` can tell
/// the veths of running containers from those a killed one left.
pub fn attach(pid: i32, record: &Path, steps: &mut dyn FnMut(String)) -> Result<Lease> {
    let _lock = lock()?;
    let rtnl = Rtnl::open()?;
    let links = rtnl.links()?;
    let gateway = match links.iter().find(|l| l.name == BRIDGE) {
        Some(bridge) => {
            let gateway = bridge_gateway(&rtnl, bridge)?
                .with_context(|| format!("{BRIDGE} exists but has no IPv4 address"))?;
            steps(format!(
                "{BRIDGE} is already there (another container's), gateway {gateway}"
            ));
            gateway
        }
        None => {
            let subnet = choose_subnet(&rtnl.routes()?)
                .context("every 10.89.N.0/24 overlaps a route of the host")?;
            let gateway = Ipv4Addr::from(u32::from(subnet) + 1);
            rtnl.add_bridge(BRIDGE)?;
            let made = (|| {
                rtnl.add_addr(BRIDGE, gateway, PREFIX_LEN)?;
                rtnl.set_up(BRIDGE)
            })();
            if let Err(e) = made {
                let _ = rtnl.delete(BRIDGE);
                return Err(e);
            }
            steps(format!(
                "RTM_NEWLINK {BRIDGE} type bridge; RTM_NEWADDR {gateway}/{PREFIX_LEN} (a subnet none of the host's routes covers); up"
            ));
            gateway
        }
    };
    let base = u32::from(gateway) & (u32::MAX << (32 - PREFIX_LEN));
    let taken = |n: u32| links.iter().any(|l| l.name == format!("{VETH_PREFIX}{n}"));
    let n = (2..=254).find(|n| !taken(*n)).context(format!(
        "{BRIDGE} is full: 253 containers are plugged into it"
    ))?;
    let lease = Lease {
        veth: format!("{VETH_PREFIX}{n}"),
        address: Ipv4Addr::from(base + n),
        gateway,
        prefix: PREFIX_LEN,
    };
    // ANCHOR: attach
    let peer = format!("{}p", lease.veth);
    std::fs::write(record, &lease.veth).with_context(|| format!("write {}", record.display()))?;
    rtnl.add_veth(&lease.veth, &peer)?;
    // From here on, dropping the lease removes the veth (and the bridge if it is the last).
    rtnl.set_controller(&lease.veth, BRIDGE)?;
    rtnl.set_up(&lease.veth)?;
    rtnl.move_to(&peer, pid, "eth0")?;
    // ANCHOR_END: attach
    steps(format!(
        "RTM_NEWLINK {} type veth peer {peer}; {} master {BRIDGE} up; {peer} -> netns of pid {pid}, renamed eth0",
        lease.veth, lease.veth
    ));
    Ok(lease)
}

/// Delete `veth` if it is still there, then the bridge if no port is left on it.
fn release(veth: Option<&str>) -> Result<bool> {
    let _lock = lock()?;
    let rtnl = Rtnl::open()?;
    if let Some(veth) = veth {
        if rtnl.links()?.iter().any(|l| l.name == veth) {
            if let Err(e) = rtnl.delete(veth) {
                // Gone in between with the container's network namespace (the kernel takes a
                // veth pair away with either end's namespace, a moment after its last process):
                // that is the end asked for.
                if rtnl.links()?.iter().any(|l| l.name == veth) {
                    return Err(e);
                }
            }
        }
    }
    let links = rtnl.links()?;
    let Some(bridge) = links.iter().find(|l| l.name == BRIDGE) else {
        return Ok(false);
    };
    if links.iter().any(|l| l.controller == Some(bridge.index)) {
        return Ok(false);
    }
    rtnl.delete(BRIDGE)?;
    Ok(true)
}

impl Lease {
    /// Undo the lease; returns whether the bridge went too (this was its last port).
    pub fn release(self) -> Result<bool> {
        let veth = self.veth.clone();
        std::mem::forget(self);
        release(Some(&veth))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = release(Some(&self.veth));
    }
}

/// For `gc`: delete the veths that dead runs recorded (`dead`: a killed container's network
/// namespace, and its veth with it, may take a moment to go), unless a live record of the
/// store names the same veth (its number was given again), then the bridge if no port is left.
/// Nothing else is touched: no veth of a running container, whatever directory it keeps its
/// files in. Returns what it removed.
pub fn gc(store: &crate::store::Store, dead: &[String]) -> Result<Vec<String>> {
    let _lock = lock()?;
    // Asked of netlink, not /sys/class/net: sysfs shows the links of the network namespace it
    // was mounted in, which need not be this process's.
    if !Rtnl::open()?.links()?.iter().any(|l| l.name == BRIDGE) {
        return Ok(Vec::new());
    }
    // Read under the lock: a run records its veth before making it, with the lock held.
    let live: Vec<String> = store
        .ids()?
        .iter()
        .filter(|id| store.runner(id).is_some_and(|r| r.alive()))
        .filter_map(|id| store.read_file(id, "veth").ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    let rtnl = Rtnl::open()?;
    let mut removed = Vec::new();
    for link in rtnl.links()? {
        if dead.contains(&link.name) && !live.contains(&link.name) {
            // ENODEV: it went by itself meanwhile.
            if rtnl.delete(&link.name).is_ok() {
                removed.push(link.name);
            }
        }
    }
    drop(_lock);
    if release(None)? {
        removed.push(BRIDGE.to_string());
    }
    Ok(removed)
}

/// In the container: address `eth0` and bring it up. No default route on purpose: the subnet's
/// own route (which the address brings) reaches the other containers and the host; every other
/// address fails at once with ENETUNREACH, without a packet leaving the container.
pub fn configure_inside(rtnl: &Rtnl, address: Ipv4Addr, prefix: u8) -> Result<()> {
    rtnl.add_addr("eth0", address, prefix)?;
    rtnl.set_up("eth0")?;
    // The kernel turns the carrier on (and the bridge starts forwarding for the other end) a
    // moment later, in the background: wait, so the command starts with a working network.
    rtnl.wait_up(&["eth0"])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(d: [u8; 4], len: u8) -> Route {
        Route {
            destination: Some((Ipv4Addr::from(d), len)),
            gateway: None,
            device: None,
        }
    }

    #[test]
    fn the_subnet_avoids_every_route_but_the_default() {
        assert_eq!(choose_subnet(&[]), Some(Ipv4Addr::new(10, 89, 0, 0)));
        let default = Route {
            destination: None,
            gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
            device: None,
        };
        assert_eq!(
            choose_subnet(&[
                default,
                route([10, 89, 0, 0], 24),
                route([10, 89, 1, 7], 32)
            ]),
            Some(Ipv4Addr::new(10, 89, 2, 0))
        );
        // A wide route covering all of 10.89.0.0/16 leaves nothing.
        assert_eq!(choose_subnet(&[route([10, 0, 0, 0], 8)]), None);
        assert!(overlaps(
            Ipv4Addr::new(10, 89, 3, 0),
            24,
            Ipv4Addr::new(10, 89, 0, 0),
            16
        ));
        assert!(!overlaps(
            Ipv4Addr::new(10, 89, 3, 0),
            24,
            Ipv4Addr::new(10, 89, 4, 0),
            24
        ));
    }
}

/// `-p`: the forwarder, a process of its own (killed when the container's run drops it, or
/// when that run dies), forked before the container is made (later the run has a second
/// thread, and forks no more). Once told the container's address ([`Forwarder::to`]) it binds
/// each HOSTPORT on the host's loopback only (never another address: a published port is the
/// caller's, not the network's) and copies every connection both ways to the container's
/// CTRPORT. A userspace copy, as Docker's docker-proxy and rootlessport do: no firewall rule is
/// made, so nothing is left to remove.
#[derive(Debug)]
pub struct Forwarder(labkit::child::Child);

impl Forwarder {
    pub fn start(ports: Vec<(u16, u16)>) -> Result<Forwarder> {
        let child = labkit::child::fork_child(move |r| {
            let to: Ipv4Addr = r
                .recv()?
                .context("the run ended before the container had an address")?
                .parse()
                .context("the container's address")?;
            let listeners = ports
                .iter()
                .map(|&(host, inside)| {
                    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, host))
                        .with_context(|| format!("-p {host}:{inside}: bind(127.0.0.1:{host})"))
                        .map(|l| (l, inside))
                })
                .collect::<Result<Vec<_>>>()?;
            r.ready();
            let accepting: Vec<_> = listeners
                .into_iter()
                .map(|(listener, port)| {
                    std::thread::spawn(move || {
                        for conn in listener.incoming().flatten() {
                            std::thread::spawn(move || splice(conn, (to, port)));
                        }
                    })
                })
                .collect();
            for t in accepting {
                let _ = t.join();
            }
            Ok(0)
        })?;
        Ok(Forwarder(child))
    }

    /// Give it the container's address; returns once every port is bound (or why one is not).
    pub fn to(&mut self, address: Ipv4Addr) -> Result<()> {
        self.0.send(&address.to_string())?;
        self.0.wait_ready()?;
        Ok(())
    }
}

/// Copy `conn` to a new connection to `to` and back, each way until its end of file.
fn splice(conn: std::net::TcpStream, to: (Ipv4Addr, u16)) {
    use std::net::Shutdown;
    let Ok(upstream) = std::net::TcpStream::connect(to) else {
        return; // refused: the client sees its connection closed
    };
    let (Ok(mut conn_r), Ok(mut up_w)) = (conn.try_clone(), upstream.try_clone()) else {
        return;
    };
    let there = std::thread::spawn(move || {
        let _ = std::io::copy(&mut conn_r, &mut up_w);
        let _ = up_w.shutdown(Shutdown::Write);
    });
    let (mut up_r, mut conn_w) = (upstream, conn);
    let _ = std::io::copy(&mut up_r, &mut conn_w);
    let _ = conn_w.shutdown(Shutdown::Write);
    let _ = there.join();
}
