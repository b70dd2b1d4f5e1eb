//! The namespace API, shown with the UTS namespace (hostname and NIS domain name).
//!
//! Each public function is one lesson: it makes the syscalls and prints what the kernel
//! answered. The book includes these functions between the `ANCHOR` comments.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use labkit::bad_input;
use labkit::ns::{self};
use nix::sys::utsname::uname;

/// The kernel's limit for a hostname (and a domain name): `__NEW_UTS_LEN` in `<linux/utsname.h>`.
pub const UTS_LEN: usize = 64;

/// Check a hostname before any namespace is made, so bad input leaves nothing behind.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.len() > UTS_LEN {
        return Err(bad_input(format!(
            "{what} is {} bytes long; the kernel's limit is {UTS_LEN} (__NEW_UTS_LEN)",
            name.len()
        )));
    }
    Ok(())
}

/// The names of the caller's UTS namespace, from `uname(2)`.
pub fn names() -> Result<(String, String)> {
    let u = uname().context("uname()")?;
    Ok((
        u.nodename().to_string_lossy().into_owned(),
        u.domainname().to_string_lossy().into_owned(),
    ))
}

fn hostname() -> Result<String> {
    names().map(|(host, _)| host)
}

fn uts_inode() -> Result<u64> {
    ns::inode(None, "uts")
}

mod show;
pub use show::show;
mod ns_table;
pub use ns_table::ns_table;
mod clone;
pub use clone::{ChildView, clone_demo};
mod unshare;
pub use unshare::unshare_demo;
mod setns;
pub use setns::{JoinTarget, setns_demo};
mod persist;
pub use persist::{persist, unpin};
