//! SLO files written for other tools, read as the runner's own SLO sets: Sloth's
//! `prometheus/v1` files ([`sloth`]) and OpenSLO v1 `kind: SLO` documents ([`openslo`]).
//!
//! A file is told apart by its first document ([`format_of`]): a `version` of
//! `prometheus/...` is Sloth, an `apiVersion` of `openslo/...` is OpenSLO, anything else is
//! the runner's own `kind: SLOSet`. [`convert`] turns an imported file into a [`SloSet`] and checks it as any
//! SLO set is checked; what a format says that the runner cannot say the same way is
//! refused by name, with the field path in the source file's own terms and its line, never
//! dropped. `docs/slo-import.md` lists what is read and what is
//! refused.
//!
//! ```
//! use chaos_runner::spec::import::{convert, format_of, SloFormat};
//! let sloth = "version: prometheus/v1\nservice: game-api\nslos:\n  - name: availability\n    objective: 99.9\n    sli:\n      events:\n        error_query: sum(rate(errors_total[{{.window}}]))\n        total_query: sum(rate(requests_total[{{.window}}]))\n";
//! assert_eq!(format_of(sloth), SloFormat::Sloth);
//! let set = convert("sloth.yaml", sloth).unwrap();
//! assert_eq!(set.metadata.name, "game-api");
//! assert_eq!(set.spec.slos[0].period, std::time::Duration::from_secs(30 * 86_400));
//! ```

pub mod openslo;
mod promql;
pub mod sloth;

use std::collections::BTreeMap;

use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

use super::slo::SloSet;
use super::yaml::{self, Positions, YamlFailure};
use super::{validate, SpecError, SpecErrors};

/// The format of an SLO file, from its first document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloFormat {
    /// The runner's own `kind: SLOSet` (and anything that is none of the others).
    Native,
    /// Sloth's `version: prometheus/v1` (other `prometheus/...` versions are refused, by
    /// name).
    Sloth,
    /// Sloth's Kubernetes resource (`apiVersion: sloth.slok.dev/v1`): refused, by name.
    SlothKubernetes,
    /// OpenSLO (`apiVersion: openslo/v1`; other OpenSLO versions are refused, by name).
    OpenSlo,
}

/// The fields that tell the formats apart; a document that has none of them (or is not a
/// mapping) is read as the runner's own.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    version: Lenient,
    #[serde(default)]
    api_version: Lenient,
    #[serde(default)]
    kind: Lenient,
}

/// A string, or `None` for any other value (a number, a list), so that reading the header
/// never fails on what the full parse reports better.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lenient(pub Option<String>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum StringOrOther {
            Text(String),
            Other(IgnoredAny),
        }
        Ok(Lenient(match StringOrOther::deserialize(deserializer)? {
            StringOrOther::Text(text) => Some(text),
            StringOrOther::Other(_) => None,
        }))
    }
}

impl Lenient {
    fn is(&self, expected: &str) -> bool {
        self.0.as_deref() == Some(expected)
    }
}

/// Which format `text` is in, from its first document.
///
/// ```
/// use chaos_runner::spec::import::{format_of, SloFormat};
/// assert_eq!(format_of("version: \"prometheus/v1\"\nservice: x\n"), SloFormat::Sloth);
/// assert_eq!(format_of("apiVersion: openslo/v1\nkind: SLO\n"), SloFormat::OpenSlo);
/// assert_eq!(format_of("---\napiVersion: openslo/v1\nkind: SLO\n---\napiVersion: openslo/v1\nkind: SLO\n"), SloFormat::OpenSlo);
/// assert_eq!(format_of("apiVersion: chaos.game-resilience.dev/v1\nkind: SLOSet\n"), SloFormat::Native);
/// assert_eq!(format_of("- not a mapping\n"), SloFormat::Native);
/// ```
pub fn format_of(text: &str) -> SloFormat {
    let header: Header = yaml::document(text, 0).ok().flatten().unwrap_or_default();
    let api_version = header.api_version.0.unwrap_or_default();
    if header.kind.is("SLOSet") {
        SloFormat::Native
    } else if header
        .version
        .0
        .as_deref()
        .is_some_and(|version| version.starts_with("prometheus/"))
    {
        SloFormat::Sloth
    } else if api_version.starts_with("sloth.slok.dev/") {
        SloFormat::SlothKubernetes
    } else if api_version.starts_with("openslo") {
        SloFormat::OpenSlo
    } else {
        SloFormat::Native
    }
}

/// Reads a Sloth or OpenSLO file as an SLO set, and checks the set as every SLO set is
/// checked. Every problem is reported with the field path and line of the source file;
/// a file of the runner's own format is refused here (it is read by
/// [`super::parse_slo_set`]).
///
/// ```
/// let openslo = "apiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: saves\nspec:\n  service: game-saves\n  budgetingMethod: Timeslices\n";
/// let err = chaos_runner::spec::import::convert("saves.yaml", openslo).unwrap_err();
/// assert!(err.to_string().contains("saves.yaml:7:3: spec.budgetingMethod: "), "{err}");
/// ```
pub fn convert(file: &str, text: &str) -> Result<SloSet, SpecErrors> {
    let imported = match format_of(text) {
        SloFormat::Sloth => sloth::convert(file, text)?,
        SloFormat::OpenSlo => openslo::convert(file, text)?,
        SloFormat::SlothKubernetes => {
            let mut refusals = Refusals::new(file, text);
            refusals.refuse(
                0,
                "apiVersion",
                "Sloth's Kubernetes resource (PrometheusServiceLevel) is not read: write its \
                 `spec` as a Sloth file (`version: prometheus/v1`, `service`, `slos`)",
            );
            return Err(refusals.into_errors());
        }
        SloFormat::Native => {
            return Err(SpecError {
                file: file.to_owned(),
                field: String::new(),
                location: None,
                message: "neither a Sloth (`version: prometheus/v1`) nor an OpenSLO \
                          (`apiVersion: openslo/v1`) file"
                    .to_owned(),
            }
            .into())
        }
    };
    imported.checked(file, text)
}

