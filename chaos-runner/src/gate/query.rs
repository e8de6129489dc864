//! What the gate asks Prometheus: per SLO one query whose series are its figures (the
//! budget spent over the period, the SLI over the period, the burn rate over each alert
//! window), each computed from the SLI's own series and the clock exactly as
//! `chaos-runner slo rules` records it, so the gate needs no rules loaded and reads history
//! written before they were.

use std::collections::BTreeMap;
use std::time::Duration;

use super::decide::{AlertReading, Reading};
use crate::slo::rules::{inline_sli, InlineSli};
use crate::spec::calendar::{Alerting, BurnAlert};
use crate::spec::slo::{promql_range, Slo, SloSet};
use crate::watch::prometheus::{Prometheus, Series};

/// The label naming each figure of a query's result.
const FIGURE: &str = "gate_figure";

/// The step of the period's figures: one 5-minute slice after another, each counted once
/// (as the rules' `avg_over_time` over the period weighs every slice the same).
const PERIOD_STEP: &str = "5m";

/// The step of the shorter alert windows' figures: as often as the rules are usually
/// evaluated, so a burn that began a minute ago shows. Windows of a day or more take the
/// period's step: 5-minute slices each counted once, at a fifth of the cost.
const WINDOW_STEP: &str = "1m";

/// One SLO's query: its PromQL and the alerts whose windows it reads.
#[derive(Debug, Clone)]
pub struct SloQuery {
    /// The PromQL: one series per figure, labelled `gate_figure`.
    pub promql: String,
    alerts: Vec<BurnAlert>,
}

/// The query of `slo`, or `None` for a gauge SLO (it has no budget).
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/game-services.yaml");
/// let set = chaos_runner::spec::load_slo_set(path.as_ref()).unwrap();
/// let q = chaos_runner::gate::query::slo_query(&set, &set.spec.slos[0]).unwrap();
/// assert!(q.promql.contains("[30d:5m]") && q.promql.contains("[1h:1m]"));
/// assert!(chaos_runner::gate::query::slo_query(&set, &set.spec.slos[3]).is_none(), "gauge");
/// ```
pub fn slo_query(set: &SloSet, slo: &Slo) -> Option<SloQuery> {
    // The set was validated: its zone has a fixed offset, so the rules can be written.
    let InlineSli {
        error_ratio_5m,
        burn_rate_5m,
    } = inline_sli(set, slo).ok().flatten()?;
    let alerts = Alerting::of(set.spec.alerting.as_ref());
    let period = promql_range(slo.period);
    let mut parts = vec![
        figure("spent", &period_mean(&burn_rate_5m, &period)),
        figure("error_ratio", &period_mean(&error_ratio_5m, &period)),
    ];
    let mut windows: Vec<Duration> = alerts.iter().flat_map(|a| [a.long, a.short]).collect();
    windows.sort();
    windows.dedup();
    for window in windows {
        let expr = if window <= Duration::from_secs(300) {
            // The 5-minute burn rate itself (a shorter window reads it too: the rules
            // start from 5 minutes).
            burn_rate_5m.clone()
        } else {
            let step = if window >= Duration::from_secs(86_400) {
                PERIOD_STEP
            } else {
                WINDOW_STEP
            };
            format!(
                "avg_over_time(({burn_rate_5m})[{}:{step}])",
                promql_range(window)
            )
        };
        parts.push(figure(&burn_figure(window), &expr));
    }
    Some(SloQuery {
        promql: parts.join("\nor\n"),
        alerts,
    })
}

/// Where the query names the end of the period's slices; [`read`] puts in the 5-minute
/// mark [`Instant`] says.
const PERIOD_END: &str = "__gate_period_end__";

/// The mean of a 5-minute figure over the period's 5-minute slices. Subquery steps fall on
/// the clock's 5-minute marks; `@` puts the last slice's end where [`Instant`] says: for
/// now, the next mark, so the last minutes count too and a service minutes old has a
/// budget.
fn period_mean(expr: &str, period: &str) -> String {
    format!("avg_over_time(({expr})[{period}:{PERIOD_STEP}] @ {PERIOD_END})")
}

/// The budget spent alone (no SLI, no alert windows): what an experiment's
/// `errorBudgetGate` needs, at a third of the cost. `None` for a gauge SLO.
pub fn budget_query(set: &SloSet, slo: &Slo) -> Option<SloQuery> {
    let InlineSli { burn_rate_5m, .. } = inline_sli(set, slo).ok().flatten()?;
    Some(SloQuery {
        promql: figure(
            "spent",
            &period_mean(&burn_rate_5m, &promql_range(slo.period)),
        ),
        alerts: Vec::new(),
    })
}

fn figure(name: &str, expr: &str) -> String {
    format!("label_replace({expr}, \"{FIGURE}\", \"{name}\", \"\", \"\")")
}

