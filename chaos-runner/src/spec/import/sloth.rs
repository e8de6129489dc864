//! Sloth's `prometheus/v1` SLO files (Sloth 0.16), read as an SLO set.
//!
//! | Sloth | the runner's SLO set |
//! |---|---|
//! | `service` | `metadata.name` |
//! | `labels` | `spec.alerting.labels` (on every alert; the recording rules carry `slo` and `slo_set`) |
//! | `slos[].name`, `description`, `objective` | the same, per SLO |
//! | (Sloth's `--default-slo-period` flag, 30d by default) | `period: 30d` (a file for another period is written as a `kind: SLOSet`) |
//! | `slos[].sli.events.{error_query, total_query}` | `sli.ratio`: `good` is `(total) - (error)`, `total` is `total`, `{{.window}}` becomes `$window` |
//! | `slos[].labels`, `slos[].alerting.labels` | `alerting.labels` of the SLO (the alerting ones win a clash) |
//! | `slos[].alerting.annotations` | `alerting.annotations` of the SLO |
//! | `page_alert.labels.severity`, `ticket_alert.labels.severity` | the `severity` of the set's page (14.4x 1h/5m, 6x 6h/30m) and ticket (3x 1d/2h, 1x 3d/6h) alerts: the same four as Sloth's |
//! | `page_alert.disable`, `ticket_alert.disable` | those alerts left out of the set |
//! | `slos[].alerting.name` | not carried: the runner names its alerts `SLOBurnRate<Severity><long window>`, each with `slo="<name>"` |
//!
//! Refused, by name: `slo_plugins` and `slos[].plugins` (they rewrite Sloth's rules),
//! `sli.raw` (an error ratio alone has no good and total events), `sli.plugin`, labels
//! and annotations of only the page or only the ticket alerts (other than `severity`), and
//! alerts that differ between the SLOs of the file (which alerts are on, their severities:
//! one set has one list of alerts).
//!
//! ```
//! let text = "version: prometheus/v1\nservice: game-api\nslos:\n  - name: availability\n    objective: 99.9\n    sli:\n      plugin:\n        id: sloth-common/http/availability\n";
//! let err = chaos_runner::spec::import::convert("sloth.yaml", text).unwrap_err();
//! assert!(err.to_string().starts_with("sloth.yaml:7:7: slos[0].sli.plugin: "), "{err}");
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{Imported, Origins, Refusals};
use crate::spec::calendar::{default_burn_alerts, Alerting, SloAlerting};
use crate::spec::model::{Metadata, API_VERSION};
use crate::spec::slo::{RatioSli, Sli, Slo, SloSet, SloSetSpec};
use crate::spec::yaml;

/// The `version` of a Sloth file.
pub const VERSION: &str = "prometheus/v1";

