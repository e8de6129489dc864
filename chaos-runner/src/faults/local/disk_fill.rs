//! Disk fill: a child process (`chaos-runner stress disk`) that allocates one file,
//! `<path>/.chaos-fill-<run>-<fault>`, holds it and deletes it when its time is up or its
//! parent (the runner) dies (parent-death signal SIGTERM, which it handles by deleting
//! the file). The size is clamped so free space never goes below the safety floor (the
//! larger of `minFreeBytes` and `safetyFloorPercent` of the filesystem); the journal
//! keeps the file's path from the intent on (before the child starts), so `recover`
//! deletes it even if runner and child were both SIGKILLed at any point.

use crate::helper::HelperCommand;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::faults::{Fault, FaultError, FaultRecord};
use crate::spec::DiskFillParams;
use crate::sys::child::StressChild;
use crate::sys::proc;

/// The file name prefix every fill file has (recover refuses to delete anything else).
pub const FILL_PREFIX: &str = ".chaos-fill-";

/// A fill file could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DiskFillError {
    /// The path is not a fill file: it is never deleted.
    #[error("{} is not a fill file ({FILL_PREFIX}*); not deleting it", .0.display())]
    NotAFillFile(PathBuf),
    /// Deleting the file failed.
    #[error("deleting {}: {source}", .file.display())]
    Delete {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is still there after deleting it.
    #[error("fill file {} is still there", .0.display())]
    StillThere(PathBuf),
}

/// A disk fill fault.
#[derive(Debug)]
pub struct DiskFill {
    name: String,
    run_id: String,
    params: DiskFillParams,
    duration: Duration,
    exe: PathBuf,
    child: Option<StressChild>,
    file: PathBuf,
    measurements: Vec<(String, String)>,
}

/// Free (for unprivileged users) and total bytes of the filesystem holding `path`.
///
/// ```
/// let (free, total) = chaos_runner::faults::local::disk_fill::space("/").unwrap();
/// assert!(free <= total);
/// ```
pub fn space(path: impl AsRef<Path>) -> std::io::Result<(u64, u64)> {
    let c = std::ffi::CString::new(path.as_ref().as_os_str().as_encoded_bytes())
        .map_err(std::io::Error::other)?;
    // SAFETY: statvfs writes into the zeroed struct we pass; the path is NUL-terminated.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let frsize = s.f_frsize as u64;
        Ok((s.f_bavail as u64 * frsize, s.f_blocks as u64 * frsize))
    }
}

/// Space a file really takes on disk (allocated blocks).
pub fn allocated_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.blocks() * 512)
}

impl DiskFill {
    /// A fill of `params` for at most `duration`, run by the `exe` binary (this runner).
    pub fn new(
        name: &str,
        run_id: &str,
        params: DiskFillParams,
        duration: Duration,
        exe: PathBuf,
    ) -> Self {
        let file = Path::new(&params.path).join(format!("{FILL_PREFIX}{run_id}-{name}"));
        DiskFill {
            name: name.to_owned(),
            run_id: run_id.to_owned(),
            params,
            duration,
            exe,
            child: None,
            file,
            measurements: Vec::new(),
        }
    }

    /// The fill file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn error(&self, revert: bool, reason: impl Into<String>) -> FaultError {
        let (fault, reason) = (self.name.clone(), reason.into());
        if revert {
            FaultError::Revert { fault, reason }
        } else {
            FaultError::Inject { fault, reason }
        }
    }
}

