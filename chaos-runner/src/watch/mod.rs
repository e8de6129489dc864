//! Signals and the checks over them: Prometheus thresholds, SLO burn rates, HTTP probes,
//! host readings and the load generator's client-side SLIs.
//! A check remembers its breaches in a row (`for`) and its source's failures in a row
//! (fail closed).

pub mod host;
pub mod indicator;
pub mod prometheus;

use serde::Serialize;
use std::time::{Duration, Instant};

use crate::load::LoadStats;
use crate::spec::{Check, Comparison, HostMetric, LoadCheck, LoadSli, OnEmpty, SloSet};
use prometheus::Prometheus;

/// One evaluation of a check, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    /// Check name.
    pub check: String,
    /// `preflight`, `hold`, `after`.
    pub phase: &'static str,
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// The measured value (`None`: empty result or source error).
    pub value: Option<f64>,
    /// What it was compared with, in words.
    pub threshold: String,
    /// The threshold as a number (threshold checks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_value: Option<f64>,
    /// How the value breaches the threshold (`>`, `<`, ...; threshold checks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach_when: Option<&'static str>,
    /// The value's unit (`%`, `ms`, `share`, ...), empty when unknown (a query's).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub unit: &'static str,
    /// `ok`, `breach`, `error`.
    pub verdict: &'static str,
    /// Source error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a check resolved to at run time.
#[derive(Debug, Clone)]
enum Probe {
    Query {
        query: String,
        breach_when: Comparison,
        threshold: f64,
        on_empty: OnEmpty,
    },
    Host {
        metric: HostMetric,
        breach_when: Comparison,
        threshold: f64,
        reader: host::HostReader,
    },
    Http {
        url: String,
        expect_status: u16,
        max_latency: Option<Duration>,
        body_contains: Option<String>,
        timeout: Duration,
    },
    Load {
        check: LoadCheck,
        stats: Option<LoadStats>,
    },
}

/// A check with its running state.
#[derive(Debug)]
pub struct Watch {
    /// Check name.
    pub name: String,
    probe: Probe,
    for_checks: u32,
    breaches_in_a_row: u32,
    failures_in_a_row: u32,
    fail_after: u32,
}

/// The verdict of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Holds.
    Ok,
    /// Breached (for abort conditions: `for` times in a row).
    Breach(String),
    /// The source failed `failAfter` times in a row: fail closed.
    SourceDown(String),
    /// Breached or failed, but not enough times in a row yet.
    Pending,
}

impl Watch {
    /// Resolves `check` (SLO burn rates become PromQL).
    pub fn new(check: &Check, slos: Option<&SloSet>, fail_after: u32) -> Watch {
        let probe = if let Some(p) = &check.prometheus {
            Probe::Query {
                query: p.query.clone(),
                breach_when: p.breach_when,
                threshold: p.threshold,
                on_empty: p.on_empty,
            }
        } else if let Some(b) = &check.slo_burn_rate {
            let query = slos
                .and_then(|s| s.spec.slos.iter().find(|s| s.name == b.slo))
                .and_then(|slo| b.query(slo))
                .unwrap_or_default();
            Probe::Query {
                query,
                breach_when: Comparison::Gt,
                threshold: b.max_burn_rate,
                on_empty: b.on_empty,
            }
        } else if let Some(h) = &check.host {
            Probe::Host {
                metric: h.metric,
                breach_when: h.breach_when,
                threshold: h.threshold,
                reader: host::HostReader::default(),
            }
        } else if let Some(l) = &check.load {
            Probe::Load {
                check: l.clone(),
                stats: None,
            }
        } else if let Some(h) = &check.http {
            Probe::Http {
                url: h.url.clone(),
                expect_status: h.expect_status,
                max_latency: h.max_latency,
                body_contains: h.body_contains.clone(),
                timeout: h.timeout,
            }
        } else {
            Probe::Query {
                query: String::new(),
                breach_when: Comparison::Gt,
                threshold: 0.0,
                on_empty: OnEmpty::Breach,
            }
        };
        Watch {
            name: check.name.clone(),
            probe,
            for_checks: check.for_checks.max(1),
            breaches_in_a_row: 0,
            failures_in_a_row: 0,
            fail_after: fail_after.max(1),
        }
    }

    /// Breaches in a row so far, and how many in a row (`for`) make an abort.
    pub(crate) fn breaches(&self) -> (u32, u32) {
        (self.breaches_in_a_row, self.for_checks)
    }

    /// Source failures in a row so far, and how many in a row (`failAfter`) fail closed.
    pub(crate) fn failures(&self) -> (u32, u32) {
        (self.failures_in_a_row, self.fail_after)
    }

    /// Feeds a `load` check from the run's load generator (other checks ignore it).
    pub fn attach_load(&mut self, load: &LoadStats) {
        if let Probe::Load { stats, .. } = &mut self.probe {
            *stats = Some(load.clone());
        }
    }

    /// The comparison of a threshold check (`None` for HTTP probes).
    pub fn threshold(&self) -> Option<(Comparison, f64)> {
        match &self.probe {
            Probe::Query {
                breach_when,
                threshold,
                ..
            }
            | Probe::Host {
                breach_when,
                threshold,
                ..
            } => Some((*breach_when, *threshold)),
            Probe::Load { check, .. } => Some((check.breach_when, check.threshold)),
            Probe::Http { .. } => None,
        }
    }

