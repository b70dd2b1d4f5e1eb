//! `-t`: a pseudo-terminal of the container's own, as runc makes one.
//!
//! The terminal must come from the container's `devpts` instance, not the host's: only then does
//! its name (`/dev/pts/0`) mean something inside, so that `tty` answers and a shell gets job
//! control. So the container opens `/dev/ptmx` after `pivot_root`, and sends the master side to
//! minicontainer over a Unix socket (`SCM_RIGHTS`, which carries open files across mount
//! namespaces). The command starts in a new session with the other side as its controlling
//! terminal (`login_tty(3)`). On the host, minicontainer puts your terminal in raw mode (so that
//! Ctrl-C, Ctrl-Z and every key become bytes for the container's terminal, which turns them into
//! signals for its own foreground process group), copies bytes both ways, and passes on window
//! size changes (`SIGWINCH`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use labkit::Narrator;
use labkit::child::Reporter;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::termios::{self, OutputFlags, SetArg, Termios};

/// The socket pair the master side travels through (host end, container end), when `-t`.
/// Also blocks SIGWINCH in this thread, before any other thread starts, so that only the
/// thread that waits for it takes it.
pub fn pair(tty: bool) -> Result<Option<(UnixStream, UnixStream)>> {
    if !tty {
        return Ok(None);
    }
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&winch), None).context("sigprocmask(SIGWINCH)")?;
    Ok(Some(
        UnixStream::pair().context("socketpair(AF_UNIX, SOCK_STREAM)")?,
    ))
}

/// In the container, after `pivot_root`: open a terminal in its own devpts, send the master side
/// to the host, and return the other side's path.
pub fn open(r: &mut Reporter, sock: &UnixStream, size: Option<(u16, u16)>) -> Result<PathBuf> {
    // ANCHOR: open
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY)
        .context("posix_openpt(/dev/ptmx)")?;
    nix::pty::grantpt(&master).context("grantpt")?;
    nix::pty::unlockpt(&master).context("unlockpt")?;
    let name = nix::pty::ptsname_r(&master).context("ptsname")?;
    if let Some((rows, cols)) = size {
        // process.consoleSize: the size the terminal starts with.
        labkit::sys::set_window_size(master.as_fd(), rows, cols)
            .context("ioctl(TIOCSWINSZ) (process.consoleSize)")?;
    }
    labkit::sys::send_fd(sock.as_fd(), master.as_fd()).context("sendmsg(SCM_RIGHTS)")?;
    // ANCHOR_END: open
    r.step(format!(
        "posix_openpt() in the container's devpts -> {name}; its master side sent to the host (sendmsg SCM_RIGHTS)"
    ));
    Ok(PathBuf::from(name))
}

/// Make the terminal `tty` standard input, output and error (dup2), letting the caller's go;
/// nothing when `None`. The session and controlling terminal come with [`login`].
pub fn stdio_to(tty: Option<&Path>) -> Result<()> {
    let Some(path) = tty else {
        return Ok(());
    };
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open({})", path.display()))?;
    let shown = path.display();
    nix::unistd::dup2_stdin(&fd).with_context(|| format!("dup2({shown}, 0)"))?;
    nix::unistd::dup2_stdout(&fd).with_context(|| format!("dup2({shown}, 1)"))?;
    nix::unistd::dup2_stderr(&fd).with_context(|| format!("dup2({shown}, 2)"))?;
    Ok(())
}

/// In the command's process, just before exec: a new session whose controlling terminal, and
/// standard input, output and error, is `tty` (nothing when `None`).
pub fn login(tty: Option<&Path>) -> Result<()> {
    match tty {
        Some(path) => labkit::sys::login_tty_at(path),
        None => Ok(()),
    }
}

/// The host's side of a running console: restores your terminal and collects the last output
/// when dropped.
#[derive(Debug)]
pub struct Console {
    saved: Option<Termios>,
    output: Option<std::thread::JoinHandle<()>>,
}

impl Console {
    /// Receive the master side and start copying. `None` if the container ended before sending
    /// it (its error is in its report).
    pub fn attach(out: &mut Narrator, sock: &UnixStream) -> Result<Option<Console>> {
        let Some(master) = labkit::sys::recv_fd(sock.as_fd()).context("recvmsg(SCM_RIGHTS)")?
        else {
            return Ok(None);
        };
        let master = File::from(master);
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            // Keep \n -> \r\n on the way out, so minicontainer's own lines (--explain) stay
            // readable; the container's terminal already does the same for its output.
            raw.output_flags |= OutputFlags::OPOST | OutputFlags::ONLCR;
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
                .context("tcsetattr(stdin, raw)")?;
            labkit::sys::copy_window_size(stdin.as_fd(), master.as_fd());
        }
        out.step(
            "host",
            format!(
                "recvmsg(SCM_RIGHTS) -> the terminal's master side; {}copying bytes both ways",
                if saved.is_some() {
                    "your terminal in raw mode, its window size copied (TIOCSWINSZ); "
                } else {
                    ""
                }
            ),
        );
        let mut from_container = master.try_clone().context("dup(master)")?;
        let output = std::thread::Builder::new()
            .name("console-out".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                // EIO once no process has the terminal open any more: the container has ended.
                while let Ok(n @ 1..) = from_container.read(&mut buf) {
                    let mut stdout = std::io::stdout().lock();
                    if stdout
                        .write_all(&buf[..n])
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .context("spawn the console output thread")?;
        let mut to_container = master.try_clone().context("dup(master)")?;
        std::thread::Builder::new()
            .name("console-in".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                let mut stdin = std::io::stdin();
                while let Ok(n @ 1..) = stdin.read(&mut buf) {
                    if to_container.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            })
            .context("spawn the console input thread")?;
        if saved.is_some() {
            let window = master;
            std::thread::Builder::new()
                .name("console-winch".into())
                .spawn(move || {
                    let mut winch = SigSet::empty();
                    winch.add(Signal::SIGWINCH);
                    while winch.wait().is_ok() {
                        labkit::sys::copy_window_size(std::io::stdin().as_fd(), window.as_fd());
                    }
                })
                .context("spawn the window size thread")?;
        }
        Ok(Some(Console {
            saved,
            output: Some(output),
        }))
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(output) = self.output.take() {
            let _ = output.join();
        }
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}
