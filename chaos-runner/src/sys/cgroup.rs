//! cgroup v1 confinement of the hogs: one cgroup per fault,
//! `<controller mount>/chaos-runner/<run id>-<fault>`, created before the hog starts,
//! joined by the hog before it allocates or spins (the child writes itself into
//! `cgroup.procs` between fork and exec), measured, and removed on revert. `recover`
//! removes what a dead run left by its run id.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys::proc;

/// The cgroup v1 controllers the hogs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// `cpu`: `cpu.cfs_quota_us`.
    Cpu,
    /// `cpuacct`: `cpuacct.usage`.
    Cpuacct,
    /// `memory`: `memory.limit_in_bytes`, `memory.max_usage_in_bytes`.
    Memory,
}

impl Controller {
    /// The controller's name, as in `/proc/mounts` options.
    ///
    /// ```
    /// assert_eq!(chaos_runner::sys::cgroup::Controller::Memory.name(), "memory");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Memory => "memory",
        }
    }
}

const ALL: [Controller; 3] = [Controller::Cpu, Controller::Cpuacct, Controller::Memory];

/// A cgroup could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The controller is not mounted as cgroup v1.
    #[error("the cgroup v1 `{0}` controller is not mounted on this machine (cgroup v2 is not supported for hog confinement)")]
    Missing(&'static str),
    /// Reading or writing a cgroup file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Something is left that should be gone.
    #[error("{0}")]
    Left(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where the cgroup v1 hierarchy holding `controller` is mounted.
pub fn mount_point(controller: Controller) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(2) == Some(&"cgroup")
            && f.get(3)
                .is_some_and(|o| o.split(',').any(|o| o == controller.name())))
        .then(|| PathBuf::from(f[1]))
    })
}

/// One fault's cgroup, in each controller it needs.
#[derive(Debug, Clone)]
pub struct Cgroup {
    dirs: Vec<(Controller, PathBuf)>,
}

impl Cgroup {
    /// Creates `chaos-runner/<run_id>-<fault>` in each of `controllers` (a fresh one:
    /// a leftover of the same name is removed first).
    pub fn create(
        controllers: &[Controller],
        run_id: &str,
        fault: &str,
    ) -> Result<Cgroup, CgroupError> {
        let mut dirs = Vec::new();
        for c in controllers {
            let mount = mount_point(*c).ok_or(CgroupError::Missing(c.name()))?;
            let dir = mount.join("chaos-runner").join(format!("{run_id}-{fault}"));
            dirs.push((*c, dir));
        }
        let cgroup = Cgroup { dirs };
        for dir in cgroup.paths() {
            if dir.exists() {
                remove_dir(&dir)?;
            }
            // `recover` may remove the empty shared parent between making it and making
            // the child: make both again then.
            let mut made = std::fs::create_dir_all(&dir);
            for _ in 0..3 {
                match &made {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        made = std::fs::create_dir_all(&dir)
                    }
                    _ => break,
                }
            }
            made.map_err(io(&dir))?;
        }
        Ok(cgroup)
    }

    /// The cgroup's directories, one per hierarchy (co-mounted controllers share one).
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = Vec::new();
        for (_, dir) in &self.dirs {
            if !paths.contains(dir) {
                paths.push(dir.clone());
            }
        }
        paths
    }

    fn dir(&self, controller: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// Writes `value` to the controller's `file`.
    pub fn write(
        &self,
        controller: Controller,
        file: &str,
        value: &str,
    ) -> Result<(), CgroupError> {
        let dir = self
            .dir(controller)
            .ok_or(CgroupError::Missing(controller.name()))?;
        let path = dir.join(file);
        std::fs::write(&path, value).map_err(io(&path))
    }

    /// Reads the controller's `file` as one number.
    pub fn read_u64(&self, controller: Controller, file: &str) -> Result<u64, CgroupError> {
        let dir = self
            .dir(controller)
            .ok_or(CgroupError::Missing(controller.name()))?;
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        text.trim().parse().map_err(|_| CgroupError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(format!("not a number: {}", text.trim())),
        })
    }

    /// The `cgroup.procs` files a child writes `0` to (joining the cgroup) between fork
    /// and exec; see [`join_in_child`].
    pub fn procs_files(&self) -> Result<Vec<CString>, CgroupError> {
        self.paths()
            .iter()
            .map(|d| {
                let path = d.join("cgroup.procs");
                CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| CgroupError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::other("path holds a NUL byte"),
                })
            })
            .collect()
    }

    /// Removes the cgroup (killing any runner stress process still in it) and checks it is
    /// gone.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for dir in self.paths() {
            remove_dir(&dir)?;
        }
        Ok(())
    }
}

