//! `chaos-runner slo rules`: a Prometheus rule file from an SLO set.
//!
//! Per SLO, with `slo="<name>"` and `slo_set="<set>"` on every series:
//! - `slo:sli_error:ratio_rate5m`: the error ratio over 5 minutes, absent during
//!   maintenance and the 5 minutes after it (so maintenance spends no budget) and while
//!   there are no events;
//! - `slo:error_budget:burn_rate5m`: that ratio over the error budget, times the peak factor
//!   in peak hours (an error at the peak spends that much more budget); every alert window
//!   and the period (`…_burn_rate1h`, `…_burn_rate30d`, …) is the average of those 5-minute
//!   burn rates over it, as Sloth averages its ratios, so a window mixing peak and
//!   off-peak hours weighs each part by its own objective;
//! - `slo:sli_error:ratio_rate<period>`: the unweighted SLI over the period;
//! - `slo:objective:ratio`, `slo:error_budget:ratio` and `slo:error_budget:remaining`
//!   (1 minus the period's burn rate: the share of the period's budget left);
//! - one alert per burn-rate pair: both windows' burn rates over the factor; never during
//!   maintenance.
//!
//! The calendar's rules (`slo:calendar:maintenance`, present only during maintenance, and
//! `slo:calendar:budget_divisor`, the peak factor or 1) read the clock shifted by the zone's
//! fixed UTC offset.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::spec::calendar::{Alerting, BurnAlert, Calendar, DayWindow, Weekday};
use crate::spec::slo::{format_float, promql_range, Slo, SloSet};

/// The window every longer one is averaged from.
const BASE_WINDOW: Duration = Duration::from_secs(300);

/// A Prometheus rule file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleFile {
    /// Its groups.
    pub groups: Vec<RuleGroup>,
}

/// A group of rules, evaluated in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleGroup {
    /// Its name.
    pub name: String,
    /// Its rules.
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// The series it records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The alert it fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// The PromQL.
    pub expr: String,
    /// How long the condition must hold before the alert fires.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// Labels added.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of an alert.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    fn record(name: &str, expr: String, labels: BTreeMap<String, String>) -> Rule {
        Rule {
            record: Some(name.to_owned()),
            alert: None,
            expr,
            for_: None,
            labels,
            annotations: BTreeMap::new(),
        }
    }
}

/// The rules could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The calendar's zone has no fixed offset (checked by validation; kept for callers
    /// that build sets in code).
    #[error("spec.calendar.timeZone: {0}")]
    Zone(String),
}

/// The calendar part of the rules: the clock in the zone, maintenance and peak.
struct Clock {
    /// Seconds to add to UTC for local time.
    offset: i32,
}

impl Clock {
    fn local(&self) -> String {
        match self.offset {
            0 => "vector(time())".to_owned(),
            o if o < 0 => format!("vector(time() - {})", o.unsigned_abs()),
            o => format!("vector(time() + {o})"),
        }
    }

    /// A filter that holds (one sample) while `window` is on, in local time.
    fn window_on(&self, window: &DayWindow) -> String {
        let local = self.local();
        let minute = format!("(hour({local}) * 60 + minute({local}))");
        let days = |shift: u8| -> Option<String> {
            if window.days.len() == Weekday::ALL.len() {
                return None;
            }
            let wanted: Vec<String> = window
                .days
                .iter()
                .map(|d| format!("day_of_week({local}) == {}", (d.number() + shift) % 7))
                .collect();
            Some(format!("({})", wanted.join(" or ")))
        };
        let with_days = |cond: String, shift: u8| match days(shift) {
            Some(d) => format!("({cond} and on() {d})"),
            None => cond,
        };
        let (from, to) = (window.from.minutes(), window.to.minutes());
        if from < to {
            with_days(format!("({minute} >= {from} and on() {minute} < {to})"), 0)
        } else {
            // Passes midnight: the evening on its days, the morning on the days after.
            format!(
                "({} or on() {})",
                with_days(format!("({minute} >= {from})"), 0),
                with_days(format!("({minute} < {to})"), 1)
            )
        }
    }
}

