//! `chaos-runner slo dashboard`: a Grafana dashboard (JSON, Grafana 10 and later) of an SLO
//! set, reading the series `slo rules` records.
//!
//! - A game row first: every SLI now, straight from the SLO file's own queries (so it
//!   shows data before any rule has run), and the p95 of each latency SLI.
//! - Per event-based SLO a row: the SLI over the period against its objective, the error
//!   budget left (gauge, at the deploy gate's 50% and 20% marks), the burn rate of every
//!   alert window with each alert's factor as a dashed line, the budget left over the
//!   period, and the last 24 hours of the SLI against its objective, which tightens in
//!   peak hours.
//! - Per gauge SLO: the level against its bound.
//! - Annotations shade peak hours and maintenance (from the calendar's recorded series) and
//!   mark chaos runs (`chaos_runner_faults_live`, which `chaos-runner run --metrics-listen`
//!   serves while it runs).
//!
//! Every query is plain PromQL without Grafana variables, so a test runs each one against
//! a real Prometheus ([`Dashboard::queries`]).

use serde_json::{json, Value};
use std::time::Duration;

use super::rules::{BURN_RATE, DIVISOR, ERROR_RATIO, MAINTENANCE, REMAINING};
use crate::spec::calendar::Alerting;
use crate::spec::slo::{format_float, promql_range, Slo, SloSet};

/// The series a running experiment serves: how many of its faults are live.
pub const FAULTS_LIVE: &str = "chaos_runner_faults_live";

/// The window the "now" panels read.
const NOW: Duration = Duration::from_secs(300);

/// Grafana's grid is 24 columns wide.
const GRID_WIDTH: u32 = 24;

/// The game row's stats: eight to a line.
const GAME_STAT_WIDTH: u32 = 3;

/// A query of the dashboard, for checking it against a Prometheus.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardQuery {
    /// The panel or annotation it belongs to.
    pub title: String,
    /// The PromQL, exactly as the dashboard sends it.
    pub expr: String,
}

/// A Grafana dashboard and the queries in it.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// The dashboard JSON (import it, or provision it as a file).
    pub json: Value,
    queries: Vec<DashboardQuery>,
}

impl Dashboard {
    /// Every query of the dashboard: panels' targets and annotations.
    pub fn queries(&self) -> &[DashboardQuery] {
        &self.queries
    }
}

/// Lays panels out left to right, wrapping at the grid's width.
#[derive(Default)]
struct Layout {
    panels: Vec<Value>,
    queries: Vec<DashboardQuery>,
    x: u32,
    y: u32,
    row_height: u32,
    next_id: u32,
}

impl Layout {
    fn row(&mut self, title: String) {
        self.new_line();
        self.next_id += 1;
        self.panels.push(json!({
            "id": self.next_id,
            "type": "row",
            "title": title,
            "collapsed": false,
            "gridPos": { "x": 0, "y": self.y, "w": GRID_WIDTH, "h": 1 },
            "panels": [],
        }));
        self.y += 1;
    }

    fn new_line(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
            self.x = 0;
            self.row_height = 0;
        }
    }

    /// Adds a panel `w` wide and `h` high; `targets` are (legend, PromQL).
    fn panel(&mut self, w: u32, h: u32, mut panel: Value, targets: &[(String, String)]) {
        if self.x + w > GRID_WIDTH {
            self.new_line();
        }
        self.next_id += 1;
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        panel["id"] = json!(self.next_id);
        panel["gridPos"] = json!({ "x": self.x, "y": self.y, "w": w, "h": h });
        panel["datasource"] = datasource();
        panel["targets"] = targets
            .iter()
            .enumerate()
            .map(|(i, (legend, expr))| {
                json!({
                    "refId": ref_id(i),
                    "datasource": datasource(),
                    "expr": expr,
                    "legendFormat": legend,
                    "range": true,
                    "instant": false,
                })
            })
            .collect();
        for (legend, expr) in targets {
            let title = if legend.is_empty() {
                title.clone()
            } else {
                format!("{title} / {legend}")
            };
            self.queries.push(DashboardQuery {
                title,
                expr: expr.clone(),
            });
        }
        self.panels.push(panel);
        self.x += w;
        self.row_height = self.row_height.max(h);
    }
}

fn ref_id(i: usize) -> String {
    char::from(b'A' + (i % 26) as u8).to_string()
}

fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

