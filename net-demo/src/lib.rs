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
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use labkit::child::{Reporter, clone_child, fork_child};
use labkit::narrate::table;
use labkit::ns::{NsFile, NsKind};
use labkit::rootless::Privilege;
use labkit::{Narrator, bad_input};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns};
use rtnl::{Rtnl, describe_links};

/// The veth demo's subnet (TEST-NET-2, RFC 5737): the lab is .1, the container .2.
pub const VETH_NET: [u8; 3] = [198, 51, 100];
/// The bridge demo's subnet (TEST-NET-3, RFC 5737): the bridge is .1, namespace i is .(10+i).
pub const BRIDGE_NET: [u8; 3] = [203, 0, 113];
/// The TCP port every demo server listens on (inside the demo's own namespaces).
pub const PORT: u16 = 7000;

fn ip(net: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], host)
}

/// Run `body` in a lab: a child in a new network namespace (and a new, private mount
/// namespace, for a sysfs of its own).
pub fn in_lab<F>(out: &mut Narrator, body: F) -> Result<()>
where
    F: FnOnce(&mut Reporter) -> Result<i32>,
{
    let lab = clone_child(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS, |r| {
        r.speaker("lab");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("mount(\"/\", MS_REC | MS_PRIVATE)")?;
        body(r)
    })?;
    out.step("host", format!("clone(CLONE_NEWNET | CLONE_NEWNS | SIGCHLD) -> lab pid {}: a network namespace that plays the host", lab.pid()));
    lab.finish(out, "lab")?;
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
        // lab:begin net-configure-in tests=a_veth_pair_carries_packets
        // TODO(lab): join the network namespace of `pid`, then run `body` with netlink there.
        // TODO(lab): This helper process joins the namespace; `body` gets an Rtnl opened in it.
        // TODO(lab): A netlink socket talks to the namespace it was opened in: open it after the
        // TODO(lab): setns(2), as `nsenter --net --target PID ip ...` would.
        // lab:hint NsFile::open(Path::new(&format!("/proc/{pid}/ns/net")))?, then
        // lab:hint setns(&target.file, CloneFlags::CLONE_NEWNET), Rtnl::open()?,
        // lab:hint body(h, &rtnl)? and Ok(0).
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

/// Serve "pong" forever in a child process (ends with its parent).
fn echo_server(bind: SocketAddr) -> Result<labkit::child::Child> {
    let mut server = fork_child(move |s| {
        let listener = TcpListener::bind(bind).with_context(|| format!("bind({bind})"))?;
        s.ready();
        loop {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 16];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"pong");
            }
        }
    })?;
    server.wait_ready()?;
    Ok(server)
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

fn names_in(dir: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("readdir({dir})"))?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

// ---------------------------------------------------------------------------------------------
// fresh (NET-1)

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

// ---------------------------------------------------------------------------------------------
// veth (NET-2, NET-3, NET-5)

