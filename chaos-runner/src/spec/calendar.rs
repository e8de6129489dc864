//! The calendar and alerting of an SLO set: the studio's time zone, peak hours (objectives
//! stricter by a factor), maintenance (time that spends no budget and raises no alert), and
//! the multi-window burn-rate alerts.

use schemars::JsonSchema;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// When the objectives tighten and when nothing counts, in one time zone.
///
/// ```yaml
/// calendar:
///   timeZone: Asia/Seoul
///   peak: [{ from: "18:00", to: "22:00", factor: 1.2 }]
///   maintenance: [{ days: [tuesday], from: "02:00", to: "06:00" }]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Calendar {
    /// An IANA time zone name (`Asia/Seoul`, `UTC`). Its UTC offset must not change within a
    /// year (no daylight saving): the rules shift the clock by one fixed offset.
    pub time_zone: String,
    /// Peak hours: the allowed error rate is divided by `factor` while they last.
    #[serde(default)]
    pub peak: Vec<PeakWindow>,
    /// Maintenance: its events count neither as good nor as bad, and no alert fires.
    #[serde(default)]
    pub maintenance: Vec<DayWindow>,
}

/// A daily window of local time on some days of the week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DayWindow {
    /// The days it applies to (default: every day); a window that passes midnight belongs
    /// to the day it starts on.
    #[serde(default = "every_day")]
    pub days: Vec<Weekday>,
    /// Start, local time `HH:MM`.
    pub from: TimeOfDay,
    /// End, local time `HH:MM` (`24:00` for midnight); before `from` when it passes midnight.
    pub to: TimeOfDay,
}

/// A peak window: a [`DayWindow`] with its factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeakWindow {
    /// The days it applies to (default: every day).
    #[serde(default = "every_day")]
    pub days: Vec<Weekday>,
    /// Start, local time `HH:MM`.
    pub from: TimeOfDay,
    /// End, local time `HH:MM`.
    pub to: TimeOfDay,
    /// How much stricter the objectives are: the allowed error rate is divided by it
    /// (`1.2`: 99.9% becomes 99.917%). Above 1, at most 10.
    pub factor: f64,
}

impl Calendar {
    /// The zone's fixed UTC offset in seconds, checked over the current year (see
    /// [`fixed_offset`]).
    pub fn utc_offset(&self) -> Result<i32, String> {
        fixed_offset(&self.time_zone, chrono::Datelike::year(&chrono::Utc::now()))
    }
}

impl Calendar {
    /// The local day of the week and minute of the day at `at`, shifted by the zone's fixed
    /// offset as the rules shift it.
    ///
    /// ```
    /// # use chaos_runner::spec::calendar::*;
    /// let cal: Calendar = serde_json::from_str(r#"{"timeZone": "Asia/Seoul"}"#).unwrap();
    /// // Monday 17:30 UTC is Tuesday 02:30 in Seoul.
    /// let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T17:30:00Z").unwrap().to_utc();
    /// assert_eq!(cal.local(at).unwrap(), (Weekday::Tuesday, 150));
    /// ```
    pub fn local(&self, at: chrono::DateTime<chrono::Utc>) -> Result<(Weekday, u16), String> {
        use chrono::{Datelike, Timelike};
        let local = at + chrono::Duration::seconds(i64::from(self.utc_offset()?));
        let day = Weekday::ALL[local.weekday().num_days_from_sunday() as usize];
        // At most 23 * 60 + 59: fits.
        let minute = (local.hour() * 60 + local.minute()) as u16;
        Ok((day, minute))
    }

