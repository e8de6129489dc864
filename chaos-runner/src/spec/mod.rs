//! Experiment and SLO files: the model, parsing with field paths and lines, semantic
//! validation, and the JSON Schema.

mod model;
pub mod params;
pub mod slo;
mod validate;
mod yaml;

pub use model::*;
pub use params::{
    ContainerKillParams, CpuHogParams, DbParams, DbPartitionParams, DiskFillParams, FaultParams,
    KillSignal, MemoryHogParams, NetBandwidthParams, NetDelayParams, NetLossParams,
    NetPartitionParams, NetworkPartitionParams, PartitionAction, PgSeverity, PodCpuHogParams,
    PodKillParams, PodMemoryHogParams, PodNetDelayParams, PodNetLossParams, PolicyDirection,
    PostgresErrorParams, PostgresLatencyParams, PostgresRefuseParams, PostgresResetParams,
    Problems, ProcessKillParams, ProcessPauseParams, ProcessRestartParams, ProxyAction,
    ProxyParams, ProxyStream, RedisErrorParams, RedisLatencyParams,
};
pub use slo::SloSet;
pub use validate::{step_time, ValidatedExperiment};

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem with an input file: which file, which field, where, and what.
///
/// ```
/// let err = chaos_runner::spec::parse_experiment("x.yaml", "kind: Experiment\n").unwrap_err();
/// assert!(err.to_string().starts_with("x.yaml"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file.
    pub file: String,
    /// The field path (`spec.faults[0].duration`), empty for the whole document.
    pub field: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.location {
            write!(f, ":{line}:{column}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for SpecError {}

/// Several problems found in one pass, so a user fixes them all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

impl From<SpecError> for SpecErrors {
    fn from(e: SpecError) -> Self {
        SpecErrors(vec![e])
    }
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, SpecError> {
    yaml::from_str(text).map_err(|f| SpecError {
        file: file.to_owned(),
        field: f.path,
        location: f.location,
        message: f.message,
    })
}

/// Parses an experiment (structure only; see [`load_experiment`] for the full checks).
///
/// ```
/// let err = chaos_runner::spec::parse_experiment("e.yaml", "apiVersion: x\nkind: Experiment\nbogus: 1\n").unwrap_err();
/// assert_eq!(err.location.map(|l| l.0), Some(3));
/// ```
pub fn parse_experiment(file: &str, text: &str) -> Result<Experiment, SpecError> {
    parse(file, text)
}

/// Parses an SLO set (structure only).
///
/// ```
/// assert!(chaos_runner::spec::parse_slo_set("s.yaml", "kind: SLOSet\n").is_err());
/// ```
pub fn parse_slo_set(file: &str, text: &str) -> Result<SloSet, SpecError> {
    parse(file, text)
}

fn read(path: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(path).map_err(|e| SpecError {
        file: path.display().to_string(),
        field: String::new(),
        location: None,
        message: format!("cannot read: {e}"),
    })
}

/// Reads, parses and checks an experiment file and the SLO file it names.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/local/cpu-hog.yaml");
/// let exp = chaos_runner::spec::load_experiment(path.as_ref()).unwrap();
/// assert_eq!(exp.experiment.metadata.name, "matchmaking-cpu-hog");
/// ```
pub fn load_experiment(path: &Path) -> Result<ValidatedExperiment, SpecErrors> {
    let file = path.display().to_string();
    let text = read(path)?;
    let experiment = parse_experiment(&file, &text)?;
    let slo = match &experiment.spec.slo_file {
        Some(slo_file) => {
            let slo_path: PathBuf = path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join(slo_file);
            let slo_name = slo_path.display().to_string();
            let slo_text = read(&slo_path)?;
            let set = parse_slo_set(&slo_name, &slo_text)?;
            validate::check_slo_set(&slo_name, &slo_text, &set)?;
            Some(set)
        }
        None => None,
    };
    validate::check_experiment(&file, &text, experiment, slo)
}

/// Reads and checks an SLO file on its own.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/game-services.yaml");
/// assert!(chaos_runner::spec::load_slo_set(path.as_ref()).is_ok());
/// ```
pub fn load_slo_set(path: &Path) -> Result<SloSet, SpecErrors> {
    let file = path.display().to_string();
    let text = read(path)?;
    let set = parse_slo_set(&file, &text)?;
    validate::check_slo_set(&file, &text, &set)?;
    Ok(set)
}

/// Reads the `kind` of a YAML document, to dispatch between experiments and SLO sets.
pub fn document_kind(path: &Path) -> Result<String, SpecError> {
    #[derive(serde::Deserialize)]
    struct KindOnly {
        kind: Option<String>,
    }
    let file = path.display().to_string();
    let text = read(path)?;
    let doc: KindOnly = parse(&file, &text)?;
    Ok(doc.kind.unwrap_or_default())
}

/// The JSON Schema of experiment files (for editors).
///
/// ```
/// let schema = chaos_runner::spec::experiment_schema();
/// assert!(schema.contains("\"faults\""));
/// ```
pub fn experiment_schema() -> String {
    let schema = schemars::schema_for!(Experiment);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// The JSON Schema of SLO files.
pub fn slo_schema() -> String {
    let schema = schemars::schema_for!(SloSet);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
