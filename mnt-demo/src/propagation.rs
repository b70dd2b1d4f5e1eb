//! propagation (MNT-3 to MNT-8).

use std::fs;

use crate::{LAB, bind, in_lab, mount_at, mount_tmpfs, mountinfo, propagation};
use anyhow::{Context, Result, ensure};
use labkit::Narrator;
use labkit::child::Reporter;
use labkit::narrate::table;
use nix::mount::{MsFlags, mount};

fn set_propagation(path: &str, flag: MsFlags) -> Result<()> {
    mount(None::<&str>, path, None::<&str>, flag, None::<&str>)
        .with_context(|| format!("mount(\"{path}\", {flag:?})"))
}

/// One mount point the propagation lab watches.
struct Watched {
    label: &'static str,
    path: String,
}

/// `propagation`: build shared, slave, private and unbindable mounts, mount something under
/// each in turn, and print where each mount appeared.
pub fn propagation_lab(out: &mut Narrator) -> Result<()> {
    in_lab(out, |lab| {
        let p = |name: &str| format!("{LAB}/{name}");
        let watched: Vec<Watched> = ["a", "b", "c", "m", "s", "t", "s2", "p", "q"]
            .iter()
            .map(|l| Watched {
                label: l,
                path: p(l),
            })
            .collect();

        // ANCHOR: setup
        // shared: a is a tmpfs made shared; b and c are bind mounts of it, so peers of a.
        mount_tmpfs(&p("a"))?;
        set_propagation(&p("a"), MsFlags::MS_SHARED)?;
        for peer in ["b", "c"] {
            fs::create_dir_all(p(peer))?;
            bind(&p("a"), &p(peer))?;
        }
        // slave: m is shared; s is a bind of m turned into a slave of m; t is a bind of s.
        mount_tmpfs(&p("m"))?;
        set_propagation(&p("m"), MsFlags::MS_SHARED)?;
        fs::create_dir_all(p("s"))?;
        bind(&p("m"), &p("s"))?;
        set_propagation(&p("s"), MsFlags::MS_SLAVE)?;
        fs::create_dir_all(p("t"))?;
        bind(&p("s"), &p("t"))?;
        // private: p is private (the lab's default); q is a bind of it.
        mount_tmpfs(&p("p"))?;
        set_propagation(&p("p"), MsFlags::MS_PRIVATE)?;
        fs::create_dir_all(p("q"))?;
        bind(&p("p"), &p("q"))?;
        // unbindable: u cannot be the source of a bind mount.
        mount_tmpfs(&p("u"))?;
        set_propagation(&p("u"), MsFlags::MS_UNBINDABLE)?;
        fs::create_dir_all(p("u2"))?;
        let refused = bind(&p("u"), &p("u2"));
        // ANCHOR_END: setup
        lab.step("a: tmpfs, MS_SHARED; b, c: MS_BIND of a");
        lab.step("m: tmpfs, MS_SHARED; s: MS_BIND of m, then MS_SLAVE; t: MS_BIND of s");
        lab.step("p: tmpfs, MS_PRIVATE; q: MS_BIND of p");
        lab.step("u: tmpfs, MS_UNBINDABLE");
        lab.step(format!(
            "mount(\"{}\", \"{}\", MS_BIND) -> {}",
            p("u"),
            p("u2"),
            match refused {
                Ok(()) => "0".to_string(),
                Err(e) => e.to_string(),
            }
        ));
        ensure!(refused.is_err(), "an unbindable mount was bound");

        print_fields(lab, &watched, "propagation, from /proc/self/mountinfo")?;

        // Each event: a tmpfs mounted at <where>/<name>; the directory exists in every mount of
        // that filesystem, so a propagated copy can appear at the same place in the others.
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut events = vec![
            ("a", "e1", "a peer receives it (MNT-4)"),
            ("b", "e2", "and the other way round (MNT-4)"),
            ("m", "e3", "master to slaves (MNT-5)"),
            ("s", "e4", "never slave to master (MNT-5)"),
            ("p", "e5", "private: nothing (MNT-6)"),
            ("q", "e6", "private: nothing (MNT-6)"),
        ];
        run_events(lab, &watched, &events, &mut rows)?;

        // ANCHOR: shared_and_slave
        // A slave made shared stays a slave of its master and starts its own peer group.
        set_propagation(&p("s"), MsFlags::MS_SHARED)?;
        fs::create_dir_all(p("s2"))?;
        bind(&p("s"), &p("s2"))?;
        // ANCHOR_END: shared_and_slave
        lab.step("s: MS_SHARED (it was a slave); s2: MS_BIND of s");
        print_fields(lab, &watched[3..7], "propagation now")?;
        events = vec![
            ("s", "e7", "s's own peer s2, not m (MNT-8)"),
            ("m", "e8", "still a slave of m (MNT-8)"),
        ];
        run_events(lab, &watched, &events, &mut rows)?;

        let mut header = vec!["event".to_string()];
        header.extend(watched.iter().map(|w| w.label.to_string()));
        header.push(String::new());
        let mut all = vec![header];
        all.extend(rows);
        lab.say("where each mount appeared (x: visible there, .: not, blank: no such mount yet)");
        for line in table(&all).lines() {
            lab.say(line);
        }
        Ok(0)
    })
}

fn print_fields(lab: &mut Reporter, watched: &[Watched], title: &str) -> Result<()> {
    let table_now = mountinfo(None)?;
    let mut rows = vec![vec!["mount".to_string(), title.to_string()]];
    for w in watched {
        if let Some(m) = mount_at(&table_now, &w.path) {
            rows.push(vec![w.label.to_string(), propagation(m)]);
        }
    }
    for line in table(&rows).lines() {
        lab.say(line);
    }
    Ok(())
}

fn run_events(
    lab: &mut Reporter,
    watched: &[Watched],
    events: &[(&str, &str, &str)],
    rows: &mut Vec<Vec<String>>,
) -> Result<()> {
    for (at, name, lesson) in events {
        let source = &watched
            .iter()
            .find(|w| w.label == *at)
            .context("watched mount")?
            .path;
        // The directory is created through one mount; the others show the same filesystem.
        fs::create_dir_all(format!("{source}/{name}"))?;
        mount(
            Some("tmpfs"),
            format!("{source}/{name}").as_str(),
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .with_context(|| format!("mount(\"tmpfs\", \"{source}/{name}\")"))?;
        let now = mountinfo(None)?;
        let mut row = vec![format!("tmpfs on {at}/{name}")];
        for w in watched {
            let exists = mount_at(&now, &w.path).is_some();
            let seen = mount_at(&now, &format!("{}/{name}", w.path)).is_some();
            row.push(match (exists, seen) {
                (false, _) => " ".into(),
                (true, true) => "x".into(),
                (true, false) => ".".into(),
            });
        }
        row.push(lesson.to_string());
        rows.push(row);
    }
    lab.step(format!(
        "mount(\"tmpfs\") on {}",
        events
            .iter()
            .map(|(at, name, _)| format!("{at}/{name}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}