/// Thresholds from a base colour and (value, colour) steps.
fn thresholds(base: &str, steps: &[(f64, &str)]) -> Value {
    let mut all = vec![json!({ "color": base, "value": null })];
    all.extend(
        steps
            .iter()
            .map(|(value, color)| json!({ "color": color, "value": value })),
    );
    json!({ "mode": "absolute", "steps": all })
}

fn stat(title: &str, description: &str, unit: &str, decimals: u32, thresholds: Value) -> Value {
    json!({
        "type": "stat",
        "title": title,
        "description": description,
        "options": {
            "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "value",
        },
        "fieldConfig": {
            "defaults": { "unit": unit, "decimals": decimals, "thresholds": thresholds },
            "overrides": [],
        },
    })
}

fn timeseries(title: &str, description: &str, unit: &str, thresholds: Option<Value>) -> Value {
    let mut custom = json!({ "lineWidth": 2, "fillOpacity": 10, "showPoints": "never" });
    let mut defaults = json!({ "unit": unit });
    if let Some(t) = thresholds {
        custom["thresholdsStyle"] = json!({ "mode": "dashed" });
        defaults["thresholds"] = t;
    }
    defaults["custom"] = custom;
    json!({
        "type": "timeseries",
        "title": title,
        "description": description,
        "options": {
            "legend": { "displayMode": "list", "placement": "bottom" },
            "tooltip": { "mode": "multi" },
        },
        "fieldConfig": { "defaults": defaults, "overrides": [] },
    })
}

/// The dashboard of `set`.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/game-services.yaml");
/// let set = chaos_runner::spec::load_slo_set(path.as_ref()).unwrap();
/// let dashboard = chaos_runner::slo::dashboard::dashboard(&set);
/// assert_eq!(dashboard.json["timezone"], "Asia/Seoul");
/// assert!(dashboard.queries().iter().any(|q| q.expr.starts_with("slo:error_budget:remaining")));
/// ```
pub fn dashboard(set: &SloSet) -> Dashboard {
    let set_name = &set.metadata.name;
    let calendar = set.spec.calendar.as_ref();
    let alerts = Alerting::of(set.spec.alerting.as_ref());
    let peak = calendar.is_some_and(|c| !c.peak.is_empty());
    let mut layout = Layout::default();

    layout.row("Game: every SLI now (last 5 minutes, from the SLO file's queries)".to_owned());
    for slo in &set.spec.slos {
        game_view(&mut layout, slo);
    }

    let set_selector = format!("{{slo_set=\"{set_name}\"}}");
    for slo in &set.spec.slos {
        let Some(gauge) = &slo.sli.gauge else {
            budget_row(&mut layout, slo, set_name, &set_selector, &alerts, peak);
            continue;
        };
        layout.row(format!("{}: {}", slo.name, slo.description));
        let bound = thresholds("green", &[(gauge.max, "red")]);
        layout.panel(
            GRID_WIDTH,
            8,
            timeseries(
                &format!("{} against its bound of {}", slo.name, gauge.max),
                &slo.description,
                "short",
                Some(bound),
            ),
            &[(slo.name.clone(), gauge.query.clone())],
        );
    }

    let mut annotations = vec![json!({
        "builtIn": 1,
        "datasource": { "type": "grafana", "uid": "-- Grafana --" },
        "enable": true,
        "hide": true,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    })];
    let mut annotation = |name: &str, expr: String, color: &str, title: &str| {
        layout.queries.push(DashboardQuery {
            title: format!("annotation: {name}"),
            expr: expr.clone(),
        });
        annotations.push(json!({
            "name": name,
            "datasource": datasource(),
            "enable": true,
            "iconColor": color,
            "expr": expr,
            "step": "60s",
            "titleFormat": title,
            "textFormat": "",
            "useValueForTime": false,
        }));
    };
    if let Some(cal) = calendar {
        if let Some(strictest) = cal.peak.iter().map(|p| p.factor).reduce(f64::max) {
            annotation(
                "Peak hours",
                format!("{DIVISOR}{set_selector} > 1"),
                "rgba(255, 152, 48, 0.25)",
                &format!(
                    "Peak hours: objectives up to {}x stricter",
                    format_float(strictest)
                ),
            );
        }
        if !cal.maintenance.is_empty() {
            annotation(
                "Maintenance",
                format!("{MAINTENANCE}{set_selector}"),
                "rgba(128, 128, 128, 0.35)",
                "Maintenance: spends no budget",
            );
        }
    }
    annotation(
        "Chaos runs",
        format!("{FAULTS_LIVE} > 0"),
        "rgba(242, 73, 92, 0.6)",
        "Chaos experiment {{experiment}}: faults live",
    );

    let json = json!({
        "title": format!("SLOs: {set_name}"),
        "uid": uid(set_name),
        "description": set.metadata.description,
        "tags": ["slo", "chaos-runner", set_name],
        "timezone": calendar.map_or("utc", |c| c.time_zone.as_str()),
        "style": "dark",
        "editable": true,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": { "from": "now-24h", "to": "now" },
        "templating": { "list": [{
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        }] },
        "annotations": { "list": annotations },
        "panels": layout.panels,
    });
    Dashboard {
        json,
        queries: layout.queries,
    }
}

