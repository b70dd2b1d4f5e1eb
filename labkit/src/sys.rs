//! System calls that `nix` does not wrap (or wraps without what the lesson needs), made safe
//! here so demo crates need no `unsafe`.

use nix::errno::Errno;

/// `setdomainname(2)`: set the NIS domain name of the caller's UTS namespace.
pub fn setdomainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe a live byte slice for the whole call; the kernel
    // copies at most `len` bytes and keeps no reference (setdomainname(2)).
    let res = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(res).map(drop)
}

/// A signal taken from the pending set by [`wait_signal`], with what the kernel says of its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The signal.
    pub signal: nix::sys::signal::Signal,
    /// `si_pid`: the sender's PID *as the receiver's PID namespace numbers it*: 0 when the
    /// sender is in an ancestor namespace, which the receiver cannot see.
    pub sender: i32,
    /// `si_code`: `SI_USER` (0) for kill(2), `CLD_*` codes for SIGCHLD, ...
    pub code: i32,
}

/// `sigwaitinfo(2)`: wait for one of `set` (which the caller has blocked) and take it.
pub fn wait_signal(set: &nix::sys::signal::SigSet) -> nix::Result<Received> {
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    let raw = loop {
        // SAFETY: `set` is a valid sigset_t for the whole call and `info` points to writable
        // memory of the right size, which the kernel fills before returning (sigwaitinfo(2)).
        let res = unsafe { libc::sigwaitinfo(set.as_ref(), info.as_mut_ptr()) };
        match Errno::result(res) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    // SAFETY: sigwaitinfo returned a signal, so the kernel initialised `info` (and it was
    // zeroed before, so every field is initialised either way).
    let info = unsafe { info.assume_init() };
    // SAFETY: si_pid is valid for signals sent by kill(2) and for SIGCHLD; for others the field
    // holds whatever the zeroed union had, which is still an initialised integer.
    let sender = unsafe { info.si_pid() };
    Ok(Received {
        signal: nix::sys::signal::Signal::try_from(raw)?,
        sender,
        code: info.si_code,
    })
}

/// `finit_module(fd, "", 0)`: ask the kernel to load a module from `fd`. The capability check
/// (CAP_SYS_MODULE in the initial user namespace) comes before the file is read.
pub fn finit_module(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid fd for the whole call and a NUL-terminated empty parameter string; the
    // kernel reads them and keeps nothing (finit_module(2)).
    let res = unsafe { libc::syscall(libc::SYS_finit_module, fd.as_raw_fd(), c"".as_ptr(), 0) };
    Errno::result(res).map(drop)
}

/// Send one file descriptor over a Unix socket (`sendmsg(2)` with `SCM_RIGHTS`): the receiver
/// gets its own descriptor for the same open file, even across mount namespaces.
pub fn send_fd(
    sock: std::os::fd::BorrowedFd<'_>,
    fd: std::os::fd::BorrowedFd<'_>,
) -> nix::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let fds = [fd.as_raw_fd()];
    let byte = [0u8; 1];
    let iov = [std::io::IoSlice::new(&byte)];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(drop)
}

/// Receive one file descriptor sent with [`send_fd`]; `None` when the other end closed first.
pub fn recv_fd(sock: std::os::fd::BorrowedFd<'_>) -> nix::Result<Option<std::os::fd::OwnedFd>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed `fd` in this process for us (SCM_RIGHTS);
                // nothing else owns it.
                return Ok(Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Ok(None)
}

/// `login_tty(3)`: start a new session (setsid(2)), make the terminal `fd` its controlling
/// terminal (`TIOCSCTTY`), and make it standard input, output and error.
pub fn login_tty(fd: std::os::fd::OwnedFd) -> nix::Result<()> {
    use std::os::fd::IntoRawFd;
    // SAFETY: login_tty takes ownership of a valid open descriptor (it closes it after the
    // dup2 calls); we give up ours with into_raw_fd.
    let res = unsafe { libc::login_tty(fd.into_raw_fd()) };
    Errno::result(res).map(drop)
}

/// Open the terminal at `path` and make it the caller's as [`login_tty`] does (a new session,
/// it as the controlling terminal, standard input, output and error).
pub fn login_tty_at(path: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("open({})", path.display()))?;
    login_tty(std::os::fd::OwnedFd::from(file))
        .context("login_tty: setsid(), ioctl(TIOCSCTTY), dup2 to 0 1 2")
}

