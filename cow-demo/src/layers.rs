//! layers (COW-1).

use std::fs;
use std::path::{Path, PathBuf};

use crate::{files_below, in_lab, mount_overlay, write_file};
use anyhow::Result;
use labkit::Narrator;
use labkit::narrate::table;
use labkit::tempdir::TempDir;

fn first_line(path: &Path) -> String {
    fs::read_to_string(path)
        .map(|t| t.lines().next().unwrap_or("").to_string())
        .unwrap_or_else(|_| "-".into())
}

/// `layers`: two read-only lower layers, an upper and a work directory, merged by overlayfs;
/// a listing of what each layer has, and what the merged view shows.
pub fn layers(out: &mut Narrator) -> Result<()> {
    let dir = TempDir::create("cow")?;
    let base = dir.path().to_path_buf();
    out.step(
        "host",
        format!(
            "mkdir {} (the lab makes base, app, upper, work, merged in it)",
            base.display()
        ),
    );
    in_lab(out, |lab| {
        let (lower1, lower2, upper, work, merged) = (
            base.join("base"),
            base.join("app"),
            base.join("upper"),
            base.join("work"),
            base.join("merged"),
        );
        write_file(
            &lower1.join("etc/os-release"),
            "NAME=\"nslab base layer\"\n",
        )?;
        write_file(&lower1.join("bin/tool"), "tool version 1\n")?;
        write_file(
            &lower1.join("usr/share/doc/README"),
            "from the base layer\n",
        )?;
        write_file(&lower2.join("bin/tool"), "tool version 2\n")?;
        write_file(&lower2.join("app/config"), "port=7000\n")?;
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d)?;
        }
        lab.step("base layer: etc/os-release, bin/tool (v1), usr/share/doc/README; app layer: bin/tool (v2), app/config");
        let options = mount_overlay(&[&lower2, &lower1], &upper, &work, &merged, "")?;
        lab.step(format!(
            "mount -t overlay overlay -o {} merged",
            options.replace(&format!("{}/", base.display()), "")
        ));
        write_file(&merged.join("app/data"), "written in the container\n")?;
        lab.step("echo 'written in the container' > merged/app/data");
        let mut paths: Vec<PathBuf> = [&lower1, &lower2, &upper, &merged]
            .iter()
            .flat_map(|d| files_below(d))
            .collect();
        paths.sort();
        paths.dedup();
        let mut rows = vec![vec![
            "file".to_string(),
            "base".into(),
            "app".into(),
            "upper".into(),
            "merged view shows".into(),
        ]];
        for p in &paths {
            let has = |d: &Path| if d.join(p).exists() { "x" } else { "." };
            rows.push(vec![
                p.display().to_string(),
                has(&lower1).into(),
                has(&lower2).into(),
                has(&upper).into(),
                first_line(&merged.join(p)),
            ]);
        }
        for line in table(&rows).lines() {
            lab.say(line);
        }
        lab.say("bin/tool comes from the app layer (the first lowerdir wins); app/data exists only in upper");
        Ok(0)
    })?;
    drop(dir);
    out.step(
        "host",
        "the lab ended (its mounts with it); rm -r the layers",
    );
    Ok(())
}
