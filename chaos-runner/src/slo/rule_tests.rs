//! `chaos-runner slo test`: `promtool test rules` unit tests of the rules `slo rules`
//! writes, from synthetic series.
//!
//! The tests run on [`rules_under_test`](super::rules::rules_under_test): the same rules,
//! with each SLO's 5-minute error ratio read from `slo_test_error_ratio{slo}` so a test
//! chooses the burn. They prove every window, budget, alert and the calendar; the SLI
//! queries themselves are the SLO file's own PromQL, which `promtool check rules` checks.
//!
//! Per alert, for every SLO at once (one evaluation of the rules serves them all): the
//! alert fires at 1.1 times its factor and stays silent at 0.9 times; in peak hours it
//! fires at a burn between factor / peak factor and the factor, which off-peak stays
//! silent. During maintenance a burn twice the fastest factor records no error ratio and
//! fires nothing. Half the budget burnt leaves half.
//! promtool's clock starts at the Unix epoch, Thursday 00:00 UTC; the moments are chosen
//! from the calendar (the first peak and maintenance minutes after it).

use serde::Serialize;
use std::collections::BTreeMap;

use super::rules::{
    rules_under_test, RuleFile, RulesError, BURN_RATE, ERROR_RATIO, REMAINING, TEST_SERIES,
};
use crate::spec::calendar::{Alerting, DayWindow};
use crate::spec::slo::{format_float, SloSet};

/// promtool's evaluation step in the tests, in minutes.
const STEP_MINUTES: u32 = 5;

/// A `promtool test rules` file.
#[derive(Debug, Clone, Serialize)]
pub struct TestFile {
    /// The rule files under test, relative to the test file.
    pub rule_files: Vec<String>,
    /// How often promtool evaluates the rules.
    pub evaluation_interval: String,
    /// The test groups, each with its own series.
    pub tests: Vec<TestGroup>,
}

/// One test group: input series and what must hold.
#[derive(Debug, Clone, Serialize)]
pub struct TestGroup {
    /// What it proves.
    pub name: String,
    /// The spacing of the input series.
    pub interval: String,
    /// The input series.
    pub input_series: Vec<InputSeries>,
    /// Expected alerts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alert_rule_test: Vec<AlertTest>,
    /// Expected query results.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub promql_expr_test: Vec<ExprTest>,
}

/// An input series.
#[derive(Debug, Clone, Serialize)]
pub struct InputSeries {
    /// The series, `name{labels}`.
    pub series: String,
    /// Its values, in promtool's expanding notation.
    pub values: String,
}

/// The alerts of one name expected at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct AlertTest {
    /// When, from the epoch (`90m`).
    pub eval_time: String,
    /// The alert.
    pub alertname: String,
    /// The alerts expected (empty: none).
    pub exp_alerts: Vec<ExpectedAlert>,
}

/// One firing alert, exactly.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectedAlert {
    /// Its labels (without `alertname`).
    pub exp_labels: BTreeMap<String, String>,
    /// Its annotations.
    pub exp_annotations: BTreeMap<String, String>,
}

/// A query's expected samples at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct ExprTest {
    /// The query.
    pub expr: String,
    /// When.
    pub eval_time: String,
    /// The samples (empty: none).
    pub exp_samples: Vec<ExpectedSample>,
}

/// One sample.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectedSample {
    /// Its labels, `name{...}`.
    pub labels: String,
    /// Its value.
    pub value: f64,
}

/// What `slo test` writes, and what it could not test.
#[derive(Debug, Clone)]
pub struct GeneratedTests {
    /// The rules under test.
    pub rules: RuleFile,
    /// Their tests.
    pub tests: TestFile,
    /// The tests not generated, each with the reason (said to the user, never silent).
    pub skipped: Vec<String>,
}

