//! Route netlink, the kernel interface behind `ip`: links, addresses and routes of the network
//! namespace the socket was opened in, as messages: a request (`RTM_NEWLINK` and its
//! attributes) goes into a `socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)`, and the kernel answers
//! with the objects asked for or an `NLMSG_ERROR` whose error 0 is the acknowledgement. Built
//! and parsed with `netlink-packet-route`, sent and received with a plain blocking socket: no
//! runtime, no thread (the demos fork and `setns`, and `setns` into some namespaces refuses
//! multithreaded callers). [`Rtnl::trace`] keeps each request and answer decoded, so a lesson
//! can show the messages themselves.
//!
//! A netlink socket speaks for the network namespace its creator was in **when it was
//! created**: to configure a namespace, open an [`Rtnl`] from a process inside it.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result, bail};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;

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

/// A route netlink socket of the network namespace it was opened in.
#[derive(Debug)]
pub struct Rtnl {
    socket: Socket,
    sequence: Cell<u32>,
    trace: RefCell<Option<Vec<String>>>,
}

impl Rtnl {
    /// Open `socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)` in the current network namespace.
    pub fn open() -> Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)
            .map_err(errno)
            .context("socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)")?;
        socket
            .bind_auto()
            .map_err(errno)
            .context("bind(AF_NETLINK)")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(errno)
            .context("connect(AF_NETLINK, the kernel)")?;
        Ok(Rtnl {
            socket,
            sequence: Cell::new(0),
            trace: RefCell::new(None),
        })
    }

    /// From now on keep every request sent, and the kernel's answer to it, decoded (see
    /// [`describe_request`], [`describe_answer`]), until [`Rtnl::take_trace`].
    pub fn trace(&self) {
        *self.trace.borrow_mut() = Some(Vec::new());
    }

    /// The lines kept since [`Rtnl::trace`], and stop keeping them.
    pub fn take_trace(&self) -> Vec<String> {
        self.trace.borrow_mut().take().unwrap_or_default()
    }

    fn keep(&self, lines: Vec<String>) {
        if let Some(trace) = self.trace.borrow_mut().as_mut() {
            trace.extend(lines);
        }
    }

    /// Send one request and read the kernel's answer: the messages of a dump until
    /// `NLMSG_DONE`, or the `NLMSG_ERROR` that acknowledges (error 0) or refuses it.
    fn request(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let sequence = self.sequence.get() + 1;
        self.sequence.set(sequence);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        if !dump {
            self.keep(describe_request(&packet));
        }
        self.socket
            .send(&buf, 0)
            .map_err(errno)
            .with_context(|| format!("send({what})"))?;
        let mut answers = Vec::new();
        loop {
            let (bytes, _) = self
                .socket
                .recv_from_full()
                .map_err(errno)
                .with_context(|| format!("recv({what})"))?;
            let mut offset = 0;
            while offset < bytes.len() {
                let reply: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&bytes[offset..]).with_context(|| {
                        format!("{what}: a reply netlink-packet-route cannot parse")
                    })?;
                let length = reply.header.length as usize;
                if reply.header.sequence_number != sequence {
                    bail!(
                        "{what}: a reply to sequence {}",
                        reply.header.sequence_number
                    );
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => {
                        self.keep(vec![describe_answer(e.code.map(|c| c.get()), length)]);
                        return match e.code {
                            None => Ok(answers),
                            Some(code) => Err(anyhow::Error::new(Errno::from_raw(-code.get()))
                                .context(what.to_string())),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
                if length == 0 {
                    break;
                }
                offset += length;
            }
            if !dump {
                return Ok(answers);
            }
        }
    }

    /// A request that changes something: `NLM_F_REQUEST | NLM_F_ACK`, and more `flags`.
    fn change(&self, message: RouteNetlinkMessage, flags: u16, what: &str) -> Result<()> {
        self.request(message, NLM_F_REQUEST | NLM_F_ACK | flags, what)
            .map(drop)
    }

    /// Every link (`RTM_GETLINK` dump).
    pub fn links(&self) -> Result<Vec<Link>> {
        let answers = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
            "RTM_GETLINK",
        )?;
        let mut links: Vec<Link> = answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(to_link(l)),
                _ => None,
            })
            .collect();
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

    /// `ip link add A type veth peer name B`: an `RTM_NEWLINK` whose `IFLA_LINKINFO` says
    /// `veth` and carries the peer, itself a link message with its own `IFLA_IFNAME`.
    pub fn add_veth(&self, a: &str, b: &str) -> Result<()> {
        // ANCHOR: veth_message
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(b.to_string()));
        let mut veth = LinkMessage::default();
        veth.attributes.push(LinkAttribute::IfName(a.to_string()));
        veth.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        // ANCHOR_END: veth_message
        self.change(
            RouteNetlinkMessage::NewLink(veth),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("RTM_NEWLINK veth {a} peer {b}"),
        )
    }

    /// `ip link add NAME type bridge`.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        let mut bridge = LinkMessage::default();
        bridge
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        bridge
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.change(
            RouteNetlinkMessage::NewLink(bridge),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("RTM_NEWLINK bridge {name}"),
        )
    }

    /// `ip link del NAME` (for a veth, both ends go).
    pub fn delete(&self, name: &str) -> Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = self.index(name)?;
        self.change(
            RouteNetlinkMessage::DelLink(link),
            0,
            &format!("RTM_DELLINK {name}"),
        )
    }

    /// A change to the link called `name`: `RTM_SETLINK` with its index.
    fn set_link(&self, name: &str, edit: impl FnOnce(&mut LinkMessage), what: &str) -> Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = self.index(name)?;
        edit(&mut link);
        self.change(RouteNetlinkMessage::SetLink(link), 0, what)
    }

    /// `ip link set NAME up`.
    pub fn set_up(&self, name: &str) -> Result<()> {
        self.set_link(
            name,
            |l| {
                l.header.flags |= LinkFlags::Up;
                l.header.change_mask |= LinkFlags::Up;
            },
            &format!("RTM_SETLINK {name} up"),
        )
    }

    /// `ip link set NAME netns PID name NEW`: move a link into the network namespace of a
    /// process, renamed on the way.
    pub fn move_to(&self, name: &str, pid: i32, new_name: &str) -> Result<()> {
        let pid = u32::try_from(pid).context("pid")?;
        self.set_link(
            name,
            |l| {
                l.attributes.push(LinkAttribute::NetNsPid(pid));
                l.attributes
                    .push(LinkAttribute::IfName(new_name.to_string()));
            },
            &format!("RTM_SETLINK {name} netns {pid}"),
        )
    }

    /// `ip link set NAME master BRIDGE`.
    pub fn set_controller(&self, name: &str, bridge: &str) -> Result<()> {
        let controller = self.index(bridge)?;
        self.set_link(
            name,
            |l| l.attributes.push(LinkAttribute::Controller(controller)),
            &format!("RTM_SETLINK {name} master {bridge}"),
        )
    }

    /// `ip addr add IP/PREFIX dev NAME` (with the broadcast address `ip` would add).
    pub fn add_addr(&self, name: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut addr = AddressMessage::default();
        addr.header.family = AddressFamily::Inet;
        addr.header.index = self.index(name)?;
        addr.header.prefix_len = prefix;
        addr.attributes
            .push(AddressAttribute::Address(IpAddr::V4(ip)));
        addr.attributes
            .push(AddressAttribute::Local(IpAddr::V4(ip)));
        if prefix < 31 {
            let broadcast = Ipv4Addr::from(u32::MAX >> u32::from(prefix) | u32::from(ip));
            addr.attributes.push(AddressAttribute::Broadcast(broadcast));
        }
        self.change(
            RouteNetlinkMessage::NewAddress(addr),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("RTM_NEWADDR {ip}/{prefix} dev {name}"),
        )
    }

    /// Every address (`RTM_GETADDR` dump).
    pub fn addrs(&self) -> Result<Vec<Addr>> {
        let answers = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_REQUEST | NLM_F_DUMP,
            "RTM_GETADDR",
        )?;
        let mut addrs: Vec<Addr> = answers
            .iter()
            .filter_map(|m| {
                let RouteNetlinkMessage::NewAddress(m) = m else {
                    return None;
                };
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
        let mut route = main_table_route();
        route
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.change(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("RTM_NEWROUTE default via {gateway}"),
        )
    }

    /// The IPv4 routes of the main table (`RTM_GETROUTE` dump).
    pub fn routes(&self) -> Result<Vec<Route>> {
        let answers = self.request(
            RouteNetlinkMessage::GetRoute(main_table_route()),
            NLM_F_REQUEST | NLM_F_DUMP,
            "RTM_GETROUTE",
        )?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(m) => Some(m),
                _ => None,
            })
            .filter(|m| m.header.table == RouteHeader::RT_TABLE_MAIN)
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

