//! Whether a GameDay entry may run at an instant, by the calendar alone: not in a blackout
//! or the maintenance, not running into one given its duration, inside the allowed windows;
//! and the instant a run started now must end by.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;
use std::time::Duration;

use crate::spec::calendar::{DayWindow, Weekday};
use crate::spec::gameday::{BlackoutKind, ValidatedEntry, ValidatedGameDay};

/// Why a slot is skipped, or stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Skip {
    /// The slot is in a blackout window (peak hours by default).
    Blackout {
        /// The window.
        window: String,
    },
    /// The slot is in the SLO calendar's maintenance.
    Maintenance {
        /// The window.
        window: String,
    },
    /// The run would still be going when a blackout or the maintenance begins.
    Overrun {
        /// The window it would run into.
        window: String,
        /// When that window begins (RFC 3339, UTC).
        at: String,
        /// How long the run takes at most.
        max_duration: String,
    },
    /// The slot is outside every allowed window, or the run would not end inside one.
    OutsideAllowed {
        /// The allowed windows.
        windows: String,
    },
    /// An SLO the experiment touches has too little budget left.
    Budget {
        /// The SLO.
        slo: String,
        /// Percent left.
        left_percent: f64,
        /// Percent required.
        required_percent: f64,
    },
    /// The budget could not be read (Prometheus down, no data): a GameDay does not start
    /// blind.
    BudgetUnknown {
        /// Why.
        why: String,
    },
    /// Another GameDay run is in progress.
    Busy {
        /// Who holds the lock.
        holder: String,
    },
    /// The run was called too long after its slot.
    Late {
        /// The slot.
        slot: String,
        /// The starting deadline.
        deadline: String,
    },
}

impl Skip {
    /// A short name of the kind (`blackout`, `budget`): history and report filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Skip::Blackout { .. } => "blackout",
            Skip::Maintenance { .. } => "maintenance",
            Skip::Overrun { .. } => "overrun",
            Skip::OutsideAllowed { .. } => "outside-allowed",
            Skip::Budget { .. } => "budget",
            Skip::BudgetUnknown { .. } => "budget-unknown",
            Skip::Busy { .. } => "busy",
            Skip::Late { .. } => "late",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Blackout { window } => write!(f, "in the blackout window {window}"),
            Skip::Maintenance { window } => write!(f, "in the {window} window"),
            Skip::Overrun {
                window,
                at,
                max_duration,
            } => write!(
                f,
                "would run into {window} (from {at}): the run takes up to {max_duration}"
            ),
            Skip::OutsideAllowed { windows } => write!(
                f,
                "would not start and end inside an allowed window ({windows})"
            ),
            Skip::Budget {
                slo,
                left_percent,
                required_percent,
            } => write!(
                f,
                "SLO `{slo}` has {left_percent:.1}% of its error budget left (more than \
                 {required_percent}% required)"
            ),
            Skip::BudgetUnknown { why } => write!(f, "the error budget cannot be read: {why}"),
            Skip::Busy { holder } => write!(f, "another GameDay run is in progress ({holder})"),
            Skip::Late { slot, deadline } => write!(
                f,
                "started more than {deadline} after its slot {slot} (the starting deadline)"
            ),
        }
    }
}

/// Where a GameDay's windows are read: its zone, blackouts and allowed windows.
pub struct Clock<'a> {
    gameday: &'a ValidatedGameDay,
}

/// How far ahead [`Clock::deadline`] looks for the next blackout.
const HORIZON_MINUTES: i64 = 8 * 24 * 60;