/// The tests of `set`'s rules, with the rules under test (write them to `rules_file`,
/// beside the test file).
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/game-services.yaml");
/// let set = chaos_runner::spec::load_slo_set(path.as_ref()).unwrap();
/// let generated = chaos_runner::slo::rule_tests::tests(&set, "rules-under-test.yaml").unwrap();
/// assert!(!generated.rules.groups.is_empty() && !generated.tests.tests.is_empty());
/// ```
pub fn tests(set: &SloSet, rules_file: &str) -> Result<GeneratedTests, RulesError> {
    let rules = rules_under_test(set)?;
    let calendar = set.spec.calendar.as_ref();
    let alerts = Alerting::of(set.spec.alerting.as_ref());
    let clock = match calendar {
        Some(cal) => Some((cal, cal.utc_offset().map_err(RulesError::Zone)?)),
        None => None,
    };
    let off_peak = |m: u32| {
        clock.is_none_or(|(cal, off)| {
            !cal.peak.iter().any(|p| on(&p.window(), m, off))
                && !cal.maintenance.iter().any(|w| on(w, m, off))
        })
    };
    // Minutes from the epoch: an ordinary moment with nothing but ordinary time before it
    // (every window, up to the period, averages from the epoch), the first moment with
    // `lookback` minutes of peak before it, and the first maintenance one.
    let ordinary = first_minute(60, 60, |m| {
        (0..=m).step_by(STEP_MINUTES as usize).all(off_peak)
    });
    let peak_after = |lookback: u32| {
        clock.and_then(|(cal, off)| {
            let first = cal.peak.first()?;
            first_minute(60, lookback, |m| {
                on(&first.window(), m, off) && !cal.maintenance.iter().any(|w| on(w, m, off))
            })
            .map(|m| (m, first.factor))
        })
    };
    let maintenance = clock.and_then(|(cal, off)| {
        let first = cal.maintenance.first()?;
        first_minute(60, 30, |m| on(first, m, off))
    });
    // The SLOs with rules (a gauge SLO has none), with their group of rules.
    let slos: Vec<_> = set
        .spec
        .slos
        .iter()
        .filter_map(|slo| {
            let group = rules
                .groups
                .iter()
                .find(|g| g.name == format!("slo-{}", slo.name))?;
            Some((slo, group))
        })
        .collect();
    // Every SLO burns in the same test group (one evaluation of the rules serves all).
    let series = |burn_of_budget: f64, until: u32| -> Vec<InputSeries> {
        slos.iter()
            .map(|(slo, _)| InputSeries {
                series: format!("{TEST_SERIES}{{slo=\"{}\"}}", slo.name),
                values: format!(
                    "{}+0x{}",
                    format_float(burn_of_budget * slo.error_budget()),
                    until / STEP_MINUTES + 1
                ),
            })
            .collect()
    };
    let group = |name: String, input_series, alert_rule_test, promql_expr_test| TestGroup {
        name,
        interval: format!("{STEP_MINUTES}m"),
        input_series,
        alert_rule_test,
        promql_expr_test,
    };
    // Each SLO's `series` at minute `at`: `value`, or no sample at all.
    let each_slo_reads = |series: &str, at: u32, value: Option<f64>| -> Vec<ExprTest> {
        slos.iter()
            .map(|(slo, _)| {
                let labels = format!(
                    "{series}{{slo=\"{}\", slo_set=\"{}\"}}",
                    slo.name, set.metadata.name
                );
                ExprTest {
                    expr: labels.clone(),
                    eval_time: format!("{at}m"),
                    exp_samples: value
                        .map(|value| ExpectedSample { labels, value })
                        .into_iter()
                        .collect(),
                }
            })
            .collect()
    };
    let mut groups = Vec::new();
    let mut quiet_in_maintenance = Vec::new();
    let mut skipped = Vec::new();
    for alert in &alerts {
        let name = alert.alert_name();
        // What each SLO's alert of this name says when it fires (promtool compares the
        // annotations as rendered).
        let firing: Option<Vec<ExpectedAlert>> = slos
            .iter()
            .filter_map(|(_, g)| g.rules.iter().find(|r| r.alert.as_deref() == Some(&name)))
            .map(|rule| {
                let exp_annotations = rule
                    .annotations
                    .iter()
                    .map(|(k, v)| Some((k.clone(), render_labels(v, &result_labels(rule))?)))
                    .collect::<Option<BTreeMap<_, _>>>()?;
                Some(ExpectedAlert {
                    exp_labels: rule.labels.clone(),
                    exp_annotations,
                })
            })
            .collect();
        let Some(firing) = firing else {
            skipped.push(format!(
                "{name}: an annotation uses a template other than {{{{ $labels.<name> }}}}, \
                 whose text only Prometheus knows when the alert fires"
            ));
            continue;
        };
        let check = |at: u32, expect: &[ExpectedAlert]| AlertTest {
            eval_time: format!("{at}m"),
            alertname: name.clone(),
            exp_alerts: expect.to_vec(),
        };
        if let Some(at) = ordinary {
            groups.push(group(
                format!("{name} fires at 1.1x its factor"),
                series(alert.factor * 1.1, at),
                vec![check(at, &firing)],
                Vec::new(),
            ));
            groups.push(group(
                format!("{name} is silent at 0.9x its factor"),
                series(alert.factor * 0.9, at),
                vec![check(at, &[])],
                Vec::new(),
            ));
            // A peak test needs the alert's whole long window in peak hours (plus one
            // step): a window over peak and off-peak hours weighs each by its factor.
            let long_minutes = (alert.long.as_secs() / 60) as u32 + STEP_MINUTES;
            if let Some((in_peak, factor)) = peak_after(long_minutes) {
                // Between factor / peak factor and the factor: pages in peak hours only.
                let burn = alert.factor * (1.0 / factor + 1.0) / 2.0;
                groups.push(group(
                    format!("{name} pages at {burn:.2}x in peak hours only"),
                    series(burn, at.max(in_peak)),
                    vec![check(at, &[]), check(in_peak, &firing)],
                    Vec::new(),
                ));
            } else if clock.is_some_and(|(cal, _)| !cal.peak.is_empty()) {
                skipped.push(format!(
                    "{name}: its {} window is longer than the peak hours, so no test shows \
                     it firing in peak hours only (the 5-minute burn-rate test covers the \
                     weighting)",
                    crate::spec::slo::promql_range(alert.long)
                ));
            }
        }
        if let Some(at) = maintenance {
            quiet_in_maintenance.push(check(at, &[]));
        }
    }
    if let Some(at) = maintenance {
        // Twice the fastest factor: every alert would fire outside maintenance.
        let fastest = alerts.iter().map(|a| a.factor).fold(1.0, f64::max);
        let no_ratio = each_slo_reads(&format!("{ERROR_RATIO}5m"), at, None);
        groups.push(group(
            format!(
                "maintenance: a {}x burn records no error ratio and fires nothing",
                2.0 * fastest
            ),
            series(2.0 * fastest, at),
            quiet_in_maintenance,
            no_ratio,
        ));
    }
    if let (Some((in_peak, factor)), Some(at)) = (peak_after(30), ordinary) {
        // A burn of half the budget's pace spends `factor` times that in peak hours.
        let weighted = each_slo_reads(&format!("{BURN_RATE}5m"), in_peak, Some(0.5 * factor));
        groups.push(group(
            format!("in peak hours an error spends {factor}x the budget"),
            series(0.5, at.max(in_peak)),
            Vec::new(),
            weighted,
        ));
    }
    if ordinary.is_none() {
        skipped.push(
            "every alert: no moment in the first week from the epoch (promtool's clock) has \
             only ordinary hours before it, so no test shows the alerts firing at their factor"
                .to_owned(),
        );
    }
    if let Some(at) = ordinary {
        let half_left = each_slo_reads(REMAINING, at, Some(0.5));
        groups.push(group(
            "half the budget burnt leaves half".to_owned(),
            series(0.5, at),
            Vec::new(),
            half_left,
        ));
    }
    Ok(GeneratedTests {
        rules,
        tests: TestFile {
            rule_files: vec![rules_file.to_owned()],
            evaluation_interval: format!("{STEP_MINUTES}m"),
            tests: groups,
        },
        skipped,
    })
}

