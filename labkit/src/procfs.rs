//! Readers for the per-process files of `/proc` that several demos need: `status` (its `NSpid:`
//! line above all), `stat` (the state letter), `comm`, the list of processes. `status` and
//! `stat` are parsed by `procfs-core` (the parsers of the `procfs` crate, without its file
//! access); [`Proc::status_field`] gives a field's text as the kernel wrote it, for the demos
//! that print it.
//!
//! Every reader takes the procfs root as a parameter ([`Proc`]), so a test can point it at a
//! fixture directory, and a demo at a procfs mounted somewhere else.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use procfs_core::FromRead;
use procfs_core::process::{Stat, Status};

/// A procfs mount (normally `/proc`, the one of the reader's PID namespace at mount time).
#[derive(Debug, Clone)]
pub struct Proc {
    root: PathBuf,
}

impl Default for Proc {
    fn default() -> Self {
        Self::host()
    }
}

impl Proc {
    /// `/proc`.
    pub fn host() -> Proc {
        Proc {
            root: PathBuf::from("/proc"),
        }
    }

    /// A procfs (or a fixture of one) at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Proc {
        Proc { root: root.into() }
    }

    /// `ROOT/PID/name`.
    pub fn file(&self, pid: i32, name: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(name)
    }

    fn read(&self, pid: i32, name: &str) -> Result<String> {
        let path = self.file(pid, name);
        std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))
    }

    /// One field of `/proc/PID/status` (`"NSpid"`, `"PPid"`, `"State"`, ...), trimmed.
    pub fn status_field(&self, pid: i32, field: &str) -> Result<String> {
        let status = self.read(pid, "status")?;
        status_field_in(&status, field)
            .with_context(|| format!("{}: no {field}: line", self.file(pid, "status").display()))
    }

    /// `NSpid:`: the process's PID in each PID namespace from the one of this procfs down to
    /// its own (outermost first, its own last).
    pub fn nspid(&self, pid: i32) -> Result<Vec<i32>> {
        self.status(pid)?
            .nspid
            .with_context(|| format!("{}: no NSpid: line", self.file(pid, "status").display()))
    }

    /// The parent's PID (`PPid:`), as this procfs numbers it (0: the parent is not visible).
    pub fn ppid(&self, pid: i32) -> Result<i32> {
        Ok(self.status(pid)?.ppid)
    }

    /// `ROOT/self/status`, parsed: the reader's own (`self` is the reader as this procfs
    /// numbers it, whatever PID namespace it is in).
    pub fn own_status(&self) -> Result<Status> {
        let path = self.root.join("self/status");
        Status::from_file(&path).with_context(|| format!("{}", path.display()))
    }

    /// `/proc/PID/status`, parsed.
    pub fn status(&self, pid: i32) -> Result<Status> {
        let path = self.file(pid, "status");
        Status::from_file(&path).with_context(|| format!("{}", path.display()))
    }

    /// The state letter from `/proc/PID/stat` (R running, S sleeping, T stopped, Z zombie, ...).
    pub fn state(&self, pid: i32) -> Result<char> {
        let path = self.file(pid, "stat");
        Ok(Stat::from_file(&path)
            .with_context(|| format!("{}", path.display()))?
            .state)
    }

    /// Wait until the process is in `state` (for example `'S'`: asleep in a blocking call), for
    /// at most `limit`; returns the last state seen. Synchronisation on a state change the
    /// kernel reports, for the moments a pipe cannot mark (between "I am ready" and the
    /// blocking call that follows it).
    pub fn wait_for_state(
        &self,
        pid: i32,
        state: char,
        limit: std::time::Duration,
    ) -> Result<char> {
        // No event announces a state change: back off between reads.
        let mut last = self.state(pid)?;
        crate::wait::until(limit, || {
            last = self.state(pid)?;
            Ok(last == state)
        })?;
        Ok(last)
    }

    /// The command name (`/proc/PID/comm`).
    pub fn comm(&self, pid: i32) -> Result<String> {
        self.read(pid, "comm").map(|c| c.trim_end().to_string())
    }

    /// Whether `ROOT/PID` exists (the process exists, a zombie included).
    pub fn exists(&self, pid: i32) -> bool {
        self.root.join(pid.to_string()).exists()
    }

    /// Every process this procfs lists, sorted by PID.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut pids: Vec<i32> = std::fs::read_dir(&self.root)
            .with_context(|| format!("{}", self.root.display()))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// The root of this procfs.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// One `Name:\tvalue` line of a status text.
pub fn status_field_in(status: &str, field: &str) -> Option<String> {
    status.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        (name == field).then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_found() {
        let status = "Name:\tsh\nState:\tS (sleeping)\nPPid:\t1\nNSpid:\t4242\t7\t1\n";
        assert_eq!(
            status_field_in(status, "NSpid").as_deref(),
            Some("4242\t7\t1")
        );
        assert_eq!(status_field_in(status, "PPid").as_deref(), Some("1"));
        assert_eq!(status_field_in(status, "Nope"), None);
    }

    #[test]
    fn fixtures_are_read_like_proc() {
        let dir = std::env::temp_dir().join(crate::unique_name("proc-fixture"));
        std::fs::create_dir_all(dir.join("42")).unwrap();
        std::fs::create_dir_all(dir.join("self")).unwrap();
        // This process's own files, made to say: PID 42 here, 1 in its own namespace, parent
        // not visible, asleep, and a command name with a space and a parenthesis in it.
        let status: String = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .map(|l| match l.split_once(':') {
                Some(("NSpid", _)) => "NSpid:\t42\t1".to_string(),
                Some(("PPid", _)) => "PPid:\t0".to_string(),
                _ => l.to_string(),
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(dir.join("42/status"), status).unwrap();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after = stat.rsplit_once(')').unwrap().1.trim_start();
        let after = after.split_once(' ').unwrap().1;
        std::fs::write(dir.join("42/stat"), format!("42 (a) b) S {after}")).unwrap();
        let proc = Proc::at(&dir);
        let result = (proc.nspid(42), proc.ppid(42), proc.state(42), proc.pids());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(result.0.unwrap(), vec![42, 1]);
        assert_eq!(result.1.unwrap(), 0);
        assert_eq!(result.2.unwrap(), 'S');
        assert_eq!(result.3.unwrap(), vec![42]);
    }

    #[test]
    fn this_process_is_its_own_last_nspid() {
        let me = std::process::id() as i32;
        assert_eq!(Proc::host().nspid(me).unwrap().last(), Some(&me));
    }
}
