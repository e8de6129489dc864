//! Test helpers: free ports, temp dirs, and a real redis-server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

// Shared with the other suites of the workspace; it depends on nothing but `std`.
#[path = "../../chaos-runner/tests/support/ports.rs"]
mod ports;

pub use ports::free_port;

/// A fresh temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A directory no other test (thread or process) has: named by pid, time and a
    /// process-wide counter, and created with `create_dir`, which fails rather than share.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "fault-proxy-{tag}-{}-{nanos}-{n}",
                std::process::id()
            ));
            match std::fs::create_dir(&dir) {
                Ok(()) => return TempDir(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", dir.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `false` (skip) when a server is missing outside CI; a failure under `CI=true`.
pub fn require(found: Result<(), String>) -> bool {
    match found {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{why} (scripts/test installs it)"
            );
            eprintln!("\n\n*** SKIPPING: {why}. Run scripts/test to install it. ***\n\n");
            false
        }
    }
}

/// A redis-server without persistence; killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Redis {
    /// Starts it; `None` (skip) when redis-server is not installed outside CI.
    pub fn start() -> Option<Redis> {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let found = binary
            .as_deref()
            .map(|_| ())
            .ok_or_else(|| "redis-server is not installed".to_owned());
        if !require(found) {
            return None;
        }
        let binary: &Path = binary.as_deref().expect("checked above");
        let dir = TempDir::new("test-redis");
        let port = free_port();
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        Some(Redis {
            child,
            port,
            _dir: dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