/// The period of every SLO read from a Sloth file: Sloth's own default (its period is a
/// command-line flag, not part of the file).
pub const PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// The severity labels the runner gives its page and ticket alerts when a file names none.
const PAGE: &str = "page";
const TICKET: &str = "ticket";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlothFile {
    version: String,
    service: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    slo_plugins: Option<IgnoredAny>,
    #[serde(default)]
    slos: Vec<SlothSlo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlothSlo {
    name: String,
    #[serde(default)]
    description: String,
    objective: f64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    plugins: Option<IgnoredAny>,
    sli: SlothSli,
    #[serde(default)]
    alerting: SlothAlerting,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlothSli {
    #[serde(default)]
    events: Option<SlothEvents>,
    #[serde(default)]
    raw: Option<IgnoredAny>,
    #[serde(default)]
    plugin: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlothEvents {
    error_query: String,
    total_query: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SlothAlerting {
    /// Sloth's alert name: not carried (the runner names its own alerts).
    #[serde(default)]
    #[allow(dead_code)]
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    page_alert: SlothAlert,
    #[serde(default)]
    ticket_alert: SlothAlert,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SlothAlert {
    #[serde(default)]
    disable: bool,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Which of an SLO's alerts are on, by their severity label (`None`: disabled).
#[derive(Debug, Clone, PartialEq, Eq)]
struct AlertChoice {
    page: Option<String>,
    ticket: Option<String>,
}

/// Converts a Sloth file; the set is not checked yet.
pub(crate) fn convert(file: &str, text: &str) -> Result<Imported, crate::spec::SpecErrors> {
    let mut refusals = Refusals::new(file, text);
    let sloth: SlothFile = match yaml::document(text, 0) {
        Ok(Some(sloth)) => sloth,
        Ok(None) => {
            refusals.refuse(0, "", "is empty");
            return Err(refusals.into_errors());
        }
        Err(failure) => {
            refusals.failed(failure);
            return Err(refusals.into_errors());
        }
    };
    if yaml::document::<IgnoredAny>(text, 1).is_ok_and(|second| second.is_some()) {
        refusals.refuse(
            0,
            "",
            "a Sloth file is one document: the documents after the first `---` are not read; \
             put each in a file of its own",
        );
    }
    if sloth.version != VERSION {
        refusals.refuse(
            0,
            "version",
            format!("`{}`: only Sloth `{VERSION}` files are read", sloth.version),
        );
    }
    if sloth.slo_plugins.is_some() {
        refusals.refuse(
            0,
            "slo_plugins",
            "Sloth SLO plugins are not supported: they rewrite the rules Sloth generates, and \
             the runner writes its own; remove them",
        );
    }
    if sloth.slos.is_empty() {
        refusals.refuse(0, "slos", "lists no SLO");
    }
    let mut origins = Origins::default();
    origins.add("metadata.name", 0, "service");
    origins.add("spec.slos", 0, "slos");
    origins.add("spec.alerting", 0, "slos[0].alerting");
    origins.add("spec.alerting.labels", 0, "labels");
    let mut slos = Vec::new();
    let mut first_choice: Option<AlertChoice> = None;
    for (i, slo) in sloth.slos.iter().enumerate() {
        let here = format!("slos[{i}]");
        let sli = ratio_sli(&mut refusals, &here, slo);
        let choice = alert_choice(&mut refusals, &here, &slo.alerting);
        match &first_choice {
            None => first_choice = Some(choice),
            Some(first) => refuse_other_alerts(&mut refusals, &here, first, &choice),
        }
        origins.add(
            format!("spec.slos[{i}].sli.ratio.good"),
            0,
            format!("{here}.sli.events.error_query"),
        );
        origins.add(
            format!("spec.slos[{i}].sli.ratio.total"),
            0,
            format!("{here}.sli.events.total_query"),
        );
        origins.add(format!("spec.slos[{i}].period"), 0, here.clone());
        // Labels of the SLO, and of its alerts, on every alert of the SLO.
        let mut labels = BTreeMap::new();
        for (key, value) in &slo.labels {
            labels.insert(key.clone(), value.clone());
            origins.add(
                format!("spec.slos[{i}].alerting.labels.{key}"),
                0,
                format!("{here}.labels.{key}"),
            );
        }
        for (key, value) in &slo.alerting.labels {
            labels.insert(key.clone(), value.clone());
            origins.add(
                format!("spec.slos[{i}].alerting.labels.{key}"),
                0,
                format!("{here}.alerting.labels.{key}"),
            );
        }
        let alerting = SloAlerting {
            labels,
            annotations: slo.alerting.annotations.clone(),
        };
        slos.push(Slo {
            name: slo.name.clone(),
            description: slo.description.clone(),
            objective: slo.objective,
            period: PERIOD,
            sli: Sli {
                ratio: sli,
                latency: None,
                gauge: None,
            },
            alerting: (alerting != SloAlerting::default()).then_some(alerting),
            policy: None,
        });
    }
    let choice = first_choice.unwrap_or(AlertChoice {
        page: Some(PAGE.to_owned()),
        ticket: Some(TICKET.to_owned()),
    });
    let alerting = set_alerting(&mut refusals, &mut origins, &choice, &sloth.labels);
    let set = SloSet {
        api_version: API_VERSION.to_owned(),
        kind: "SLOSet".to_owned(),
        metadata: Metadata {
            name: sloth.service.clone(),
            description: String::new(),
            labels: BTreeMap::new(),
        },
        spec: SloSetSpec {
            calendar: None,
            alerting,
            policy: None,
            slos,
        },
    };
    refusals.finish(Imported { set, origins })
}

/// The SLI of one SLO: `events` as good and total rates; the other kinds refused.
fn ratio_sli(refusals: &mut Refusals<'_>, here: &str, slo: &SlothSlo) -> Option<RatioSli> {
    if slo.plugins.is_some() {
        refusals.refuse(
            0,
            format!("{here}.plugins"),
            "Sloth SLO plugins are not supported: they rewrite the rules Sloth generates, and \
             the runner writes its own; remove them",
        );
    }
    if slo.sli.plugin.is_some() {
        refusals.refuse(
            0,
            format!("{here}.sli.plugin"),
            "Sloth SLI plugins are not supported; write the SLI as sli.events (error_query \
             and total_query)",
        );
    }
    if slo.sli.raw.is_some() {
        refusals.refuse(
            0,
            format!("{here}.sli.raw"),
            "raw error-ratio SLIs are not supported: the runner counts good and total events; \
             write the SLI as sli.events (error_query and total_query)",
        );
    }
    let Some(events) = &slo.sli.events else {
        if slo.sli.plugin.is_none() && slo.sli.raw.is_none() {
            refusals.refuse(
                0,
                format!("{here}.sli"),
                "needs sli.events (error_query and total_query)",
            );
        }
        return None;
    };
    let mut query = |field: &str, text: &str| match with_window(text.trim()) {
        Ok(query) => Some(query),
        Err(message) => {
            refusals.refuse(0, format!("{here}.sli.events.{field}"), message);
            None
        }
    };
    let error = query("error_query", &events.error_query);
    let total = query("total_query", &events.total_query);
    Some(RatioSli {
        good: format!("({}) - ({})", total.as_deref()?, error?),
        total: total?,
    })
}

/// A Sloth query with its `{{.window}}` (spaces allowed inside the braces) written as the
/// runner's `$window`; any other template is refused.
fn with_window(query: &str) -> Result<String, String> {
    let mut converted = String::with_capacity(query.len());
    let mut rest = query;
    let mut found = false;
    while let Some(start) = rest.find("{{") {
        converted.push_str(&rest[..start]);
        let inside = &rest[start + 2..];
        let Some(end) = inside.find("}}") else {
            return Err("has a `{{` that is never closed".to_owned());
        };
        let template = inside[..end].trim();
        if template != ".window" {
            return Err(format!(
                "uses the template `{{{{{template}}}}}`: only `{{{{.window}}}}` is read"
            ));
        }
        converted.push_str("$window");
        found = true;
        rest = &inside[end + 2..];
    }
    converted.push_str(rest);
    if found {
        Ok(converted)
    } else {
        Err(
            "must use `{{.window}}` as its range, as Sloth requires (e.g. `[{{.window}}]`)"
                .to_owned(),
        )
    }
}

/// Which alerts of an SLO are on and their severities; other per-alert labels and
/// annotations refused.
fn alert_choice(refusals: &mut Refusals<'_>, here: &str, alerting: &SlothAlerting) -> AlertChoice {
    let mut severity = |name: &str, alert: &SlothAlert, default: &str| {
        let which = name.trim_end_matches("_alert");
        for key in alert.labels.keys().filter(|key| *key != "severity") {
            refusals.refuse(
                0,
                format!("{here}.alerting.{name}.labels.{key}"),
                format!(
                    "labels of the {which} alerts alone are not supported: the runner puts an \
                     SLO's labels on all its alerts; move it to {here}.alerting.labels if \
                     that routes right (only `severity` is read here)"
                ),
            );
        }
        if !alert.annotations.is_empty() {
            refusals.refuse(
                0,
                format!("{here}.alerting.{name}.annotations"),
                format!(
                    "annotations of the {which} alerts alone are not supported: the runner \
                     puts an SLO's annotations on all its alerts; move them to \
                     {here}.alerting.annotations"
                ),
            );
        }
        (!alert.disable).then(|| {
            alert
                .labels
                .get("severity")
                .cloned()
                .unwrap_or_else(|| default.to_owned())
        })
    };
    AlertChoice {
        page: severity("page_alert", &alerting.page_alert, PAGE),
        ticket: severity("ticket_alert", &alerting.ticket_alert, TICKET),
    }
}

/// One set has one list of alerts: an SLO whose alerts differ from the first SLO's is
/// refused.
fn refuse_other_alerts(
    refusals: &mut Refusals<'_>,
    here: &str,
    first: &AlertChoice,
    choice: &AlertChoice,
) {
    for (name, ours, theirs) in [
        ("page_alert", &choice.page, &first.page),
        ("ticket_alert", &choice.ticket, &first.ticket),
    ] {
        if ours != theirs {
            let said = |choice: &Option<String>| match choice {
                Some(severity) => format!("on, with severity `{severity}`"),
                None => "disabled".to_owned(),
            };
            refusals.refuse(
                0,
                format!("{here}.alerting.{name}"),
                format!(
                    "is {} but slos[0]'s is {}: the SLOs of one file share one list of alerts \
                     (which are on, their severity labels); put this SLO in a file of its own",
                    said(ours),
                    said(theirs)
                ),
            );
        }
    }
}

/// The set's alerting: the SRE workbook's four alerts (Sloth's too), with the file's
/// severities, without the disabled ones; the file's labels on all of them.
fn set_alerting(
    refusals: &mut Refusals<'_>,
    origins: &mut Origins,
    choice: &AlertChoice,
    labels: &BTreeMap<String, String>,
) -> Option<Alerting> {
    let default_choice = AlertChoice {
        page: Some(PAGE.to_owned()),
        ticket: Some(TICKET.to_owned()),
    };
    if *choice == default_choice && labels.is_empty() {
        return None;
    }
    let mut alerts = Vec::new();
    for mut alert in default_burn_alerts() {
        let (name, severity) = if alert.severity == PAGE {
            ("page_alert", &choice.page)
        } else {
            ("ticket_alert", &choice.ticket)
        };
        if let Some(severity) = severity {
            origins.add(
                format!("spec.alerting.alerts[{}]", alerts.len()),
                0,
                format!("slos[0].alerting.{name}.labels.severity"),
            );
            alert.severity = severity.clone();
            alerts.push(alert);
        }
    }
    if alerts.is_empty() {
        refusals.refuse(
            0,
            "slos[0].alerting",
            "both page_alert and ticket_alert are disabled: an SLO set without alerts is not \
             supported",
        );
    }
    Some(Alerting {
        alerts,
        labels: labels.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_template_becomes_the_runners() {
        assert_eq!(
            with_window("sum(rate(x[{{.window}}])) / sum(rate(y[{{ .window }}]))").as_deref(),
            Ok("sum(rate(x[$window])) / sum(rate(y[$window]))")
        );
        assert!(with_window("sum(rate(x[5m]))")
            .unwrap_err()
            .contains("must use `{{.window}}`"));
        assert!(with_window("x[{{.window}}] {{.service}}")
            .unwrap_err()
            .contains("`{{.service}}`"));
        assert!(with_window("x[{{.window")
            .unwrap_err()
            .contains("never closed"));
    }
}
