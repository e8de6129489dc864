//! Run reports: the JSON timeline, JUnit XML (one test case per check) and a Markdown
//! summary, written under `<report dir>/<run id>/`.

pub mod html;

use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::spec::ReportFormat;

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.1}"))
}
use crate::watch::Observation;

/// A fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    /// Fault name.
    pub name: String,
    /// What was injected, per step.
    pub steps: Vec<String>,
    /// Whether every step was reverted and the revert verified.
    pub reverted: bool,
    /// Revert errors, if any.
    pub errors: Vec<String>,
    /// False when a step could not be undone by design (e.g. a kill of a process the
    /// runner cannot restart, allowed by `allowUnrevertable`): "not revertible".
    pub revertible: bool,
    /// What the fault measured (outage, peak memory, bytes filled, ...), in step order.
    pub measurements: Vec<Measurement>,
    /// When each step was live, in milliseconds since the run started.
    pub windows: Vec<FaultWindow>,
}

impl FaultReport {
    /// The report of fault `name` before anything went in: nothing to revert yet, so
    /// reverted and revertible until a step says otherwise.
    ///
    /// ```
    /// let r = chaos_runner::report::FaultReport::new("hog");
    /// assert!(r.reverted && r.revertible && r.steps.is_empty());
    /// ```
    pub fn new(name: &str) -> FaultReport {
        FaultReport {
            name: name.to_owned(),
            steps: Vec::new(),
            reverted: true,
            errors: Vec::new(),
            revertible: true,
            measurements: Vec::new(),
            windows: Vec::new(),
        }
    }
}

/// When one step of a fault was live.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FaultWindow {
    /// Injected at, in milliseconds since the run started.
    pub start_ms: u64,
    /// Reverted at (`None`: never reverted).
    pub end_ms: Option<u64>,
}

/// One measured value of a fault.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// What was measured (`outage_ms`, `cgroup_max_usage_bytes`, ...).
    pub name: String,
    /// The value.
    pub value: String,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Run id (also the journal's name).
    pub run_id: String,
    /// Experiment name.
    pub experiment: String,
    /// Its description (the hypothesis).
    pub description: String,
    /// `passed`, `failed`, `aborted`, `not_reverted`.
    pub outcome: String,
    /// The process exit code.
    pub exit_code: u8,
    /// Why the run ended the way it did.
    pub reason: String,
    /// Run length in milliseconds.
    pub duration_ms: u64,
    /// Faults.
    pub faults: Vec<FaultReport>,
    /// Every check evaluation, in order.
    pub timeline: Vec<Observation>,
    /// The built-in load generator's client-side view: totals per operation and a
    /// timeline of 1 s slices (only when `spec.load` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<crate::load::LoadReport>,
    /// When an abort condition or a signal ended the hold, in milliseconds since the run
    /// started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aborted_at_ms: Option<u64>,
    /// Every change of a live indicator (`spec.indicators`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<crate::watch::indicator::IndicatorChange>,
}

/// JUnit is XML: the HTML report's escaping serves it too.
use html::escape as xml_escape;