/// The rule file for `set`.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/game-services.yaml");
/// let set = chaos_runner::spec::load_slo_set(path.as_ref()).unwrap();
/// let rules = chaos_runner::slo::rules::rules(&set).unwrap();
/// assert!(rules.groups.iter().any(|g| g.name == "slo-game-availability"));
/// ```
pub fn rules(set: &SloSet) -> Result<RuleFile, RulesError> {
    build(set, Sli::Queries)
}

/// The same rules, with each SLO's 5-minute error ratio read from the series
/// `slo_test_error_ratio{slo="<name>"}` instead of its SLI: what `slo test` feeds, so the
/// tests drive every window, budget and alert (and the calendar) with a burn they choose.
pub fn rules_under_test(set: &SloSet) -> Result<RuleFile, RulesError> {
    build(set, Sli::TestSeries)
}

/// Where the 5-minute error ratio comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sli {
    /// The SLO's own queries.
    Queries,
    /// `slo_test_error_ratio{slo}`, for generated tests.
    TestSeries,
}

/// The series the rules under test read each SLO's error ratio from.
pub const TEST_SERIES: &str = "slo_test_error_ratio";

/// The error ratio over a window (followed by the window, `…_rate5m`): absent during
/// maintenance, the 5 minutes after it, and while there are no events.
pub const ERROR_RATIO: &str = "slo:sli_error:ratio_rate";

/// The burn rate over a window (followed by the window, `…_rate1h`): the error ratio over
/// the budget, peak hours weighted by their factor; what the alerts compare to their factor.
pub const BURN_RATE: &str = "slo:error_budget:burn_rate";

/// The share of the period's error budget left (1 = untouched, below 0 = overspent).
pub const REMAINING: &str = "slo:error_budget:remaining";

/// The peak factor in peak hours, else 1.
pub const DIVISOR: &str = "slo:calendar:budget_divisor";

/// Present (1) only during maintenance.
pub const MAINTENANCE: &str = "slo:calendar:maintenance";

/// The calendar as PromQL reading only the clock.
struct CalendarPromql {
    /// One sample while a maintenance window is on (none without maintenance).
    maintenance: Option<String>,
    /// One sample while a maintenance window was on at some time in the last 5 minutes:
    /// what `max_over_time` of the recorded maintenance series says, from the clock alone
    /// (a subquery would cost Prometheus six evaluations per step).
    recent_maintenance: Option<String>,
    /// The strictest peak factor on, else 1 (none without peak windows).
    divisor: Option<String>,
}

impl CalendarPromql {
    fn of(cal: &Calendar) -> Result<CalendarPromql, RulesError> {
        let clock = Clock {
            offset: cal.utc_offset().map_err(RulesError::Zone)?,
        };
        let on = |windows: Vec<DayWindow>| {
            let on: Vec<String> = windows.iter().map(|w| clock.window_on(w)).collect();
            format!("vector(1) and on() ({})", on.join(" or on() "))
        };
        let empty = cal.maintenance.is_empty();
        let maintenance = (!empty).then(|| on(cal.maintenance.clone()));
        let base_minutes = (BASE_WINDOW.as_secs() / 60) as u16;
        let recent_maintenance = (!empty).then(|| {
            on(cal
                .maintenance
                .iter()
                .flat_map(|w| w.with_tail(base_minutes))
                .collect())
        });
        let divisor = (!cal.peak.is_empty()).then(|| {
            // The strictest factor of the peak windows that are on, else 1.
            let mut divisor = String::new();
            let mut peaks: Vec<_> = cal.peak.iter().collect();
            peaks.sort_by(|a, b| b.factor.total_cmp(&a.factor));
            for peak in peaks {
                divisor.push_str(&format!(
                    "(vector({}) and on() {}) or on() ",
                    peak.factor,
                    clock.window_on(&peak.window())
                ));
            }
            divisor.push_str("vector(1)");
            divisor
        });
        Ok(CalendarPromql {
            maintenance,
            recent_maintenance,
            divisor,
        })
    }
}