/// An IPv4 unicast route of the main table, as `ip route add` makes it (protocol static, scope
/// universe).
fn main_table_route() -> RouteMessage {
    let mut route = RouteMessage::default();
    route.header.address_family = AddressFamily::Inet;
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::Static;
    route.header.scope = RouteScope::Universe;
    route.header.kind = RouteType::Unicast;
    route
}

/// A netlink-sys I/O error as the kernel's errno (for hints and exit codes).
fn errno(e: std::io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(code) => anyhow::Error::new(Errno::from_raw(code)),
        None => anyhow::Error::new(e),
    }
}

/// A request as the kernel gets it, decoded: the netlink header's type, flags and length, the
/// family header, then one line per attribute (nested ones indented), with the names of
/// `<linux/rtnetlink.h>` and `<linux/if_link.h>`.
pub fn describe_request(packet: &NetlinkMessage<RouteNetlinkMessage>) -> Vec<String> {
    let flags: Vec<&str> = [
        (NLM_F_REQUEST, "NLM_F_REQUEST"),
        (NLM_F_ACK, "NLM_F_ACK"),
        (NLM_F_EXCL, "NLM_F_EXCL"),
        (NLM_F_CREATE, "NLM_F_CREATE"),
    ]
    .into_iter()
    .filter(|(f, _)| packet.header.flags & f == *f)
    .map(|(_, n)| n)
    .collect();
    let NetlinkPayload::InnerMessage(message) = &packet.payload else {
        return vec![format!("{:?}", packet.payload)];
    };
    let kind = match message {
        RouteNetlinkMessage::NewLink(_) => "RTM_NEWLINK",
        RouteNetlinkMessage::SetLink(_) => "RTM_SETLINK",
        RouteNetlinkMessage::DelLink(_) => "RTM_DELLINK",
        RouteNetlinkMessage::NewAddress(_) => "RTM_NEWADDR",
        RouteNetlinkMessage::NewRoute(_) => "RTM_NEWROUTE",
        _ => "RTM_?",
    };
    let mut lines = vec![format!(
        "{kind}, {} bytes, flags {}",
        packet.header.length,
        flags.join(" | ")
    )];
    match message {
        RouteNetlinkMessage::NewLink(l)
        | RouteNetlinkMessage::SetLink(l)
        | RouteNetlinkMessage::DelLink(l) => describe_link(l, 1, &mut lines),
        other => lines.push(format!("  {other:?}")),
    }
    lines
}

