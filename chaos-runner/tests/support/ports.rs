//! Free loopback ports for servers a test starts later. Shared by the workspace's test
//! suites (`#[path]`-included by `tests/support` and the game server's tests), so it
//! depends on nothing but `std`.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

/// Lowest port handed out.
const LOWEST: u16 = 10_000;

/// Ports this process has handed out: never twice, so two servers of one test (or of
/// tests running in parallel) cannot be given the same port before either binds it.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free TCP port on 127.0.0.1 for a server a test starts later (the probe listener is
/// closed before the server binds it), never one this process handed out before.
///
/// It is taken below the kernel's ephemeral range (`ip_local_port_range`): a port the
/// kernel hands out (`bind :0`) is also what other tests' client connections get while
/// the server is still starting (initdb takes seconds), and a server that loses its port
/// to one of them cannot start. Falls back to a kernel-chosen port when there is no
/// room below the range.
pub fn free_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    let bindable = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    if ephemeral_low > LOWEST + 1_000 {
        let span = u64::from(ephemeral_low - LOWEST);
        for _ in 0..200 {
            // A random pick (std's per-process random hasher keys), so parallel test
            // processes rarely try the same ports.
            let port = LOWEST + (RandomState::new().hash_one(0u8) % span) as u16;
            if !handed_out.contains(&port) && bindable(port) {
                handed_out.insert(port);
                return port;
            }
        }
    }
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port on 127.0.0.1");
        if handed_out.insert(port) {
            return port;
        }
    }
}
