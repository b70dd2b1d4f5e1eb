//! bridge (NET-4).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};

use crate::rtnl::Rtnl;
use crate::{PORT, configure_in, in_lab, ip, link_lines, round_trip};
use anyhow::{Context, Result, bail};
use labkit::child::{clone_child, fork_child};
use labkit::narrate::table;
use labkit::{Narrator, bad_input};
use nix::sched::CloneFlags;

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

/// The bridge demo's subnet (TEST-NET-3, RFC 5737): the bridge is .1, namespace i is .(10+i).
pub const BRIDGE_NET: [u8; 3] = [203, 0, 113];

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