impl<'a> Clock<'a> {
    /// The clock of `gameday`.
    pub fn of(gameday: &'a ValidatedGameDay) -> Clock<'a> {
        Clock { gameday }
    }

    /// The local day of the week and minute of the day at `at`.
    pub fn local(&self, at: DateTime<Utc>) -> (Weekday, u16) {
        let local = at.with_timezone(&self.gameday.zone);
        let day = Weekday::ALL[local.weekday().num_days_from_sunday() as usize];
        // At most 23 * 60 + 59: fits.
        (day, (local.hour() * 60 + local.minute()) as u16)
    }

    /// The blackout (or maintenance) on at `at`, if any: its kind and name.
    pub fn blackout_at(&self, at: DateTime<Utc>) -> Option<(BlackoutKind, &str)> {
        let (day, minute) = self.local(at);
        // Maintenance first: it is the more specific reason.
        let mut on: Vec<_> = self
            .gameday
            .blackouts
            .iter()
            .filter(|b| b.window.contains(day, minute))
            .collect();
        on.sort_by_key(|b| b.kind != BlackoutKind::Maintenance);
        on.first().map(|b| (b.kind, b.name.as_str()))
    }

    fn allowed_at(&self, at: DateTime<Utc>) -> bool {
        let (day, minute) = self.local(at);
        self.gameday.allowed.is_empty()
            || self
                .gameday
                .allowed
                .iter()
                .any(|(_, w): &(String, DayWindow)| w.contains(day, minute))
    }

    fn allowed_names(&self) -> String {
        self.gameday
            .allowed
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether `entry` may start at `at` by the calendar: the reason to skip it if not.
    ///
    /// ```
    /// # use chaos_runner::gameday::windows::Clock;
    /// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/gamedays/weekly.yaml");
    /// let g = chaos_runner::spec::load_gameday(path.as_ref()).unwrap();
    /// let clock = Clock::of(&g);
    /// // 19:00 in Seoul is 10:00 UTC: peak hours.
    /// let peak = chrono::DateTime::parse_from_rfc3339("2026-12-09T10:00:00Z").unwrap().to_utc();
    /// assert_eq!(clock.check(&g.entries[0], peak).unwrap_err().kind(), "blackout");
    /// ```
    pub fn check(&self, entry: &ValidatedEntry, at: DateTime<Utc>) -> Result<(), Skip> {
        if let Some((kind, name)) = self.blackout_at(at) {
            return Err(match kind {
                BlackoutKind::Maintenance => Skip::Maintenance {
                    window: name.to_owned(),
                },
                _ => Skip::Blackout {
                    window: name.to_owned(),
                },
            });
        }
        let end = at
            .checked_add_signed(chrono_duration(entry.max_duration))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // Minute by minute through the run (windows are whole minutes).
        let mut t = next_minute(at);
        let mut inside_allowed = self.allowed_at(at);
        while t < end && inside_allowed {
            if let Some((_, name)) = self.blackout_at(t) {
                return Err(Skip::Overrun {
                    window: name.to_owned(),
                    at: t.to_rfc3339(),
                    max_duration: humantime::format_duration(entry.max_duration).to_string(),
                });
            }
            inside_allowed = self.allowed_at(t);
            t += chrono::Duration::minutes(1);
        }
        if !inside_allowed {
            return Err(Skip::OutsideAllowed {
                windows: self.allowed_names(),
            });
        }
        Ok(())
    }

    /// When a run started at `at` must end: the first minute a blackout (or the
    /// maintenance) begins or the allowed windows end, within eight days, and why.
    pub fn deadline(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, String)> {
        let mut t = next_minute(at);
        for _ in 0..HORIZON_MINUTES {
            if let Some((_, name)) = self.blackout_at(t) {
                return Some((t, format!("the GameDay reached the window {name}")));
            }
            if !self.allowed_at(t) {
                return Some((
                    t,
                    format!(
                        "the GameDay reached the end of its allowed windows ({})",
                        self.allowed_names()
                    ),
                ));
            }
            t += chrono::Duration::minutes(1);
        }
        None
    }
}

/// The first whole minute after `at`.
fn next_minute(at: DateTime<Utc>) -> DateTime<Utc> {
    let secs = at.timestamp().div_euclid(60) * 60 + 60;
    DateTime::from_timestamp(secs, 0).unwrap_or(at)
}

/// A duration as `chrono` wants it, saturating.
pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn office_hours_peak_and_maintenance_decide_in_seoul_time() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../experiments/gamedays/weekly.yaml"
        );
        let g = crate::spec::load_gameday(path.as_ref()).unwrap();
        let clock = Clock::of(&g);
        // pod-kill: 90 s of faults and a minute more, at most.
        let pod_kill = &g.entries[0];
        assert_eq!(pod_kill.max_duration, Duration::from_secs(150));
        // Wednesday 14:00 KST is 05:00 UTC.
        assert_eq!(clock.check(pod_kill, at("2026-12-09T05:00:00Z")), Ok(()));
        // 16:58 KST: two and a half minutes run past the office's 17:00.
        assert_eq!(
            clock
                .check(pod_kill, at("2026-12-09T07:58:00Z"))
                .unwrap_err()
                .kind(),
            "outside-allowed"
        );
        // Saturday: no office hours.
        assert_eq!(
            clock
                .check(pod_kill, at("2026-12-12T05:00:00Z"))
                .unwrap_err()
                .kind(),
            "outside-allowed"
        );
        // Tuesday 03:00 KST: maintenance is named before the office hours.
        assert_eq!(
            clock
                .check(pod_kill, at("2026-12-07T18:00:00Z"))
                .unwrap_err()
                .kind(),
            "maintenance"
        );
        // A run started at 14:00 must end when the office closes.
        let (end, why) = clock.deadline(at("2026-12-09T05:00:00Z")).unwrap();
        assert_eq!(end, at("2026-12-09T08:00:00Z"));
        assert!(why.contains("office hours"), "{why}");
    }

    #[test]
    fn a_run_ending_as_the_peak_begins_fits_and_one_minute_more_does_not() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../experiments/gamedays/staging.yaml"
        );
        let g = crate::spec::load_gameday(path.as_ref()).unwrap();
        let clock = Clock::of(&g);
        let entry = &g.entries[0];
        let minutes = entry.max_duration.as_secs() as i64 / 60;
        // The peak begins at 18:00 KST, 09:00 UTC.
        let peak = at("2026-12-09T09:00:00Z");
        let fits = peak - chrono::Duration::seconds(entry.max_duration.as_secs() as i64);
        assert_eq!(clock.check(entry, fits), Ok(()), "{minutes} min");
        let skip = clock
            .check(entry, fits + chrono::Duration::minutes(1))
            .unwrap_err();
        assert_eq!(skip.kind(), "overrun", "{skip}");
        assert_eq!(clock.deadline(fits).unwrap().0, peak);
    }
}