/// `veth`: the classic container wiring. The child waits on a pipe while the parent makes a
/// veth pair, moves one end into the child's namespace as `eth0`, and configures both ends;
/// then the child proves the cable works with a TCP round trip to the parent's end.
pub fn veth(out: &mut Narrator, privilege: Privilege) -> Result<()> {
    if privilege.is_rootless() {
        // What needs real root: a device in the host's own network namespace.
        let host = Rtnl::open()?;
        let refused = host.add_veth("nslab-probe0", "nslab-probe1");
        out.step(
            "host",
            format!(
                "RTM_NEWLINK veth in the host's network namespace -> {}",
                match &refused {
                    Ok(()) => "created?!".to_string(),
                    Err(e) =>
                        labkit::errors::errno_of(e).map_or(format!("{e:#}"), |e| e.to_string()),
                }
            ),
        );
        out.say(
            "host",
            "a link to the real host needs CAP_NET_ADMIN in the initial user namespace: real root",
        );
        if refused.is_ok() {
            bail!("a rootless process created a device in the host's network namespace");
        }
    }
    in_lab(out, |lab| {
        let hostside = "nslab-h0";
        let peer = "nslab-c0";
        let (lab_ip, container_ip) = (ip(VETH_NET, 1), ip(VETH_NET, 2));
        let mut container = clone_child(CloneFlags::CLONE_NEWNET, |c| {
            c.speaker("container");
            let rtnl = Rtnl::open()?;
            c.step("RTM_GETLINK (ip link): only lo");
            link_lines(c, &rtnl)?;
            // ANCHOR: wait
            c.step("read(pipe): wait until the parent has wired the network");
            c.ready_and_wait()?;
            // ANCHOR_END: wait
            rtnl.wait_up(&["eth0"])?;
            c.step("RTM_GETLINK, RTM_GETADDR (ip addr)");
            link_lines(c, &rtnl)?;
            addr_lines(c, &rtnl)?;
            let answer = round_trip(SocketAddr::V4(SocketAddrV4::new(lab_ip, PORT)))?;
            c.step(format!(
                "TCP connect({lab_ip}:{PORT}), sent \"ping\", got \"{answer}\""
            ));
            Ok(0)
        })?;
        let pid = container.pid().as_raw();
        lab.step(format!(
            "clone(CLONE_NEWNET | SIGCHLD) -> container pid {pid}"
        ));
        container.forward_until_ready(lab)?;
        lab.speaker("lab");

        let rtnl = Rtnl::open()?;
        // ANCHOR: wire
        rtnl.add_veth(hostside, peer)?;
        // ANCHOR_END: wire
        lab.step(format!(
            "RTM_NEWLINK  (ip link add {hostside} type veth peer name {peer})"
        ));
        link_lines(lab, &rtnl)?;
        // ANCHOR: move
        rtnl.move_to(peer, pid, "eth0")?;
        // ANCHOR_END: move
        lab.step(format!(
            "RTM_SETLINK  (ip link set {peer} netns {pid} name eth0): {peer} leaves this namespace"
        ));
        link_lines(lab, &rtnl)?;
        rtnl.add_addr(hostside, lab_ip, 24)?;
        rtnl.set_up(hostside)?;
        lab.step(format!("RTM_NEWADDR, RTM_SETLINK  (ip addr add {lab_ip}/24 dev {hostside}; ip link set {hostside} up)"));
        configure_in(lab, pid, |h, r| {
            // lab:begin net-wire-eth0 tests=a_veth_pair_carries_packets
            // TODO(lab): wire the container's eth0: lo up, eth0's address, eth0 up.
            // TODO(lab): The address is container_ip/24; `r` talks to the container's namespace.
            // lab:hint r.set_up("lo")?; r.add_addr("eth0", container_ip, 24)?; r.set_up("eth0")?.
            // lab:hint Each call is one RTM_SETLINK or RTM_NEWADDR message; the transcript
            // lab:hint lists lo UP too.
            r.set_up("lo")?;
            r.add_addr("eth0", container_ip, 24)?;
            r.set_up("eth0")?;
            // lab:end net-wire-eth0
            h.step(format!("setns(/proc/{pid}/ns/net): ip link set lo up; ip addr add {container_ip}/24 dev eth0; ip link set eth0 up"));
            Ok(())
        })?;
        let listener =
            TcpListener::bind((lab_ip, PORT)).with_context(|| format!("bind({lab_ip}:{PORT})"))?;
        lab.step(format!(
            "listen({lab_ip}:{PORT}); write(pipe): the container may go on"
        ));
        container.release()?;
        let peer_addr = serve_one(&listener)?;
        lab.step(format!(
            "accept() -> a connection from {}, answered \"pong\"",
            peer_addr.ip()
        ));
        container.forward(lab)?;
        container.wait()?;
        lab.speaker("lab");
        // The kernel dismantles a namespace in the background once its last process is gone:
        // wait (at most 10 s) for the state change, the veth end disappearing here.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rtnl.links()?.iter().any(|l| l.name == hostside)
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        lab.step(
            "the container exited: its namespace went, with its eth0, and a veth pair ends as one",
        );
        link_lines(lab, &rtnl)?;
        Ok(0)
    })
}

