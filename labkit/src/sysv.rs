//! System V IPC (svipc(7)), which `nix` does not wrap: message queues, semaphore sets and shared
//! memory segments, found by a numeric key in the caller's IPC namespace. Thin safe wrappers,
//! returning the kernel's errno.

use nix::errno::Errno;

/// A System V IPC key (`key_t`).
pub type Key = i32;

/// `msgget(key, flags)`: the ID of the message queue with this key.
pub fn msgget(key: Key, flags: i32) -> nix::Result<i32> {
    // SAFETY: plain integer arguments; the kernel only reads them.
    Errno::result(unsafe { libc::msgget(key, flags) })
}

/// `msgsnd`: send `text` as a message of type `mtype` (`IPC_NOWAIT`: never block).
pub fn msgsnd(id: i32, mtype: libc::c_long, text: &[u8]) -> nix::Result<()> {
    let mut buf = Vec::with_capacity(std::mem::size_of::<libc::c_long>() + text.len());
    buf.extend_from_slice(&mtype.to_ne_bytes());
    buf.extend_from_slice(text);
    // SAFETY: `buf` holds a `struct msgbuf` (a long, then `text.len()` bytes) and lives for the
    // whole call; the kernel copies `text.len()` bytes after the long.
    let res = unsafe { libc::msgsnd(id, buf.as_ptr().cast(), text.len(), libc::IPC_NOWAIT) };
    Errno::result(res).map(drop)
}

/// `msgrcv` of the first message (any type), without blocking (`IPC_NOWAIT`): its type and text.
pub fn msgrcv(id: i32, max: usize) -> nix::Result<(libc::c_long, Vec<u8>)> {
    let head = std::mem::size_of::<libc::c_long>();
    let mut buf = vec![0u8; head + max];
    // SAFETY: `buf` has room for a long and `max` bytes, and the kernel writes at most that.
    let n = unsafe { libc::msgrcv(id, buf.as_mut_ptr().cast(), max, 0, libc::IPC_NOWAIT) };
    let n = Errno::result(n)? as usize;
    let mtype = libc::c_long::from_ne_bytes(buf[..head].try_into().expect("a long"));
    Ok((mtype, buf[head..head + n].to_vec()))
}

/// `msgctl(id, IPC_RMID)`: remove the queue.
pub fn msg_remove(id: i32) -> nix::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument, so a null pointer is allowed (msgctl(2)).
    Errno::result(unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// `semget(key, nsems, flags)`: the ID of the semaphore set with this key.
pub fn semget(key: Key, nsems: i32, flags: i32) -> nix::Result<i32> {
    // SAFETY: plain integer arguments.
    Errno::result(unsafe { libc::semget(key, nsems, flags) })
}

/// `semctl(id, 0, IPC_RMID)`: remove the semaphore set.
pub fn sem_remove(id: i32) -> nix::Result<()> {
    // SAFETY: IPC_RMID takes no fourth argument (semctl(2)).
    Errno::result(unsafe { libc::semctl(id, 0, libc::IPC_RMID) }).map(drop)
}

/// `shmget(key, size, flags)`: the ID of the shared memory segment with this key.
pub fn shmget(key: Key, size: usize, flags: i32) -> nix::Result<i32> {
    // SAFETY: plain integer arguments.
    Errno::result(unsafe { libc::shmget(key, size, flags) })
}

/// `shmctl(id, IPC_RMID)`: remove the segment (once no process has it attached).
pub fn shm_remove(id: i32) -> nix::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument, so a null pointer is allowed (shmctl(2)).
    Errno::result(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}
