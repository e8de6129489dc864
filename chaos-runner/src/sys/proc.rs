//! Reading `/proc`: is a process (still) the one we started, and which processes carry a
//! given command line.

use std::path::Path;

/// The state letter and start time (clock ticks since boot) of `pid`, from
/// `/proc/<pid>/stat`; `None` when there is no such process.
pub fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: parse after it.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start_ticks = fields.get(19)?.parse().ok()?; // field 22 overall
    Some((state, start_ticks))
}

/// Whether `pid` is alive (not a zombie) and started at `start_ticks`.
pub fn is_running(pid: u32, start_ticks: u64) -> bool {
    matches!(stat(pid), Some((state, ticks)) if ticks == start_ticks && state != 'Z' && state != 'X')
}

/// The command line of `pid`, split into arguments.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Every process id on the machine.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir(Path::new("/proc"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The parent process id of `pid`.
pub fn ppid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Whether `pid` is a kernel thread (`PF_KTHREAD` in its flags, `/proc/<pid>/stat`
/// field 9).
pub fn is_kernel_thread(pid: u32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    stat_fields(pid)
        .and_then(|f| f.get(6)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// This process and every ancestor up to pid 1.
pub fn self_and_ancestors() -> Vec<u32> {
    let mut chain = vec![std::process::id()];
    while let Some(parent) = chain.last().and_then(|p| ppid(*p)) {
        if parent == 0 || chain.contains(&parent) {
            break;
        }
        chain.push(parent);
    }
    chain
}

/// The executable names of `pid`: `/proc/<pid>/comm` and the file name of
/// `/proc/<pid>/exe`.
pub fn names(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        names.push(comm.trim_end().to_owned());
    }
    if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
        if let Some(file) = exe.file_name() {
            names.push(
                file.to_string_lossy()
                    .trim_end_matches(" (deleted)")
                    .to_owned(),
            );
        }
    }
    names
}

/// Socket inodes listening on TCP `port` (IPv4 and IPv6), from `/proc/net/tcp{,6}`.
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is `ADDR:PORT` in hex; state 0A is LISTEN; inode is field 10.
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"0A") {
                if let Some(inode) = f.get(9).and_then(|i| i.parse().ok()) {
                    inodes.push(inode);
                }
            }
        }
    }
    inodes
}

/// Processes holding a socket listening on TCP `port`.
pub fn listening_on(port: u16) -> Vec<u32> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Vec::new();
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|dir| {
                dir.filter_map(Result::ok).any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|l| wanted.iter().any(|w| l.as_os_str() == w.as_str()))
                })
            })
        })
        .collect()
}

/// Sends `sig` to `pid`; false when there is no such process (or no permission).
pub fn signal(pid: u32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) takes no pointers; callers check the pid is the process they mean.
    unsafe { libc::kill(pid as libc::pid_t, sig) == 0 }
}

/// Waits until `done()` or `limit` passes; returns whether it happened.
pub fn wait_until(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    done()
}

/// The value of `--flag` in an argument vector.
pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.windows(2)
        .find(|w| w[0] == flag)
        .map(|w| w[1].as_str())
}

/// Runner helper children (`<exe> stress <command> ...`) of `run_id`'s fault `name`, with
/// what each runs, found by command line (zombies excluded).
pub fn stress_children(run_id: &str, name: &str) -> Vec<(u32, crate::helper::HelperCommand)> {
    pids()
        .into_iter()
        .filter_map(|pid| {
            let args = cmdline(pid)?;
            let helper = crate::helper::HelperCommand::from_cmdline(&args)?;
            let ours =
                helper.owner() == Some((run_id, name)) && stat(pid).is_some_and(|(s, _)| s != 'Z');
            ours.then_some((pid, helper))
        })
        .collect()
}
