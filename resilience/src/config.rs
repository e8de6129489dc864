//! Configuration errors and loading policies from YAML (the crate's only YAML code).

use std::fmt;

/// A configuration error that names the field it is about, and, for YAML input, where it
/// is in the text.
///
/// ```
/// let err = resilience::ResiliencePolicyConfig::from_yaml("retry:\n  max_attempts: 0\n").unwrap_err();
/// assert_eq!(err.field(), "retry.max_attempts");
/// assert!(err.to_string().contains("retry.max_attempts"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    field: String,
    message: String,
    location: Option<(usize, usize)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.field.is_empty() {
            "(document)"
        } else {
            &self.field
        };
        write!(f, "invalid policy configuration at `{field}`")?;
        if let Some((line, column)) = self.location {
            write!(f, " (line {line}, column {column})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl ConfigError {
    /// An error about `field` (a dotted path such as `retry.max_attempts`).
    ///
    /// ```
    /// let e = resilience::ConfigError::new("bulkhead.max_concurrent", "must be at least 1");
    /// assert_eq!(e.message(), "must be at least 1");
    /// ```
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
            location: None,
        }
    }

    /// The dotted path of the field in error (empty for the whole document).
    ///
    /// ```
    /// let e = resilience::ConfigError::new("timeout.overall", "too long");
    /// assert_eq!(e.field(), "timeout.overall");
    /// ```
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    ///
    /// ```
    /// let e = resilience::ConfigError::new("timeout.overall", "too long");
    /// assert_eq!(e.message(), "too long");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Line and column (1-based) in the YAML text, when known.
    ///
    /// ```
    /// let e = resilience::ResiliencePolicyConfig::from_yaml("name: x\nbogus: 1\n").unwrap_err();
    /// assert_eq!(e.location().map(|(line, _)| line), Some(2));
    /// ```
    pub fn location(&self) -> Option<(usize, usize)> {
        self.location
    }

    pub(crate) fn at(mut self, location: Option<(usize, usize)>) -> Self {
        self.location = location;
        self
    }

    /// The same error, about a field inside `section` (checks of a section name its fields
    /// from the section down).
    pub(crate) fn under(mut self, section: &str) -> Self {
        self.field = if self.field.is_empty() {
            section.to_owned()
        } else {
            format!("{section}.{}", self.field)
        };
        self
    }
}

/// Returns `Err` naming `field` unless `ok`.
pub(crate) fn check(
    ok: bool,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(field, message))
    }
}

/// Starts the message of an error about one field below the path the parser reached (a
/// section checked as a whole once read, such as a window of one `kind`): the loader moves
/// the error to that field's own path and line.
pub(crate) const FIELD_MARK: &str = "field ";

/// Deserializes `text` as YAML into `T`, reporting the field path and the line of the first
/// problem. Services whose own configuration embeds policies load it with this, so an
/// error inside a policy names its field and line the same way.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Service { saves: resilience::ResiliencePolicyConfig }
/// let err = resilience::config::from_yaml::<Service>(
///     "saves:\n  circuit_breaker:\n    window: { kind: count, size: 10, buckets: 2 }\n",
/// ).err().unwrap();
/// assert_eq!(err.field(), "saves.circuit_breaker.window.buckets");
/// assert_eq!(err.location(), Some((3, 38)));
/// ```
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let mut location = inner.location().map(|l| (l.line(), l.column()));
        let mut field = if path == "." { String::new() } else { path };
        // serde_yaml appends "at line X column Y" to its message; the location is reported
        // separately, so keep the message itself.
        let message = inner.to_string();
        let mut message = match message.rfind(" at line ") {
            Some(cut) if location.is_some() => message[..cut].to_owned(),
            _ => message,
        };
        // serde_yaml prefixes errors inside a section with the section's path, which the
        // field already says: said once.
        if let Some((head, rest)) = message.split_once(": ") {
            if !head.is_empty() && (field == head || field.starts_with(&format!("{head}."))) {
                message = rest.to_owned();
            }
        }
        if let Some((sub, rest)) = message
            .strip_prefix(FIELD_MARK)
            .and_then(|rest| rest.split_once(": "))
        {
            field = format!("{field}.{sub}");
            // The field's own line when it is written; the section's when it is missing.
            location = locate(text, &field).or(location);
            message = rest.to_owned();
        }
        ConfigError::new(field, message).at(location)
    })
}

/// Finds the line and column of a dotted field path in YAML text, for semantic errors found
/// after parsing. Best effort: follows block-style keys line by line, then flow-style keys
/// (`{ a: 1 }`) on the parent's line; when a key cannot be found it answers with its nearest
/// ancestor's position, which still points the reader at the right place. Answers 1-based
/// (line, column). Services that load their own YAML configuration use it to name the line
/// of a field their own checks reject.
///
/// ```
/// let yaml = "retry:\n  max_attempts: 0\n";
/// assert_eq!(resilience::config::locate(yaml, "retry.max_attempts"), Some((2, 3)));
/// ```
pub fn locate(text: &str, field: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found: Option<(usize, usize)> = None; // 0-based line, 0-based column
    let mut from_line = 0;
    let mut min_indent = 0;
    for key in field.split('.') {
        let block = lines
            .iter()
            .enumerate()
            .skip(from_line)
            .take_while(|(number, line)| {
                let indent = line.len() - line.trim_start().len();
                *number == from_line || line.trim().is_empty() || indent >= min_indent
            })
            .find_map(|(number, line)| {
                let trimmed = line.trim_start();
                let indent = line.len() - trimmed.len();
                let rest = trimmed.strip_prefix(key)?;
                rest.trim_start()
                    .starts_with(':')
                    .then_some((number, indent))
            });
        let flow = || {
            let (number, column) = found?;
            let line = lines.get(number)?;
            let pattern = format!("{key}:");
            let at = line[column..].find(&pattern).map(|at| at + column)?;
            let starts_word = line[..at]
                .chars()
                .last()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_');
            starts_word.then_some((number, at))
        };
        match block.or_else(flow) {
            Some((number, column)) => {
                found = Some((number, column));
                from_line = number + 1;
                min_indent = column + 1;
            }
            None => break,
        }
    }
    found.map(|(line, column)| (line + 1, column + 1))
}