/// Grafana's uid: at most 40 characters of letters, digits, `-` and `_`.
fn uid(set_name: &str) -> String {
    let cleaned: String = set_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut uid = format!("slo-{cleaned}");
    uid.truncate(40);
    uid
}

/// The SLI of `slo` over the last 5 minutes from its own queries, and a latency SLI's
/// quantile at its objective (p95 for 95%).
fn game_view(layout: &mut Layout, slo: &Slo) {
    if let Some(gauge) = &slo.sli.gauge {
        layout.panel(
            GAME_STAT_WIDTH,
            5,
            stat(
                &slo.name,
                &slo.description,
                "short",
                0,
                thresholds("green", &[(gauge.max, "red")]),
            ),
            &[(String::new(), gauge.query.clone())],
        );
        return;
    }
    let Some(error_ratio) = slo.error_ratio_query(NOW) else {
        return;
    };
    let objective = slo.objective / 100.0;
    layout.panel(
        GAME_STAT_WIDTH,
        5,
        stat(
            &slo.name,
            &format!("{} (objective {}%)", slo.description, slo.objective),
            "percentunit",
            3,
            thresholds("red", &[(objective, "green")]),
        ),
        &[(String::new(), format!("1 - {error_ratio}"))],
    );
    if let Some(latency) = &slo.sli.latency {
        let quantile = format!(
            "histogram_quantile({}, sum by (le) (rate({}_bucket{{{}}}[{}])))",
            format_float(objective),
            latency.histogram,
            latency.matchers,
            promql_range(NOW)
        );
        layout.panel(
            GAME_STAT_WIDTH,
            5,
            stat(
                &format!("{} p{}", slo.name, format_float(slo.objective)),
                &format!(
                    "The {}th percentile; the SLO holds while it stays within {}",
                    format_float(slo.objective),
                    humantime::format_duration(latency.threshold)
                ),
                "s",
                3,
                thresholds("green", &[(latency.threshold.as_secs_f64(), "red")]),
            ),
            &[(String::new(), quantile)],
        );
    }
}