fn burn_figure(window: Duration) -> String {
    format!("burn_{}", promql_range(window))
}

/// The instant a query judges at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Instant {
    /// Now: the period's slices end at the next 5-minute mark, so the last minutes count
    /// (there is nothing after now to leak in).
    Now(f64),
    /// A past instant (`--at`): the slices end at the last mark at or before it, so
    /// nothing after it counts.
    At(f64),
}

impl Instant {
    /// `at` as now or as an instant asked for.
    pub fn of(asked: bool, at: chrono::DateTime<chrono::Utc>) -> Instant {
        let seconds = at.timestamp_millis() as f64 / 1000.0;
        if asked {
            Instant::At(seconds)
        } else {
            Instant::Now(seconds)
        }
    }

    fn seconds(self) -> f64 {
        match self {
            Instant::Now(s) | Instant::At(s) => s,
        }
    }

    /// Where the period's 5-minute slices end.
    fn period_end(self) -> f64 {
        let step = 300.0;
        match self {
            Instant::Now(s) => (s / step).ceil() * step,
            Instant::At(s) => (s / step).floor() * step,
        }
    }
}

/// Runs `query` at `at` and reads its figures; the error says why the SLO cannot be
/// judged.
pub async fn read(
    prometheus: &Prometheus,
    query: &SloQuery,
    at: Instant,
) -> Result<Reading, String> {
    let promql = query
        .promql
        .replace(PERIOD_END, &format!("{:.0}", at.period_end()));
    let series = prometheus
        .vector(&promql, Some(at.seconds()))
        .await
        .map_err(|e| e.to_string())?;
    figures(query, &series)
}

/// The figures of a query's result.
fn figures(query: &SloQuery, series: &[Series]) -> Result<Reading, String> {
    let mut by_figure: BTreeMap<&str, f64> = BTreeMap::new();
    for s in series {
        let Some(name) = s.labels.get(FIGURE) else {
            continue;
        };
        // 0/0: no events in the window.
        if s.value.is_nan() {
            continue;
        }
        if by_figure.insert(name, s.value).is_some() {
            return Err(format!(
                "the SLI gives more than one series (figure {name}): its queries must \
                 aggregate to one, e.g. with sum()"
            ));
        }
    }
    let alerts = query
        .alerts
        .iter()
        .map(|a| {
            let long = by_figure.get(burn_figure(a.long).as_str()).copied();
            let short = by_figure.get(burn_figure(a.short).as_str()).copied();
            AlertReading {
                severity: a.severity.clone(),
                factor: a.factor,
                long: a.long,
                short: a.short,
                long_burn_rate: long,
                short_burn_rate: short,
                firing: long.is_some_and(|l| l > a.factor) && short.is_some_and(|s| s > a.factor),
            }
        })
        .collect();
    Ok(Reading {
        spent: by_figure.get("spent").copied(),
        error_ratio: by_figure.get("error_ratio").copied(),
        alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> SloSet {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../experiments/slo/game-services.yaml"
        );
        crate::spec::load_slo_set(path.as_ref()).unwrap()
    }

    fn series(figure: &str, value: f64) -> Series {
        Series {
            labels: BTreeMap::from([(FIGURE.to_owned(), figure.to_owned())]),
            value,
        }
    }

    #[test]
    fn the_figures_are_read_by_their_label_and_alerts_fire_when_both_windows_burn() {
        let set = set();
        let q = slo_query(&set, &set.spec.slos[0]).unwrap();
        let r = figures(
            &q,
            &[
                series("spent", 0.3),
                series("error_ratio", 0.0003),
                series("burn_1h", 20.0),
                series("burn_5m", 15.0),
                series("burn_6h", 7.0),
            ],
        )
        .unwrap();
        assert_eq!(r.spent, Some(0.3));
        assert!(r.alerts[0].firing, "14.4x over 1h and 5m");
        assert!(!r.alerts[1].firing, "6x over 6h needs its 30m window too");
        assert_eq!(r.alerts[1].short_burn_rate, None);
    }

    #[test]
    fn an_sli_with_several_series_cannot_be_judged() {
        let set = set();
        let q = slo_query(&set, &set.spec.slos[0]).unwrap();
        let e = figures(&q, &[series("spent", 0.3), series("spent", 0.5)]).unwrap_err();
        assert!(e.contains("more than one series"), "{e}");
    }

    #[test]
    fn the_query_reads_the_clock_not_recorded_series() {
        let set = set();
        let q = slo_query(&set, &set.spec.slos[0]).unwrap();
        assert!(!q.promql.contains("slo:"), "{}", q.promql);
        assert!(q.promql.contains("time() + 32400"), "Asia/Seoul");
        for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
            assert!(q.promql.contains(&format!("\"burn_{w}\"")), "{w}");
        }
    }
}
