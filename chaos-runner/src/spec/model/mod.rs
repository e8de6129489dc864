//! The experiment file model (`kind: Experiment`), as written in YAML.
//!
//! Field names are camelCase; unknown fields are refused everywhere. Checks that need more
//! than one field live in [`super::validate`]. One file per part of the experiment:
//! `checks`, `faults`, `selectors`, `load`, `setup`; the document itself is here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

mod checks;
mod faults;
mod load;
mod selectors;
mod setup;

pub use checks::*;
pub use faults::*;
pub(crate) use load::default_load_timeout;
pub use load::*;
pub use selectors::*;
pub use setup::*;

/// The one API version this runner reads.
pub const API_VERSION: &str = "chaos.game-resilience.dev/v1";

/// A chaos experiment.
///
/// ```
/// let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/local/cpu-hog.yaml")).unwrap();
/// let exp = chaos_runner::spec::parse_experiment("cpu-hog.yaml", &text).unwrap();
/// assert_eq!(exp.spec.faults[0].fault_type, chaos_runner::spec::FaultType::CpuHog);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Experiment {
    /// Must be `chaos.game-resilience.dev/v1`.
    pub api_version: String,
    /// Must be `Experiment`.
    pub kind: String,
    /// Name, description (state the hypothesis), labels.
    pub metadata: Metadata,
    /// What to inject, where, and when to stop.
    pub spec: ExperimentSpec,
}

/// Name and description of an experiment or SLO set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Lowercase letters, digits and dashes, 1 to 63 characters.
    pub name: String,
    /// What the experiment expects to hold (the hypothesis).
    #[serde(default)]
    pub description: String,
    /// Free-form labels copied into reports.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The body of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Where faults are injected.
    pub target: Target,
    /// SLO file (`kind: SLOSet`) the conditions refer to, relative to this file.
    #[serde(default)]
    pub slo_file: Option<String>,
    /// The Prometheus server conditions and probes query.
    #[serde(default)]
    pub prometheus: Option<PrometheusSource>,
    /// Checks that must hold before the faults go in and after they come out.
    #[serde(default)]
    pub steady_state: Vec<Check>,
    /// The faults, injected together and held for their duration.
    pub faults: Vec<FaultSpec>,
    /// Conditions checked while faults are live; any breach aborts and reverts at once.
    #[serde(default)]
    pub abort_when: Vec<Check>,
    /// How often conditions are checked (100 ms to 1 min).
    #[serde(default = "default_interval", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub check_interval: Duration,
    /// Refuse to start when an SLO's remaining error budget is below a share.
    #[serde(default)]
    pub error_budget_gate: Option<ErrorBudgetGate>,
    /// Where reports go and in which formats.
    #[serde(default)]
    pub report: ReportSpec,
    /// The built-in load generator: virtual players driving the game API for the whole
    /// run; its client-side SLIs feed `load` checks.
    #[serde(default)]
    pub load: Option<LoadSpec>,
    /// Services the runner starts before the run (each supervised, in its own temporary
    /// directory, in order) and stops after it, on every exit path.
    #[serde(default)]
    pub setup: Vec<SetupService>,
    /// Live indicators: values read from the target while the run goes on (a circuit
    /// breaker's state, a queue's depth), shown on the terminal and recorded in the report
    /// each time they change. They never fail or abort a run.
    #[serde(default)]
    pub indicators: Vec<Indicator>,
}

/// A value shown live during a run: either read straight from a metrics endpoint (the
/// service's own `/metrics`, no Prometheus needed) or an instant PromQL query.
///
/// ```yaml
/// indicators:
///   - name: saves-breaker
///     metricsUrl: http://127.0.0.1:18080/metrics
///     metric: resilience_circuit_state
///     labels: { policy: save_writes }
///     stateLabel: state          # shows `closed`, `open` or `half_open`
///   - name: save-queue
///     metricsUrl: http://127.0.0.1:18080/metrics
///     metric: game_save_queue_depth
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Indicator {
    /// Name shown on the terminal and in reports.
    pub name: String,
    /// A Prometheus text or OpenMetrics endpoint to read (loopback unless `allowRemote`).
    #[serde(default)]
    pub metrics_url: Option<String>,
    /// The metric (sample name) to read from `metricsUrl`.
    #[serde(default)]
    pub metric: Option<String>,
    /// Label values a sample must carry to count.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Show this label of the matching sample whose value is 1 (a state-set gauge such as
    /// `resilience_circuit_state`) instead of the sum of the matching samples.
    #[serde(default)]
    pub state_label: Option<String>,
    /// Or: an instant PromQL query on `spec.prometheus`.
    #[serde(default)]
    pub query: Option<String>,
    /// Allow a `metricsUrl` that is not on a loopback address.
    #[serde(default)]
    pub allow_remote: bool,
}

fn default_interval() -> Duration {
    Duration::from_secs(1)
}

/// Where faults are injected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// `local` (this machine) or `kubernetes`.
    pub backend: Backend,
}

/// Fault backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// This machine.
    Local,
    /// A Kubernetes cluster (kubeconfig or in-cluster service account).
    Kubernetes,
}

/// The error-budget gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorBudgetGate {
    /// SLOs whose remaining budget is checked (all SLOs of the file if empty).
    #[serde(default)]
    pub slos: Vec<String>,
    /// Refuse to start below this remaining share of budget, in percent.
    #[serde(default = "half")]
    pub min_remaining_percent: f64,
}

fn half() -> f64 {
    50.0
}

/// Report outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportSpec {
    /// Directory for reports, relative to the working directory.
    #[serde(default = "default_report_dir")]
    pub dir: String,
    /// Formats written.
    #[serde(default = "all_formats")]
    pub formats: Vec<ReportFormat>,
}

impl Default for ReportSpec {
    fn default() -> Self {
        ReportSpec {
            dir: default_report_dir(),
            formats: all_formats(),
        }
    }
}

fn default_report_dir() -> String {
    "chaos-reports".to_owned()
}

fn all_formats() -> Vec<ReportFormat> {
    vec![
        ReportFormat::Json,
        ReportFormat::Junit,
        ReportFormat::Markdown,
    ]
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// The whole timeline as JSON.
    Json,
    /// JUnit XML for CI.
    Junit,
    /// A Markdown summary.
    Markdown,
    /// One self-contained HTML page: an SVG chart per check (value against threshold,
    /// fault windows shaded, abort marked), no scripts.
    Html,
}
