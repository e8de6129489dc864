//! OpenSLO v1 `kind: SLO` documents, read as an SLO set: one document, or several in one
//! file (`---` between them), each SLO one SLO of the set.
//!
//! | OpenSLO | the runner's SLO set |
//! |---|---|
//! | `spec.service` (the first SLO's; every SLO must name the same) | `metadata.name` |
//! | `metadata.name` | the SLO's `name` |
//! | `spec.description` (else `metadata.displayName`) | `description` |
//! | `spec.timeWindow[0]`: `{duration: 28d, isRolling: true}` | `period: 28d` (`m`, `h`, `d`, `w`) |
//! | `spec.budgetingMethod: Occurrences` | (the runner's only method) |
//! | `spec.objectives[0].target` (0 to 1) or `targetPercent` | `objective` in percent |
//! | `spec.indicator.spec.ratioMetric` (`counter: true`, `good` or `bad`, `total`) | `sli.ratio`: `good`, or `(total) - (bad)`, and `total` |
//! | `spec.indicatorRef` | the same, from a `kind: SLI` document of the same file |
//! | `metricSource: {type: Prometheus, spec: {query}}` | the query, see below |
//!
//! A query that contains `$window` is used as it is. A counter selector without a range
//! (`game_saves_total{result="stored"}`), as OpenSLO queries usually are, becomes
//! `sum(rate(SELECTOR[$window]))`. A query with a range of its own (`[5m]`) or that is not a
//! plain selector is refused: write that SLI in the runner's own format, with `$window`.
//!
//! Refused, by name: `thresholdMetric`, `ratioMetric.raw`, `counter` other than `true`,
//! metric sources other than Prometheus (and `metricSourceRef` without `type`), budgeting
//! methods other than `Occurrences`, calendar-aligned windows (`isRolling: false`,
//! `calendar`), windows in months, quarters or years, more than one window or objective,
//! `op`/`value` and `timeSliceTarget`/`timeSliceWindow` on an objective, `alertPolicies`,
//! documents of other kinds (`Service`, `DataSource`, `AlertPolicy`, ...) and of other
//! OpenSLO versions. `metadata.labels` and `metadata.annotations` are read and not carried
//! (they say nothing about what is measured).
//!
//! ```
//! let text = "apiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: saves\nspec:\n  service: game-saves\n  budgetingMethod: Occurrences\n  timeWindow: [{ duration: 28d, isRolling: true }]\n  objectives: [{ target: 0.999 }]\n  indicator:\n    metadata: { name: stored }\n    spec:\n      ratioMetric:\n        counter: true\n        good: { metricSource: { type: Prometheus, spec: { query: 'game_saves_total{result=\"stored\"}' } } }\n        total: { metricSource: { type: Prometheus, spec: { query: game_saves_total } } }\n";
//! let set = chaos_runner::spec::import::convert("saves.yaml", text).unwrap();
//! let ratio = set.spec.slos[0].sli.ratio.as_ref().unwrap();
//! assert_eq!(ratio.good, "sum(rate(game_saves_total{result=\"stored\"}[$window]))");
//! assert_eq!(set.spec.slos[0].objective, 99.9);
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::promql::{rate_query, RateError};
use super::{Imported, Lenient, Origins, Refusals};
use crate::spec::model::{Metadata, API_VERSION};
use crate::spec::slo::{RatioSli, Sli, Slo, SloSet, SloSetSpec};
use crate::spec::{yaml, SpecErrors};

/// The only OpenSLO version read.
pub const VERSION: &str = "openslo/v1";

/// The most documents a file may hold: each is parsed on its own, from the whole text.
pub const MAX_DOCUMENTS: usize = 100;

