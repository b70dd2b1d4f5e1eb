//! veth (NET-2, NET-3, NET-5).

use std::net::{SocketAddr, SocketAddrV4, TcpListener};
use std::time::Duration;

use crate::rtnl::Rtnl;
use crate::{PORT, addr_lines, configure_in, in_lab, ip, link_lines, round_trip, serve_one};
use anyhow::{Context, Result, bail};
use labkit::Narrator;
use labkit::child::clone_child;
use labkit::rootless::Privilege;
use nix::sched::CloneFlags;

/// The veth demo's subnet (TEST-NET-2, RFC 5737): the lab is .1, the container .2.
pub const VETH_NET: [u8; 3] = [198, 51, 100];

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
        rtnl.trace(); // keep the message and the kernel's answer, to show them
        // ANCHOR: wire
        rtnl.add_veth(hostside, peer)?;
        // ANCHOR_END: wire
        lab.step(format!(
            "RTM_NEWLINK  (ip link add {hostside} type veth peer name {peer})"
        ));
        // The request as the kernel got it, decoded, then its answer.
        let mut trace = rtnl.take_trace();
        let answer = trace.pop().unwrap_or_default();
        for (i, line) in trace.iter().enumerate() {
            lab.say(if i == 0 {
                format!("sent:   {line}")
            } else {
                format!("        {line}")
            });
        }
        lab.say(format!("kernel: {answer}"));
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
            // lab:begin net-wire-eth0
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
        labkit::wait::until(Duration::from_secs(10), || {
            Ok(!rtnl.links()?.iter().any(|l| l.name == hostside))
        })?;
        lab.step(
            "the container exited: its namespace went, with its eth0, and a veth pair ends as one",
        );
        link_lines(lab, &rtnl)?;
        Ok(0)
    })
}
