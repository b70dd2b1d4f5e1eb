//! Route netlink, the kernel interface behind `ip`: links, addresses and routes of the network
//! namespace the socket was opened in. A thin synchronous face on `rtnetlink`, driven by a
//! single-threaded tokio runtime (no extra threads: the demos fork and `setns`, and
//! `setns` into some namespaces refuses multithreaded callers).
//!
//! A netlink socket speaks for the network namespace its creator was in **when it was
//! created**: to configure a namespace, open an [`Rtnl`] from a process inside it.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};
use futures::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// One network device, as `ip link` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `veth`, `bridge`, ... (none for `lo` and physical devices)
    pub kind: Option<String>,
    /// IFF_UP: administratively up.
    pub up: bool,
    /// The operational state (`UP`, `DOWN`, `UNKNOWN`, `LOWERLAYERDOWN`).
    pub state: String,
    /// The bridge it is attached to, by index.
    pub controller: Option<u32>,
}

/// An address on a device (`ip addr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
}

/// An IPv4 route of the main table (`ip route`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Option<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    pub device: Option<u32>,
}

/// A route netlink socket in the caller's current network namespace.
#[derive(Debug)]
pub struct Rtnl {
    runtime: tokio::runtime::Runtime,
    handle: Handle,
}

/// Turn an rtnetlink error into the kernel's errno (for hints and exit codes), with context.
fn nl(err: rtnetlink::Error, what: &str) -> anyhow::Error {
    match &err {
        rtnetlink::Error::NetlinkError(msg) => match msg.code {
            Some(code) => {
                anyhow::Error::new(Errno::from_raw(-code.get())).context(what.to_string())
            }
            None => anyhow::anyhow!("{what}: {err}"),
        },
        _ => anyhow::anyhow!("{what}: {err}"),
    }
}

