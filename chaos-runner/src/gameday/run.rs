//! `chaos-runner gameday run FILE [--entry NAME]`: what a scheduler calls at a slot. Takes
//! the state directory's GameDay lock (never two runs at once), checks the windows and the budget at that
//! moment, then runs the experiment with a deadline at the next blackout, or records a
//! skip with its reason; appends the outcome to the history and tells the webhook.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::history::{self, Action, Record};
use super::lock::{GameDayLock, Locked};
use super::notify;
use super::windows::{chrono_duration, Clock, Skip};
use crate::events::{EventSink, RunEvent};
use crate::exit::Outcome;
use crate::output::Format;
use crate::spec::gameday::{ValidatedEntry, ValidatedGameDay};

/// What `gameday run` is asked.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The entry (needed when the GameDay has more than one).
    pub entry: Option<String>,
    /// Judge the windows and the budget as if it were this instant (tests, rehearsals);
    /// the experiment itself runs now, and its deadline keeps the same distance.
    pub now: Option<DateTime<Utc>>,
    /// Run it even when called off its schedule (by hand): windows and budget still apply.
    pub unscheduled: bool,
    /// Where run journals live.
    pub state_dir: PathBuf,
    /// Revert an earlier run's live faults first.
    pub recover: bool,
    /// `run -v`.
    pub verbose: bool,
}

/// What one `gameday run` did: the history record it appended.
pub fn run(file: &Path, request: &RunRequest, format: Format) -> Outcome {
    let gameday = match crate::spec::load_gameday(file) {
        Ok(g) => g,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            return Outcome::InvalidInput;
        }
    };
    let entry = match pick_entry(&gameday, request.entry.as_deref()) {
        Ok(entry) => entry,
        Err(why) => {
            eprintln!("error: {}: {why}", file.display());
            return Outcome::InvalidInput;
        }
    };
    let pretend = request.now;
    let now = pretend.unwrap_or_else(Utc::now);
    let history_file = gameday.history_file();
    let lock = match GameDayLock::take(&request.state_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Aborted;
        }
    };
    let slot = entry
        .schedule
        .last_at_or_before(now, gameday.zone)
        .filter(|slot| now - *slot <= chrono_duration(gameday.gameday.spec.starting_deadline));
    let mut record = Record {
        at: now.to_rfc3339(),
        local: local_text(&gameday, now),
        gameday: gameday.gameday.metadata.name.clone(),
        entry: entry.name.clone(),
        slot: slot.map(|s| s.to_rfc3339()),
        action: Action::Skip,
        skip: None,
        reason: String::new(),
        verdict: None,
        exit_code: None,
        run_id: None,
        duration_ms: None,
        budget_before: BTreeMap::new(),
        budget_after: BTreeMap::new(),
        reports: Vec::new(),
    };
    let decision = decide(&gameday, entry, request, now, slot, &lock, &mut record);
    let outcome = match decision {
        Err(skip) => {
            record.skip = Some(skip.kind().to_owned());
            record.reason = skip.to_string();
            Outcome::Passed
        }
        Ok(()) => start(&gameday, entry, request, now, &mut record),
    };
    drop(lock);
    let written = history::append(&history_file, &record);
    notify::send(&gameday, &record);
    print(&record, &history_file, format, written.as_ref().err());
    match written {
        Ok(()) => outcome,
        // A run that is not in the history did still happen: its own outcome wins unless
        // it passed.
        Err(_) if outcome == Outcome::Passed => Outcome::Aborted,
        Err(_) => outcome,
    }
}

/// The entry asked for, or the only one.
fn pick_entry<'a>(
    gameday: &'a ValidatedGameDay,
    name: Option<&str>,
) -> Result<&'a ValidatedEntry, String> {
    let names = || {
        gameday
            .entries
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => gameday
            .entry(name)
            .ok_or_else(|| format!("--entry {name}: no such entry (it has: {})", names())),
        None if gameday.entries.len() == 1 => Ok(&gameday.entries[0]),
        None => Err(format!(
            "the GameDay has several entries: name one with --entry ({})",
            names()
        )),
    }
}

