//! App identity from `/proc`: which process (executable path) and uid own a flow.
//!
//! The kernel lists every socket of a network namespace in `/proc/net/{tcp,tcp6,udp,udp6}`
//! with its addresses, owning uid and inode; every process lists its open descriptors in
//! `/proc/PID/fd`, where a socket reads `socket:[INODE]`. Joining the two names the program.
//!
//! Two things shape this module:
//! - **Namespaces.** `/proc/net` shows the sockets of the *reader's* network namespace. The
//!   apps Embargo protects usually live in another one (`embargo run --netns NAME`), while
//!   Embargo itself stays in the host namespace. A dedicated worker thread therefore enters the
//!   protected namespace once (`setns` changes only the calling thread) and reads
//!   `/proc/thread-self/net/*`, which follows the thread's namespace, not the process's.
//! - **Cost.** A lookup is one `sock_diag` question (uid and inode) and then a search for the
//!   process holding the inode. It runs once per flow, off the packet path (OpenSnitch's users
//!   saw whole programs freeze when decisions waited for it), on the same cores as the traffic,
//!   so the search remembers what it read ([`PidMemory`](process::PidMemory)): a full walk of
//!   every process's descriptors is the last resort, not the rule. Answers are cached for
//!   [`CACHE_TTL`](resolver::CACHE_TTL).
//!
//! One module per concern: [`resolver`] ([`AppResolver`]: the cache, the namespace worker, one
//! lookup), [`sock_diag`] (the netlink question), [`tables`] (the `/proc/net` tables, its
//! fallback), [`process`] (the search for the process holding a socket) and [`fd_table`] (one
//! descriptor table read).

mod fd_table;
mod process;
mod resolver;
mod sock_diag;
mod tables;

pub use resolver::AppResolver;