impl RunReport {
    /// JUnit XML: one test case per check (steady state and abort conditions) and one per
    /// fault revert.
    pub fn junit(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for o in &self.timeline {
            if !names.contains(&o.check.as_str()) {
                names.push(&o.check);
            }
        }
        let mut cases = String::new();
        let mut failures = 0;
        for name in &names {
            let bad: Vec<&Observation> = self
                .timeline
                .iter()
                .filter(|o| o.check == *name && o.verdict != "ok")
                .collect();
            cases.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\">\n",
                xml_escape(&self.experiment),
                xml_escape(name)
            ));
            if let Some(first) = bad.first() {
                failures += 1;
                cases.push_str(&format!(
                    "      <failure message=\"{} at {} ms ({})\">{} of the checks were not ok</failure>\n",
                    first.verdict,
                    first.at_ms,
                    xml_escape(&first.threshold),
                    bad.len()
                ));
            }
            cases.push_str("    </testcase>\n");
        }
        for f in &self.faults {
            cases.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"revert {}\">\n",
                xml_escape(&self.experiment),
                xml_escape(&f.name)
            ));
            if !f.reverted {
                failures += 1;
                cases.push_str(&format!(
                    "      <failure message=\"fault not reverted\">{}</failure>\n",
                    xml_escape(&f.errors.join("; "))
                ));
            }
            cases.push_str("    </testcase>\n");
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n{cases}  </testsuite>\n</testsuites>\n",
            xml_escape(&self.experiment),
            names.len() + self.faults.len(),
            self.duration_ms as f64 / 1000.0
        )
    }

    /// A Markdown summary.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# {}: {}\n\n{}\n\n- run: `{}`\n- outcome: **{}** (exit {})\n- reason: {}\n- duration: {:.1} s\n\n## Faults\n\n| fault | steps | reverted |\n|---|---|---|\n",
            self.experiment,
            self.outcome,
            self.description,
            self.run_id,
            self.outcome,
            self.exit_code,
            self.reason,
            self.duration_ms as f64 / 1000.0
        );
        for f in &self.faults {
            md.push_str(&format!(
                "| {} | {} | {} |\n",
                f.name,
                f.steps.join("<br>"),
                if !f.revertible {
                    "**not revertible** (allowed by `allowUnrevertable`)".to_owned()
                } else if f.reverted {
                    "yes, verified".to_owned()
                } else {
                    format!("**NO**: {}", f.errors.join("; "))
                }
            ));
        }
        for f in self.faults.iter().filter(|f| !f.measurements.is_empty()) {
            md.push_str(&format!("\n### Measured: {}\n\n", f.name));
            for m in &f.measurements {
                md.push_str(&format!("- {}: {}\n", m.name, m.value));
            }
        }
        if let Some(load) = &self.load {
            md.push_str(&format!(
                "\n## Load (client side)\n\n{} players, {} calls/s asked, {:.1} achieved over {:.1} s against {} (seed {})\n\n| operation | count | success | errors | rate limited | overflow | p50 ms | p95 ms | p99 ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
                load.players,
                load.requested_rate,
                load.achieved_rate,
                load.duration_ms as f64 / 1000.0,
                load.target,
                load.seed
            ));
            for t in &load.totals {
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    t.operation,
                    t.count,
                    t.success,
                    t.errors,
                    t.rate_limited,
                    t.overflow,
                    opt_ms(t.p50_ms),
                    opt_ms(t.p95_ms),
                    opt_ms(t.p99_ms)
                ));
            }
            if let Some(sessions) = load.sessions_text() {
                md.push_str(&format!("\n{sessions}\n"));
            }
        }
        if !self.indicators.is_empty() {
            md.push_str(
                "\n## Indicators\n\n| at s | indicator | from | to |\n|---:|---|---|---|\n",
            );
            for c in &self.indicators {
                md.push_str(&format!(
                    "| {:.1} | {} | {} | {} |\n",
                    c.at_ms as f64 / 1000.0,
                    c.indicator,
                    c.from.as_deref().unwrap_or("-"),
                    c.to
                ));
            }
        }
        md.push_str("\n## Checks\n\n| check | phase | evaluations | not ok | last value |\n|---|---|---:|---:|---:|\n");
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for o in &self.timeline {
            if !seen.contains(&(o.check.as_str(), o.phase)) {
                seen.push((&o.check, o.phase));
            }
        }
        for (check, phase) in seen {
            let all: Vec<&Observation> = self
                .timeline
                .iter()
                .filter(|o| o.check == check && o.phase == phase)
                .collect();
            let bad = all.iter().filter(|o| o.verdict != "ok").count();
            let last = all
                .last()
                .and_then(|o| o.value)
                .map_or("-".to_owned(), |v| format!("{v:.4}"));
            md.push_str(&format!(
                "| {check} | {phase} | {} | {bad} | {last} |\n",
                all.len()
            ));
        }
        md
    }

    /// Writes the chosen formats under `dir/<run_id>/`; returns the files written.
    pub fn write(&self, dir: &Path, formats: &[ReportFormat]) -> std::io::Result<Vec<PathBuf>> {
        let dir = dir.join(&self.run_id);
        std::fs::create_dir_all(&dir)?;
        let mut written = Vec::new();
        for format in formats {
            let (name, body) = match format {
                ReportFormat::Json => (
                    "report.json",
                    serde_json::to_string_pretty(self).map_err(std::io::Error::other)?,
                ),
                ReportFormat::Junit => ("junit.xml", self.junit()),
                ReportFormat::Markdown => ("summary.md", self.markdown()),
                ReportFormat::Html => ("report.html", html::render(self)),
            };
            let path = dir.join(name);
            std::fs::write(&path, body)?;
            written.push(path);
        }
        Ok(written)
    }
}