/// The 5-minute error ratio without maintenance: absent while `recent_maintenance` (a
/// filter holding while maintenance was on in the last 5 minutes) holds.
fn ratio_without_maintenance(base: String, recent_maintenance: Option<String>) -> String {
    match recent_maintenance {
        Some(recent) => format!("({base}) unless on() {recent}"),
        None => base,
    }
}

/// The 5-minute burn rate from the 5-minute error ratio: the share of the budget those 5
/// minutes spend at the pace of the period, times the peak factor in peak hours.
fn burn_from_ratio(ratio: String, divisor: Option<String>, budget: &str) -> String {
    match divisor {
        // Joined, not `scalar()`: a divisor not yet recorded leaves the burn rate absent
        // for one evaluation instead of NaN for a whole window.
        Some(divisor) => format!("{ratio} * on() group_left() {divisor} / {budget}"),
        None => format!("{ratio} / {budget}"),
    }
}

/// One SLO's 5-minute error ratio and burn rate as PromQL over the SLI's own series and the
/// clock, with no recorded series: what `slo:sli_error:ratio_rate5m` and
/// `slo:error_budget:burn_rate5m` record, for a Prometheus that does not evaluate the rules
/// (or did not when the history was written). `chaos-runner gate` averages them over its
/// windows with subqueries.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineSli {
    /// The error ratio over 5 minutes, absent during maintenance, the 5 minutes after it,
    /// and while there are no events.
    pub error_ratio_5m: String,
    /// That ratio over the error budget, times the peak factor in peak hours.
    pub burn_rate_5m: String,
}

/// The [`InlineSli`] of `slo` in `set`, or `None` for a gauge SLO (no budget).
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/game-services.yaml");
/// let set = chaos_runner::spec::load_slo_set(path.as_ref()).unwrap();
/// let inline = chaos_runner::slo::rules::inline_sli(&set, &set.spec.slos[0]).unwrap().unwrap();
/// assert!(inline.burn_rate_5m.contains(">= 360 and on()"), "maintenance and its tail");
/// assert!(!inline.burn_rate_5m.contains("slo:"), "no recorded series");
/// ```
pub fn inline_sli(set: &SloSet, slo: &Slo) -> Result<Option<InlineSli>, RulesError> {
    let Some(base) = events_only(slo) else {
        return Ok(None);
    };
    let calendar = match &set.spec.calendar {
        Some(cal) => CalendarPromql::of(cal)?,
        None => CalendarPromql {
            maintenance: None,
            recent_maintenance: None,
            divisor: None,
        },
    };
    let error_ratio_5m = ratio_without_maintenance(
        base,
        calendar.recent_maintenance.map(|on| format!("({on})")),
    );
    let burn_rate_5m = burn_from_ratio(
        format!("({error_ratio_5m})"),
        calendar.divisor.map(|d| format!("({d})")),
        &format_float(slo.error_budget()),
    );
    Ok(Some(InlineSli {
        error_ratio_5m,
        burn_rate_5m,
    }))
}

/// The SLI's 5-minute error ratio, only while there are events: 0/0 would be NaN, and one
/// NaN keeps every window averaged over it NaN (no alert can fire) for the window's length.
fn events_only(slo: &Slo) -> Option<String> {
    let ratio = slo.error_ratio_query(BASE_WINDOW)?;
    let total = slo.total_query(BASE_WINDOW)?;
    Some(format!("{ratio} and on() (({total}) > 0)"))
}

