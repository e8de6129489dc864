//! Cron schedules as a GameDay writes them: five fields (minute, hour, day of month, month,
//! day of week) in a time zone, in the syntax every scheduler we hand them to understands
//! (Kubernetes CronJobs, systemd timers after [`Schedule::on_calendar`]): `*`, numbers,
//! ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, and month and weekday names. The
//! extensions some cron implementations add (`L`, `W`, `#`, `?`, `@daily`) are refused with
//! a message, because a CronJob would not read them the same way.
//!
//! ```
//! use chaos_runner::spec::cron::Schedule;
//! let s = Schedule::parse("0 14 * * mon-fri").unwrap();
//! let tz: chrono_tz::Tz = "Asia/Seoul".parse().unwrap();
//! let after = chrono::DateTime::parse_from_rfc3339("2026-12-05T00:00:00Z").unwrap().to_utc();
//! // Saturday 5 December in Seoul: the next slot is Monday 14:00 KST, 05:00 UTC.
//! assert_eq!(s.next_after(after, tz).unwrap().to_rfc3339(), "2026-12-07T05:00:00+00:00");
//! assert_eq!(s.on_calendar(), vec!["Mon..Fri *-*-* 14:00:00"]);
//! ```

use chrono::{DateTime, Utc};
use std::fmt;
use std::str::FromStr;

/// A checked five-field cron schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    fields: [Field; 5],
    cron: croner::Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Why a schedule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a five-field cron schedule: {why}")]
pub struct CronError {
    /// The schedule as written.
    pub text: String,
    /// What is wrong.
    pub why: String,
}

/// One field: its items, each `*` or a value or range, with an optional step.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Item {
    /// `None` for `*`.
    range: Option<(u8, u8)>,
    step: Option<u8>,
}

/// What each field accepts.
struct Kind {
    name: &'static str,
    min: u8,
    max: u8,
    names: &'static [&'static str],
}