// ---------------------------------------------------------------------------------------------
// bridge (NET-4)

/// `bridge --count N`: N namespaces on one bridge in the lab, each pair exchanging packets.
pub fn bridge(out: &mut Narrator, count: usize) -> Result<()> {
    if !(2..=8).contains(&count) {
        return Err(bad_input(format!(
            "--count {count}: choose 2 to 8 namespaces"
        )));
    }
    in_lab(out, |lab| {
        let rtnl = Rtnl::open()?;
        let gateway = ip(BRIDGE_NET, 1);
        // ANCHOR: bridge
        rtnl.add_bridge("nslab-br0")?;
        rtnl.add_addr("nslab-br0", gateway, 24)?;
        rtnl.set_up("nslab-br0")?;
        // ANCHOR_END: bridge
        lab.step(format!("ip link add nslab-br0 type bridge; ip addr add {gateway}/24 dev nslab-br0; ip link set nslab-br0 up"));
        let mut members = Vec::new();
        for i in 1..=count {
            let address = ip(BRIDGE_NET, 10 + i as u8);
            let mut member = clone_child(CloneFlags::CLONE_NEWNET, |c| {
                c.speaker(format!("ns{i}"));
                c.ready_and_wait()?;
                let _server = echo_server(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::UNSPECIFIED,
                    PORT,
                )))?;
                c.ready();
                // Commands from the lab: "connect IP" -> one round trip, answered as data.
                while let Some(command) = c.recv()? {
                    let Some(target) = command.strip_prefix("connect ") else {
                        break;
                    };
                    let to: Ipv4Addr = target.parse().context("target address")?;
                    let result = round_trip(SocketAddr::V4(SocketAddrV4::new(to, PORT)));
                    c.data(result.unwrap_or_else(|e| format!("failed: {}", e.root_cause())));
                    c.ready();
                }
                Ok(0)
            })?;
            let pid = member.pid().as_raw();
            member.forward_until_ready(lab)?; // it waits to be wired
            let (h, p) = (format!("nslab-b{i}h"), format!("nslab-b{i}c"));
            // ANCHOR: attach
            rtnl.add_veth(&h, &p)?;
            rtnl.set_controller(&h, "nslab-br0")?;
            rtnl.set_up(&h)?;
            rtnl.move_to(&p, pid, "eth0")?;
            // ANCHOR_END: attach
            lab.step(format!("clone(CLONE_NEWNET) -> ns{i} pid {pid}; ip link add {h} type veth peer name {p}; ip link set {h} master nslab-br0 up; ip link set {p} netns {pid} name eth0"));
            configure_in(lab, pid, |hh, r| {
                r.set_up("lo")?;
                r.add_addr("eth0", address, 24)?;
                r.set_up("eth0")?;
                r.add_default_route(gateway)?;
                hh.say(format!("in ns{i}: ip addr add {address}/24 dev eth0; ip link set eth0 up; ip route add default via {gateway}"));
                Ok(())
            })?;
            member.release()?;
            member.forward_until_ready(lab)?;
            members.push((i, address, member));
        }
        lab.speaker("lab");
        let _server = echo_server(SocketAddr::V4(SocketAddrV4::new(gateway, PORT)))?;
        let ports: Vec<String> = (1..=count).map(|i| format!("nslab-b{i}h")).collect();
        let mut names: Vec<&str> = ports.iter().map(String::as_str).collect();
        names.push("nslab-br0");
        rtnl.wait_up(&names)?;
        lab.step(format!(
            "every namespace (and the lab, on {gateway}) answers TCP port {PORT} with \"pong\""
        ));
        link_lines(lab, &rtnl)?;

        // Every namespace connects to every other one and to the lab.
        let targets: Vec<(String, Ipv4Addr)> = std::iter::once(("lab".to_string(), gateway))
            .chain(members.iter().map(|(i, a, _)| (format!("ns{i}"), *a)))
            .collect();
        let mut rows = vec![
            std::iter::once("from \\ to".to_string())
                .chain(targets.iter().map(|(n, _)| n.clone()))
                .collect::<Vec<_>>(),
        ];
        let mut failures = 0;
        for (i, address, member) in &mut members {
            let mut row = vec![format!("ns{i}")];
            for (name, target) in &targets {
                if target == address {
                    row.push("-".into());
                    continue;
                }
                member.send(&format!("connect {target}"))?;
                let answer = member.forward_until_ready(lab)?;
                let cell = answer.first().cloned().unwrap_or_default();
                if cell != "pong" {
                    failures += 1;
                }
                row.push(if cell == "pong" {
                    "pong".into()
                } else {
                    format!("{name}: {cell}")
                });
            }
            rows.push(row);
        }
        lab.speaker("lab");
        lab.step(format!(
            "TCP round trips, each namespace to every other and to the lab: {} of {} answered",
            (count * count) - failures,
            count * count
        ));
        for line in table(&rows).lines() {
            lab.say(line);
        }
        for line in diagram(count).lines() {
            lab.say(line);
        }
        for (_, _, mut member) in members {
            drop(member.send("quit"));
            member.forward(lab)?;
            member.wait()?;
        }
        if failures > 0 {
            bail!("{failures} round trips failed");
        }
        Ok(0)
    })
}