fn build(set: &SloSet, sli: Sli) -> Result<RuleFile, RulesError> {
    let calendar = set.spec.calendar.as_ref();
    let alerts = Alerting::of(set.spec.alerting.as_ref());
    let set_labels = set
        .spec
        .alerting
        .as_ref()
        .map(|a| a.labels.clone())
        .unwrap_or_default();
    let mut groups = Vec::new();
    // Every series carries the set's name: two sets in one Prometheus never mix.
    let set_name = &set.metadata.name;
    let set_label = BTreeMap::from([("slo_set".to_owned(), set_name.clone())]);
    let clock = match calendar {
        Some(cal) => {
            let promql = CalendarPromql::of(cal)?;
            let mut rules = Vec::new();
            if let Some(on) = promql.maintenance {
                rules.push(Rule::record(MAINTENANCE, on, set_label.clone()));
            }
            rules.push(Rule::record(
                DIVISOR,
                promql.divisor.unwrap_or_else(|| "vector(1)".to_owned()),
                set_label.clone(),
            ));
            groups.push(RuleGroup {
                name: format!("slo-{}-calendar", set.metadata.name),
                rules,
            });
            Some(cal)
        }
        None => None,
    };
    let maintenance = clock.is_some_and(|cal| !cal.maintenance.is_empty());
    let peak = clock.is_some_and(|cal| !cal.peak.is_empty());
    for slo in &set.spec.slos {
        if let Some(group) = slo_group(slo, set_name, &alerts, &set_labels, maintenance, peak, sli)
        {
            groups.push(group);
        }
    }
    Ok(RuleFile { groups })
}