    /// The strictest peak window on at `at`, if any.
    pub fn peak_at(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<&PeakWindow>, String> {
        let (day, minute) = self.local(at)?;
        Ok(self
            .peak
            .iter()
            .filter(|p| p.window().contains(day, minute))
            .max_by(|a, b| a.factor.total_cmp(&b.factor)))
    }

    /// The maintenance window on at `at`, if any.
    pub fn maintenance_at(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<&DayWindow>, String> {
        let (day, minute) = self.local(at)?;
        Ok(self.maintenance.iter().find(|w| w.contains(day, minute)))
    }
}

impl DayWindow {
    /// Whether the window is on at local `minute` of `day`, as the rules read it: a window
    /// passing midnight holds the evening of its days and the morning after them.
    ///
    /// ```
    /// # use chaos_runner::spec::calendar::*;
    /// let w: DayWindow = serde_json::from_str(r#"{"days": ["saturday"], "from": "22:00", "to": "02:00"}"#).unwrap();
    /// assert!(w.contains(Weekday::Saturday, 23 * 60));
    /// assert!(w.contains(Weekday::Sunday, 60));
    /// assert!(!w.contains(Weekday::Saturday, 60));
    /// ```
    pub fn contains(&self, day: Weekday, minute: u16) -> bool {
        let (from, to) = (self.from.minutes(), self.to.minutes());
        if from < to {
            self.days.contains(&day) && minute >= from && minute < to
        } else {
            (self.days.contains(&day) && minute >= from)
                || (self.days.contains(&day.previous()) && minute < to)
        }
    }

    /// The windows that together hold while this one was on at some time in the last
    /// `minutes` (at most a day): itself and the `minutes` after its end, on the day that
    /// end falls on.
    ///
    /// ```
    /// # use chaos_runner::spec::calendar::*;
    /// let w: DayWindow = serde_json::from_str(r#"{"days": ["tuesday"], "from": "02:00", "to": "06:00"}"#).unwrap();
    /// let recent = w.with_tail(5);
    /// assert!(recent.iter().any(|w| w.contains(Weekday::Tuesday, 6 * 60 + 4)));
    /// assert!(!recent.iter().any(|w| w.contains(Weekday::Tuesday, 6 * 60 + 5)));
    /// ```
    pub fn with_tail(&self, minutes: u16) -> Vec<DayWindow> {
        let (from, to) = (self.from.minutes(), self.to.minutes());
        // The tail starts at `to` on the window's days, or the day after when the window
        // passes midnight or ends at 24:00.
        let next_day = from >= to || to == 1440;
        let start = if to == 1440 { 0 } else { to };
        let days = if next_day {
            self.days.iter().map(|d| d.next()).collect()
        } else {
            self.days.clone()
        };
        let end = (start + minutes.min(1440)) % 1440;
        let tail = DayWindow {
            days,
            from: TimeOfDay::from_minutes(start),
            to: TimeOfDay::from_minutes(if end == 0 { 1440 } else { end }),
        };
        vec![self.clone(), tail]
    }

    /// `from-to` on its days, for people (`18:00-22:00`, `tuesday 02:00-06:00`).
    pub fn describe(&self) -> String {
        let days = if self.days.len() == Weekday::ALL.len() {
            String::new()
        } else {
            let names: Vec<&str> = self.days.iter().map(|d| d.name()).collect();
            format!("{} ", names.join(","))
        };
        format!("{days}{}-{}", self.from, self.to)
    }
}

impl PeakWindow {
    /// The window without its factor.
    pub fn window(&self) -> DayWindow {
        DayWindow {
            days: self.days.clone(),
            from: self.from,
            to: self.to,
        }
    }
}

fn every_day() -> Vec<Weekday> {
    Weekday::ALL.to_vec()
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    #[serde(alias = "sun")]
    Sunday,
    #[serde(alias = "mon")]
    Monday,
    #[serde(alias = "tue")]
    Tuesday,
    #[serde(alias = "wed")]
    Wednesday,
    #[serde(alias = "thu")]
    Thursday,
    #[serde(alias = "fri")]
    Friday,
    #[serde(alias = "sat")]
    Saturday,
}

impl Weekday {
    /// Every day, Sunday first (PromQL's `day_of_week` numbering: Sunday is 0).
    pub const ALL: [Weekday; 7] = [
        Weekday::Sunday,
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
    ];

    /// PromQL's number of the day (`day_of_week()`): Sunday is 0.
    ///
    /// ```
    /// assert_eq!(chaos_runner::spec::calendar::Weekday::Tuesday.number(), 2);
    /// ```
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The day after.
    pub fn next(self) -> Weekday {
        Weekday::ALL[(usize::from(self.number()) + 1) % 7]
    }

    /// The day before.
    pub fn previous(self) -> Weekday {
        Weekday::ALL[(usize::from(self.number()) + 6) % 7]
    }

    /// Its name as written in files (`tuesday`).
    pub fn name(self) -> &'static str {
        match self {
            Weekday::Sunday => "sunday",
            Weekday::Monday => "monday",
            Weekday::Tuesday => "tuesday",
            Weekday::Wednesday => "wednesday",
            Weekday::Thursday => "thursday",
            Weekday::Friday => "friday",
            Weekday::Saturday => "saturday",
        }
    }
}

/// A local time of day, to the minute (`18:00`); `24:00` ends a day.
///
/// ```
/// let t: chaos_runner::spec::calendar::TimeOfDay = serde_json::from_str("\"18:30\"").unwrap();
/// assert_eq!(t.minutes(), 18 * 60 + 30);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[schemars(with = "String")]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// The time `minutes` after midnight (at most 1440, `24:00`).
    pub(crate) fn from_minutes(minutes: u16) -> TimeOfDay {
        TimeOfDay(minutes.min(1440))
    }