/// Copy the window size of terminal `from` to terminal `to` (`TIOCGWINSZ`, `TIOCSWINSZ`): the
/// kernel then sends SIGWINCH to `to`'s foreground process group. False when `from` is not a
/// terminal.
pub fn copy_window_size(
    from: std::os::fd::BorrowedFd<'_>,
    to: std::os::fd::BorrowedFd<'_>,
) -> bool {
    use std::os::fd::AsRawFd;
    let mut size = std::mem::MaybeUninit::<libc::winsize>::zeroed();
    // SAFETY: a valid descriptor and a pointer to writable memory the size of a winsize, which
    // TIOCGWINSZ fills (ioctl_tty(2)).
    let got = unsafe { libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, size.as_mut_ptr()) };
    if got != 0 {
        return false;
    }
    // SAFETY: TIOCGWINSZ succeeded, so it initialised the struct (which was zeroed anyway); the
    // kernel only reads it for TIOCSWINSZ.
    let set = unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, size.as_ptr()) };
    set == 0
}

/// Set terminal `tty`'s window size (`TIOCSWINSZ`, ioctl_tty(2)): `rows` by `cols` characters.
pub fn set_window_size(tty: std::os::fd::BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: a valid descriptor and a pointer to an initialised winsize, which the kernel only
    // reads for TIOCSWINSZ (ioctl_tty(2)).
    let res = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &raw const size) };
    Errno::result(res).map(drop)
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: a new anonymous session keyring for this
/// process, so that it no longer shares its caller's (keyrings(7)): what runc does for every
/// container unless told `--no-new-keyring`.
pub fn join_new_session_keyring() -> nix::Result<i64> {
    // SAFETY: KEYCTL_JOIN_SESSION_KEYRING takes a name pointer, here NULL (an anonymous
    // keyring); no memory is read or written (keyctl(2)).
    let res = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            libc::KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    Errno::result(res)
}

/// What sched_setattr(2) sets (`struct sched_attr`, its first version): the policy
/// (`SCHED_OTHER` 0, `FIFO` 1, `RR` 2, `BATCH` 3, `IDLE` 5, `DEADLINE` 6), its flags, the nice
/// value, the real-time priority, and the deadline policy's runtime, deadline and period (ns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// `sched_setattr(0, attr, 0)`: the calling thread's scheduling policy and attributes.
pub fn sched_setattr(attr: &SchedAttr) -> nix::Result<()> {
    #[repr(C)]
    struct Raw {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let raw = Raw {
        size: std::mem::size_of::<Raw>() as u32,
        policy: attr.policy,
        flags: attr.flags,
        nice: attr.nice,
        priority: attr.priority,
        runtime: attr.runtime,
        deadline: attr.deadline,
        period: attr.period,
    };
    // SAFETY: `raw` is a struct sched_attr of the first version (48 bytes, its size field set),
    // initialised and alive for the whole call; the kernel only reads it (sched_setattr(2)).
    let res = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const raw, 0) };
    Errno::result(res).map(drop)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)`: the calling process's I/O
/// scheduling class (1 real time, 2 best effort, 3 idle) and level (0 to 7) (ioprio_set(2)).
pub fn ioprio_set(class: u32, level: u32) -> nix::Result<()> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    // SAFETY: three integers; no memory is passed (ioprio_set(2)).
    let res = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << 13) | level,
        )
    };
    Errno::result(res).map(drop)
}

/// `personality(persona)`: the execution domain (`PER_LINUX` 0, `PER_LINUX32` 8) of the
/// calling process, which its children and exec'd programs keep (personality(2)).
pub fn set_personality(persona: u64) -> nix::Result<()> {
    let persona = libc::c_ulong::try_from(persona).map_err(|_| Errno::EINVAL)?;
    // SAFETY: one integer; no memory is passed (personality(2)).
    let res = unsafe { libc::personality(persona) };
    Errno::result(res).map(drop)
}

/// One instruction of a classic BPF program, as `struct sock_filter` (linux/filter.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInstruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)`: install a filter on the calling thread, without
/// setting `no_new_privs` first (unlike seccompiler's `apply_filter`): the kernel then asks for
/// `CAP_SYS_ADMIN` in the caller's user namespace (seccomp(2)), as runc's order gives it when a
/// config leaves `noNewPrivileges` off.
pub fn seccomp_set_filter(program: &[BpfInstruction]) -> nix::Result<()> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::EINVAL)?;
    let filter: Vec<libc::sock_filter> = program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points to `len` initialised instructions that live for the whole call; the
    // kernel copies the program and keeps no pointer into it (seccomp(2)).
    let res = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &raw const prog,
        )
    };
    Errno::result(res).map(drop)
}