/// Moves the calling process into each cgroup of `procs_files` (cgroup v1: writing `0`
/// to `cgroup.procs` moves the writer). Only async-signal-safe calls: it runs in a child
/// between fork and exec.
///
/// # Safety
/// Call only from a `pre_exec` hook (or a single-threaded process).
pub unsafe fn join_in_child(procs_files: &[CString]) -> std::io::Result<()> {
    for file in procs_files {
        let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let written = libc::write(fd, b"0".as_ptr().cast(), 1);
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        if written != 1 {
            return Err(error);
        }
    }
    Ok(())
}

/// Removes one cgroup directory: kills the runner's stress processes left in it, waits
/// for it to empty, removes it, and checks it is gone. Refuses to touch a cgroup holding
/// anything else.
pub fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    let procs_path = dir.join("cgroup.procs");
    let members = |path: &Path| -> Vec<u32> {
        std::fs::read_to_string(path)
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    };
    for pid in members(&procs_path) {
        let ours = proc::cmdline(pid)
            .and_then(|argv| crate::helper::HelperCommand::from_cmdline(&argv))
            .is_some();
        if !ours {
            return Err(CgroupError::Left(format!(
                "cgroup {} holds process {pid}, which the runner did not start; not removing it",
                dir.display()
            )));
        }
        proc::signal(pid, libc::SIGKILL);
    }
    let mut last = None;
    let gone = proc::wait_until(Duration::from_secs(3), || {
        if !members(&procs_path).is_empty() {
            return false;
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                last = Some(e);
                false
            }
        }
    });
    if gone && !dir.exists() {
        tracing::debug!(cgroup = %dir.display(), "removed cgroup");
        Ok(())
    } else {
        Err(CgroupError::Left(format!(
            "cgroup {} is still there{}",
            dir.display(),
            last.map(|e| format!(": {e}")).unwrap_or_default()
        )))
    }
}

/// Removes every cgroup `run_id` left (`chaos-runner/<run_id>-*` in each controller),
/// or only fault `fault`'s when given. Used by `recover`.
pub fn remove_run(run_id: &str, fault: Option<&str>) -> Result<(), CgroupError> {
    let mut mounts: Vec<PathBuf> = Vec::new();
    for c in ALL {
        if let Some(m) = mount_point(c) {
            if !mounts.contains(&m) {
                mounts.push(m);
            }
        }
    }
    remove_run_under(&mounts, run_id, fault)
}

/// [`remove_run`] in the hierarchies mounted at `mounts`.
fn remove_run_under(
    mounts: &[PathBuf],
    run_id: &str,
    fault: Option<&str>,
) -> Result<(), CgroupError> {
    for mount in mounts {
        let parent = mount.join("chaos-runner");
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let matches = match fault {
                Some(f) => name == format!("{run_id}-{f}"),
                None => name.starts_with(&format!("{run_id}-")),
            };
            if matches {
                remove_dir(&entry.path())?;
            }
        }
        // The shared `chaos-runner` parent goes too once no run has a cgroup in it: the
        // kernel refuses to remove a cgroup with children or processes, so this never
        // takes another run's (and `create` makes it again when needed).
        if std::fs::remove_dir(&parent).is_ok() {
            tracing::debug!(cgroup = %parent.display(), "removed the empty parent cgroup");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared parent goes once no run has a cgroup in it, and stays while one does.
    /// (On a plain directory tree: removing a directory that still holds one fails, as the
    /// kernel refuses to remove a cgroup with children.)
    #[test]
    fn the_shared_parent_goes_with_the_last_run() {
        let mount = std::env::temp_dir().join(format!("chaos-cgroup-test-{}", std::process::id()));
        let parent = mount.join("chaos-runner");
        for child in ["run-a-hog", "run-b-hog"] {
            std::fs::create_dir_all(parent.join(child)).unwrap();
        }
        let mounts = [mount.clone()];
        remove_run_under(&mounts, "run-a", None).unwrap();
        assert!(!parent.join("run-a-hog").exists());
        assert!(
            parent.join("run-b-hog").exists(),
            "another run's cgroup is kept"
        );
        remove_run_under(&mounts, "run-b", Some("hog")).unwrap();
        assert!(!parent.exists(), "the empty parent is removed");
        std::fs::remove_dir_all(&mount).ok();
    }
}