impl Fault for DiskFill {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let what = match (self.params.bytes, self.params.percent_of_free) {
            (Some(b), _) => b.display().iec().to_string(),
            (_, Some(p)) => format!("{p}% of the free space"),
            _ => "nothing".to_owned(),
        };
        format!(
            "disk-fill `{}`: {what} in {} (free space kept above the larger of {} and {}%) for at most {}",
            self.name,
            self.file.display(),
            self.params.min_free_bytes.display().iec(),
            self.params.safety_floor_percent,
            humantime::format_duration(Duration::from_millis(self.duration.as_millis() as u64))
        )
    }

    /// The fill file's path is known before anything starts: journaled with the intent
    /// (no child yet, pid 0), it lets `recover` delete the file even when the runner and
    /// the child were both SIGKILLed before the `injected` record.
    fn planned_record(&self) -> Option<FaultRecord> {
        Some(FaultRecord::DiskFill {
            pid: 0,
            start_ticks: 0,
            file: self.file.clone(),
        })
    }

    fn inject(&mut self) -> Result<FaultRecord, FaultError> {
        let dir = Path::new(&self.params.path);
        if !dir.is_dir() {
            return Err(self.error(false, format!("{} is not a directory", dir.display())));
        }
        let (free, total) =
            space(dir).map_err(|e| self.error(false, format!("statvfs {}: {e}", dir.display())))?;
        let floor = self.params.floor(total);
        let wanted = match (self.params.bytes, self.params.percent_of_free) {
            (Some(b), _) => b.as_u64(),
            (_, Some(p)) => free / 100 * u64::from(p),
            _ => 0,
        };
        let allowed = free.saturating_sub(floor);
        let bytes = wanted.min(allowed);
        self.measurements.extend([
            ("free_bytes_before".to_owned(), free.to_string()),
            ("floor_bytes".to_owned(), floor.to_string()),
            ("requested_bytes".to_owned(), wanted.to_string()),
            ("fill_bytes".to_owned(), bytes.to_string()),
        ]);
        if bytes < wanted {
            tracing::warn!(fault = %self.name, wanted, bytes, floor, "disk fill clamped to the safety floor");
            self.measurements
                .push(("clamped".to_owned(), format!("to keep {floor} bytes free")));
        }
        if bytes == 0 {
            return Err(self.error(
                false,
                format!(
                    "{} has {free} bytes free, not above the safety floor of {floor} bytes: nothing may be filled",
                    dir.display()
                ),
            ));
        }
        let filler = HelperCommand::Disk {
            path: self.file.clone(),
            bytes,
            keep_free: floor,
            duration: self.duration,
            run_id: self.run_id.clone(),
            fault: self.name.clone(),
        };
        let mut child = StressChild::spawn(&self.exe, &filler, Vec::new())
            .map_err(|e| self.error(false, e.to_string()))?;
        let record = FaultRecord::DiskFill {
            pid: child.pid(),
            start_ticks: child.start_ticks,
            file: self.file.clone(),
        };
        // Ready when the file has its full size; a child that exits first failed.
        let limit = Duration::from_secs(30) + Duration::from_millis(bytes / (50 << 10));
        let file = self.file.clone();
        proc::wait_until(limit, || {
            child.exited().is_some() || allocated_bytes(&file).is_some_and(|a| a >= bytes)
        });
        if let Some(status) = child.exited() {
            let _ = std::fs::remove_file(&self.file);
            return Err(self.error(false, format!("fill process failed ({status})")));
        }
        if let Ok((after, _)) = space(dir) {
            self.measurements
                .push(("free_bytes_after_fill".to_owned(), after.to_string()));
        }
        self.child = Some(child);
        Ok(record)
    }

    fn revert(&mut self) -> Result<(), FaultError> {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the child deletes its file and exits.
            child
                .stop(libc::SIGTERM, Duration::from_secs(5))
                .map_err(|e| self.error(true, e.to_string()))?;
        }
        remove_fill(&self.file).map_err(|e| self.error(true, e.to_string()))
    }

    fn verify_reverted(&self) -> Result<(), FaultError> {
        if self.file.exists() {
            return Err(self.error(
                true,
                format!("fill file {} still exists", self.file.display()),
            ));
        }
        if let Some((pid, _)) = proc::stress_children(&self.run_id, &self.name).first() {
            return Err(self.error(true, format!("fill process {pid} still runs")));
        }
        Ok(())
    }

    fn measurements(&self) -> Vec<(String, String)> {
        self.measurements.clone()
    }
}

/// Deletes a fill file (only files named `.chaos-fill-*`) and checks it is gone.
///
/// ```
/// use chaos_runner::faults::local::disk_fill::remove_fill;
/// // Anything not named like a fill file is refused.
/// assert!(remove_fill(std::path::Path::new("/etc/passwd")).is_err());
/// // A fill file already gone is fine.
/// assert!(remove_fill(std::path::Path::new("/tmp/.chaos-fill-doc-none")).is_ok());
/// ```
pub fn remove_fill(file: &Path) -> Result<(), DiskFillError> {
    let ours = file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(FILL_PREFIX));
    if !ours {
        return Err(DiskFillError::NotAFillFile(file.to_owned()));
    }
    match std::fs::remove_file(file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DiskFillError::Delete {
                file: file.to_owned(),
                source,
            })
        }
    }
    if file.exists() {
        Err(DiskFillError::StillThere(file.to_owned()))
    } else {
        Ok(())
    }
}