    /// The unit of the values this check reads.
    fn unit(&self) -> &'static str {
        match &self.probe {
            Probe::Host { metric, .. } => match metric {
                HostMetric::CpuBusyPercent | HostMetric::MemoryUsedPercent => "%",
                HostMetric::Load1 => "load average",
            },
            Probe::Load { check, .. } => match check.sli {
                LoadSli::LatencyP50 | LoadSli::LatencyP95 | LoadSli::LatencyP99 => "ms",
                LoadSli::Disconnects => "sessions",
                LoadSli::Availability
                | LoadSli::ErrorRate
                | LoadSli::SessionsEstablished
                | LoadSli::SessionsHeld => "share",
            },
            Probe::Http { .. } => "ms",
            Probe::Query { .. } => "",
        }
    }

    fn threshold_text(&self) -> String {
        match &self.probe {
            Probe::Query {
                breach_when,
                threshold,
                ..
            }
            | Probe::Host {
                breach_when,
                threshold,
                ..
            } => format!("breach when {} {threshold}", breach_when.symbol()),
            Probe::Load { check, .. } => format!(
                "breach when {}{} over {}s {} {}",
                check.sli.name(),
                check.scope_text(),
                check.window.as_secs(),
                check.breach_when.symbol(),
                check.threshold
            ),
            Probe::Http {
                expect_status,
                max_latency,
                ..
            } => match max_latency {
                Some(d) => format!("status {expect_status} within {} ms", d.as_millis()),
                None => format!("status {expect_status}"),
            },
        }
    }

    /// Evaluates the check once.
    pub async fn evaluate(
        &mut self,
        prometheus: Option<&Prometheus>,
        http: &reqwest::Client,
        phase: &'static str,
        started: Instant,
    ) -> (Verdict, Observation) {
        let measured = match &mut self.probe {
            Probe::Load { check, stats } => match stats {
                None => Err("no load generator running".to_owned()),
                Some(stats) => match stats.sli(
                    check.sli,
                    check.operation.as_deref(),
                    check.group.as_deref(),
                    check.window,
                ) {
                    Some(v) => Ok((Some(v), check.breach_when.holds(v, check.threshold), None)),
                    None => Ok((
                        None,
                        check.on_empty == OnEmpty::Breach,
                        Some("no requests in the window".to_owned()),
                    )),
                },
            },
            Probe::Host {
                metric,
                breach_when,
                threshold,
                reader,
            } => match reader.read(*metric).await {
                Ok(v) => Ok((Some(v), breach_when.holds(v, *threshold), None)),
                Err(e) => Err(e.to_string()),
            },
            Probe::Query {
                query,
                breach_when,
                threshold,
                on_empty,
            } => match prometheus {
                None => Err("no prometheus configured".to_owned()),
                Some(p) => match p.instant(query).await {
                    Ok(Some(v)) => Ok((Some(v), breach_when.holds(v, *threshold), None)),
                    Ok(None) => Ok((
                        None,
                        *on_empty == OnEmpty::Breach,
                        Some("empty result".to_owned()),
                    )),
                    Err(e) => Err(e.0),
                },
            },
            Probe::Http {
                url,
                expect_status,
                max_latency,
                body_contains,
                timeout,
            } => {
                let start = Instant::now();
                match http.get(url.as_str()).timeout(*timeout).send().await {
                    Err(e) => Err(format!("GET failed: {}", e.without_url())),
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap_or_default();
                        let latency = start.elapsed();
                        let mut why = Vec::new();
                        if status != *expect_status {
                            why.push(format!("status {status}"));
                        }
                        if max_latency.is_some_and(|m| latency > m) {
                            why.push(format!("latency {} ms", latency.as_millis()));
                        }
                        if body_contains
                            .as_ref()
                            .is_some_and(|b| !body.contains(b.as_str()))
                        {
                            why.push("body lacks the expected text".to_owned());
                        }
                        let note = (!why.is_empty()).then(|| why.join(", "));
                        Ok((Some(latency.as_secs_f64() * 1000.0), note.is_some(), note))
                    }
                }
            }
        };
        let at_ms = started.elapsed().as_millis() as u64;
        let threshold = self.threshold_text();
        let (verdict, value, label, error) = match measured {
            Err(error) => {
                self.failures_in_a_row += 1;
                let verdict = if self.failures_in_a_row >= self.fail_after {
                    Verdict::SourceDown(format!(
                        "{}: signal failed {} checks in a row: {error}",
                        self.name, self.failures_in_a_row
                    ))
                } else {
                    Verdict::Pending
                };
                (verdict, None, "error", Some(error))
            }
            Ok((value, breached, note)) => {
                self.failures_in_a_row = 0;
                self.breaches_in_a_row = if breached {
                    self.breaches_in_a_row + 1
                } else {
                    0
                };
                let verdict = if !breached {
                    Verdict::Ok
                } else if self.breaches_in_a_row >= self.for_checks {
                    Verdict::Breach(format!(
                        "{}: {} ({}){}",
                        self.name,
                        value.map_or("no data".to_owned(), |v| v.to_string()),
                        threshold,
                        note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
                    ))
                } else {
                    Verdict::Pending
                };
                (verdict, value, if breached { "breach" } else { "ok" }, note)
            }
        };
        let observation = Observation {
            check: self.name.clone(),
            phase,
            at_ms,
            value,
            threshold,
            threshold_value: self.threshold().map(|(_, t)| t),
            breach_when: self.threshold().map(|(c, _)| c.symbol()),
            unit: self.unit(),
            verdict: label,
            error,
        };
        (verdict, observation)
    }
}