impl Rtnl {
    /// Open `socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)` in the current network namespace.
    pub fn open() -> Result<Rtnl> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("tokio runtime")?;
        let handle = runtime.block_on(async {
            let (connection, handle, _) =
                rtnetlink::new_connection().context("socket(AF_NETLINK, NETLINK_ROUTE)")?;
            tokio::spawn(connection);
            anyhow::Ok(handle)
        })?;
        Ok(Rtnl { runtime, handle })
    }

    fn run<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Every link (`RTM_GETLINK` dump).
    pub fn links(&self) -> Result<Vec<Link>> {
        let messages: Vec<LinkMessage> = self
            .run(self.handle.link().get().execute().try_collect())
            .map_err(|e| nl(e, "RTM_GETLINK"))?;
        let mut links: Vec<Link> = messages.iter().map(to_link).collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    /// Wait (at most 10 s) until every link in `names` is operationally UP: the kernel sets the
    /// operational state (carrier, bridge ports) in the background, a moment after `ip link
    /// set up`. Returns whether they all got there.
    pub fn wait_up(&self, names: &[&str]) -> Result<bool> {
        labkit::wait::until(std::time::Duration::from_secs(10), || {
            let links = self.links()?;
            Ok(names
                .iter()
                .all(|n| links.iter().any(|l| l.name == *n && l.state == "UP")))
        })
    }

    /// The index of the link called `name`.
    pub fn index(&self, name: &str) -> Result<u32> {
        self.links()?
            .into_iter()
            .find(|l| l.name == name)
            .map(|l| l.index)
            .with_context(|| format!("no link {name}"))
    }

    /// `ip link add A type veth peer name B`.
    pub fn add_veth(&self, a: &str, b: &str) -> Result<()> {
        let msg = LinkVeth::new(a, b).build();
        self.run(self.handle.link().add(msg).execute())
            .map_err(|e| nl(e, &format!("RTM_NEWLINK veth {a} peer {b}")))
    }

    /// `ip link add NAME type bridge`.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        let msg = LinkBridge::new(name).build();
        self.run(self.handle.link().add(msg).execute())
            .map_err(|e| nl(e, &format!("RTM_NEWLINK bridge {name}")))
    }

    /// `ip link del NAME` (for a veth, both ends go).
    pub fn delete(&self, name: &str) -> Result<()> {
        let index = self.index(name)?;
        self.run(self.handle.link().del(index).execute())
            .map_err(|e| nl(e, &format!("RTM_DELLINK {name}")))
    }

    /// `ip link set NAME up`.
    pub fn set_up(&self, name: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(self.index(name)?).up().build();
        self.run(self.handle.link().set(msg).execute())
            .map_err(|e| nl(e, &format!("RTM_SETLINK {name} up")))
    }

    /// `ip link set NAME netns PID name NEW`: move a link into the network namespace of a
    /// process, renamed on the way.
    pub fn move_to(&self, name: &str, pid: i32, new_name: &str) -> Result<()> {
        let pid = u32::try_from(pid).context("pid")?;
        let msg = LinkUnspec::new_with_index(self.index(name)?)
            .setns_by_pid(pid)
            .name(new_name.to_string())
            .build();
        self.run(self.handle.link().set(msg).execute())
            .map_err(|e| nl(e, &format!("RTM_SETLINK {name} netns {pid}")))
    }

    /// `ip link set NAME master BRIDGE`.
    pub fn set_controller(&self, name: &str, bridge: &str) -> Result<()> {
        let msg = LinkUnspec::new_with_index(self.index(name)?)
            .controller(self.index(bridge)?)
            .build();
        self.run(self.handle.link().set(msg).execute())
            .map_err(|e| nl(e, &format!("RTM_SETLINK {name} master {bridge}")))
    }

    /// `ip addr add IP/PREFIX dev NAME`.
    pub fn add_addr(&self, name: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let index = self.index(name)?;
        self.run(
            self.handle
                .address()
                .add(index, IpAddr::V4(ip), prefix)
                .execute(),
        )
        .map_err(|e| nl(e, &format!("RTM_NEWADDR {ip}/{prefix} dev {name}")))
    }

    /// Every address (`RTM_GETADDR` dump).
    pub fn addrs(&self) -> Result<Vec<Addr>> {
        let messages: Vec<_> = self
            .run(self.handle.address().get().execute().try_collect())
            .map_err(|e| nl(e, "RTM_GETADDR"))?;
        let mut addrs: Vec<Addr> = messages
            .iter()
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let ip = ip.or_else(|| {
                    m.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                })?;
                Some(Addr {
                    index: m.header.index,
                    ip,
                    prefix: m.header.prefix_len,
                })
            })
            .collect();
        addrs.sort_by_key(|a| (a.index, a.ip.is_ipv6()));
        Ok(addrs)
    }

    /// `ip route add default via GATEWAY`.
    pub fn add_default_route(&self, gateway: Ipv4Addr) -> Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .build();
        self.run(self.handle.route().add(msg).execute())
            .map_err(|e| nl(e, &format!("RTM_NEWROUTE default via {gateway}")))
    }

    /// The IPv4 routes of the main table (`RTM_GETROUTE` dump).
    pub fn routes(&self) -> Result<Vec<Route>> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let messages: Vec<_> = self
            .run(self.handle.route().get(query).execute().try_collect())
            .map_err(|e| nl(e, "RTM_GETROUTE"))?;
        Ok(messages
            .iter()
            .filter(|m| m.header.table == 254) // RT_TABLE_MAIN
            .map(|m| {
                let mut route = Route {
                    destination: None,
                    gateway: None,
                    device: None,
                };
                for a in &m.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                            route.destination = Some((*ip, m.header.destination_prefix_length))
                        }
                        RouteAttribute::Gateway(RouteAddress::Inet(ip)) => {
                            route.gateway = Some(*ip)
                        }
                        RouteAttribute::Oif(index) => route.device = Some(*index),
                        _ => {}
                    }
                }
                route
            })
            .collect())
    }
}

fn to_link(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        up: m.header.flags.contains(LinkFlags::Up),
        state: "UNKNOWN".into(),
        controller: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::OperState(s) => {
                link.state = match s {
                    State::Up => "UP",
                    State::Down => "DOWN",
                    State::LowerLayerDown => "LOWERLAYERDOWN",
                    State::Dormant => "DORMANT",
                    _ => "UNKNOWN",
                }
                .into()
            }
            LinkAttribute::Controller(i) => link.controller = Some(*i),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(match kind {
                            InfoKind::Veth => "veth".to_string(),
                            InfoKind::Bridge => "bridge".to_string(),
                            other => format!("{other:?}").to_lowercase(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// `ip -brief link`-style lines: name, kind, UP/DOWN, state, master.
pub fn describe_links(links: &[Link]) -> Vec<String> {
    links
        .iter()
        .map(|l| {
            let master = l
                .controller
                .and_then(|c| links.iter().find(|o| o.index == c))
                .map(|b| format!(" master {}", b.name));
            format!(
                "{}: {}{} <{}> state {}{}",
                l.index,
                l.name,
                l.kind
                    .as_ref()
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default(),
                if l.up { "UP" } else { "DOWN" },
                l.state,
                master.unwrap_or_default()
            )
        })
        .collect()
}
