//! Experiment and SLO files: the model, parsing with field paths and lines, semantic
//! validation, and the JSON Schema.

pub mod calendar;
pub mod cron;
pub mod gameday;
pub mod import;
mod model;
pub mod params;
pub mod policy;
pub mod scenario;
pub mod slo;
pub mod template;
mod validate;
mod yaml;

pub use gameday::{load_gameday, ValidatedGameDay};
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
pub use validate::{step_time, ValidatedExperiment, ValidatedFault};

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

/// Parses a load scenario file (structure only; see [`read_scenario_file`]).
///
/// ```
/// assert!(chaos_runner::spec::parse_scenario_file("s.yaml", "kind: LoadScenario\n").is_err());
/// ```
pub fn parse_scenario_file(file: &str, text: &str) -> Result<ScenarioFile, SpecError> {
    parse(file, text)
}

/// Parses, checks and compiles the text of a load scenario file (`kind: LoadScenario`);
/// calls without their own timeout get `default_timeout`.
///
/// ```
/// let text = "apiVersion: chaos.game-resilience.dev/v1\nkind: LoadScenario\nmetadata: {name: x}\nspec:\n  operations:\n    a: {path: '/{{nope}}', weight: 1}\n";
/// let err = chaos_runner::spec::read_scenario_file("s.yaml", text, std::time::Duration::from_secs(2)).unwrap_err();
/// assert!(err.to_string().starts_with("s.yaml:6:"), "{err}");
/// ```
pub fn read_scenario_file(
    file: &str,
    text: &str,
    default_timeout: std::time::Duration,
) -> Result<scenario::Scenario, SpecErrors> {
    let doc = parse_scenario_file(file, text)?;
    validate::check_scenario_file(file, text, &doc, default_timeout)
}

/// Reads a file as UTF-8 text, without a leading byte-order mark (which would shift or
/// hide positions). Bytes that are not UTF-8 are refused with their line, column and byte
/// offset.
fn read(path: &Path) -> Result<String, SpecError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| SpecError {
        file: file.clone(),
        field: String::new(),
        location: None,
        message: format!("cannot read: {e}"),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line_start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |n| n + 1);
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        // The column in characters, as the other errors count it.
        let column = String::from_utf8_lossy(&bytes[line_start..at])
            .chars()
            .count()
            + 1;
        SpecError {
            file: file.clone(),
            field: String::new(),
            location: Some((line, column)),
            message: format!(
                "not UTF-8 text: byte {at} (0x{:02x}) starts no valid character",
                bytes[at]
            ),
        }
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
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
        Some(name) => {
            let (slo_name, slo_text) =
                read_referenced(path, &file, &text, "spec.sloFile", name, "an SLO set")?;
            Some(read_slo_set(&slo_name, &slo_text)?)
        }
        None => None,
    };
    let scenario = match experiment.spec.load.as_ref() {
        Some(load) => match &load.scenario_file {
            Some(name) => {
                let (scenario_name, scenario_text) = read_referenced(
                    path,
                    &file,
                    &text,
                    "spec.load.scenarioFile",
                    name,
                    "a load scenario",
                )?;
                Some(read_scenario_file(
                    &scenario_name,
                    &scenario_text,
                    load.timeout,
                )?)
            }
            None => None,
        },
        None => None,
    };
    validate::check_experiment(&file, &text, experiment, slo, scenario)
}

/// Reads and checks a load scenario file on its own (calls without a timeout of their own
/// get the default `load.timeout`).
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/load/game-api.yaml");
/// let s = chaos_runner::spec::load_scenario(path.as_ref()).unwrap();
/// assert_eq!(s.groups, ["matchmaking", "save", "session"]);
/// ```
pub fn load_scenario(path: &Path) -> Result<scenario::Scenario, SpecErrors> {
    let file = path.display().to_string();
    let text = read(path)?;
    read_scenario_file(&file, &text, model::default_load_timeout())
}