/// The labels an alert's expression yields, which its templates see as `$labels`: those of
/// the recorded burn rates (the labels the rule adds, such as `severity`, are not visible
/// to templates in Prometheus).
fn result_labels(rule: &super::rules::Rule) -> BTreeMap<String, String> {
    rule.labels
        .iter()
        .filter(|(k, _)| *k == "slo" || *k == "slo_set")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `template` with every `{{ $labels.<name> }}` replaced by that label's value, as
/// Prometheus renders it; `None` when another template is left (`$value`, functions).
fn render_labels(template: &str, labels: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}")? + start;
        let inner = rest[start + 2..end].trim();
        let label = inner.strip_prefix("$labels.")?;
        out.push_str(labels.get(label).map_or("", String::as_str));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// The first minute from `from` (on the test's step grid, within 8 days of the epoch)
/// where `wanted` holds for the `lookback` minutes before it as well.
fn first_minute(from: u32, lookback: u32, wanted: impl Fn(u32) -> bool) -> Option<u32> {
    (from..8 * 1440)
        .step_by(STEP_MINUTES as usize)
        .find(|m| *m >= lookback && (m - lookback..=*m).all(&wanted))
}

/// Whether `window` is on at `minute` from the epoch (Thursday 00:00 UTC), in the zone
/// `offset` seconds from UTC.
fn on(window: &DayWindow, minute: u32, offset: i32) -> bool {
    let local = i64::from(minute) + i64::from(offset) / 60;
    let day = (4 + local.div_euclid(1440)).rem_euclid(7) as u8;
    let of_day = local.rem_euclid(1440) as u16;
    let (from, to) = (window.from.minutes(), window.to.minutes());
    let on_day = |d: u8| window.days.iter().any(|w| w.number() == d);
    if from < to {
        on_day(day) && of_day >= from && of_day < to
    } else {
        (on_day(day) && of_day >= from) || (on_day((day + 6) % 7) && of_day < to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::calendar::Weekday;

    fn window(days: &[Weekday], from: &str, to: &str) -> DayWindow {
        DayWindow {
            days: days.to_vec(),
            from: serde_json::from_str(&format!("\"{from}\"")).unwrap(),
            to: serde_json::from_str(&format!("\"{to}\"")).unwrap(),
        }
    }

    #[test]
    fn label_templates_render_and_other_templates_are_left_to_prometheus() {
        let labels = BTreeMap::from([("slo".to_owned(), "saves".to_owned())]);
        assert_eq!(
            render_labels(
                "{{ $labels.slo }} burns ({{$labels.slo}}, {{ $labels.none }})",
                &labels
            ),
            Some("saves burns (saves, )".to_owned())
        );
        assert_eq!(render_labels("{{ $value | humanize }}", &labels), None);
        assert_eq!(render_labels("plain", &labels), Some("plain".to_owned()));
    }

    #[test]
    fn the_epoch_is_thursday_morning_in_seoul() {
        let seoul = 9 * 3600;
        let thursday_morning = window(&[Weekday::Thursday], "09:00", "10:00");
        assert!(on(&thursday_morning, 0, seoul));
        assert!(!on(&thursday_morning, 60, seoul));
        let tuesday_maintenance = window(&[Weekday::Tuesday], "02:00", "06:00");
        // Tuesday 02:00 in Seoul is Monday 17:00 UTC: 4 days and 17 hours in.
        assert!(on(&tuesday_maintenance, (4 * 24 + 17) * 60, seoul));
        assert!(!on(&tuesday_maintenance, (4 * 24 + 17) * 60 - 1, seoul));
        assert_eq!(
            first_minute(60, 30, |m| on(&tuesday_maintenance, m, seoul)),
            Some((4 * 24 + 17) * 60 + 30)
        );
    }

    #[test]
    fn west_of_utc_the_epoch_is_still_wednesday_evening() {
        let bogota = -5 * 3600;
        let wednesday_evening = window(&[Weekday::Wednesday], "18:00", "20:00");
        assert!(
            on(&wednesday_evening, 0, bogota),
            "00:00 UTC is 19:00 in Bogota"
        );
        assert!(!on(&wednesday_evening, 60, bogota));
    }

    #[test]
    fn a_window_passing_midnight_is_on_the_next_morning() {
        let late = window(&[Weekday::Thursday], "22:00", "02:00");
        assert!(on(&late, 22 * 60, 0));
        assert!(
            on(&late, 25 * 60, 0),
            "Friday 01:00 belongs to Thursday's window"
        );
        assert!(!on(&late, 26 * 60, 0));
        assert!(!on(&late, 60, 0), "Thursday 01:00 belongs to Wednesday's");
    }
}
