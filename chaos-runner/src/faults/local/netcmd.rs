//! Running `nft`, `tc` and `ip` for the network faults, in the host's namespace or in a
//! named one (`ip netns exec NAME ...`), always with argument vectors (no shell), and the
//! watchdog child that removes kernel state when its time is up or its runner dies.

use crate::helper::HelperCommand;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys::proc;

/// Where `ip netns add` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A command of the network backend failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetCmdError {
    /// The program is not installed (or not on `PATH`).
    #[error("`{program}` is not installed (apt-get install {package})")]
    Missing {
        /// The program.
        program: String,
        /// The Debian package that has it.
        package: String,
    },
    /// The named network namespace does not exist.
    #[error("network namespace `{0}` does not exist (see `ip netns list`)")]
    NoNetns(String),
    /// The program ran and failed.
    #[error("`{program}` failed: {stderr}")]
    Failed {
        /// The command, for the message.
        program: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// The network selector of a local network fault lacks what the fault needs (validation
/// requires it; its absence fails the injection instead of panicking).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetSelectorError {
    /// The selector has no `network` part.
    #[error("the selector has no `network` part")]
    NoNetwork,
    /// The selector names no interface (a qdisc needs one).
    #[error("the selector names no `interface`")]
    NoInterface,
}

/// Whether the named namespace exists.
///
/// ```
/// assert!(!chaos_runner::faults::local::netcmd::netns_exists("surely-not-a-namespace-x9"));
/// ```
pub fn netns_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// The named namespaces present now.
pub fn netns_list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn package_of(program: &str) -> &'static str {
    match program {
        "nft" => "nftables",
        _ => "iproute2",
    }
}

/// Runs `program args` in `netns` (the host's when `None`), feeding `stdin`; returns
/// stdout. A named namespace that does not exist is [`NetCmdError::NoNetns`].
pub fn run(
    netns: Option<&str>,
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Result<Vec<u8>, NetCmdError> {
    let mut cmd = match netns {
        Some(ns) => {
            if !netns_exists(ns) {
                return Err(NetCmdError::NoNetns(ns.to_owned()));
            }
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    };
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let missing = |program: &str| NetCmdError::Missing {
        program: program.to_owned(),
        package: package_of(program).to_owned(),
    };
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            missing(if netns.is_some() { "ip" } else { program })
        } else {
            NetCmdError::Failed {
                program: program.to_owned(),
                stderr: e.to_string(),
            }
        }
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error shows up as the program's own failure below.
        let _ = pipe.write_all(input);
    }
    let out = child.wait_with_output().map_err(|e| NetCmdError::Failed {
        program: program.to_owned(),
        stderr: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    if let Some(ns) = netns.filter(|ns| !netns_exists(ns)) {
        // Deleted while we ran: whatever was in it is gone with it.
        return Err(NetCmdError::NoNetns(ns.to_owned()));
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    // `ip netns exec` reports a missing program as exec failure.
    if netns.is_some() && stderr.contains("No such file or directory") && stderr.contains("exec") {
        return Err(missing(program));
    }
    Err(NetCmdError::Failed {
        program: format!("{program} {}", args.join(" ")),
        stderr,
    })
}

/// What a watchdog removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    /// An nftables `inet` table.
    Table(String),
    /// The root qdisc of an interface, when its handle is still the given one.
    Qdisc {
        /// The interface.
        interface: String,
        /// The handle major number we installed.
        handle: u16,
    },
}

/// A running watchdog child (`chaos-runner stress expire-net`).
#[derive(Debug)]
pub struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Starts `exe stress expire-net` for `target` in `netns`, removing it after `after`
    /// or when this thread's process dies (parent-death signal SIGTERM).
    pub fn start(
        exe: &Path,
        netns: Option<&str>,
        target: &WatchTarget,
        after: Duration,
    ) -> std::io::Result<Watchdog> {
        let (table, interface, handle) = match target {
            WatchTarget::Table(t) => (Some(t.clone()), None, None),
            WatchTarget::Qdisc { interface, handle } => {
                (None, Some(interface.clone()), Some(*handle))
            }
        };
        let watchdog = HelperCommand::ExpireNet {
            after: after.max(Duration::from_millis(1)),
            netns: netns.map(str::to_owned),
            table,
            interface,
            handle,
        };
        let child = Command::new(exe)
            .args(watchdog.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Watchdog { child })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it (SIGTERM: it removes its target and exits; SIGKILL after 3 s) and reaps it.
    pub fn stop(mut self) {
        let pid = self.child.id();
        // SAFETY: kill(2) on our own unreaped child; no memory is involved.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Watchdog processes whose command line names `flag value` (for tests and diagnostics).
pub fn watchdogs_with(flag: &str, value: &str) -> Vec<u32> {
    proc::pids()
        .into_iter()
        .filter(|pid| {
            proc::cmdline(*pid)
                .and_then(|argv| HelperCommand::from_cmdline(&argv))
                .is_some_and(|helper| {
                    matches!(helper, HelperCommand::ExpireNet { .. })
                        && helper
                            .to_args()
                            .windows(2)
                            .any(|w| w[0] == flag && w[1] == value)
                })
                && proc::stat(*pid).is_some_and(|(s, _)| s != 'Z')
        })
        .collect()
}
