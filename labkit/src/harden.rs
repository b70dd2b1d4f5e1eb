//! What a container runtime does so that nothing of its caller reaches the container: the
//! descriptors the caller left open.

use nix::errno::Errno;

/// The descriptors `3 .. 3 + count` stay open across the next execve(2) (runc's
/// `--preserve-fds`: a caller passes them on on purpose): their close-on-exec flag is cleared.
/// EBADF when one of them is not open.
pub fn pass_on(count: u32) -> nix::Result<()> {
    for fd in 3..3u32.saturating_add(count) {
        let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
        // SAFETY: F_SETFD with 0 only clears the descriptor's close-on-exec flag; a number that
        // is not an open descriptor answers EBADF (fcntl(2)).
        let res = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        Errno::result(res)?;
    }
    Ok(())
}

/// Mark every descriptor from `first` up close-on-exec, so that none the caller left open (a
/// shell's `exec 7</`, a terminal on fd 10) survives the next execve(2):
/// `close_range(first, ~0U, CLOSE_RANGE_CLOEXEC)` (Linux 5.11), or on an older kernel each one
/// listed in `/proc/self/fd`. Closed on exec rather than now: the caller may still need its own
/// (the exec'd file, a pipe to its parent) until then.
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    // SAFETY: close_range(2) takes two integers and a flag and changes only the flags of this
    // process's own descriptor table; no memory is passed (close_range(2)).
    let res = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    match Errno::result(res) {
        Ok(_) => Ok(()),
        Err(Errno::ENOSYS | Errno::EINVAL) => {
            let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
                .map_err(|_| Errno::ENOENT)?
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd >= first as i32)
                .collect();
            for fd in fds {
                // SAFETY: F_SETFD only sets the descriptor's flag; a descriptor that was the
                // read_dir's own (closed since) answers EBADF, which is ignored.
                let res = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                match Errno::result(res) {
                    Ok(_) | Err(Errno::EBADF) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn descriptors_from_first_up_get_close_on_exec() {
        // A descriptor without FD_CLOEXEC, as a shell's `exec 7</` leaves one.
        let file = std::fs::File::open("/").unwrap();
        let fd = nix::unistd::dup(&file).unwrap();
        let flags = |fd: i32| {
            // SAFETY: F_GETFD reads the flag of a descriptor this test holds open.
            unsafe { libc::fcntl(fd, libc::F_GETFD) }
        };
        assert_eq!(flags(fd.as_raw_fd()) & libc::FD_CLOEXEC, 0, "dup clears it");
        cloexec_from(fd.as_raw_fd() as u32).unwrap();
        assert_eq!(flags(fd.as_raw_fd()) & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