fn describe_link(l: &LinkMessage, depth: usize, lines: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    lines.push(format!(
        "{pad}ifinfomsg: index {}, flags {:#x}, change {:#x}",
        l.header.index,
        l.header.flags.bits(),
        l.header.change_mask.bits()
    ));
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => lines.push(format!("{pad}IFLA_IFNAME \"{n}\"")),
            LinkAttribute::NetNsPid(p) => lines.push(format!("{pad}IFLA_NET_NS_PID {p}")),
            LinkAttribute::Controller(i) => lines.push(format!("{pad}IFLA_MASTER {i}")),
            LinkAttribute::LinkInfo(infos) => {
                lines.push(format!("{pad}IFLA_LINKINFO"));
                for info in infos {
                    match info {
                        LinkInfo::Kind(k) => lines.push(format!(
                            "{pad}  IFLA_INFO_KIND \"{}\"",
                            format!("{k:?}").to_lowercase()
                        )),
                        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) => {
                            lines.push(format!("{pad}  IFLA_INFO_DATA"));
                            lines.push(format!("{pad}    VETH_INFO_PEER"));
                            describe_link(peer, depth + 3, lines);
                        }
                        other => lines.push(format!("{pad}  {other:?}")),
                    }
                }
            }
            other => lines.push(format!("{pad}{other:?}")),
        }
    }
}

/// The kernel's answer to a request that asked for an acknowledgement: an `NLMSG_ERROR`
/// message whose error is 0 (done) or a negative errno.
pub fn describe_answer(code: Option<i32>, length: usize) -> String {
    match code {
        None => format!("NLMSG_ERROR, {length} bytes, error 0: the acknowledgement"),
        Some(code) => format!(
            "NLMSG_ERROR, {length} bytes, error {code} ({})",
            Errno::from_raw(-code)
        ),
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
