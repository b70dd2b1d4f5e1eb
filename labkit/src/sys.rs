//! System calls that `nix` does not wrap, made safe here so demo crates need no `unsafe`.

use nix::errno::Errno;

/// `setdomainname(2)`: set the NIS domain name of the caller's UTS namespace.
pub fn setdomainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe a live byte slice for the whole call; the kernel
    // copies at most `len` bytes and keeps no reference (setdomainname(2)).
    let res = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(res).map(drop)
}