/// The rules of one event-based SLO (a gauge SLO has no error budget to burn).
fn slo_group(
    slo: &Slo,
    set_name: &str,
    alerts: &[BurnAlert],
    set_labels: &BTreeMap<String, String>,
    maintenance: bool,
    peak: bool,
    sli: Sli,
) -> Option<RuleGroup> {
    let events = events_only(slo)?;
    let base = match sli {
        Sli::Queries => events,
        Sli::TestSeries => format!("{TEST_SERIES}{{slo=\"{}\"}}", slo.name),
    };
    let ours = BTreeMap::from([
        ("slo".to_owned(), slo.name.clone()),
        ("slo_set".to_owned(), set_name.to_owned()),
    ]);
    let selector = format!("{{slo=\"{}\",slo_set=\"{set_name}\"}}", slo.name);
    let calendar = format!("{{slo_set=\"{set_name}\"}}");
    let ratio_series = |window: Duration| format!("{ERROR_RATIO}{}", promql_range(window));
    let burn_series = |window: Duration| format!("{BURN_RATE}{}", promql_range(window));
    // Ten decimals: 1 - 0.999 is 0.0010000000000000009 in binary.
    let budget = format_float(slo.error_budget());
    let mut rules = vec![Rule::record(
        &ratio_series(BASE_WINDOW),
        // Not while maintenance is on, nor in the 5 minutes after it, whose ratio still
        // holds maintenance's events.
        ratio_without_maintenance(
            base,
            maintenance.then(|| {
                format!(
                    "max_over_time({MAINTENANCE}{calendar}[{}])",
                    promql_range(BASE_WINDOW)
                )
            }),
        ),
        ours.clone(),
    )];
    // The burn rate: the share of the budget each 5 minutes spend at the pace of the
    // period; an error in peak hours spends the peak factor times more. Every longer
    // window averages it, so a window that mixes peak and off-peak hours weighs each part
    // by its own objective.
    rules.push(Rule::record(
        &burn_series(BASE_WINDOW),
        burn_from_ratio(
            format!("{}{selector}", ratio_series(BASE_WINDOW)),
            peak.then(|| format!("{DIVISOR}{calendar}")),
            &budget,
        ),
        ours.clone(),
    ));
    let mut windows: Vec<Duration> = alerts
        .iter()
        .flat_map(|a| [a.short, a.long])
        .chain([slo.period])
        .filter(|w| *w != BASE_WINDOW)
        .collect();
    windows.sort();
    windows.dedup();
    for window in &windows {
        rules.push(Rule::record(
            &burn_series(*window),
            format!(
                "avg_over_time({}{selector}[{}])",
                burn_series(BASE_WINDOW),
                promql_range(*window)
            ),
            ours.clone(),
        ));
    }
    // The SLI over the period, unweighted: what the objective is read against.
    rules.push(Rule::record(
        &ratio_series(slo.period),
        format!(
            "avg_over_time({}{selector}[{}])",
            ratio_series(BASE_WINDOW),
            promql_range(slo.period)
        ),
        ours.clone(),
    ));
    rules.push(Rule::record(
        "slo:objective:ratio",
        format!("vector({})", format_float(slo.objective / 100.0)),
        ours.clone(),
    ));
    rules.push(Rule::record(
        "slo:error_budget:ratio",
        format!("vector({budget})"),
        ours.clone(),
    ));
    rules.push(Rule::record(
        REMAINING,
        format!("1 - {}{selector}", burn_series(slo.period)),
        ours.clone(),
    ));
    let per_slo = slo.alerting.clone().unwrap_or_default();
    for alert in alerts {
        let factor = format_float(alert.factor);
        let mut expr = format!(
            "({long}{selector} > {factor}) and ({short}{selector} > {factor})",
            long = burn_series(alert.long),
            short = burn_series(alert.short),
        );
        if maintenance {
            expr = format!("({expr}) unless on() {MAINTENANCE}{calendar}");
        }
        let mut labels = set_labels.clone();
        labels.extend(per_slo.labels.clone());
        labels.insert("slo".into(), slo.name.clone());
        labels.insert("slo_set".into(), set_name.to_owned());
        labels.insert("severity".into(), alert.severity.clone());
        let mut annotations = BTreeMap::from([(
            "summary".to_owned(),
            format!(
                "SLO {} is burning its error budget {}x too fast (over {} and {})",
                slo.name,
                alert.factor,
                promql_range(alert.long),
                promql_range(alert.short)
            ),
        )]);
        annotations.extend(per_slo.annotations.clone());
        rules.push(Rule {
            record: None,
            alert: Some(alert.alert_name()),
            expr,
            for_: None,
            labels,
            annotations,
        });
    }
    Some(RuleGroup {
        name: format!("slo-{}", slo.name),
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(extra: &str) -> SloSet {
        let text = format!(
            "apiVersion: chaos.game-resilience.dev/v1\nkind: SLOSet\nmetadata: {{ name: games }}\nspec:\n{extra}  slos:\n    - name: saves\n      objective: 99.9\n      period: 30d\n      sli:\n        ratio: {{ good: 'sum(rate(ok[$window]))', total: 'sum(rate(all[$window]))' }}\n    - name: sessions\n      objective: 99.9\n      period: 30d\n      sli:\n        gauge: {{ query: sum(sessions), max: 100000 }}\n"
        );
        crate::spec::parse_slo_set("set.yaml", &text).unwrap()
    }

    #[test]
    fn without_a_calendar_the_rules_read_utc_and_one_budget() {
        let file = rules(&set("")).unwrap();
        assert_eq!(
            file.groups.len(),
            1,
            "no calendar group; the gauge SLO has no budget"
        );
        let text = crate::spec::to_yaml(&file).unwrap();
        assert!(!text.contains("calendar"), "{text}");
        assert!(
            text.contains("slo:error_budget:burn_rate1h{slo=\"saves\",slo_set=\"games\"} > 14.4)"),
            "{text}"
        );
        assert!(
            text.contains("slo:sli_error:ratio_rate5m{slo=\"saves\",slo_set=\"games\"} / 0.001"),
            "{text}"
        );
        let alerts: Vec<_> = file.groups[0]
            .rules
            .iter()
            .filter_map(|r| r.alert.clone())
            .collect();
        assert_eq!(
            alerts,
            [
                "SLOBurnRatePage1h",
                "SLOBurnRatePage6h",
                "SLOBurnRateTicket1d",
                "SLOBurnRateTicket3d"
            ]
        );
    }

    #[test]
    fn peak_and_maintenance_are_in_the_promql_in_local_time() {
        let file = rules(&set(
            "  calendar:\n    timeZone: Asia/Seoul\n    peak: [{ from: '18:00', to: '22:00', factor: 1.2 }]\n    maintenance: [{ days: [tuesday], from: '02:00', to: '06:00' }]\n",
        ))
        .unwrap();
        let calendar = &file.groups[0];
        let maintenance = &calendar.rules[0].expr;
        assert!(
            maintenance.contains("vector(time() + 32400)"),
            "{maintenance}"
        );
        assert!(
            maintenance.contains(">= 120") && maintenance.contains("< 360"),
            "{maintenance}"
        );
        assert!(maintenance.contains("== 2"), "Tuesday: {maintenance}");
        let divisor = &calendar.rules[1].expr;
        assert!(
            divisor.starts_with("(vector(1.2) and on()") && divisor.ends_with("or on() vector(1)"),
            "{divisor}"
        );
        let saves = &file.groups[1];
        assert!(saves.rules[0].expr.ends_with(
            "unless on() max_over_time(slo:calendar:maintenance{slo_set=\"games\"}[5m])"
        ));
        assert!(saves.rules[0]
            .expr
            .contains("and on() ((sum(rate(all[5m]))) > 0)"));
        let burn = &saves.rules[1];
        assert_eq!(burn.record.as_deref(), Some("slo:error_budget:burn_rate5m"));
        assert!(
            burn.expr.contains(
                "* on() group_left() slo:calendar:budget_divisor{slo_set=\"games\"} / 0.001"
            ),
            "in peak hours an error spends the factor times more: {}",
            burn.expr
        );
        let page = saves.rules.iter().find(|r| r.alert.is_some()).unwrap();
        assert!(
            page.expr
                .contains("burn_rate1h{slo=\"saves\",slo_set=\"games\"} > 14.4)"),
            "{}",
            page.expr
        );
    }

    #[test]
    fn a_window_with_its_tail_holds_exactly_when_the_window_was_on_in_the_last_five_minutes() {
        let window = |days: &str, from: &str, to: &str| -> DayWindow {
            serde_json::from_str(&format!(
                r#"{{"days": {days}, "from": "{from}", "to": "{to}"}}"#
            ))
            .unwrap()
        };
        for w in [
            window(r#"["tuesday"]"#, "02:00", "06:00"),
            window(r#"["saturday"]"#, "22:00", "02:00"),
            window(r#"["sunday", "monday"]"#, "23:00", "24:00"),
            window(r#"["friday"]"#, "23:58", "23:59"),
            window(r#"["wednesday"]"#, "00:00", "24:00"),
        ] {
            let tail = w.with_tail(5);
            for minute_of_week in 0..7 * 1440u32 {
                let at = |m: u32| {
                    let m = m % (7 * 1440);
                    (Weekday::ALL[(m / 1440) as usize], (m % 1440) as u16)
                };
                let (day, minute) = at(minute_of_week);
                // On at some time in (t - 5m, t]: minute m stands for [m, m + 1), so the
                // minutes t-5 to t.
                let recent = (0..=5).any(|k| {
                    let (d, m) = at(minute_of_week + 7 * 1440 - k);
                    w.contains(d, m)
                });
                assert_eq!(
                    tail.iter().any(|t| t.contains(day, minute)),
                    recent,
                    "{w:?} at {day:?} {minute}"
                );
            }
        }
    }

    #[test]
    fn a_zone_west_of_utc_subtracts_its_offset() {
        let clock = Clock { offset: -5 * 3600 };
        assert_eq!(clock.local(), "vector(time() - 18000)");
    }

    #[test]
    fn a_window_passing_midnight_holds_the_evening_and_the_next_morning() {
        let clock = Clock { offset: 0 };
        let on = clock.window_on(&DayWindow {
            days: vec![Weekday::Saturday],
            from: serde_json::from_str("\"22:00\"").unwrap(),
            to: serde_json::from_str("\"02:00\"").unwrap(),
        });
        assert!(on.contains(">= 1320") && on.contains("== 6"), "{on}");
        assert!(
            on.contains("< 120") && on.contains("== 0"),
            "Sunday morning: {on}"
        );
    }
}