const KINDS: [Kind; 5] = [
    Kind {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Kind {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Kind {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Kind {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Kind {
        name: "day of week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

impl Schedule {
    /// Parses and checks `text`.
    ///
    /// ```
    /// use chaos_runner::spec::cron::Schedule;
    /// assert!(Schedule::parse("*/15 2-5 * * tue").is_ok());
    /// let err = Schedule::parse("0 25 * * *").unwrap_err();
    /// assert!(err.why.contains("hour"), "{err}");
    /// assert!(Schedule::parse("0 0 L * *").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Schedule, CronError> {
        let fail = |why: String| CronError {
            text: text.to_owned(),
            why,
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        if text.trim_start().starts_with('@') {
            return Err(fail(
                "macros such as @daily are not read the same by every scheduler: write the \
                 five fields (`0 0 * * *`)"
                    .into(),
            ));
        }
        if parts.len() != 5 {
            return Err(fail(format!(
                "it has {} fields; write minute hour day-of-month month day-of-week (seconds \
                 are not supported)",
                parts.len()
            )));
        }
        let mut fields = Vec::with_capacity(5);
        for (part, kind) in parts.iter().zip(KINDS.iter()) {
            fields.push(
                parse_field(part, kind).map_err(|why| fail(format!("{}: {why}", kind.name)))?,
            );
        }
        let normal = parts.join(" ");
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .build()
            .parse(&normal)
            .map_err(|e| fail(e.to_string()))?;
        let fields: [Field; 5] = fields
            .try_into()
            .map_err(|_| fail("five fields expected".into()))?;
        Ok(Schedule {
            text: normal,
            fields,
            cron,
        })
    }

    /// The schedule as written (whitespace normalised): what a CronJob's `schedule` gets.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first slot strictly after `after`, the fields read in local time of `zone`.
    /// `None` when there is none within croner's search horizon (e.g. `0 0 31 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last slot at or before `at` (local time of `zone`).
    pub fn last_at_or_before(
        &self,
        at: DateTime<Utc>,
        zone: chrono_tz::Tz,
    ) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&zone);
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Every slot in `[from, to)`, at most `limit` of them.
    pub fn slots(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        zone: chrono_tz::Tz,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut after = from - chrono::Duration::seconds(1);
        while out.len() < limit {
            match self.next_after(after, zone) {
                Some(t) if t < to => {
                    out.push(t);
                    after = t;
                }
                _ => break,
            }
        }
        out
    }

    /// The systemd `OnCalendar=` expressions (without the zone) whose union is this
    /// schedule. Cron fires when the day of month *or* the day of week matches if both are
    /// restricted, while systemd requires both: such a schedule becomes two expressions.
    pub fn on_calendar(&self) -> Vec<String> {
        let [minute, hour, dom, month, dow] = &self.fields;
        let time = format!("{}:{}:00", systemd_field(hour, 0), systemd_field(minute, 0));
        let date = |dom: &str| format!("*-{}-{dom}", systemd_field(month, 1));
        let dom_star = dom.is_star();
        let dow_star = dow.is_star();
        match (dom_star, dow_star) {
            (true, true) => vec![format!("{} {time}", date("*"))],
            (false, true) => vec![format!("{} {time}", date(&systemd_field(dom, 1)))],
            (true, false) => vec![format!("{} {} {time}", systemd_weekdays(dow), date("*"))],
            (false, false) => vec![
                format!("{} {time}", date(&systemd_field(dom, 1))),
                format!("{} {} {time}", systemd_weekdays(dow), date("*")),
            ],
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Schedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

impl Field {
    fn is_star(&self) -> bool {
        self.items
            .iter()
            .any(|i| i.range.is_none() && i.step.is_none())
    }
}

fn parse_field(text: &str, kind: &Kind) -> Result<Field, String> {
    let mut items = Vec::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("`{text}` has an empty item"));
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => {
                let step: u8 = step
                    .parse()
                    .ok()
                    .filter(|s| *s >= 1 && *s <= kind.max)
                    .ok_or_else(|| format!("`{item}`: the step must be 1 to {}", kind.max))?;
                (base, Some(step))
            }
            None => (item, None),
        };
        let range = if base == "*" {
            if step.is_some() && kind.min == 1 && kind.names.is_empty()
                || step.is_some() && kind.max == 7
            {
                // Cron implementations disagree on whether `*/n` among the days restricts
                // them (which decides between "day of month or weekday" and "both").
                return Err(format!(
                    "`{item}`: a step over every day is read differently by cron                      implementations; list the days or give a range (`1-31/2`)"
                ));
            }
            None
        } else {
            let (a, b) = match base.split_once('-') {
                Some((a, b)) => (value(a, kind)?, value(b, kind)?),
                None => {
                    let v = value(base, kind)?;
                    if step.is_some() {
                        return Err(format!(
                            "`{item}`: a step needs `*` or a range before it (`*/n`, `a-b/n`)"
                        ));
                    }
                    (v, v)
                }
            };
            if a > b {
                return Err(format!("`{base}`: the range runs backwards"));
            }
            Some((a, b))
        };
        items.push(Item { range, step });
    }
    Ok(Field { items })
}

fn value(text: &str, kind: &Kind) -> Result<u8, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = kind.names.iter().position(|n| *n == lower) {
        // Months are numbered from 1, weekdays from 0 (Sunday).
        return Ok(i as u8 + kind.min);
    }
    let ok = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u8>() {
        Ok(v) if ok && (kind.min..=kind.max).contains(&v) => Ok(v),
        _ => Err(if kind.names.is_empty() {
            format!("`{text}` is not a number from {} to {}", kind.min, kind.max)
        } else {
            format!(
                "`{text}` is not a number from {} to {} or a name ({})",
                kind.min,
                kind.max,
                kind.names.join(", ")
            )
        }),
    }
}

/// A numeric field in systemd's calendar syntax: `*`, `a`, `a..b`, `a/n`, `a..b/n`,
/// comma-separated. A step from `*` starts at the field's first value.
fn systemd_field(field: &Field, first: u8) -> String {
    if field.is_star() {
        return "*".into();
    }
    field
        .items
        .iter()
        .map(|item| {
            let base = match item.range {
                None => "0".to_owned(),
                Some((a, b)) if a == b => format!("{a:02}"),
                Some((a, b)) => format!("{a:02}..{b:02}"),
            };
            match (item.range, item.step) {
                (_, None) => base,
                // `*/n` from the field's first value (1 for days and months).
                (None, Some(n)) => format!("{first:02}/{n}"),
                (Some((a, b)), Some(n)) if a == b => format!("{a:02}/{n}"),
                (Some(_), Some(n)) => expand_stepped(item, n),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `a-b/n` as the explicit list systemd reads the same way on every version.
fn expand_stepped(item: &Item, step: u8) -> String {
    let Some((a, b)) = item.range else {
        return "*".into();
    };
    (a..=b)
        .step_by(usize::from(step))
        .map(|v| format!("{v:02}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The day-of-week field as systemd weekday names (`Mon..Fri`, `Tue,Thu`).
fn systemd_weekdays(field: &Field) -> String {
    const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let mut days = [false; 7];
    for item in &field.items {
        let (a, b) = item.range.unwrap_or((0, 6));
        let step = usize::from(item.step.unwrap_or(1));
        for v in (a..=b).step_by(step) {
            days[usize::from(v % 7)] = true;
        }
    }
    // Runs of consecutive days (Monday first, as people read weeks) become ranges.
    let order = [1usize, 2, 3, 4, 5, 6, 0];
    let mut parts = Vec::new();
    let mut i = 0;
    while i < order.len() {
        if !days[order[i]] {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < order.len() && days[order[i + 1]] {
            i += 1;
        }
        parts.push(if i > start + 1 {
            format!("{}..{}", NAMES[order[start]], NAMES[order[i]])
        } else if i == start + 1 {
            format!("{},{}", NAMES[order[start]], NAMES[order[i]])
        } else {
            NAMES[order[start]].to_owned()
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_steps_and_lists_convert_to_systemd() {
        let cal = |s: &str| Schedule::parse(s).unwrap().on_calendar();
        assert_eq!(cal("30 2 * * tue"), ["Tue *-*-* 02:30:00"]);
        assert_eq!(cal("*/15 * * * *"), ["*-*-* *:00/15:00"]);
        assert_eq!(
            cal("0 10-16/2 * * 1-5"),
            ["Mon..Fri *-*-* 10,12,14,16:00:00"]
        );
        assert_eq!(cal("0 9 1,15 * *"), ["*-*-01,15 09:00:00"]);
        assert_eq!(
            cal("0 9 1 * sat,sun"),
            ["*-*-01 09:00:00", "Sat,Sun *-*-* 09:00:00"]
        );
        assert_eq!(cal("0 0 * jan-mar 0,7"), ["Sun *-01..03-* 00:00:00"]);
    }

    #[test]
    fn refuses_what_a_cronjob_would_read_differently() {
        for bad in [
            "0 0 L * *",
            "0 0 * * 5#3",
            "@weekly",
            "0 0 * *",
            "0 0 * * * 2026",
            "5/10 * * * *",
            "0 0 0 * *",
            "0 0 * 13 *",
            "0 0 * * 8",
            "10-5 * * * *",
            "0 0 ? * *",
            "0 0 */2 * *",
            "0 0 * * */2",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