    /// Minutes since midnight (0 to 1440).
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl Visitor<'_> for TimeVisitor {
            type Value = TimeOfDay;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a local time HH:MM, from 00:00 to 24:00 (quoted in YAML)")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<TimeOfDay, E> {
                let parsed = text.split_once(':').and_then(|(h, m)| {
                    let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
                    if !digits(h) || !digits(m) {
                        return None;
                    }
                    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
                    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
                });
                parsed.map(TimeOfDay).ok_or_else(|| {
                    E::custom(format!(
                        "`{text}` is not a local time HH:MM from 00:00 to 24:00"
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<TimeOfDay, E> {
                Err(E::custom(format!(
                    "{n} is a number, not a local time: write it as HH:MM, e.g. \"18:00\""
                )))
            }
        }
        deserializer.deserialize_any(TimeVisitor)
    }
}

/// The burn-rate alerts of every SLO of the set, with labels for all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Alerting {
    /// The alerts: each fires when both its windows burn faster than its factor. Default:
    /// the SRE workbook's (page 14.4x over 1h and 5m, page 6x over 6h and 30m, ticket 3x
    /// over 1d and 2h, ticket 1x over 3d and 6h).
    #[serde(default = "default_burn_alerts")]
    pub alerts: Vec<BurnAlert>,
    /// Labels on every alert (e.g. `team`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Default for Alerting {
    fn default() -> Self {
        Alerting {
            alerts: default_burn_alerts(),
            labels: BTreeMap::new(),
        }
    }
}

/// One multi-window burn-rate alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BurnAlert {
    /// Its `severity` label (`page`, `ticket`).
    pub severity: String,
    /// How many times faster than the budget allows the errors must come.
    pub factor: f64,
    /// The long window: the burn is real.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub long: Duration,
    /// The short window: the burn is still going on (the alert ends soon after it stops).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub short: Duration,
}

impl Alerting {
    /// The alerts of an SLO set: its `alerting` section's, else the SRE workbook's.
    pub fn of(alerting: Option<&Alerting>) -> Vec<BurnAlert> {
        alerting
            .map(|a| a.alerts.clone())
            .filter(|alerts| !alerts.is_empty())
            .unwrap_or_else(default_burn_alerts)
    }
}

impl BurnAlert {
    /// The alert's name in the generated rules: `SLOBurnRate`, the severity capitalised
    /// without `-` and `_`, and the long window (`SLOBurnRatePage1h`).
    ///
    /// ```
    /// let page = &chaos_runner::spec::calendar::default_burn_alerts()[0];
    /// assert_eq!(page.alert_name(), "SLOBurnRatePage1h");
    /// ```
    pub fn alert_name(&self) -> String {
        let mut severity = self.severity.replace(['-', '_'], "");
        if let Some(first) = severity.get(..1) {
            severity = first.to_uppercase() + &severity[1..];
        }
        format!(
            "SLOBurnRate{severity}{}",
            super::slo::promql_range(self.long)
        )
    }
}

/// The SRE workbook's four alerts.
pub fn default_burn_alerts() -> Vec<BurnAlert> {
    let alert = |severity: &str, factor: f64, long: u64, short: u64| BurnAlert {
        severity: severity.to_owned(),
        factor,
        long: Duration::from_secs(long),
        short: Duration::from_secs(short),
    };
    vec![
        alert("page", 14.4, 3600, 300),
        alert("page", 6.0, 6 * 3600, 1800),
        alert("ticket", 3.0, 86_400, 2 * 3600),
        alert("ticket", 1.0, 3 * 86_400, 6 * 3600),
    ]
}

/// Per-SLO labels and annotations of its alerts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SloAlerting {
    /// Extra labels (e.g. `team: saves`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations (e.g. `runbook_url`, `summary`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// The zone's fixed UTC offset in seconds, or why it has none: an unknown name, or an
/// offset that changes within the year from `from` (daylight saving).
///
/// ```
/// use chaos_runner::spec::calendar::fixed_offset;
/// assert_eq!(fixed_offset("Asia/Seoul", 2026), Ok(9 * 3600));
/// assert!(fixed_offset("Europe/Berlin", 2026).unwrap_err().contains("daylight saving"));
/// assert!(fixed_offset("Asia/Soul", 2026).unwrap_err().contains("not an IANA"));
/// ```
pub fn fixed_offset(zone: &str, year: i32) -> Result<i32, String> {
    use chrono::{Offset, TimeZone};
    let tz: chrono_tz::Tz = zone
        .parse()
        .map_err(|_| format!("`{zone}` is not an IANA time zone name (e.g. Asia/Seoul, UTC)"))?;
    let offset_on = |month: u32, day: u32| {
        chrono::NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .map(|t| tz.offset_from_utc_datetime(&t).fix().local_minus_utc())
    };
    let mut offsets = Vec::new();
    for month in 1..=12 {
        for day in [1, 15] {
            offsets.extend(offset_on(month, day));
        }
    }
    let first = *offsets.first().ok_or("no date to check the offset at")?;
    if offsets.iter().any(|o| *o != first) {
        return Err(format!(
            "`{zone}` uses daylight saving (its UTC offset changes during the year): the \
             rules shift the clock by one fixed offset; use a zone without daylight saving, \
             or UTC"
        ));
    }
    Ok(first)
}
