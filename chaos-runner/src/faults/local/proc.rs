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
