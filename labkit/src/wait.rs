//! Waiting with a deadline, the one way the demos wait for the kernel.
//!
//! Where the kernel offers an event, the caller blocks on it and uses no CPU meanwhile (the
//! awaited process may need the core on a small machine): a process's end is its pidfd turning
//! readable (`pidfd_open(2)` and `poll(2)`), a pipe's or FIFO's next byte is `poll(2)`, a cgroup's
//! `cgroup.events` is modified when `populated` or `frozen` changes (`inotify(7)`, see
//! cgroups(7), "Cgroups v2 cgroup.events file"). Where it offers none (a `/proc/PID/stat` state,
//! a hierarchy freed after an RCU grace period, a link's operational state read over netlink),
//! [`backoff`] checks again after a pause that doubles from 50 µs to 20 ms.
//!
//! Every function takes a [`Duration`] after which it gives up: they return `Ok(None)` (or
//! `false`) then, so the caller decides whether a timeout is an error and names what it waited
//! for.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// The first pause of [`backoff`]; each one after it is twice as long, up to [`MAX_PAUSE`].
pub const FIRST_PAUSE: Duration = Duration::from_micros(50);
/// The longest pause of [`backoff`].
pub const MAX_PAUSE: Duration = Duration::from_millis(20);

/// What is left of `timeout` started at `start`, as a poll(2) timeout (at least 1 ms while any
/// time is left, so a short remainder does not become a busy loop).
fn remaining(start: Instant, timeout: Duration) -> Option<PollTimeout> {
    let left = timeout.checked_sub(start.elapsed())?;
    let ms = left.as_millis().clamp(1, u128::from(u16::MAX));
    Some(PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX)))
}

/// Block in poll(2) until `fd` is readable, hung up or in error (`POLLIN`, and always
/// `POLLHUP`/`POLLERR`), for at most `timeout`. Returns whether it became so.
pub fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool> {
    let start = Instant::now();
    loop {
        let Some(left) = remaining(start, timeout) else {
            return Ok(false);
        };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, left) {
            Ok(n) if n > 0 => return Ok(true),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll(POLLIN)"),
        }
    }
}

/// Block until process `pid` has ended (its pidfd turns readable when it exits, reaped or not),
/// for at most `timeout`. A PID that names no process (`ESRCH`) has ended already.
pub fn process_exit(pid: i32, timeout: Duration) -> Result<bool> {
    match crate::signals::PidFd::open(pid) {
        Ok(pidfd) => readable(pidfd.as_fd(), timeout),
        Err(e) if e.downcast_ref::<Errno>() == Some(&Errno::ESRCH) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Run `check` now and each time the file `path` is modified (inotify `IN_MODIFY`, as
/// `cgroup.events` is when a value in it changes), until it returns `Some`, for at most
/// `timeout`. The watch is set before the check that waits, so no change between them is lost.
/// When the first check already answers, no inotify instance is made: closing one waits for an
/// SRCU grace period in the kernel (`fsnotify_destroy_group`), milliseconds that a container's
/// teardown, whose group is empty by then, would spend for nothing.
pub fn on_modify<T>(
    path: &Path,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    if let Some(found) = check()? {
        return Ok(Some(found));
    }
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .context("inotify_init1(IN_CLOEXEC | IN_NONBLOCK)")?;
    inotify
        .add_watch(path, AddWatchFlags::IN_MODIFY)
        .with_context(|| format!("inotify_add_watch({}, IN_MODIFY)", path.display()))?;
    let start = Instant::now();
    loop {
        if let Some(found) = check()? {
            return Ok(Some(found));
        }
        let Some(left) = timeout.checked_sub(start.elapsed()) else {
            return Ok(None);
        };
        if readable(inotify.as_fd(), left)? {
            // Drain the queued events; the check that follows reads the file itself.
            match inotify.read_events() {
                Ok(_) | Err(Errno::EAGAIN) => {}
                Err(e) => return Err(e).context("read(inotify)"),
            }
        }
    }
}

/// Run `check` until it returns `Some`, pausing between tries (50 µs, doubling to 20 ms), for at
/// most `timeout`: for the states the kernel announces with no event.
pub fn backoff<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(found) = check()? {
            return Ok(Some(found));
        }
        let Some(left) = timeout.checked_sub(start.elapsed()) else {
            return Ok(None);
        };
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// [`backoff`] for a condition: whether `holds` became true within `timeout`.
pub fn until(timeout: Duration, mut holds: impl FnMut() -> Result<bool>) -> Result<bool> {
    Ok(backoff(timeout, || Ok(holds()?.then_some(())))?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;
    use nix::unistd::{pipe2, write};

    #[test]
    fn readable_sees_a_written_pipe_and_times_out_on_an_empty_one() -> Result<()> {
        let (r, w) = pipe2(OFlag::O_CLOEXEC)?;
        assert!(!readable(r.as_fd(), Duration::from_millis(20))?);
        write(&w, b"x")?;
        assert!(readable(r.as_fd(), Duration::from_secs(5))?);
        Ok(())
    }

    #[test]
    fn on_modify_returns_when_the_file_changes() -> Result<()> {
        let dir = crate::tempdir::TempDir::new("wait");
        let file = dir.path().join("events");
        std::fs::write(&file, "frozen 0\n")?;
        let mut writes = 0;
        let got = on_modify(&file, Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&file)?;
            if text == "frozen 1\n" {
                return Ok(Some(writes));
            }
            // The change the kernel would make, made after the watch exists.
            writes += 1;
            std::fs::write(&file, "frozen 1\n")?;
            Ok(None)
        })?;
        assert_eq!(got, Some(1));
        Ok(())
    }

    #[test]
    fn backoff_gives_up_at_the_deadline() -> Result<()> {
        let start = Instant::now();
        let mut tries = 0;
        let got: Option<()> = backoff(Duration::from_millis(30), || {
            tries += 1;
            Ok(None)
        })?;
        assert_eq!(got, None);
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Doubling pauses: far fewer tries than a spin loop would make.
        assert!(tries < 20, "{tries} tries");
        Ok(())
    }
}