/// A converted set with where each of its fields came from.
pub(crate) struct Imported {
    pub set: SloSet,
    pub origins: Origins,
}

impl Imported {
    /// Checks the set as every set is checked, reporting each problem at its source field.
    fn checked(self, file: &str, text: &str) -> Result<SloSet, SpecErrors> {
        // Positions come from the source below, not from the runner's own paths.
        match validate::check_slo_set(file, "", &self.set) {
            Ok(()) => Ok(self.set),
            Err(errors) => {
                let mut refusals = Refusals::new(file, text);
                for error in errors.0 {
                    let (document, path) = self.origins.source_of(&error.field);
                    refusals.refuse(document, path, error.message);
                }
                Err(refusals.into_errors())
            }
        }
    }
}

/// Where the fields of a converted set come from: for a field path of the set (and every
/// path under it), the document of the source file and the field path there.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    entries: Vec<(String, usize, String)>,
}

impl Origins {
    /// Says that the set's `ours` (and what is under it) comes from `source` in `document`.
    pub fn add(&mut self, ours: impl Into<String>, document: usize, source: impl Into<String>) {
        self.entries.push((ours.into(), document, source.into()));
    }

    /// The source of a field of the set: the longest known path that holds it, with the
    /// rest of the path appended; document 0's root when none does.
    pub fn source_of(&self, ours: &str) -> (usize, String) {
        self.entries
            .iter()
            .filter(|(prefix, _, _)| {
                ours.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                    rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
                })
            })
            .max_by_key(|(prefix, _, _)| prefix.len())
            .map(|(prefix, document, source)| {
                let rest = &ours[prefix.len()..];
                let path = match (source.is_empty(), rest.strip_prefix('.')) {
                    (true, Some(rest)) => rest.to_owned(),
                    _ => format!("{source}{rest}"),
                };
                (*document, path)
            })
            .unwrap_or((0, String::new()))
    }
}

/// The problems found while converting a file, each at its field and line in the source.
pub(crate) struct Refusals<'a> {
    file: &'a str,
    text: &'a str,
    positions: BTreeMap<usize, Positions>,
    errors: Vec<SpecError>,
}

impl<'a> Refusals<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Refusals {
            file,
            text,
            positions: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    /// Refuses `field` (a path in document `document` of the source) for `message`, at the
    /// field, else at the nearest of its parents that is written, else at the document.
    pub fn refuse(
        &mut self,
        document: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let field = field.into();
        let text = self.text;
        let positions = self
            .positions
            .entry(document)
            .or_insert_with(|| Positions::of_document(text, document));
        let error = SpecError {
            file: self.file.to_owned(),
            location: positions.find(&field).or_else(|| positions.find("")),
            field,
            message: message.into(),
        };
        // The same problem met twice (from `good` and from `total`) is said once.
        if !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }

    /// A document that did not deserialize (its path and position are already known).
    pub fn failed(&mut self, failure: YamlFailure) {
        self.errors.push(SpecError {
            file: self.file.to_owned(),
            field: failure.path,
            location: failure.location,
            message: failure.message,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `value` when nothing was refused, else every refusal.
    pub fn finish<T>(self, value: T) -> Result<T, SpecErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.into_errors())
        }
    }

    pub fn into_errors(self) -> SpecErrors {
        SpecErrors(self.errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_pick_the_longest_prefix_and_keep_the_rest_of_the_path() {
        let mut origins = Origins::default();
        origins.add("spec.slos", 0, "slos");
        origins.add(
            "spec.slos[1].sli.ratio.good",
            0,
            "slos[1].sli.events.error_query",
        );
        origins.add("spec.slos[2]", 2, "");
        assert_eq!(
            origins.source_of("spec.slos[0].name"),
            (0, "slos[0].name".into())
        );
        assert_eq!(
            origins.source_of("spec.slos[1].sli.ratio.good"),
            (0, "slos[1].sli.events.error_query".into())
        );
        assert_eq!(origins.source_of("spec.slos[2].name"), (2, "name".into()));
        assert_eq!(origins.source_of("spec.slos[2]"), (2, String::new()));
        // `spec.slos[2]` does not hold `spec.slos[20]`.
        assert_eq!(origins.source_of("spec.slos[20]"), (0, "slos[20]".into()));
        assert_eq!(origins.source_of("metadata.name"), (0, String::new()));
    }

    #[test]
    fn the_format_is_read_from_the_first_document() {
        assert_eq!(format_of("version: prometheus/v1\n"), SloFormat::Sloth);
        assert_eq!(format_of("version: prometheus/v2\n"), SloFormat::Sloth);
        assert_eq!(format_of("version: 1\nkind: SLOSet\n"), SloFormat::Native);
        assert_eq!(
            format_of("apiVersion: sloth.slok.dev/v1\nkind: PrometheusServiceLevel\n"),
            SloFormat::SlothKubernetes
        );
        assert_eq!(
            format_of("apiVersion: openslo/v1alpha\n"),
            SloFormat::OpenSlo
        );
        assert_eq!(format_of(""), SloFormat::Native);
        assert_eq!(format_of("{ unclosed"), SloFormat::Native);
    }
}