/// The topology as a picture.
pub fn diagram(count: usize) -> String {
    let gateway = ip(BRIDGE_NET, 1);
    let mut s = String::new();
    let width = count * 14;
    s.push_str(&format!(
        "{:^width$}\n",
        format!("lab namespace: nslab-br0 {gateway}/24")
    ));
    s.push_str(&format!("{}\n", "=".repeat(width)));
    let cells = |f: &dyn Fn(usize) -> String| {
        (1..=count)
            .map(|i| format!("{:^14}", f(i)))
            .collect::<String>()
    };
    s.push_str(&format!("{}\n", cells(&|i| format!("nslab-b{i}h"))));
    s.push_str(&format!("{}\n", cells(&|_| "|".to_string())));
    s.push_str(&format!("{}\n", cells(&|_| "eth0".to_string())));
    s.push_str(&format!("{}\n", cells(&|i| format!("ns{i} .{}", 10 + i))));
    s.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

// ---------------------------------------------------------------------------------------------
// ip (listing)

/// `ip [--pid PID | --netns FILE]`: devices, addresses and routes of a network namespace, read
/// over netlink from a helper that joins it.
pub fn ip_show(out: &mut Narrator, target: Option<&Path>) -> Result<()> {
    let file = target.map(NsFile::open).transpose()?;
    if let Some(f) = &file {
        if f.kind != NsKind::Net {
            return Err(bad_input(format!(
                "{} is a {} namespace, not a network namespace",
                f.path.display(),
                f.kind
            )));
        }
    }
    let child = fork_child(|c| {
        c.speaker("ip");
        if let Some(f) = &file {
            setns(&f.file, CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("setns({}, CLONE_NEWNET)", f.path.display()))?;
            c.step(format!(
                "setns({}, CLONE_NEWNET) -> net:[{}]",
                f.path.display(),
                f.inode
            ));
        }
        let rtnl = Rtnl::open()?;
        c.step("RTM_GETLINK (ip link)");
        link_lines(c, &rtnl)?;
        c.step("RTM_GETADDR (ip addr)");
        addr_lines(c, &rtnl)?;
        c.step("RTM_GETROUTE (ip route)");
        if route_lines(c, &rtnl)? == 0 {
            c.say("(no routes)");
        }
        Ok(0)
    })?;
    out.step("host", format!("fork() -> pid {}", child.pid()));
    child.finish(out, "ip")?;
    Ok(())
}
