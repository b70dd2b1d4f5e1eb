//! The container's PID 1 with `--init`: `nslab-init` (the crate of that name: `pid_demo::init`,
//! the PID chapter's init, as a program of its own), exec'd by the container's first process,
//! never that process itself running the init in the runtime's image.
//!
//! A clone that never execs keeps everything of the runtime: its memory, the caller's whole
//! environment (`/proc/1/environ`), the host's command line (`/proc/1/cmdline`), the pipes to
//! the host runtime. So the container's first process execs `nslab-init` with the spec's
//! environment only. The program is linked statically (a root filesystem such as busybox's has
//! none of the host's C library) and embedded in this binary by its build script; it is exec'd
//! from a memfd sealed against writes (`F_SEAL_WRITE`, as runc runs itself since CVE-2019-5736),
//! so `/proc/1/exe` leads to no file of the host's and to nothing the container can rewrite.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result};
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

/// The name PID 1 runs under (`argv[0]`): what `/proc/1/cmdline` starts with.
pub const ARGV0: &str = "nslab-init";

/// The static `nslab-init`, built by `build.rs`.
pub static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nslab-init"));

/// `nslab-init [--tty PATH] -- CMD ARG...`, as execve(2) wants it.
pub fn argv(tty: Option<&Path>, args: &[String]) -> Result<Vec<CString>> {
    let mut all = vec![ARGV0.to_string()];
    if let Some(tty) = tty {
        all.push("--tty".into());
        all.push(tty.display().to_string());
    }
    all.push("--".into());
    all.extend(args.iter().cloned());
    all.into_iter()
        .map(|a| CString::new(a).context("an argument holds a NUL byte"))
        .collect()
}

/// `nslab-init` in a memfd, sealed: no write, no resize, no new seals (`F_ADD_SEALS`), to exec
/// with `fexecve(3)`. Close-on-exec: a binary (not a script) execs from it all the same.
pub fn sealed() -> Result<OwnedFd> {
    let fd = memfd_create(
        c"nslab-init",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .context("memfd_create(nslab-init)")?;
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, IMAGE).context("write(memfd, nslab-init)")?;
    let fd = OwnedFd::from(file);
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).context("fcntl(F_ADD_SEALS)")?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_is_embedded_static_and_sealed() {
        assert_eq!(&IMAGE[..4], b"\x7fELF");
        let fd = sealed().unwrap();
        let seals = fcntl(&fd, FcntlArg::F_GET_SEALS).unwrap();
        assert!(SealFlag::from_bits_truncate(seals).contains(SealFlag::F_SEAL_WRITE));
        let mut file = std::fs::File::from(fd);
        assert!(
            std::io::Write::write_all(&mut file, b"x").is_err(),
            "a sealed memfd refuses writes"
        );
        let argv = argv(Some(Path::new("/dev/pts/0")), &["sh".into()]).unwrap();
        assert_eq!(argv[..3], [c"nslab-init", c"--tty", c"/dev/pts/0"]);
    }
}