/// What every document has: which version and kind it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: Lenient,
    #[serde(default)]
    kind: Lenient,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SloDocument {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: ObjectMetadata,
    spec: SloSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SliDocument {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: ObjectMetadata,
    spec: SliSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ObjectMetadata {
    name: String,
    #[serde(default)]
    display_name: String,
    /// Read, not carried.
    #[serde(default)]
    #[allow(dead_code)]
    labels: Option<IgnoredAny>,
    /// Read, not carried.
    #[serde(default)]
    #[allow(dead_code)]
    annotations: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SloSpec {
    #[serde(default)]
    description: String,
    service: String,
    #[serde(default)]
    indicator: Option<InlineIndicator>,
    #[serde(default)]
    indicator_ref: Option<String>,
    #[serde(default)]
    budgeting_method: Option<String>,
    #[serde(default)]
    time_window: Vec<TimeWindow>,
    #[serde(default)]
    objectives: Vec<Objective>,
    #[serde(default)]
    alert_policies: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InlineIndicator {
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<ObjectMetadata>,
    spec: SliSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SliSpec {
    /// Read, not carried (the SLO's own description is).
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    threshold_metric: Option<IgnoredAny>,
    #[serde(default)]
    ratio_metric: Option<RatioMetric>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RatioMetric {
    #[serde(default)]
    counter: Option<bool>,
    #[serde(default)]
    good: Option<MetricSpec>,
    #[serde(default)]
    bad: Option<MetricSpec>,
    #[serde(default)]
    total: Option<MetricSpec>,
    #[serde(default)]
    raw_type: Option<IgnoredAny>,
    #[serde(default)]
    raw: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetricSpec {
    metric_source: MetricSource,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetricSource {
    #[serde(default)]
    metric_source_ref: Option<String>,
    #[serde(default, rename = "type")]
    source_type: Option<String>,
    #[serde(default)]
    spec: BTreeMap<String, Lenient>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TimeWindow {
    duration: String,
    #[serde(default)]
    is_rolling: Option<bool>,
    #[serde(default)]
    calendar: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Objective {
    #[serde(default)]
    #[allow(dead_code)]
    display_name: Option<String>,
    #[serde(default)]
    op: Option<IgnoredAny>,
    #[serde(default)]
    value: Option<IgnoredAny>,
    #[serde(default)]
    target: Option<f64>,
    #[serde(default)]
    target_percent: Option<f64>,
    #[serde(default)]
    time_slice_target: Option<IgnoredAny>,
    #[serde(default)]
    time_slice_window: Option<IgnoredAny>,
}

/// A `kind: SLI` document of the file, for `indicatorRef`.
struct NamedSli {
    document: usize,
    spec: SliSpec,
}

/// Converts an OpenSLO file; the set is not checked yet.
pub(crate) fn convert(file: &str, text: &str) -> Result<Imported, SpecErrors> {
    let mut refusals = Refusals::new(file, text);
    let headers = match yaml::documents::<Header>(text) {
        Ok(headers) => headers,
        Err(failure) => {
            refusals.failed(failure);
            return Err(refusals.into_errors());
        }
    };
    if headers.len() > MAX_DOCUMENTS {
        refusals.refuse(
            MAX_DOCUMENTS,
            "",
            format!(
                "more than {MAX_DOCUMENTS} documents: split the file (each document is read \
                 on its own, and the SLO set would be unwieldy anyway)"
            ),
        );
        return Err(refusals.into_errors());
    }
    // The SLO documents, and the SLI documents by name.
    let mut slo_documents = Vec::new();
    let mut slis = BTreeMap::new();
    for (document, header) in headers.into_iter().enumerate() {
        let header = match header {
            Ok(Some(header)) => header,
            Ok(None) => continue,
            Err(failure) => {
                refusals.failed(failure);
                continue;
            }
        };
        if !header.api_version.is(VERSION) {
            let said = header.api_version.0.as_deref().unwrap_or("missing");
            refusals.refuse(
                document,
                "apiVersion",
                format!("`{said}`: only OpenSLO `{VERSION}` documents are read"),
            );
            continue;
        }
        match header.kind.0.as_deref() {
            Some("SLO") => match yaml::document::<SloDocument>(text, document) {
                Ok(Some(slo)) => slo_documents.push((document, slo)),
                Ok(None) => {}
                Err(failure) => refusals.failed(failure),
            },
            Some("SLI") => match yaml::document::<SliDocument>(text, document) {
                Ok(Some(sli)) => {
                    slis.insert(
                        sli.metadata.name.clone(),
                        NamedSli {
                            document,
                            spec: sli.spec,
                        },
                    );
                }
                Ok(None) => {}
                Err(failure) => refusals.failed(failure),
            },
            other => refusals.refuse(
                document,
                "kind",
                format!(
                    "`{}` documents are not read: only kind: SLO (and kind: SLI, for an \
                     SLO's indicatorRef) are; remove it or put it in another file",
                    other.unwrap_or("missing")
                ),
            ),
        }
    }
    if slo_documents.is_empty() && refusals.is_empty() {
        refusals.refuse(0, "kind", "the file has no kind: SLO document");
    }
    let mut origins = Origins::default();
    let mut slos = Vec::new();
    let service = slo_documents
        .first()
        .map(|(document, slo)| (*document, slo.spec.service.clone()));
    if let Some((document, _)) = &service {
        origins.add("metadata.name", *document, "spec.service");
        origins.add("spec.slos", *document, "");
    }
    for (i, (document, slo)) in slo_documents.iter().enumerate() {
        let document = *document;
        let ours = format!("spec.slos[{i}]");
        origins.add(ours.clone(), document, "");
        origins.add(format!("{ours}.name"), document, "metadata.name");
        origins.add(format!("{ours}.description"), document, "spec.description");
        if let Some((_, name)) = &service {
            if slo.spec.service != *name {
                refusals.refuse(
                    document,
                    "spec.service",
                    format!(
                        "`{}` differs from the first SLO's `{name}`: one file is one SLO set, \
                         named after its service; put this SLO in a file of its own",
                        slo.spec.service,
                    ),
                );
            }
        }
        let period = period(&mut refusals, document, &slo.spec);
        origins.add(
            format!("{ours}.period"),
            document,
            "spec.timeWindow[0].duration",
        );
        let objective = objective(&mut refusals, &mut origins, &ours, document, &slo.spec);
        refuse_unsupported_spec(&mut refusals, document, &slo.spec);
        let sli = indicator(
            &mut refusals,
            &mut origins,
            &ours,
            document,
            &slo.spec,
            &slis,
        );
        let description = [
            slo.spec.description.as_str(),
            slo.metadata.display_name.as_str(),
        ]
        .into_iter()
        .find(|text| !text.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned();
        slos.push(Slo {
            name: slo.metadata.name.clone(),
            description,
            objective: objective.unwrap_or(0.0),
            period: period.unwrap_or(Duration::ZERO),
            sli: Sli {
                ratio: sli,
                latency: None,
                gauge: None,
            },
            alerting: None,
            policy: None,
        });
    }
    let set = SloSet {
        api_version: API_VERSION.to_owned(),
        kind: "SLOSet".to_owned(),
        metadata: Metadata {
            name: service.map(|(_, name)| name).unwrap_or_default(),
            description: String::new(),
            labels: BTreeMap::new(),
        },
        spec: SloSetSpec {
            calendar: None,
            alerting: None,
            policy: None,
            slos,
        },
    };
    refusals.finish(Imported { set, origins })
}

/// The period: one rolling window in minutes, hours, days or weeks.
fn period(refusals: &mut Refusals<'_>, document: usize, spec: &SloSpec) -> Option<Duration> {
    let Some(window) = spec.time_window.first() else {
        refusals.refuse(
            document,
            "spec.timeWindow",
            "needs one rolling window, e.g. `timeWindow: [{ duration: 28d, isRolling: true }]`",
        );
        return None;
    };
    if spec.time_window.len() > 1 {
        refusals.refuse(
            document,
            "spec.timeWindow[1]",
            "only one time window is supported (OpenSLO v1 allows one)",
        );
    }
    let mut rolling = true;
    if window.calendar.is_some() {
        refusals.refuse(
            document,
            "spec.timeWindow[0].calendar",
            "calendar-aligned windows are not supported: the runner measures over a rolling \
             window; remove `calendar` and say `isRolling: true`",
        );
        rolling = false;
    }
    if window.is_rolling == Some(false) && window.calendar.is_none() {
        refusals.refuse(
            document,
            "spec.timeWindow[0].isRolling",
            "calendar-aligned windows are not supported: the runner measures over a rolling \
             window; say `isRolling: true`",
        );
        rolling = false;
    }
    let duration = duration(&window.duration);
    if let Err(message) = &duration {
        refusals.refuse(document, "spec.timeWindow[0].duration", message.clone());
    }
    duration.ok().filter(|_| rolling)
}

/// An OpenSLO duration shorthand of fixed length (`30m`, `12h`, `28d`, `4w`).
fn duration(text: &str) -> Result<Duration, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 28d or 4w"))?;
    let seconds = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "M" | "Q" | "Y" => {
            return Err(format!(
                "`{text}`: months, quarters and years have no fixed length and are not \
                 supported; say it in days or weeks (e.g. 30d, 4w)"
            ))
        }
        _ => return Err(format!("`{text}` is not a duration such as 28d or 4w")),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// The objective in percent: one objective, `target` (0 to 1) or `targetPercent`.
fn objective(
    refusals: &mut Refusals<'_>,
    origins: &mut Origins,
    ours: &str,
    document: usize,
    spec: &SloSpec,
) -> Option<f64> {
    let Some(objective) = spec.objectives.first() else {
        refusals.refuse(
            document,
            "spec.objectives",
            "needs one objective, e.g. `objectives: [{ target: 0.999 }]`",
        );
        return None;
    };
    if spec.objectives.len() > 1 {
        refusals.refuse(
            document,
            "spec.objectives[1]",
            "only one objective per SLO is supported: write each objective as an SLO of its own",
        );
    }
    let at = "spec.objectives[0]";
    if objective.op.is_some() || objective.value.is_some() {
        let field = if objective.op.is_some() {
            "op"
        } else {
            "value"
        };
        refusals.refuse(
            document,
            format!("{at}.{field}"),
            "thresholds (`op`, `value`) belong to thresholdMetric SLIs, which are not supported",
        );
    }
    for (field, present) in [
        ("timeSliceTarget", objective.time_slice_target.is_some()),
        ("timeSliceWindow", objective.time_slice_window.is_some()),
    ] {
        if present {
            refusals.refuse(
                document,
                format!("{at}.{field}"),
                "time slices are not supported: the runner budgets occurrences \
                 (budgetingMethod: Occurrences)",
            );
        }
    }
    match (objective.target, objective.target_percent) {
        (Some(_), Some(_)) => {
            refusals.refuse(
                document,
                format!("{at}.targetPercent"),
                "give `target` or `targetPercent`, not both",
            );
            None
        }
        (None, None) => {
            refusals.refuse(
                document,
                at,
                "needs `target` (e.g. 0.999) or `targetPercent` (e.g. 99.9)",
            );
            None
        }
        (Some(target), None) => {
            origins.add(
                format!("{ours}.objective"),
                document,
                format!("{at}.target"),
            );
            if !(target > 0.0 && target < 1.0) {
                refusals.refuse(
                    document,
                    format!("{at}.target"),
                    "must be above 0 and below 1 (0.999 is 99.9%)",
                );
                return None;
            }
            // 0.999 * 100 is 99.899999...: keep the digits that were written.
            Some((target * 100.0 * 1e9).round() / 1e9)
        }
        (None, Some(percent)) => {
            origins.add(
                format!("{ours}.objective"),
                document,
                format!("{at}.targetPercent"),
            );
            Some(percent)
        }
    }
}

/// The parts of an SLO that are refused whatever its indicator.
fn refuse_unsupported_spec(refusals: &mut Refusals<'_>, document: usize, spec: &SloSpec) {
    match spec.budgeting_method.as_deref() {
        Some("Occurrences") => {}
        Some(method @ ("Timeslices" | "RatioTimeslices")) => refusals.refuse(
            document,
            "spec.budgetingMethod",
            format!(
                "`{method}` is not supported: the runner budgets occurrences (good events / \
                 all events); say `budgetingMethod: Occurrences`"
            ),
        ),
        Some(other) => refusals.refuse(
            document,
            "spec.budgetingMethod",
            format!("`{other}` is not an OpenSLO budgeting method; say `Occurrences`"),
        ),
        None => refusals.refuse(
            document,
            "spec.budgetingMethod",
            "needs `budgetingMethod: Occurrences` (the one method supported)",
        ),
    }
    if !spec.alert_policies.is_empty() {
        refusals.refuse(
            document,
            "spec.alertPolicies",
            "alert policies are not supported: the runner writes the SRE workbook's burn-rate \
             alerts for every SLO (`chaos-runner slo rules`); remove them",
        );
    }
}

/// The SLI: `indicator` inline, or `indicatorRef` to a `kind: SLI` document of the file.
fn indicator(
    refusals: &mut Refusals<'_>,
    origins: &mut Origins,
    ours: &str,
    document: usize,
    spec: &SloSpec,
    slis: &BTreeMap<String, NamedSli>,
) -> Option<RatioSli> {
    let (sli_document, at, sli) = match (&spec.indicator, &spec.indicator_ref) {
        (Some(_), Some(_)) => {
            refusals.refuse(
                document,
                "spec.indicatorRef",
                "give `indicator` or `indicatorRef`, not both",
            );
            return None;
        }
        (None, None) => {
            refusals.refuse(
                document,
                "spec.indicator",
                "needs `indicator` (or `indicatorRef` to a kind: SLI document of this file)",
            );
            return None;
        }
        (Some(inline), None) => (document, "spec.indicator.spec".to_owned(), &inline.spec),
        (None, Some(name)) => match slis.get(name) {
            Some(named) => (named.document, "spec".to_owned(), &named.spec),
            None => {
                refusals.refuse(
                    document,
                    "spec.indicatorRef",
                    format!(
                        "no kind: SLI document named `{name}` in this file (SLIs in other \
                         files are not looked up)"
                    ),
                );
                return None;
            }
        },
    };
    if sli.threshold_metric.is_some() {
        refusals.refuse(
            sli_document,
            format!("{at}.thresholdMetric"),
            "threshold SLIs are not supported: the runner's SLIs count good and total events \
             (ratioMetric)",
        );
        return None;
    }
    let Some(ratio) = &sli.ratio_metric else {
        refusals.refuse(sli_document, at, "needs `ratioMetric`");
        return None;
    };
    let at = format!("{at}.ratioMetric");
    if ratio.raw.is_some() || ratio.raw_type.is_some() {
        let field = if ratio.raw.is_some() {
            "raw"
        } else {
            "rawType"
        };
        refusals.refuse(
            sli_document,
            format!("{at}.{field}"),
            "precomputed ratios (`raw`) are not supported: the runner counts good and total \
             events; give `good` (or `bad`) and `total`",
        );
        return None;
    }
    let numerator = match (&ratio.good, &ratio.bad) {
        (Some(good), None) => Some(("good", good)),
        (None, Some(bad)) => Some(("bad", bad)),
        (Some(_), Some(_)) => {
            refusals.refuse(
                sli_document,
                format!("{at}.bad"),
                "give `good` or `bad`, not both",
            );
            None
        }
        (None, None) => {
            refusals.refuse(sli_document, at.clone(), "needs `good` or `bad`");
            None
        }
    };
    if ratio.total.is_none() {
        refusals.refuse(sli_document, format!("{at}.total"), "needs `total`");
    }
    let counter = ratio.counter == Some(true);
    let mut query = |field: &str, metric: &MetricSpec| {
        let path = format!("{at}.{field}.metricSource");
        let query = source_query(refusals, sli_document, &path, &metric.metric_source)?;
        match rate_query(&query, counter) {
            Ok(query) => Some((query, format!("{path}.spec.query"))),
            Err(RateError::NotACounter) => {
                refusals.refuse(
                    sli_document,
                    format!("{at}.counter"),
                    "only counters are read (`counter: true`): the runner needs events per \
                     second over a window; for other queries write the SLI in the runner's own \
                     format, with `$window`",
                );
                None
            }
            Err(RateError::Query(message)) => {
                refusals.refuse(sli_document, format!("{path}.spec.query"), message);
                None
            }
        }
    };
    let numerator = numerator
        .and_then(|(field, metric)| query(field, metric).map(|(query, path)| (field, query, path)));
    let total = ratio
        .total
        .as_ref()
        .and_then(|metric| query("total", metric));
    let ((field, numerator, numerator_path), (total, total_path)) = (numerator?, total?);
    origins.add(
        format!("{ours}.sli.ratio.good"),
        sli_document,
        numerator_path,
    );
    origins.add(format!("{ours}.sli.ratio.total"), sli_document, total_path);
    let good = if field == "good" {
        numerator
    } else {
        format!("({total}) - ({numerator})")
    };
    Some(RatioSli { good, total })
}

/// The PromQL of a metric source: Prometheus only, from `spec.query`.
fn source_query(
    refusals: &mut Refusals<'_>,
    document: usize,
    path: &str,
    source: &MetricSource,
) -> Option<String> {
    let mut ok = true;
    match (&source.source_type, &source.metric_source_ref) {
        (Some(kind), _) if kind.eq_ignore_ascii_case("prometheus") => {}
        (Some(kind), _) => {
            refusals.refuse(
                document,
                format!("{path}.type"),
                format!("`{kind}` metric sources are not supported: only Prometheus"),
            );
            ok = false;
        }
        (None, Some(_)) => {
            refusals.refuse(
                document,
                format!("{path}.metricSourceRef"),
                "DataSource references are not looked up: say `type: Prometheus` (the runner \
                 asks the experiment's Prometheus)",
            );
            ok = false;
        }
        (None, None) => {
            refusals.refuse(document, path, "needs `type: Prometheus`");
            ok = false;
        }
    }
    for key in source.spec.keys().filter(|key| *key != "query") {
        refusals.refuse(
            document,
            format!("{path}.spec.{key}"),
            "is not read: a Prometheus metric source is its `query`",
        );
        ok = false;
    }
    let query = match source.spec.get("query") {
        Some(Lenient(Some(query))) if !query.trim().is_empty() => Some(query.trim().to_owned()),
        Some(_) => {
            refusals.refuse(
                document,
                format!("{path}.spec.query"),
                "must be a PromQL query (a string)",
            );
            None
        }
        None => {
            refusals.refuse(document, format!("{path}.spec"), "needs `query`");
            None
        }
    };
    query.filter(|_| ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_fixed_length_only() {
        assert_eq!(duration("28d"), Ok(Duration::from_secs(28 * 86_400)));
        assert_eq!(duration("4w"), Ok(Duration::from_secs(28 * 86_400)));
        assert_eq!(duration("90m"), Ok(Duration::from_secs(5400)));
        assert!(duration("1M").unwrap_err().contains("no fixed length"));
        assert!(duration("d").is_err());
        assert!(duration("5s").is_err());
        assert!(duration("99999999999999999999d").is_err());
    }
}