/// The reasons not to run now, in order: another run, the windows, no slot, the budget.
fn decide(
    gameday: &ValidatedGameDay,
    entry: &ValidatedEntry,
    request: &RunRequest,
    now: DateTime<Utc>,
    slot: Option<DateTime<Utc>>,
    lock: &Locked,
    record: &mut Record,
) -> Result<(), Skip> {
    if let Locked::Busy(holder) = lock {
        return Err(Skip::Busy {
            holder: holder.clone(),
        });
    }
    // The windows first: "in the peak" says more than "not at a slot".
    Clock::of(gameday).check(entry, now)?;
    if slot.is_none() && !request.unscheduled {
        let last = entry.schedule.last_at_or_before(now, gameday.zone);
        return Err(Skip::Late {
            slot: last.map_or("(none)".to_owned(), |s| local_text(gameday, s)),
            deadline: humantime::format_duration(gameday.gameday.spec.starting_deadline)
                .to_string(),
        });
    }
    let budget = super::budget::read(gameday, &entry.slos, request.now);
    record.budget_before = budget
        .iter()
        .map(|b| (b.slo.clone(), b.left_percent))
        .collect();
    super::budget::skip(gameday, &entry.slos, &budget).map_or(Ok(()), Err)
}

/// Runs the experiment with a deadline at the next blackout and fills in the record.
fn start(
    gameday: &ValidatedGameDay,
    entry: &ValidatedEntry,
    request: &RunRequest,
    now: DateTime<Utc>,
    record: &mut Record,
) -> Outcome {
    record.action = Action::Run;
    let started = std::time::Instant::now();
    let deadline = Clock::of(gameday)
        .deadline(now)
        .map(|(at, reason)| crate::engine::Deadline {
            at: started + (at - now).to_std().unwrap_or_default(),
            reason,
        });
    let mut sink = Capture {
        // The run's progress goes to stderr as text; stdout holds the GameDay's summary.
        inner: crate::output::sink_with(Format::Text, request.verbose),
        finished: None,
    };
    let outcome = crate::engine::run(
        &entry.experiment_path,
        crate::engine::RunOptions {
            state_dir: request.state_dir.clone(),
            recover_first: request.recover,
            kube: None,
            deadline,
        },
        &mut sink,
    );
    record.exit_code = Some(outcome.code());
    record.duration_ms = Some(started.elapsed().as_millis() as u64);
    match sink.finished {
        Some((report, written)) => {
            record.verdict = Some(report.outcome.clone());
            record.reason = report.reason.clone();
            record.run_id = Some(report.run_id.clone());
            record.reports = written.iter().map(|p| p.display().to_string()).collect();
        }
        None => {
            record.verdict = Some(
                match outcome {
                    Outcome::InvalidInput => "invalid_input",
                    Outcome::NotReverted => "not_reverted",
                    _ => "aborted",
                }
                .to_owned(),
            );
            record.reason = "the run ended before it started (see its output)".to_owned();
        }
    }
    let after = request.now.map(|n| n + chrono_duration(started.elapsed()));
    record.budget_after = super::budget::read(gameday, &entry.slos, after)
        .into_iter()
        .map(|b| (b.slo, b.left_percent))
        .collect();
    outcome
}

/// Passes a run's events on, keeping its report (the GameDay's own summary ends the
/// output).
struct Capture {
    inner: Box<dyn EventSink>,
    finished: Option<(crate::report::RunReport, Vec<PathBuf>)>,
}

impl EventSink for Capture {
    fn emit(&mut self, event: RunEvent) {
        match event {
            RunEvent::Finished { report, written } => {
                self.finished = Some((*report, written));
            }
            other => self.inner.emit(other),
        }
    }
}

/// `at` in the GameDay's zone, for people (`2026-12-08 14:00 KST`).
pub(crate) fn local_text(gameday: &ValidatedGameDay, at: DateTime<Utc>) -> String {
    at.with_timezone(&gameday.zone)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn print(record: &Record, history: &Path, format: Format, failed: Option<&history::HistoryError>) {
    if let Some(e) = failed {
        eprintln!("error: the outcome is not in the history: {e}");
    }
    match format {
        Format::Text => {
            let what = match record.action {
                Action::Skip => format!("SKIPPED ({})", record.skip.as_deref().unwrap_or_default()),
                Action::Run => format!(
                    "RAN: {}",
                    record
                        .verdict
                        .as_deref()
                        .unwrap_or("unknown")
                        .to_uppercase()
                ),
            };
            println!(
                "gameday {} / {} at {}: {what}: {}",
                record.gameday, record.entry, record.local, record.reason
            );
            for report in &record.reports {
                println!("report: {report}");
            }
            if failed.is_none() {
                println!("history: {}", history.display());
            }
        }
        Format::Json => {
            let mut value = serde_json::to_value(record).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("command".into(), "gameday run".into());
                map.insert(
                    "history".into(),
                    failed
                        .is_none()
                        .then(|| history.display().to_string())
                        .into(),
                );
            }
            println!("{value}");
        }
    }
}
