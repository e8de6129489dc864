//! The GameDay history: one JSON line per run or skip, appended (never rewritten) to
//! `<history>/<gameday>.jsonl` beside the reports. Each line is written with one `write`
//! on a file opened for appending and synced before the command ends, so two writers never
//! interleave inside a line and a crash loses at most the line being written.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// When the decision was taken (RFC 3339, UTC).
    pub at: String,
    /// The same instant in the GameDay's zone (`2026-12-08 14:00 KST`).
    pub local: String,
    /// The GameDay.
    pub gameday: String,
    /// The entry.
    pub entry: String,
    /// The slot it was scheduled for (RFC 3339), if called for one.
    pub slot: Option<String>,
    /// `run` or `skip`.
    pub action: Action,
    /// For a skip: its kind (`blackout`, `maintenance`, `overrun`, `outside-allowed`,
    /// `budget`, `budget-unknown`, `busy`, `late`).
    #[serde(default)]
    pub skip: Option<String>,
    /// Why it was skipped, or how the run ended.
    pub reason: String,
    /// For a run: its outcome (`passed`, `failed`, `aborted`, `not_reverted`,
    /// `invalid_input`).
    #[serde(default)]
    pub verdict: Option<String>,
    /// For a run: its exit code.
    #[serde(default)]
    pub exit_code: Option<u8>,
    /// For a run: its id (journals, reports).
    #[serde(default)]
    pub run_id: Option<String>,
    /// For a run: how long it took.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Percent of each touched SLO's budget left before (`null`: not read).
    #[serde(default)]
    pub budget_before: BTreeMap<String, Option<f64>>,
    /// And after the run.
    #[serde(default)]
    pub budget_after: BTreeMap<String, Option<f64>>,
    /// For a run: the report files written.
    #[serde(default)]
    pub reports: Vec<String>,
}

/// Run or skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The experiment ran.
    Run,
    /// The slot was skipped.
    Skip,
}

/// Why the history cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file or its directory.
    #[error("history {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A record that does not serialize (never expected).
    #[error("history: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Appends `record` to the history at `path`, creating it (and its directory) if needed.
///
/// ```
/// # use chaos_runner::gameday::history::*;
/// let dir = std::env::temp_dir().join(format!("history-doc-{}", std::process::id()));
/// let path = dir.join("weekly.jsonl");
/// let record = Record { at: "2026-12-08T05:00:00Z".into(), local: "2026-12-08 14:00 KST".into(),
///     gameday: "weekly".into(), entry: "db".into(), slot: None, action: Action::Skip,
///     skip: Some("blackout".into()), reason: "peak".into(), verdict: None, exit_code: None,
///     run_id: None, duration_ms: None, budget_before: Default::default(),
///     budget_after: Default::default(), reports: vec![] };
/// append(&path, &record).unwrap();
/// assert_eq!(read(&path).unwrap().0, vec![record]);
/// # std::fs::remove_dir_all(dir).unwrap();
/// ```
pub fn append(path: &Path, record: &Record) -> Result<(), HistoryError> {
    let io = |source| HistoryError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    file.write_all(&line).map_err(io)?;
    file.sync_data().map_err(io)
}

/// Reads the history at `path`: its records, in order, and a note for each line that is
/// not a record (a line cut by a crash), which is passed over. A missing file is an empty
/// history.
pub fn read(path: &Path) -> Result<(Vec<Record>, Vec<String>), HistoryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(HistoryError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut records = Vec::new();
    let mut notes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(e) => notes.push(format!(
                "{}:{}: not a history record, passed over: {e}",
                path.display(),
                i + 1
            )),
        }
    }
    Ok((records, notes))
}
