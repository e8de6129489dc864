//! The write-ahead journal: one append-only JSON-lines file per run under the state
//! directory, fsync'd after every entry. A fault's intent is written (and synced) before it
//! is injected and its revert after, so a runner killed at any instant leaves enough on
//! disk for `chaos-runner recover` to find and revert what is still live.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::faults::FaultRecord;

/// Journal I/O failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A journal file could not be created, written, synced or read.
    #[error("journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// What happened.
    pub event: Event,
}

/// What a journal line records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A run started.
    RunStarted {
        /// Experiment name.
        experiment: String,
        /// The runner's process id.
        pid: u32,
    },
    /// A fault is about to be injected (written and synced before anything is touched).
    Intent {
        /// Fault name.
        fault: String,
        /// What will be injected, in words.
        description: String,
        /// How to find and revert it, when known before the injection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        record: Option<FaultRecord>,
    },
    /// The fault is in; `record` says how to find and revert it.
    Injected {
        /// Fault name.
        fault: String,
        /// How to find and revert it.
        record: FaultRecord,
    },
    /// A fault was reverted and the revert verified.
    Reverted {
        /// Fault name.
        fault: String,
    },
    /// Reverting a fault failed.
    RevertFailed {
        /// Fault name.
        fault: String,
        /// Why.
        error: String,
    },
    /// Closed by a later run: the fault provably ended with its (dead) runner, so there is
    /// nothing to revert.
    Gone {
        /// Fault name.
        fault: String,
        /// How that was established.
        note: String,
    },
    /// The run ended.
    RunEnded {
        /// Exit code of the run.
        exit_code: u8,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The journal of one run, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Journal {
    /// Creates `<state_dir>/runs/<run_id>.jsonl` (failing if it exists).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("journal-doc-{}", std::process::id()));
    /// let mut j = chaos_runner::journal::Journal::create(&dir, "run-1").unwrap();
    /// j.append(chaos_runner::journal::Event::RunEnded { exit_code: 0 }).unwrap();
    /// # std::fs::remove_dir_all(dir).unwrap();
    /// ```
    pub fn create(state_dir: &Path, run_id: &str) -> Result<Journal, JournalError> {
        let dir = state_dir.join("runs");
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join(format!("{run_id}.jsonl"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        // Make the new file's directory entry durable too.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(Journal { path, file })
    }

    /// Opens an existing run's journal for appending (used by `recover`).
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_error(path))?;
        Ok(Journal {
            path: path.to_owned(),
            file,
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event and syncs it to disk before returning.
    pub fn append(&mut self, event: Event) -> Result<(), JournalError> {
        let entry = Entry {
            at_unix_ms: now_ms(),
            event,
        };
        let mut line = serde_json::to_string(&entry).map_err(|e| JournalError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(io_error(&self.path))
    }
}

/// Reads a journal's entries. A torn last line (the runner died mid-write) is skipped.
pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut entries = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(io_error(path))?;
        if let Ok(entry) = serde_json::from_str::<Entry>(&line) {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// A fault whose intent is journaled without a successful revert.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFault {
    /// The run's journal.
    pub journal: PathBuf,
    /// The run's id (the journal's file name).
    pub run_id: String,
    /// The experiment's name, from the journal (empty if the runner died before writing it).
    pub experiment: String,
    /// Fault name.
    pub fault: String,
    /// How to find and revert it; `None` when the runner died between the intent and the
    /// injection (then the fault is found by its run id).
    pub record: Option<FaultRecord>,
    /// The process id of the run's runner, from the journal.
    pub runner_pid: Option<u32>,
}

/// Every fault, in every journal under `state_dir`, that was intended and not reverted.
pub fn live_faults(state_dir: &Path) -> Result<Vec<LiveFault>, JournalError> {
    let dir = state_dir.join("runs");
    let listing = match std::fs::read_dir(&dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&dir)(e)),
    };
    let mut paths: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    let mut live = Vec::new();
    for path in paths {
        let run_id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut pending: Vec<LiveFault> = Vec::new();
        let mut runner_pid = None;
        let mut experiment_name = String::new();
        for entry in read(&path)? {
            match entry.event {
                Event::RunStarted { pid, experiment } => {
                    runner_pid = Some(pid);
                    experiment_name = experiment;
                }
                Event::Intent { fault, record, .. } => pending.push(LiveFault {
                    journal: path.clone(),
                    run_id: run_id.clone(),
                    experiment: experiment_name.clone(),
                    fault,
                    record,
                    runner_pid,
                }),
                Event::Injected { fault, record } => {
                    if let Some(p) = pending.iter_mut().find(|p| p.fault == fault) {
                        p.record = Some(record);
                    }
                }
                Event::Reverted { fault } | Event::Gone { fault, .. } => {
                    pending.retain(|p| p.fault != fault)
                }
                _ => {}
            }
        }
        live.extend(pending);
    }
    Ok(live)
}

/// The state directory: the flag, else `$CHAOS_RUNNER_STATE_DIR`, else
/// `$XDG_STATE_HOME/chaos-runner`, else `~/.local/state/chaos-runner`.
pub fn state_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = flag {
        return dir;
    }
    if let Some(dir) = std::env::var_os("CHAOS_RUNNER_STATE_DIR") {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(dir).join("chaos-runner");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/state/chaos-runner")
}