/// The row of an event-based SLO: SLI over the period, budget left, burn rates, budget
/// over time, the last 24 hours.
fn budget_row(
    layout: &mut Layout,
    slo: &Slo,
    set_name: &str,
    set_selector: &str,
    alerts: &[crate::spec::calendar::BurnAlert],
    peak: bool,
) {
    let selector = format!("{{slo=\"{}\",slo_set=\"{set_name}\"}}", slo.name);
    let period = promql_range(slo.period);
    let objective = slo.objective / 100.0;
    layout.row(format!(
        "{}: {} (objective {}% over {period})",
        slo.name, slo.description, slo.objective
    ));
    layout.panel(
        4,
        8,
        stat(
            &format!("SLI over {period}"),
            &format!(
                "Share of good events over the period; the objective is {}%",
                slo.objective
            ),
            "percentunit",
            3,
            thresholds("red", &[(objective, "green")]),
        ),
        &[(
            String::new(),
            format!("1 - {ERROR_RATIO}{period}{selector}"),
        )],
    );
    let mut gauge = stat(
        "Error budget left",
        "Share of the period's error budget left. Deploys pause below 50% and roll back \
         below 20%; maintenance spends none, peak hours spend their factor times more",
        "percentunit",
        1,
        thresholds("red", &[(0.2, "orange"), (0.5, "green")]),
    );
    gauge["type"] = json!("gauge");
    gauge["fieldConfig"]["defaults"]["min"] = json!(0);
    gauge["fieldConfig"]["defaults"]["max"] = json!(1);
    layout.panel(
        4,
        8,
        gauge,
        &[(String::new(), format!("{REMAINING}{selector}"))],
    );

    let mut windows: Vec<Duration> = alerts.iter().flat_map(|a| [a.long, a.short]).collect();
    windows.sort();
    windows.dedup();
    let factors: Vec<(f64, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a.factor,
                if a.severity == "page" {
                    "red"
                } else {
                    "orange"
                },
            )
        })
        .collect();
    let burn_targets: Vec<(String, String)> = windows
        .iter()
        .map(|w| {
            let range = promql_range(*w);
            (range.clone(), format!("{BURN_RATE}{range}{selector}"))
        })
        .collect();
    let mut burn = timeseries(
        "Burn rate by window",
        &format!(
            "How fast the budget burns (1 = exactly spent over {period}); an alert fires when \
             both of its windows pass its factor (dashed){}",
            if peak {
                "; peak hours count their factor times more"
            } else {
                ""
            }
        ),
        "x",
        Some(thresholds("green", &factors)),
    );
    burn["fieldConfig"]["defaults"]["min"] = json!(0);
    layout.panel(8, 8, burn, &burn_targets);
    layout.panel(
        8,
        8,
        timeseries(
            &format!("Error budget left over {period}"),
            "The budget left at each moment, over the rolling period",
            "percentunit",
            Some(thresholds("red", &[(0.2, "orange"), (0.5, "green")])),
        ),
        &[("left".to_owned(), format!("{REMAINING}{selector}"))],
    );
    let objective_now = if peak {
        format!("1 - slo:error_budget:ratio{selector} / on() group_left() {DIVISOR}{set_selector}")
    } else {
        format!("slo:objective:ratio{selector}")
    };
    let mut trend = timeseries(
        "SLI, last 24 hours",
        "The 5-minute SLI against the objective in force (stricter in peak hours)",
        "percentunit",
        None,
    );
    trend["timeFrom"] = json!("24h");
    layout.panel(
        GRID_WIDTH,
        7,
        trend,
        &[
            ("SLI".to_owned(), format!("1 - {ERROR_RATIO}5m{selector}")),
            ("objective".to_owned(), objective_now),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> SloSet {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../experiments/slo/game-services.yaml"
        );
        crate::spec::load_slo_set(path.as_ref()).unwrap()
    }

    #[test]
    fn panels_never_overlap_and_ids_are_unique() {
        let d = dashboard(&shipped());
        let panels = d.json["panels"].as_array().unwrap();
        let mut cells = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for p in panels {
            assert!(ids.insert(p["id"].as_u64().unwrap()), "{p}");
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(x + w <= 24, "{p}");
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(
                        cells.insert((cx, cy)),
                        "overlap at {cx},{cy}: {}",
                        p["title"]
                    );
                }
            }
        }
    }

    #[test]
    fn the_calendar_shades_peak_and_maintenance_and_runs_are_marked() {
        let d = dashboard(&shipped());
        let names: Vec<_> = d.json["annotations"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "Annotations & Alerts",
                "Peak hours",
                "Maintenance",
                "Chaos runs"
            ]
        );
        assert_eq!(d.json["timezone"], "Asia/Seoul");
        assert_eq!(d.json["uid"], "slo-game-services");
    }

    #[test]
    fn every_event_slo_has_its_budget_and_burn_rates_and_the_latency_slo_its_p95() {
        let d = dashboard(&shipped());
        let exprs: Vec<&str> = d.queries().iter().map(|q| q.expr.as_str()).collect();
        for slo in ["game-availability", "action-latency", "save-success"] {
            let sel = format!("{{slo=\"{slo}\",slo_set=\"game-services\"}}");
            for series in [
                format!("slo:error_budget:remaining{sel}"),
                format!("slo:error_budget:burn_rate1h{sel}"),
                format!("slo:error_budget:burn_rate5m{sel}"),
                format!("1 - slo:sli_error:ratio_rate30d{sel}"),
            ] {
                assert!(exprs.contains(&series.as_str()), "{series}");
            }
        }
        assert!(exprs.contains(&"sum(game_active_sessions)"));
        assert!(exprs
            .iter()
            .any(|e| e.starts_with("histogram_quantile(0.95, sum by (le) (rate(game_http_request_duration_seconds_bucket{route!~")));
        // No Grafana variables in a query: each runs verbatim against Prometheus.
        assert!(exprs.iter().all(|e| !e.contains('$')), "{exprs:?}");
    }

    #[test]
    fn a_long_set_name_makes_a_valid_uid() {
        assert_eq!(uid("a b/c"), "slo-a-b-c");
        assert_eq!(uid(&"x".repeat(60)).len(), 40);
    }
}