/// Reads the file `name` that the experiment at `path` refers to in `field` (relative to
/// the experiment), returning its name and text. Problems with the reference are the
/// experiment's, at the field's line; a file read but not text keeps its own position.
fn read_referenced(
    path: &Path,
    file: &str,
    text: &str,
    field: &str,
    name: &str,
    what: &str,
) -> Result<(String, String), SpecError> {
    let at_field = |message: String| SpecError {
        file: file.to_owned(),
        field: field.to_owned(),
        location: yaml::Positions::of(text).find(field),
        message,
    };
    if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
        return Err(at_field(format!(
            "`{name}` is not a YAML file ({what} is a .yaml or .yml file)"
        )));
    }
    let referenced: PathBuf = path.parent().unwrap_or_else(|| Path::new(".")).join(name);
    let referenced_name = referenced.display().to_string();
    let referenced_text = read(&referenced).map_err(|e| {
        at_field(match e.location {
            // Unreadable: say which file and why.
            None => format!("{referenced_name}: {}", e.message),
            // Read, but not text: the file's own position.
            Some(_) => e.to_string(),
        })
    })?;
    Ok((referenced_name, referenced_text))
}

/// Reads and checks an SLO file on its own: the runner's own `kind: SLOSet`, a Sloth
/// `prometheus/v1` file or OpenSLO v1 `kind: SLO` documents (see [`import`]).
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/game-services.yaml");
/// assert!(chaos_runner::spec::load_slo_set(path.as_ref()).is_ok());
/// let sloth = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/imported/sloth-game-api.yaml");
/// assert_eq!(chaos_runner::spec::load_slo_set(sloth.as_ref()).unwrap().metadata.name, "game-api");
/// ```
pub fn load_slo_set(path: &Path) -> Result<SloSet, SpecErrors> {
    let file = path.display().to_string();
    let text = read(path)?;
    read_slo_set(&file, &text)
}

/// Parses and checks the text of an SLO file in any of the formats [`load_slo_set`] reads.
///
/// ```
/// let text = "version: prometheus/v1\nservice: game-api\nslos: []\n";
/// let err = chaos_runner::spec::read_slo_set("sloth.yaml", text).unwrap_err();
/// assert_eq!(err.to_string(), "sloth.yaml:3:1: slos: lists no SLO");
/// ```
pub fn read_slo_set(file: &str, text: &str) -> Result<SloSet, SpecErrors> {
    match import::format_of(text) {
        import::SloFormat::Native => {
            let set = parse_slo_set(file, text)?;
            validate::check_slo_set(file, text, &set)?;
            Ok(set)
        }
        _ => import::convert(file, text),
    }
}

/// Reads the `kind` of a YAML document, to dispatch between experiments and SLO sets: a
/// Sloth or OpenSLO file (see [`import::format_of`]) is read as an SLO set, so its kind
/// is `SLOSet`.
///
/// ```
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/slo/imported/openslo-saves.yaml");
/// assert_eq!(chaos_runner::spec::document_kind(path.as_ref()).unwrap(), "SLOSet");
/// ```
pub fn document_kind(path: &Path) -> Result<String, SpecError> {
    #[derive(serde::Deserialize)]
    struct KindOnly {
        kind: Option<String>,
    }
    let file = path.display().to_string();
    let text = read(path)?;
    if import::format_of(&text) != import::SloFormat::Native {
        return Ok("SLOSet".to_owned());
    }
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

/// The JSON Schema of GameDay files.
///
/// ```
/// assert!(chaos_runner::spec::gameday_schema().contains("\"blackouts\""));
/// ```
pub fn gameday_schema() -> String {
    let schema = schemars::schema_for!(gameday::GameDay);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// Reads every non-empty document of a YAML text as `T` (`---` between them): for YAML the
/// runner ships itself (manifests), where a problem is a message rather than a user's line.
///
/// ```
/// let docs: Vec<serde_json::Value> = chaos_runner::spec::yaml_documents("a: 1\n---\nb: 2\n").unwrap();
/// assert_eq!(docs.len(), 2);
/// ```
pub fn yaml_documents<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for document in yaml::documents(text).map_err(|f| f.message)? {
        match document {
            Ok(Some(doc)) => out.push(doc),
            Ok(None) => {}
            Err(f) => return Err(format!("{}: {}", f.path, f.message)),
        }
    }
    Ok(out)
}

/// Writes `value` as YAML: the one place the runner writes YAML, as it reads it.
///
/// ```
/// let text = chaos_runner::spec::to_yaml(&std::collections::BTreeMap::from([("groups", 1)])).unwrap();
/// assert_eq!(text, "groups: 1\n");
/// ```
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, serde_yaml::Error> {
    yaml::to_string(value)
}
