//! show.

use crate::{mountinfo, propagation};
use anyhow::Result;
use labkit::Narrator;
use labkit::narrate::table;

/// `show [--pid PID]`: the mounts of a process, with each one's propagation (read only).
pub fn show(out: &mut Narrator, pid: Option<i32>) -> Result<()> {
    let table_rows = mountinfo(pid)?;
    let who = pid.map_or("self".to_string(), |p| p.to_string());
    out.step(
        "host",
        format!("read /proc/{who}/mountinfo: {} mounts", table_rows.len()),
    );
    let mut rows = vec![vec![
        "ID".to_string(),
        "PARENT".into(),
        "PROPAGATION".into(),
        "FSTYPE".into(),
        "MOUNT POINT".into(),
    ]];
    for m in &table_rows {
        rows.push(vec![
            m.mnt_id.to_string(),
            m.pid.to_string(),
            propagation(m),
            m.fs_type.clone(),
            m.mount_point.display().to_string(),
        ]);
    }
    out.raw(table(&rows).trim_end());
    Ok(())
}
