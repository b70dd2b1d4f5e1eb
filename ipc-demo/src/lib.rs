//! IPC namespaces: System V message queues, semaphore sets and shared memory segments, and POSIX
//! message queues, exist per IPC namespace. A process finds them by key (or name) in its own
//! namespace only.
//!
//! Every lesson runs in a **lab**: a child in a new IPC namespace (and, for POSIX queues, a new
//! mount namespace made private first). The objects live and die there; the host's IPC
//! namespace never holds any, and the demo removes them itself as well, as a program should.
#![forbid(unsafe_code)]

mod system_v;
pub use system_v::{KEY, sysv_demo};
mod mqueue;
pub use mqueue::{MQ_NAME, mqueue_demo};
